"""Progress and a Cancel for every wait in the TUI, on the sandbox over mTLS: a black-holed
network, a slow Klarna, and an event loop that stays responsive while polling."""

from __future__ import annotations

import pytest
from tests_support import settle_journey as settle
from tests_support import walk_to

from screens.app import make_app
from screens.modals import ErrorModal
from wizard.core.stages import Stage
from wizard.sandbox.server import Fault

pytestmark = pytest.mark.e2e
SIZE = (100, 40)


async def until(pilot, condition, what: str, timeout: float = 30.0) -> None:
    """Wait on a condition, never on the clock's speed."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def panel_text(app) -> str:
    return str(app.screen.query_one("#work-status").content)


def panel_shown(app) -> bool:
    return bool(app.screen.query_one("WorkPanel").display)


async def test_black_holed_network_shows_progress_and_esc_cancels(sandbox, blackhole):
    """The newcomer's 42 s of silence: now what is happening, the elapsed time and the limit,
    the button disabled, and Esc cancels cleanly."""
    app = make_app("hole", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, Stage.CREDENTIALS)
        app.session.settings.base_url = blackhole
        app.screen.query_one("#test-key").press()
        await until(pilot, lambda: "elapsed" in panel_text(app), "a Waiting tick")
        text = panel_text(app)
        assert "Testing the API key with Klarna" in text and "of at most 60 s" in text
        assert app.screen.query_one("#test-key").disabled
        assert app.screen.query_one("#cancel-work").display
        assert any(a.binding.action == "cancel_work" for a in app.screen.active_bindings.values())
        await pilot.press("escape")
        await settle(pilot)
        assert "Cancelled" in panel_text(app)
        assert not app.screen.query_one("#test-key").disabled
        assert not app.screen.query_one("#cancel-work").display
        assert not isinstance(app.screen, ErrorModal)
        assert app.session.model.stage is Stage.CREDENTIALS and not app.session.evidence.api_call_ok_at


async def test_black_holed_network_past_the_limit_says_so(sandbox, blackhole):
    app = make_app("hole-limit", sandbox=sandbox, poll_interval=0.05, step_limit=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, Stage.CREDENTIALS)
        app.session.settings.base_url = blackhole
        await pilot.click("#test-key")
        await until(pilot, lambda: isinstance(app.screen, ErrorModal), "the timeout error")
        assert app.screen.title_text == "Timeout" and "no answer within 1 s" in app.screen.body_text


async def test_slow_klarna_submit_shows_progress_cancel_button_then_resubmits_once(sandbox):
    """Cancelling a create in flight loses nothing: the journaled request is reconciled, so the
    second Submit adopts one certificate instead of issuing a duplicate."""
    app = make_app("slow", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, Stage.ISSUE)
        sandbox.inject(Fault(kind="latency", operation="create_certificate", seconds=3.0, count=1))
        app.screen.query_one("#submit").press()
        await until(pilot, lambda: "elapsed" in panel_text(app), "a Waiting tick")
        assert "Submitting the CSR to Klarna" in panel_text(app)
        assert app.screen.query_one("#submit").disabled
        await pilot.click("#cancel-work")
        await settle(pilot)
        assert "Cancelled" in panel_text(app) and not app.screen.query_one("#submit").disabled
        assert app.session.state.in_flight  # the request stays journaled for reconciliation
        await pilot.click("#submit")
        await settle(pilot)
        assert not isinstance(app.screen, ErrorModal), getattr(app.screen, "body_text", "")
        assert app.session.evidence.certificate_id and not panel_shown(app)
        async with app.session.client() as klarna:
            active = [c for c in (await klarna.list_certificates()).value if c.status == "ACTIVE"]
        assert len(active) == 1


async def test_event_loop_stays_responsive_while_a_poll_is_in_flight(sandbox):
    """A verification check hangs on a slow Klarna; timers keep firing, keys are handled, and
    `c` cancels the poll without waiting for the answer."""
    app = make_app("responsive2", sandbox=sandbox, poll_interval=0.05, autostart_polling=False)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, Stage.VERIFY)
        screen = app.screen
        assert not any(a.binding.action == "cancel_work" for a in screen.active_bindings.values())
        sandbox.inject(Fault(kind="latency", operation="list_certificates", seconds=10.0, count=1))
        ticks = []
        app.set_interval(0.02, lambda: ticks.append(1))
        await pilot.press("r")
        await until(pilot, lambda: panel_shown(app) and "Checking Klarna" in panel_text(app), "the poll to start")
        await until(pilot, lambda: len(ticks) >= 10, "timer ticks during the request")
        assert "Attempt" not in panel_text(app)  # the first check is still waiting for Klarna
        assert screen.busy and not screen.check_action("retry", ())
        await pilot.press("c")
        await settle(pilot)
        assert "cancelled" in str(screen.query_one("#progress").content)
        assert not screen.busy and screen.check_action("retry", ())
        assert not any(a.binding.action == "cancel_work" for a in screen.active_bindings.values())
