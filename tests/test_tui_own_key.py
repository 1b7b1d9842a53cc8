"""The TUI's own-key guard (issue 24, item 2): TUI onboarding learns which API key the tool runs
on, as ``onboard --own-key`` does (or by asking), the API keys screen refuses to disable that key,
disabling any key while it is unknown needs the typed confirmation, and the exit summary says when
the tool's key no longer works."""

from __future__ import annotations

from functools import partial

import pytest
from tests_support import settle as settle_app

from screens.app import make_app
from screens.exit_report import exit_summary
from screens.keys import KeysScreen
from screens.modals import ConfirmModal, ErrorModal, TypedConfirmModal
from screens.tool_key import ToolKeyModal
from wizard.core.stages import Stage
from wizard.services import api_keys

pytestmark = pytest.mark.e2e
SIZE = (80, 24)
settle = partial(settle_app, failures_shown=True)


async def pass_credentials(app, pilot, *, own_key: bool = True) -> None:
    """Welcome → Credentials, then Enter tests the prefilled sandbox key (the own-key box as given)."""
    await settle(pilot)
    await pilot.press("enter")  # Continue on the Welcome screen
    await settle(pilot)
    screen = app.screen
    assert type(screen).__name__ == "CredentialsScreen"
    for box in screen.query("#own-key"):  # (before the guard, there was no such choice)
        box.value = own_key
    screen.query_one("#test-key").focus()
    await pilot.press("enter")
    await settle(pilot)


async def open_keys(app, pilot) -> KeysScreen:
    await app.push_screen(KeysScreen(app.services))
    await settle(pilot)
    assert isinstance(app.screen, KeysScreen)
    return app.screen


async def select(pilot, screen: KeysScreen, credential_id: str) -> None:
    row = next(i for i, r in enumerate(screen.rows) if r.credential_id == credential_id)
    screen.query_one("DataTable").move_cursor(row=row)
    screen.query_one("DataTable").focus()
    await pilot.pause()


async def test_tui_onboarding_gives_the_tool_its_own_key_and_refuses_to_disable_it(sandbox):
    app = make_app("own", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pass_credentials(app, pilot)
        assert not isinstance(app.screen, ErrorModal), app.screen.body_text
        tool = app.session.state.tool_key_id
        assert tool is not None and app.session.settings.api_key_id_source == "created"
        assert app.session.model.stage is Stage.CREDENTIALS and not app.session.model.blockers(Stage.CREDENTIALS)
        screen = await open_keys(app, pilot)
        mine = next(r for r in screen.rows if r.credential_id == tool)
        given = next(r for r in screen.rows if r.is_initial)
        assert mine.used_by_tool and mine.description == "klarna-mtls own" and given.status == "ACTIVE"
        await select(pilot, screen, tool)
        await pilot.press("ctrl+d")
        await settle(pilot)
        assert isinstance(app.screen, ErrorModal) and "klarna-mtls uses" in app.screen.body_text  # refused
        await pilot.press("escape")
        await settle(pilot)
        await select(pilot, screen, given.credential_id)  # the key it was given is not its own: one confirmation
        await pilot.press("ctrl+d")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal) and not isinstance(app.screen, TypedConfirmModal)
        await pilot.press("escape")
        await settle(pilot)
    assert {r.credential_id: r.status for r in await api_keys.list_keys(app.session)}[tool] == "ACTIVE"


async def test_without_an_own_key_the_wizard_asks_which_key_it_was_given(sandbox):
    app = make_app("told", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pass_credentials(app, pilot, own_key=False)
        modal = app.screen
        assert isinstance(modal, ToolKeyModal) and modal.entered_suffix == sandbox.api_key[-4:]
        await pilot.press("enter")  # the one listed key: the sandbox's initial key
        await settle(pilot)
        assert app.session.settings.api_key_id_source == "told"
        screen = await open_keys(app, pilot)
        assert [r.used_by_tool for r in screen.rows] == [True]
        await select(pilot, screen, screen.rows[0].credential_id)
        await pilot.press("ctrl+d")
        await settle(pilot)
        assert isinstance(app.screen, ErrorModal) and "klarna-mtls uses" in app.screen.body_text


async def test_an_unknown_tool_key_needs_the_typed_confirmation_and_the_summary_says_it_is_lost(sandbox):
    app = make_app("unknown", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pass_credentials(app, pilot, own_key=False)
        assert isinstance(app.screen, ToolKeyModal)
        await pilot.press("escape")  # "I don't know"
        await settle(pilot)
        assert app.session.state.tool_key_id is None
        screen = await open_keys(app, pilot)
        given = screen.rows[0]
        await select(pilot, screen, given.credential_id)
        await pilot.press("ctrl+d")
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, TypedConfirmModal) and "does not know which API key" in modal.consequence
        await pilot.press("enter")  # nothing typed: Enter does not disable
        await pilot.pause()
        assert app.screen is modal
        await pilot.press(*given.masked[-4:], "enter")
        await settle(pilot)
        # it was the key the tool runs on: said at once, and again when the wizard ends
        assert isinstance(app.screen, ErrorModal) and "lost its API key" in app.screen.title_text
    summary = exit_summary(app.session, key_refused=app.services.key_refused)
    assert "✗ API key: Klarna refuses the key klarna-mtls runs on" in summary
    assert "KLARNA_API_KEY=… klarna-mtls --sandbox --profile unknown" in summary  # how this profile opens
    assert "✗ API key" not in exit_summary(app.session)
