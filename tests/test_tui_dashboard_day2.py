"""The dashboard on day 2 (issue 24, item 8 and the friction list): a certificate this tool
revoked stays REVOKED in the offline view; a missing, broken or unsafe installed file is a local
problem, never "Could not reach Klarna"; the row in use is selected (and a selection survives a
refresh); q and Esc do what other screens do; slots the listing cannot count are unknown."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from functools import partial

import pytest
from snapshot_apps import dashboard_app, fixed_status
from tests_support import settle as settle_app

from screens.app import make_app
from screens.dashboard import DashboardScreen
from screens.done import DoneScreen
from screens.modals import ConfirmModal
from wizard.services import offline
from wizard.services.install import current_paths

SIZE = (80, 24)
settle = partial(settle_app, failures_shown=True)


def banner(app) -> str:
    return str(app.screen.query_one("#offline").content)


def summary(app) -> str:
    return str(app.screen.query_one("#summary").content)


# ---------------------------------------------------------------- revoked stays revoked
def test_the_cached_view_shows_a_certificate_this_tool_revoked_as_revoked():
    app = dashboard_app()
    session = app.session
    offline.remember(session, fixed_status())  # Klarna's last answer: SNAP0001 still ACTIVE
    old = fixed_status().certificates[0].credential_id
    session.state.certificate(old).retired = True  # then this tool revoked it (the journal records it)
    cached = offline.cached_status(session)
    assert {c.credential_id: c.status for c in cached.status.certificates}[old] == "REVOKED"
    assert cached.status.slots_used == 1


@pytest.mark.e2e
async def test_a_certificate_revoked_on_the_dashboard_stays_revoked_when_the_next_refresh_fails(onboard, sandbox, cli):
    await asyncio.to_thread(onboard, enforce_at="NOW")
    code, _ = await asyncio.to_thread(cli, "rotate", "--profile", "p")
    assert code == 0
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        old = next(c for c in screen.status.certificates if not c.current)
        table = screen.query_one("#certificates")
        table.move_cursor(row=[c.credential_id for c in screen.status.certificates].index(old.credential_id))
        await pilot.press("v")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("tab", "enter")
        await settle(pilot)
        assert {c.credential_id: c.status for c in screen.status.certificates}[old.credential_id] == "REVOKED"
    sandbox.stop()  # the next start cannot reach Klarna
    again = make_app("p")
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "Could not reach Klarna" in banner(again)
        statuses = {c.credential_id: c.status for c in again.screen.status.certificates}
        assert statuses[old.credential_id] == "REVOKED" and "slots 1/10" in summary(again)


# ---------------------------------------------------------------- local problems are local
async def dashboard_after(onboard, sandbox, damage) -> tuple[str, str, object]:
    await asyncio.to_thread(onboard, enforce_at="NOW")
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    cert, key = current_paths(app.session.install_dir)
    damage(cert.resolve(), key.resolve())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        return banner(app), summary(app), cert


@pytest.mark.e2e
async def test_a_deleted_certificate_file_is_a_local_problem_not_klarna_unreachable(onboard, sandbox):
    text, header, cert = await dashboard_after(onboard, sandbox, lambda cert, key: cert.unlink())
    assert f"Local problem: Installed certificate file missing: {cert}\n" in text  # the path whole, nothing glued
    assert "Could not reach Klarna" not in text and "unenforce" not in text
    assert "installed pair: broken here" in header and "VALID" not in header


@pytest.mark.e2e
async def test_a_corrupted_certificate_file_is_a_local_problem(onboard, sandbox):
    text, header, cert = await dashboard_after(onboard, sandbox, lambda cert, key: cert.write_text("garbage\n"))
    assert f"Installed certificate file broken: {cert}" in text and "Could not reach Klarna" not in text


@pytest.mark.e2e
async def test_a_key_file_others_can_read_is_a_local_problem(onboard, sandbox):
    text, _, _ = await dashboard_after(onboard, sandbox, lambda cert, key: os.chmod(key, 0o644))
    assert "Local problem: Installed private key file unsafe" in text and "mode 644" in text
    assert "r repairs" not in text and "the doctor (d) says what to do" in text  # repair restores files, not modes
    assert "Could not reach Klarna" not in text


# ---------------------------------------------------------------- selection, keys, slots
async def test_the_row_in_use_is_selected_and_a_chosen_row_survives_a_refresh():
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert screen.selected_id() == fixed_status().current_id  # not the oldest (first) row
        screen.query_one("#certificates").move_cursor(row=2)
        await pilot.press("f5")
        await settle(pilot)
        assert screen.selected_id() == fixed_status().certificates[2].credential_id


async def test_q_quits_the_dashboard_and_esc_says_what_it_does():
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("escape")  # the first screen of a finished profile: nowhere to go back to
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        assert any("q quits" in str(n.message) for n in app._notifications)
        await pilot.press("q")
        await settle(pilot)
        assert not app.is_running


async def test_esc_goes_back_to_the_done_screen_it_was_opened_from():
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.push_screen(DoneScreen(app.services))
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, DoneScreen)


async def test_slots_are_unknown_when_the_listing_gives_no_state():
    app = dashboard_app()
    unlisted = dataclasses.replace(
        fixed_status(),
        certificates=[dataclasses.replace(c, status="UNKNOWN") for c in fixed_status().certificates],
        slots_used=0,
    )

    async def docs_only(session):
        return unlisted

    app.services.status_loader = docs_only
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "slots unknown (3 listed without a state" in summary(app) and "slots 0/10" not in summary(app)


@pytest.mark.e2e
@pytest.mark.parametrize("sandbox", ["docs-only"], indirect=True)
async def test_the_doctor_says_slots_are_unknown_on_a_listing_without_states(onboard, sandbox):
    from wizard.services.doctor import run_doctor

    await asyncio.to_thread(onboard, enforce_at="NOW")
    app = make_app("p", sandbox=sandbox)
    app.session.unlock(sandbox.api_key)
    slots = next(f for f in await run_doctor(app.session) if f.check == "slots")
    assert "unknown" in slots.summary and "0 of 10" not in slots.summary
