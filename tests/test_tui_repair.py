"""Repair in the TUI (issue 24): on the dashboard and in the doctor, the same domain call as
`klarna-mtls repair`, in a worker, showing what it found and did, then the dashboard refreshed.
A broken local file is answered with Repair, never with "unenforce"."""

from __future__ import annotations

import asyncio
import os
from functools import partial

import pytest
from snapshot_apps import dashboard_app
from tests_support import session_for
from tests_support import settle as settle_app

from screens.app import make_app
from screens.dashboard import DashboardScreen
from screens.doctor import DoctorScreen
from screens.repair import RepairScreen
from wizard.core.findings import Finding, Severity
from wizard.services.install import current_paths

SIZE = (80, 24)
settle = partial(settle_app, failures_shown=True)


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector).content)


async def broken_app(onboard, sandbox, damage):
    await asyncio.to_thread(onboard, enforce_at="NOW")
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    cert, key = current_paths(app.session.install_dir)
    damage(cert.resolve(), key.resolve())
    return app, cert


@pytest.mark.e2e
async def test_the_doctor_offers_repair_for_a_deleted_certificate_and_the_dashboard_is_valid_again(onboard, sandbox):
    app, cert = await broken_app(onboard, sandbox, lambda cert, key: cert.unlink())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "installed pair: broken here" in text_of(app, "#summary")
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, DoctorScreen)
        findings = text_of(app, "#findings")
        assert "klarna-mtls repair --profile p" in findings and "unenforce" not in findings
        assert app.screen.query_one("#repair").display and app.screen.repairable
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, RepairScreen)
        report = text_of(app, "#report")
        assert f"found: Could not open certificate file {cert.resolve()}: no such file." in report
        assert "✓ repaired: certificate" in report and "Klarna: VALID." in report
        assert cert.is_file()  # back, through `current`
        looked, look_again = asyncio.Event(), app.services.run_doctor

        async def held_doctor():
            await looked.wait()
            return await look_again()

        app.services.run_doctor = held_doctor  # type: ignore[method-assign]
        await pilot.press("escape")
        await pilot.pause()
        # While it looks again, neither the last findings nor their Repair are shown as current.
        assert isinstance(app.screen, DoctorScreen) and text_of(app, "#findings") == "Checking…"
        assert not app.screen.repairable and not app.screen.query_one("#repair").display
        looked.set()
        await settle(pilot)
        assert not app.screen.repairable  # looked again: sound
        assert not app.screen.query_one("#repair").display
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        assert "installed pair: VALID" in text_of(app, "#summary")
        assert not app.screen.query_one("#offline").display


@pytest.mark.e2e
async def test_r_on_the_dashboard_repairs_a_corrupted_certificate_and_keeps_the_damaged_copy(onboard, sandbox):
    app, cert = await broken_app(onboard, sandbox, lambda cert, key: cert.write_text("garbage\n"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "r repairs it" in text_of(app, "#offline")
        await pilot.press("r")
        await settle(pilot)
        report = text_of(app, "#report")
        assert "aside to certificate.pem.broken-" in report and "✓ repaired" in report
        [aside] = [p for p in os.listdir(cert.resolve().parent) if ".broken-" in p]
        assert (cert.resolve().parent / aside).read_text() == "garbage\n"
        await pilot.press("escape")
        await settle(pilot)
        assert "installed pair: VALID" in text_of(app, "#summary")


@pytest.mark.e2e
async def test_a_repair_with_nothing_to_restore_from_says_what_to_do(onboard, sandbox):
    def lose_every_copy_of_the_key(cert, key):
        key.unlink()
        os.unlink(session_for("p", sandbox).evidence.key_path)

    app, _ = await broken_app(onboard, sandbox, lose_every_copy_of_the_key)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        report = text_of(app, "#report")
        assert "✗ Repair failed:" in report and "klarna-mtls rotate --profile p" in report
        assert "unenforce" not in report
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen) and "Local problem" in text_of(app, "#offline")


async def test_repair_is_not_offered_when_the_installed_pair_is_sound():
    app = dashboard_app()
    repairs = []

    async def repairer(session, on_step):
        repairs.append(session)
        raise AssertionError("no repair expected")

    async def sound(session):
        return [Finding("key match", Severity.OK, "Installed certificate and key belong together.")]

    app.services.repairer, app.services.findings_loader = repairer, sound
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")  # the dashboard: no local problem
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, DoctorScreen) and not app.screen.query_one("#repair").display
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, DoctorScreen) and repairs == []
