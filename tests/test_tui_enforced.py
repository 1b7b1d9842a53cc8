"""The TUI's rotate on an enforced account whose new certificate Klarna takes minutes to accept
(issue 23, item 1): the screen keeps checking, beyond Klarna's 5 minutes, while the pair in use
stays. Klarna's minutes pass on the sandbox clock, not in real time."""

from __future__ import annotations

import asyncio

import pytest
from test_enforced_journeys import KlarnasClock
from tests_support import settle

from screens.app import make_app
from screens.modals import ConfirmModal
from screens.rotate import RotateScreen

pytestmark = pytest.mark.e2e


async def test_the_rotate_screen_waits_out_a_propagation_delay_longer_than_five_minutes(onboard, sandbox, monkeypatch):
    old = (await asyncio.to_thread(onboard, enforce_at="NOW"))["certificate_id"]
    sandbox.advance_clock(401)  # the certificate in use was issued long ago…
    sandbox.configure(propagation_delay=400)  # …and a new one is refused for more than 5 minutes
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("o")
        await settle(pilot)
        rotate = app.screen
        assert isinstance(rotate, RotateScreen)
        klarna = KlarnasClock(sandbox, monkeypatch)
        await pilot.press("enter")  # Start rotation
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal) and "Retire" in app.screen.title_text
        await pilot.press("enter")  # keep the old certificate for now
        await settle(pilot)
        result = rotate.result
        assert result is not None and result.old_certificate_id == old, rotate
        assert klarna.moved > 300 and "INVALID" in result.statuses_seen and result.statuses_seen[-1] == "VALID"


async def test_with_no_header_once_enforced_the_dashboard_says_accepted_and_its_rotation_retires_the_old(
    onboard, sandbox
):
    old = (await asyncio.to_thread(onboard, enforce_at="NOW"))["certificate_id"]
    sandbox.configure(no_header_once_enforced=True)
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        summary = str(app.screen.query_one("#summary").content)
        assert "installed pair: accepted under enforcement" in summary and "VALID" not in summary
        await pilot.press("o")
        await settle(pilot)
        rotate = app.screen
        await pilot.press("enter")  # Start rotation
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal) and "Retire" in app.screen.title_text
        await pilot.click("#confirm")  # retire the old certificate: the gate takes the accepted call
        await settle(pilot)
        result = rotate.result
        assert result is not None and result.old_certificate_id == old
        steps = str(rotate.query_one("#steps").content)
        assert "Now in use (SHA-256), accepted under enforcement (no header):" in steps and "VALID" not in steps
        assert sandbox._state.certificate_status(sandbox._state.account_certificates(sandbox.account_id)[old]) == (
            "REVOKED"
        )
