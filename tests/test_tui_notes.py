"""The TUI shows a check's notes where it shows the check (issue 24): the CN Klarna assigned, on
the Issue step and the Done screen; the way back (a call without the refused certificate) on the
dashboard (and, closed by enforcement, said as Klarna's refusal, not a local problem); the
rotation's notes. Server text, cleaned like any other."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from tests_support import click, walk_to
from tests_support import settle as settle_app

from screens.app import make_app
from screens.dashboard import DashboardScreen
from screens.done import DoneScreen
from screens.rotate import RotateScreen
from wizard.core import crypto, rules
from wizard.core.paths import Paths
from wizard.core.stages import Stage
from wizard.services.install import current_pair
from wizard.services.session import Session

pytestmark = pytest.mark.e2e
SIZE = (80, 24)
settle = partial(settle_app, failures_shown=True)
ASSIGNED = "Klarna assigned the CN"


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector).content)


async def test_the_issue_step_shows_the_note_of_a_cn_klarna_assigned(sandbox):
    sandbox.configure(assigned_cn=True)
    app = make_app("w", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, Stage.ISSUE)
        await click(app, pilot, "#submit")
        shown = text_of(app, "#blockers")
        assert "✓ All checks pass." in shown and f"ℹ {ASSIGNED} '" in shown, shown


async def test_the_done_screen_shows_the_note_of_a_cn_klarna_assigned(onboard, sandbox):
    sandbox.configure(assigned_cn=True)
    await asyncio.to_thread(onboard, enforce_at="NOW")
    app = make_app("p", sandbox=sandbox)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.push_screen(DoneScreen(app.services))
        await settle(pilot)
        assert f"Note: {ASSIGNED} '" in text_of(app, "#summary")


def expire_the_installed_certificate(onboard, sandbox, seconds: int = 5, enforced: bool = False) -> None:
    """Onboard with a certificate that expires ``seconds`` from now, and wait until it has (the
    sandbox judges validity on real time); then enforcement is scheduled elsewhere, an hour ahead
    (or now, and applied)."""
    sandbox.configure(certificate_lifetime_seconds=seconds)
    onboard()
    sandbox.configure(certificate_lifetime_seconds=94608000)
    pair = current_pair(Session(Paths.from_env(), "p").install_dir)
    assert pair is not None
    expires = crypto.load_certificate(pair.cert_path.read_bytes()).not_valid_after_utc
    while datetime.now(UTC) <= expires + timedelta(seconds=1):  # a wait for the expiry, not a timed assertion
        time.sleep(0.2)
    state = sandbox._state
    with state.lock:
        when = "NOW" if enforced else rules.format_utc(sandbox.now() + timedelta(hours=1))
        state.set_enforcement(sandbox.account_id, {"enforced_from": when})
        state.save()
    if enforced:
        sandbox.advance_clock(sandbox.enforcement_delay + 1)


async def test_the_dashboard_shows_the_way_back_note(onboard, sandbox):
    await asyncio.to_thread(expire_the_installed_certificate, onboard, sandbox)
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.push_screen(DashboardScreen(app.services))  # the profile stopped at Enforce
        await settle(pilot)
        notes = text_of(app, "#notes")
        assert app.screen.query_one("#notes").display and "Note: " in notes, notes
        assert "without a client certificate" in notes and "REJECTED" in text_of(app, "#summary")


async def test_a_refused_pair_on_an_enforced_account_is_klarnas_refusal_on_the_dashboard(onboard, sandbox):
    await asyncio.to_thread(expire_the_installed_certificate, onboard, sandbox, enforced=True)
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.push_screen(DashboardScreen(app.services))
        await settle(pilot)
        banner = text_of(app, "#offline")
        assert banner.startswith("Klarna refuses the installed certificate:") and "Locked:" in banner, banner
        assert "Local problem" not in banner and not app.screen.query_one("#notes").display
        # The steps are the doctor's to give: in the banner they pushed the table off an 80x24 screen.
        assert "the doctor (d) gives the steps" in banner and "runtime request" not in banner, banner
        assert len(banner.splitlines()) <= 8 and app.screen.query_one("#certificates").region.bottom <= SIZE[1]
        await pilot.press("d")
        await settle(pilot)
        findings = text_of(app, "#findings")
        assert "Klarna refuses the installed certificate" in findings, findings
        assert "klarna-mtls runtime request --name NAME --profile p" in findings, findings
        assert "klarna-mtls runtime request --name NAME --profile p" in "\n".join(app.screen.next_steps)


async def test_the_rotation_shows_its_notes_cleaned(monkeypatch):
    from snapshot_apps import dashboard_app, fixed_status

    from wizard.services import certificate_rotation, waits

    old, new = fixed_status().certificates[1], fixed_status().certificates[0]
    note = "rotate called Klarna without a client certificate\x1b]52;c;aGk=\x07 (the installed one was refused)"

    async def rotation(session, **options):  # the domain's rotation events, without the network
        progress = certificate_rotation.RotationProgress(
            "done", old.credential_id, new.credential_id, new.fingerprint, notes=[note]
        )
        yield waits.Done("Rotating", 1.0, "VALID", result=progress)

    monkeypatch.setattr(certificate_rotation, "rotation", rotation)
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("o")
        await settle(pilot)
        assert isinstance(app.screen, RotateScreen)
        rotate = app.screen
        rotate.start_pressed()
        await settle(pilot)
        steps = str(rotate.query_one("#steps").content)
        assert "Note: rotate called Klarna without a client certificate" in steps and "(the installed one" in steps
        assert "\x1b" not in steps and "\x07" not in steps


@pytest.mark.parametrize("enforced", [True, False], ids=["enforced", "not-enforced"])
def test_the_doctor_on_a_pair_refused_in_the_handshake_says_what_is_left(onboard, sandbox, cli, enforced):
    """An expired certificate is refused in the TLS handshake. The doctor called that "reachability"
    and advised `rotate`, though with mTLS enforced rotate is locked too. It now reads the way back as
    `status` does: enforced, the lock-out steps; not enforced, the way back and rotate."""
    expire_the_installed_certificate(onboard, sandbox, enforced=enforced)
    code, out = cli("doctor", "--profile", "p")
    findings = {f["check"]: f for f in out["findings"]}
    assert "reachability" not in findings, findings
    if enforced:
        assert code == 2 and findings["verification"]["severity"] == "critical"
        assert findings["verification"]["summary"].startswith("Klarna refuses the installed certificate: mTLS is")
        assert "runtime request --name NAME --profile p" in findings["verification"]["next_step"]
    else:
        assert "mTLS is not enforced now" in findings["way back"]["summary"]
        assert "klarna-mtls rotate --profile p" in findings["way back"]["next_step"]
        assert findings["verification"]["summary"].startswith("REJECTED")
