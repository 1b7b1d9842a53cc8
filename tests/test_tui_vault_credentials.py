"""The TUI's Credentials step with VAULT_ADDR set: "Vault / OpenBao" is offered with a field for the
place; the key is kept there (and nowhere on this disk), the journal records the place, and a
relaunch loads the key from Vault. Against a real OpenBao server and the sandbox."""

from __future__ import annotations

import os
from functools import partial

import pytest
from tests_support import settle as settle_app
from textual.widgets import Input, RadioButton
from vault_support import files_under, fresh, kv_get, point_at

from screens.app import make_app
from screens.modals import ErrorModal
from wizard.secrets import keyring_store, resolve

pytest_plugins = ["openbao"]
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("forget_registered_secrets")]
SIZE = (80, 24)
settle = partial(settle_app, failures_shown=True)


def vault_choices():
    """What a machine with Vault in its environment offers (the sandbox profile offers its own file only)."""
    return resolve.store_choices(keyring_store.KeyringProbe(False, "fail Keyring", "No OS keyring here."), os.environ)


async def choose_vault(app, pilot, place: str) -> None:
    await settle(pilot)
    await pilot.press("ctrl+n")  # Welcome → Credentials
    await settle(pilot)
    screen = app.screen
    assert not screen.query_one("#store-place").display
    screen.query_one("#store-vault", RadioButton).value = True
    await pilot.pause()
    assert screen.query_one("#store-place").display and not screen.query_one("#store-passphrase").display
    assert screen.query_one("#store-place", Input).value == "vault:secret/klarna-mtls/p"  # the default offered
    screen.query_one("#store-place", Input).value = place
    screen.query_one("#store-place").focus()
    await pilot.press("enter")  # the sandbox's key is prefilled: Enter tests it and keeps it
    await settle(pilot)


async def test_vault_is_offered_and_keeps_the_key_and_a_relaunch_reads_it(
    openbao, sandbox, monkeypatch, isolated_home, tmp_path
):
    point_at(monkeypatch, openbao, home=tmp_path / "user-home")
    place = fresh("secret/klarna-mtls/p")
    assert [c.kind for c in vault_choices()][-1] == "vault"
    app = make_app("p", sandbox=sandbox, store_choices=vault_choices, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await choose_vault(app, pilot, place)
        assert not isinstance(app.screen, ErrorModal), (
            app.screen.body_text if isinstance(app.screen, ErrorModal) else ""
        )
        ev = app.session.evidence
        assert (ev.secret_backend, ev.secret_place) == ("vault", place) and ev.api_call_ok_at
        await pilot.press("ctrl+n")  # on to the key step: a relaunch resumes there
        await settle(pilot)
        assert app.session.model.stage.name == "KEY_AND_CSR"
    # The key the tool runs on (its own, created at this step by default) is in Vault under the
    # profile's name; the relaunch below proves it is the recorded key. Compared, never shown.
    assert "p" in kv_get(openbao, place)["data"]
    assert not [p for p, data in files_under(isolated_home).items() if sandbox.api_key.encode() in data]

    relaunched = make_app("p", sandbox=sandbox, store_choices=vault_choices, poll_interval=0.05)
    async with relaunched.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert relaunched.session.unlocked  # read from Vault, as every run does
        assert relaunched.session.custody.matches(app.session.evidence.api_key_masked)


async def test_a_malformed_place_is_said_in_place_and_nothing_is_kept(openbao, sandbox, monkeypatch, tmp_path):
    point_at(monkeypatch, openbao, home=tmp_path / "user-home")
    app = make_app("p", sandbox=sandbox, store_choices=vault_choices, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await choose_vault(app, pilot, "vault:secret")
        assert isinstance(app.screen, ErrorModal) and "names a mount but no path" in app.screen.body_text
        assert app.session.evidence.secret_backend is None
