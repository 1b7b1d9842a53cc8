"""One extra Enter after a finished rotation does not start a second rotation (issue 24, item 7):
after Done the focus leaves the start button, which becomes "Rotate again…" and asks first."""

from __future__ import annotations

import asyncio

import pytest
from tests_support import settle

from screens.app import make_app
from screens.modals import ConfirmModal
from screens.rotate import RotateScreen

pytestmark = pytest.mark.e2e
SIZE = (80, 24)


def active(app) -> int:
    return sum(1 for c in app.screen.status.certificates if c.status == "ACTIVE")


async def test_an_extra_enter_after_a_rotation_does_not_rotate_again(onboard, sandbox):
    await asyncio.to_thread(onboard, enforce_at="NOW")
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert active(app) == 1
        await pilot.press("o")
        await settle(pilot)
        rotate = app.screen
        assert isinstance(rotate, RotateScreen)
        await pilot.press("enter")  # Start rotation has the focus
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal) and "Retire" in app.screen.title_text
        await pilot.press("enter")  # Cancel (the safe default): keep the old certificate for now
        await settle(pilot)
        assert len(app.session.state.certificates) == 2
        await pilot.press("enter")  # the newcomer's extra Enter
        await settle(pilot)
        assert len(app.session.state.certificates) == 2  # no second rotation: no third certificate
        assert type(app.screen).__name__ == "DashboardScreen"  # the Enter left the finished screen
        assert active(app) == 2


async def test_a_second_rotation_needs_a_confirmation(onboard, sandbox):
    await asyncio.to_thread(onboard, enforce_at="NOW")
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("o")
        await settle(pilot)
        rotate = app.screen
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("escape")  # no retirement
        await settle(pilot)
        first = rotate.result
        assert str(rotate.query_one("#start").label) == "Rotate again…"
        rotate.query_one("#start").focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal) and app.screen.title_text == "Rotate again?"
        assert "one more of the 10 slots" in app.screen.consequence
        await pilot.press("enter")  # Cancel
        await settle(pilot)
        assert rotate.result is first
        await pilot.press("enter")  # the start button again (focus came back to it)
        await settle(pilot)
        await pilot.press("tab", "enter")  # deliberately: Rotate again
        await settle(pilot)
        assert rotate.result is not None and rotate.result.new_certificate_id != first.new_certificate_id
