"""Focus lands where a person types, Enter submits every single-field form, and the "To continue"
list never contradicts a filled field (newcomer report B3, F5, F6, F7)."""

from __future__ import annotations

from snapshot_apps import snapshot_app
from tests_support import settle

from screens.modals import ConfirmModal
from wizard.core.evidence import Evidence
from wizard.core.stages import Stage

SIZE = (80, 24)


async def test_a_new_profile_types_the_account_id_and_enter_continues():
    app = snapshot_app(Stage.CREDENTIALS, evidence=Evidence())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.focused is app.screen.query_one("#account-id")
        app.screen.query_one("#account-id").value = ""
        await pilot.press(*"krn:partner:global:account:test:LYABCDEI", "enter")
        await settle(pilot)
        assert type(app.screen).__name__ == "CredentialsScreen"


async def test_the_api_key_field_has_focus_and_a_typed_key_is_not_called_missing():
    app = snapshot_app(Stage.CREDENTIALS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        screen = app.screen
        assert app.focused is screen.query_one("#api-key")  # on_mount ran twice and moved it away
        await pilot.press(*"klarna_test_api_" + "B" * 40)
        await pilot.pause()
        text = str(screen.query_one("#blockers").content)
        assert "Enter an API key" not in text and "Test the key with Klarna" in text
        assert "Choose where the API key is kept" not in text  # a store is chosen


async def test_enforce_with_now_typed_says_what_is_left_and_enter_asks():
    app = snapshot_app(Stage.ENFORCE)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        screen = app.screen
        text = str(screen.query_one("#blockers").content)
        assert (
            "Choose when enforcement starts" not in text and "Press Enforce… to schedule enforcement from NOW" in text
        )
        screen.query_one("#enforce-at").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)


async def test_enter_in_the_key_passphrase_and_its_confirmation_generates_the_key():
    app = snapshot_app(Stage.KEY_AND_CSR)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.focused is app.screen.query_one("#passphrase")
        await pilot.press(*"a long passphrase", "enter", *"a long passphrase", "enter")
        await settle(pilot)
        assert app.session.evidence.csr_pem and app.session.evidence.key_encrypted
