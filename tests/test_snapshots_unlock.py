"""80x24 snapshots of the passphrase prompts, the key confirmations, the shown-once key without a
keeping store, and the error modals that name a host, a path and the log."""

from __future__ import annotations

import errno

import httpx
from snapshot_apps import keys_app, snapshot_app
from tests_support import settle

from screens.modals import ErrorModal, PassphraseModal
from wizard.core.stages import Stage

SIZE = (80, 24)


def _never(passphrase: bytes):
    from wizard.core.errors import KeyLocked

    raise KeyLocked("/home/partner/.local/share/klarna-mtls/keys/p/private-key.pem", wrong=True)


def test_key_passphrase_modal_after_a_wrong_one(snap_compare):
    async def ask(pilot):
        await settle(pilot)
        pilot.app.push_screen(
            PassphraseModal(
                "Private key passphrase",
                "Your private key ~/.local/share/klarna-mtls/keys/p/private-key.pem is "
                "encrypted. Enter its passphrase to use it in this run.",
                _never,
            )
        )
        await pilot.pause()
        await pilot.press(*"wrong", "enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, PassphraseModal)

    assert snap_compare(snapshot_app(Stage.VERIFY), terminal_size=SIZE, run_before=ask)


def test_store_passphrase_modal(snap_compare):
    async def ask(pilot):
        await settle(pilot)
        pilot.app.push_screen(
            PassphraseModal(
                "Secrets file passphrase",
                "Your API key is kept in the encrypted secrets file "
                "~/.config/klarna-mtls/secrets.enc.json. Enter its passphrase to load the key for this run.",
                _never,
                input_id="store-passphrase-modal",
            )
        )
        await pilot.pause()

    assert snap_compare(snapshot_app(Stage.VERIFY), terminal_size=SIZE, run_before=ask)


async def _open_keys(pilot):
    await settle(pilot)
    await pilot.press("k")
    await settle(pilot)


def test_keys_disable_confirm_modal(snap_compare):
    async def disable(pilot):
        await _open_keys(pilot)
        pilot.app.screen.query_one("DataTable").move_cursor(row=1)
        await pilot.press("ctrl+d")
        await pilot.pause()

    assert snap_compare(keys_app(), terminal_size=SIZE, run_before=disable)


def test_keys_disable_live_typed_confirm_modal(snap_compare):
    app = keys_app()
    app.session.evidence.environment = "live"

    async def disable(pilot):
        await _open_keys(pilot)
        pilot.app.screen.query_one("DataTable").move_cursor(row=1)
        await pilot.press("ctrl+d")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=disable)


def test_keys_rotate_confirm_modal(snap_compare):
    async def rotate(pilot):
        await _open_keys(pilot)
        await pilot.press("ctrl+r")
        await pilot.pause()

    assert snap_compare(keys_app(), terminal_size=SIZE, run_before=rotate)


def test_new_key_shown_once_when_no_store_can_keep_it(snap_compare):
    from screens.keys import SecretOnceModal
    from wizard.core.secret_value import SecretValue

    async def shown(pilot):
        await _open_keys(pilot)
        pilot.app.push_screen(
            SecretOnceModal("klarna_test_api_…Zz9q", SecretValue("klarna_test_api_" + "Q" * 36 + "Zz9q"))
        )
        await pilot.pause()

    assert snap_compare(keys_app(), terminal_size=SIZE, run_before=shown)


def test_error_modal_could_not_connect(snap_compare):
    from wizard.klarna.errors import transport_error

    async def failed(pilot):
        await settle(pilot)
        request = httpx.Request("GET", "https://api-global.test.klarna.com/v2/account/integration/credentials/api-key")
        pilot.app.show_error(
            transport_error(httpx.ConnectError("[Errno -2] Name or service not known", request=request), False)
        )
        await pilot.pause()
        assert isinstance(pilot.app.screen, ErrorModal)

    assert snap_compare(snapshot_app(Stage.ISSUE), terminal_size=SIZE, run_before=failed)


def test_error_modal_install_folder_is_read_only(snap_compare):
    async def failed(pilot):
        await settle(pilot)
        pilot.app.show_error(OSError(errno.EROFS, "Read-only file system", "/mnt/readonly/klarna-mtls"))
        await pilot.pause()

    assert snap_compare(snapshot_app(Stage.INSTALL), terminal_size=SIZE, run_before=failed)


def test_credentials_store_passphrase_missing(snap_compare):
    async def entered(pilot):
        await settle(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        await pilot.press(*"klarna_test_api_" + "A" * 40, "enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ErrorModal)

    assert snap_compare(snapshot_app(Stage.CREDENTIALS, keyring=False), terminal_size=SIZE, run_before=entered)
