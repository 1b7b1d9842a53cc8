"""Pilot tests for the dashboard, rotation, the revocation refusal and the doctor, on the sandbox."""

from __future__ import annotations

import asyncio

import pytest
from tests_support import settle

from screens.app import make_app
from screens.modals import ConfirmModal, ErrorModal

pytestmark = pytest.mark.e2e
SIZE = (120, 40)


async def test_dashboard_rotate_and_retire(onboard, sandbox):
    first = await asyncio.to_thread(onboard, enforce_at="NOW")
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert type(app.screen).__name__ == "DashboardScreen"
        assert "ENFORCED" in str(app.screen.query_one("#summary").content)
        await pilot.press("o")
        await settle(pilot)
        await pilot.click("#start")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal)  # offer to retire the old certificate
        await pilot.click("#confirm")
        await settle(pilot)
        steps = str(app.screen.query_one("#steps").content)
        assert steps.count("✓") == 5
        await pilot.press("escape")
        await settle(pilot)
        states = {c.credential_id: c.status for c in app.screen.status.certificates}
        assert states[first["certificate_id"]] == "REVOKED"
        assert app.screen.status.verification == "VALID"


async def test_revoking_the_current_certificate_is_refused_with_the_reason(onboard, sandbox):
    await asyncio.to_thread(onboard, enforce_at="NOW")
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        assert isinstance(app.screen, ErrorModal)
        assert app.screen.title_text == "Refused for your safety"
        assert "installed and in use here" in app.screen.body_text


async def test_doctor_screen_lists_findings(onboard, sandbox):
    await asyncio.to_thread(onboard, enforce_at="NOW")
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        text = str(app.screen.query_one("#findings").content)
        assert "✓ verification: VALID" in text and "file modes" in text


async def test_enforcement_can_be_removed_from_the_dashboard(onboard, sandbox):
    await asyncio.to_thread(onboard, enforce_at="NOW")
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        await pilot.click("#confirm")
        await settle(pilot)
        assert "Enforcement: REPORTING" in str(app.screen.query_one("#summary").content)


async def test_keys_screen_create_refuse_and_rotate(onboard, sandbox, memory_keyring):
    from tests_support import name_initial_key, session_for

    from screens.keys import SecretOnceModal

    await asyncio.to_thread(onboard, enforce_at="NOW")
    await asyncio.to_thread(lambda: name_initial_key(session_for("p", sandbox)))  # as keys set-own would
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("k")
        await settle(pilot)
        screen = app.screen
        assert "runs on the initial key" in str(screen.query_one("#note").content)
        await pilot.press("ctrl+d")  # the selected first row is the tool's own key: refused
        await settle(pilot)
        assert isinstance(app.screen, ErrorModal) and "without a working key" in app.screen.body_text
        await pilot.press("escape")
        screen.query_one("#description").value = "checkout eu"
        await pilot.click("#create")
        await settle(pilot)
        # the profile's key came from KLARNA_API_KEY: no store can keep the new one, so ask first
        assert isinstance(app.screen, ConfirmModal) and "kept nowhere" in app.screen.title_text
        await pilot.click("#confirm")
        await settle(pilot)
        assert isinstance(app.screen, SecretOnceModal)
        await pilot.click("#close")
        await settle(pilot)
        assert len(screen.rows) == 2
