"""The wizard on a machine with no OS keyring (servers, containers, SSH, WSL): the encrypted-file
store is chosen and used from the keyboard alone, with an encrypted private key, at 80x24; a
relaunch asks for both passphrases and reaches the dashboard."""

from __future__ import annotations

from functools import partial

from snapshot_apps import snapshot_app
from tests_support import settle as settle_app
from textual.widgets import Input, RadioButton, RadioSet

from screens.app import make_app
from screens.modals import ConfirmModal, ErrorModal, PassphraseModal
from wizard.core.stages import Stage
from wizard.secrets import encrypted_file, keyring_store, resolve

SIZE = (80, 24)
STORE_PASSPHRASE = "store pass phrase"
KEY_PASSPHRASE = "key pass phrase"


def no_keyring_choices():
    return resolve.store_choices(
        keyring_store.KeyringProbe(False, "fail Keyring", "No OS keyring is available on this machine.")
    )


settle = partial(settle_app, failures_shown=True)  # a failure shows as an error modal


def lit(screen) -> list[str]:
    return [b.id for b in screen.query(RadioButton) if b.value]


async def test_store_choice_has_one_pressed_button_and_follows_the_keyboard():
    app = snapshot_app(Stage.CREDENTIALS, keyring=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")  # Welcome → Credentials
        await settle(pilot)
        screen = app.screen
        radio = screen.query_one("#store", RadioSet)
        assert radio.pressed_button is not None and radio.pressed_button.id == "store-encrypted-file"
        assert lit(screen) == ["store-encrypted-file"]
        assert screen.query_one("#store-passphrase").display  # shown because it is chosen
        assert "store-stdin" not in [b.id for b in screen.query(RadioButton)]  # the TUI owns stdin
        radio.focus()
        await pilot.press("down", "enter")  # the cursor starts on the pressed choice's row
        await pilot.pause()
        assert lit(screen) == [radio.pressed_button.id] and radio.pressed_button.id != "store-encrypted-file"
        assert not screen.query_one("#store-passphrase").display
        await pilot.press("up", "enter")
        await pilot.pause()
        assert lit(screen) == ["store-encrypted-file"] and screen.query_one("#store-passphrase").display


async def test_enter_without_a_store_passphrase_says_so_and_does_not_crash():
    app = snapshot_app(Stage.CREDENTIALS, keyring=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.focused is app.screen.query_one("#api-key")  # paste, then Enter
        await pilot.press(*"klarna_test_api_" + "A" * 40, "enter")
        await settle(pilot)
        assert app.is_running and isinstance(app.screen, ErrorModal)
        assert "passphrase for the encrypted file" in app.screen.body_text


async def _keyboard_step(app, pilot) -> None:
    """One keyboard move: type a passphrase where one is asked, otherwise Enter (Tab, Enter on
    the enforcement confirmation, whose safe default is Cancel)."""
    screen, ev = app.screen, app.session.evidence
    name = type(screen).__name__
    if name == "CredentialsScreen" and not ev.api_call_ok_at:
        assert app.focused is screen.query_one("#test-key")  # the sandbox key is prefilled
        await pilot.press("shift+tab")
        assert app.focused is screen.query_one("#store-passphrase")
        await pilot.press(*STORE_PASSPHRASE, "enter")
    elif name == "KeyCsrScreen" and not ev.csr_pem:
        assert app.focused is screen.query_one("#passphrase", Input)  # what is typed goes there
        await pilot.press(*KEY_PASSPHRASE, "enter", *KEY_PASSPHRASE, "enter")  # then its confirmation
    elif isinstance(screen, ConfirmModal):
        await pilot.press("tab", "enter")
    else:
        await pilot.press("enter")


async def test_keyboard_only_onboarding_without_keyring_then_relaunch(sandbox):
    app = make_app("server", sandbox=sandbox, poll_interval=0.05, store_choices=no_keyring_choices)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for _ in range(60):
            if app.session.model.stage is Stage.DONE:
                break
            await _keyboard_step(app, pilot)
            await settle(pilot)
            assert not isinstance(app.screen, ErrorModal), app.screen.body_text
            await pilot.pause(0.1)
        assert app.session.model.stage is Stage.DONE
        ev = app.session.evidence
        assert ev.secret_backend == "encrypted-file" and ev.key_encrypted
    store = encrypted_file.EncryptedFileStore(app.session.paths.secrets_file(), STORE_PASSPHRASE.encode())
    kept = store.get("server")  # the tool's own key, made with the sandbox's (which stays active)
    assert kept and kept != sandbox.api_key and app.session.settings.api_key_id_source == "created"

    again = make_app("server", sandbox=sandbox, poll_interval=0.05, store_choices=no_keyring_choices)
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(again.screen, PassphraseModal) and "Private key" in again.screen.title_text
        await pilot.press(*KEY_PASSPHRASE, "enter")
        await settle(pilot)
        assert isinstance(again.screen, PassphraseModal) and "Secrets file" in again.screen.title_text
        await pilot.press(*"not the one", "enter")
        await settle(pilot)
        assert "Wrong passphrase" in str(again.screen.query_one("#passphrase-problem").content)
        await pilot.press(*STORE_PASSPHRASE, "enter")
        await settle(pilot)
        assert type(again.screen).__name__ == "DashboardScreen"
        assert again.session.unlocked and again.session.key_passphrase == KEY_PASSPHRASE.encode()
        assert "ENFORCED" in str(again.screen.query_one("#summary").content)
