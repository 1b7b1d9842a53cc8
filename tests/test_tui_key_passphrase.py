"""A passphrase typed on the Key step is never silently dropped (issue 24, item 6): the field has
focus on arrival, the passphrase is confirmed in a second field, and a typed but unconfirmed or
mismatching passphrase stops the step with a message instead of generating an unencrypted key."""

from __future__ import annotations

from functools import partial

from snapshot_apps import snapshot_app
from tests_support import settle as settle_app

from screens.modals import ErrorModal
from wizard.core.stages import Stage

SIZE = (80, 24)
settle = partial(settle_app, failures_shown=True)


async def key_step(pilot):
    await settle(pilot)
    await pilot.press("ctrl+n")  # Welcome → the Key step
    await settle(pilot)
    assert type(pilot.app.screen).__name__ == "KeyCsrScreen"
    return pilot.app.screen


async def test_typing_on_arrival_goes_into_the_passphrase_and_enter_asks_to_confirm_it():
    """The newcomer's reproduction: arrive, type `abc`, press Enter."""
    app = snapshot_app(Stage.KEY_AND_CSR)
    async with app.run_test(size=SIZE) as pilot:
        screen = await key_step(pilot)
        await pilot.press(*"abc", "enter")
        await settle(pilot)
        assert screen.query_one("#passphrase").value == "abc"
        assert not app.session.evidence.csr_pem and not app.session.key_path.exists()  # nothing generated yet
        assert app.focused is screen.query_one("#passphrase-confirm")
        await pilot.press(*"abc", "enter")
        await settle(pilot)
        assert app.session.evidence.key_encrypted
        assert b"BEGIN ENCRYPTED PRIVATE KEY" in app.session.key_path.read_bytes()


async def test_the_button_with_an_unconfirmed_passphrase_says_so_and_generates_nothing():
    app = snapshot_app(Stage.KEY_AND_CSR)
    async with app.run_test(size=SIZE) as pilot:
        screen = await key_step(pilot)
        await pilot.press(*"typed once")
        screen.query_one("#generate").focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ErrorModal) and "again in the confirmation field" in app.screen.body_text
        assert not app.session.key_path.exists()
        await pilot.press("escape")
        await settle(pilot)
        assert app.focused is screen.query_one("#passphrase-confirm")


async def test_mismatching_passphrases_say_so_and_generate_nothing():
    app = snapshot_app(Stage.KEY_AND_CSR)
    async with app.run_test(size=SIZE) as pilot:
        screen = await key_step(pilot)
        await pilot.press(*"first phrase", "enter", *"first phrasf", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ErrorModal) and "differ" in app.screen.body_text
        assert not app.session.key_path.exists()
        await pilot.press("escape")
        await settle(pilot)
        assert screen.query_one("#passphrase-confirm").value == ""  # typed again from scratch


async def test_enter_with_no_passphrase_generates_an_unencrypted_key_as_the_label_says():
    app = snapshot_app(Stage.KEY_AND_CSR)
    async with app.run_test(size=SIZE) as pilot:
        await key_step(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.session.evidence.csr_pem and not app.session.evidence.key_encrypted
