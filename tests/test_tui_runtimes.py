"""Pilot tests on the sandbox: the dashboard's runtimes panel and the enforcement gate in the TUI."""

from __future__ import annotations

import asyncio

import pytest
from tests_support import settle

from screens.app import make_app
from screens.modals import ErrorModal

pytestmark = pytest.mark.e2e
SIZE = (100, 40)


async def enforce_now(app, pilot):
    await pilot.press("e")
    await settle(pilot)
    await pilot.click("#confirm")
    await settle(pilot)


async def test_enforce_from_the_dashboard_waits_for_every_runtime(onboard, sandbox, cli):
    await asyncio.to_thread(onboard, enforce_at="NOW")
    code, _ = await asyncio.to_thread(cli, "runtime", "add", "self", "--profile", "p")
    assert code == 0
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert type(app.screen).__name__ == "DashboardScreen"
        summary = app.screen.query_one("#runtimes-summary")
        assert app.screen.query_one("#runtimes-panel").display
        assert str(summary.content).startswith("0 of 1 runtimes VALID, last seen never")
        await enforce_now(app, pilot)
        assert isinstance(app.screen, ErrorModal)
        assert app.screen.title_text == "Refused for your safety"
        assert "self: no readiness report yet" in app.screen.body_text
        await pilot.press("escape")
        await settle(pilot)
        # The runtime reports from another process (here: probe on this machine records it).
        code, _ = await asyncio.to_thread(cli, "probe", "--profile", "p", "--name", "self")
        assert code == 0  # VALID (its stdout is captured by the running app)
        await pilot.press("f5")
        await settle(pilot)
        assert str(summary.content).startswith("1 of 1 runtimes VALID, last seen ")
        await enforce_now(app, pilot)
        assert not isinstance(app.screen, ErrorModal)


async def test_the_enforce_stage_shows_runtimes_and_refuses_until_they_report(onboard, sandbox, cli):
    await asyncio.to_thread(onboard)  # up to the Enforce stage
    code, _ = await asyncio.to_thread(cli, "runtime", "add", "self", "--profile", "p")
    assert code == 0
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert type(app.screen).__name__ == "EnforceScreen"
        assert app.screen.query_one("#runtimes-panel").display
        assert str(app.screen.query_one("#runtimes-summary").content).startswith("0 of 1 runtimes VALID")
        await pilot.click("#enforce")
        await settle(pilot)
        await pilot.click("#confirm")
        await settle(pilot)
        assert isinstance(app.screen, ErrorModal)
        assert "self: no readiness report yet" in app.screen.body_text
