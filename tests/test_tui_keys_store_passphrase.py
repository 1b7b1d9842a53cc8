"""API keys screen on a profile whose key is kept in the encrypted secrets file, run with the key
from KLARNA_API_KEY (so the file was never opened this run): creating a service key asks for the
file's passphrase, refuses a wrong one in place, keeps the new key in the file with the right
one, and a cancelled prompt creates nothing."""

from __future__ import annotations

from functools import partial

import pytest
from tests_support import sandbox_profile_args
from tests_support import settle as settle_app

from screens.app import make_app
from screens.keys import SecretOnceModal
from screens.modals import ErrorModal, PassphraseModal
from wizard.cli import main
from wizard.core import env_vars
from wizard.secrets import encrypted_file
from wizard.services import api_keys

pytestmark = pytest.mark.e2e
SIZE = (80, 24)
STORE_PASSPHRASE = "store pass phrase"


settle = partial(settle_app, failures_shown=True)  # a failure shows as an error modal


@pytest.fixture
def encrypted_file_profile(sandbox, monkeypatch, capsys):
    """Profile "p" onboarded headlessly (enforced) with its key kept in the encrypted file; afterwards the
    file's passphrase is no longer in the environment, only the API key is."""
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    monkeypatch.setenv(env_vars.STORE_PASSPHRASE_ENV, STORE_PASSPHRASE)
    argv = ["onboard", "--profile", "p", "--non-interactive", "--json", "--secret-store", "encrypted-file"]
    argv += [*sandbox_profile_args(sandbox), "--enforce-at", "NOW", "--enforce-wait", "20", "--poll-interval", "0.05"]
    assert main(argv) == 0
    capsys.readouterr()
    monkeypatch.delenv(env_vars.STORE_PASSPHRASE_ENV)
    return sandbox


async def open_keys_and_create(app, pilot, description: str) -> None:
    await settle(pilot)
    await pilot.press("k")
    await settle(pilot)
    app.screen.query_one("#description").focus()
    await pilot.press(*description, "enter")
    await pilot.pause()
    for _ in range(50):  # the worker pushes the prompt: wait for it rather than for the worker
        if isinstance(app.screen, PassphraseModal):
            break
        await pilot.pause(0.05)


async def test_creating_a_key_asks_for_the_file_passphrase_and_keeps_the_key_there(encrypted_file_profile):
    app = make_app("p", sandbox=encrypted_file_profile, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await open_keys_and_create(app, pilot, "checkout eu")
        assert isinstance(app.screen, PassphraseModal) and "Secrets file" in app.screen.title_text
        await pilot.press(*"not the one", "enter")
        await pilot.pause()
        assert isinstance(app.screen, PassphraseModal)
        assert "Wrong passphrase" in str(app.screen.query_one("#passphrase-problem").content)
        app.screen.query_one("#store-passphrase-modal").value = ""
        await pilot.press(*STORE_PASSPHRASE, "enter")
        await settle(pilot)
        assert isinstance(app.screen, SecretOnceModal)
        await pilot.press("escape")
        await settle(pilot)
        created = [r for r in app.screen.rows if r.description == "checkout eu"]
        assert len(created) == 1
    store = encrypted_file.EncryptedFileStore(app.session.paths.secrets_file(), STORE_PASSPHRASE.encode())
    assert store.get(api_keys.stored_name("p", created[0].credential_id)) is not None
    assert store.get("p") == encrypted_file_profile.api_key  # the tool's own key is untouched


async def test_cancelling_the_file_passphrase_creates_no_key(encrypted_file_profile):
    app = make_app("p", sandbox=encrypted_file_profile, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await open_keys_and_create(app, pilot, "checkout eu")
        screen = app.screen_stack[-2]
        before = len(screen.rows)
        assert isinstance(app.screen, PassphraseModal)
        await pilot.press("escape")
        await settle(pilot)
        if isinstance(app.screen, ErrorModal):  # saying the key could not be kept is fine too
            await pilot.press("escape")
            await settle(pilot)
        assert app.is_running and app.screen is screen
        screen.action_refresh()  # the listing as Klarna has it now
        await settle(pilot)
        assert len(screen.rows) == before
        assert not [r for r in screen.rows if r.description == "checkout eu"]
