"""The no-keyring journey can be rehearsed (issue 24, item 5): on a sandbox profile the Credentials
step offers the encrypted file (and the OS keyring where it works) besides the sandbox-only file,
and choosing the sandbox without --sandbox explains itself instead of "Invalid input"."""

from __future__ import annotations

from functools import partial

import pytest
from snapshot_apps import snapshot_app
from tests_support import settle as settle_app
from textual.widgets import RadioButton

from screens.app import make_app
from screens.modals import ErrorModal
from wizard.core.evidence import Evidence
from wizard.core.stages import Stage
from wizard.secrets.encrypted_file import EncryptedFileStore

SIZE = (80, 24)
STORE_PASSPHRASE = "rehearsal store phrase"
settle = partial(settle_app, failures_shown=True)


@pytest.mark.e2e
async def test_sandbox_credentials_offer_the_encrypted_file_and_it_keeps_the_key(sandbox):
    app = make_app("vault", sandbox=sandbox, poll_interval=0.05)  # the stores as a real run finds them
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")  # Welcome → Credentials
        await settle(pilot)
        screen = app.screen
        offered = [b.id for b in screen.query(RadioButton)]
        assert offered[0] == "store-sandbox" and screen.query_one("#store-sandbox").value  # still the default
        assert "store-encrypted-file" in offered and "store-keyring" in offered  # the test keyring works
        screen.query_one("#store-encrypted-file").value = True
        await settle(pilot)
        assert screen.query_one("#store-passphrase").display
        screen.query_one("#store-passphrase").focus()
        await pilot.press(*STORE_PASSPHRASE, "enter")
        await settle(pilot)
        assert not isinstance(app.screen, ErrorModal), app.screen.body_text
        assert app.session.evidence.secret_backend == "encrypted-file"
    kept = EncryptedFileStore(app.session.paths.secrets_file(), STORE_PASSPHRASE.encode()).get("vault")
    assert kept and kept.startswith("klarna_test_api_")
    sandbox_file = app.session.paths.sandbox_dir() / "credentials.json"
    assert not sandbox_file.exists() or "vault" not in sandbox_file.read_text()  # kept where chosen only


async def test_choosing_the_sandbox_without_it_explains_what_it_is_and_how_to_start_it():
    app = snapshot_app(Stage.CREDENTIALS, evidence=Evidence())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert "--sandbox" in str(screen.query_one("#env-sandbox").label)  # said before it is chosen
        screen.query_one("#env-sandbox").value = True
        screen.query_one("#account-id").value = "krn:partner:global:account:test:LYABCDEI"
        await settle(pilot)
        screen.action_start()
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, ErrorModal) and modal.title_text != "Invalid input"
        assert "not running" in modal.title_text and "klarna-mtls --sandbox" in modal.hint_text
        assert "Encrypted file" in modal.hint_text
        assert app.session.environment is None  # nothing saved
