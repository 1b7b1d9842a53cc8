"""The Session's typed parts: custody of this run's secrets and the factory of Klarna clients."""

from __future__ import annotations

import asyncio
import contextlib
import pickle

import pytest

from wizard.core.errors import InputError, SecretStoreError
from wizard.core.secret_value import SecretValue
from wizard.secrets.custody import KeyCustody
from wizard.services.clients import ClientFactory
from wizard.services.session import Session

KEY = "klarna_test_api_" + "S" * 28 + "ab12"
PASSPHRASE = b"custody passphrase"


# ---------------------------------------------------------------- custody
def test_custody_holds_the_key_and_passphrase_and_never_shows_them():
    custody = KeyCustody()
    assert not custody.unlocked and custody.passphrase is None and custody.api_key_suffix is None
    custody.hold(SecretValue(KEY), PASSPHRASE)
    assert custody.unlocked and custody.api_key() == KEY and custody.passphrase == PASSPHRASE
    assert custody.api_key_suffix == "ab12" and custody.api_key_environment() == "test"
    for shown in (repr(custody), str(custody)):
        assert "S" * 8 not in shown and "ab12" not in shown and PASSPHRASE.decode() not in shown
    with pytest.raises(TypeError):
        pickle.dumps(custody)  # the SecretValues refuse: no copy of the key leaves the process


def test_custody_passphrase_is_set_and_forgotten_alone():
    custody = KeyCustody()
    custody.hold(KEY, PASSPHRASE)
    custody.hold(KEY)  # a key without a passphrase keeps the one held
    assert custody.passphrase == PASSPHRASE
    custody.set_passphrase(b"")
    assert custody.passphrase is None and custody.unlocked


def test_custody_without_a_key_says_what_to_do():
    custody = KeyCustody()
    with pytest.raises(SecretStoreError, match="not loaded for this run") as caught:
        custody.api_key()
    assert "KLARNA_API_KEY" in (caught.value.hint or "")
    assert custody.matches("klarna_test_api_…ab12") is None and custody.api_key_environment() is None


def test_custody_matches_the_recorded_masked_key_only():
    custody = KeyCustody()
    custody.hold(KEY)
    assert custody.matches("klarna_test_api_…ab12") is True
    assert custody.matches("klarna_test_api_…cd34") is False
    assert custody.matches(None) is False


def test_a_session_keeps_its_secrets_in_custody(paths):
    session = Session(paths, "p")
    session.unlock(KEY, PASSPHRASE)
    assert session.custody.api_key() == KEY and session.key_passphrase == PASSPHRASE
    assert not hasattr(session, "_api_key") and not hasattr(session, "_key_passphrase")
    assert KEY not in repr(vars(session)) and "ab12" not in repr(session)


# ---------------------------------------------------------------- clients
def test_the_factory_reads_the_profile_when_a_client_is_made(paths, sandbox):
    session = Session(paths, "p")
    with pytest.raises(InputError, match="no environment"):
        _ = session.clients.base_url
    session.configure("sandbox", sandbox.account_id, base_url=sandbox.base_url + "/", ca_bundle=sandbox.ca_bundle)
    assert session.clients.base_url == sandbox.base_url and session.base_url == sandbox.base_url
    assert session.clients.ca_bundle == sandbox.ca_bundle == session.ca_bundle


def test_a_client_needs_the_key_in_custody_and_the_profiles_own_environment(paths, sandbox):
    session = Session(paths, "p")
    session.configure("sandbox", sandbox.account_id, base_url=sandbox.base_url, ca_bundle=sandbox.ca_bundle)

    async def ping(**options) -> None:
        async with session.client(**options) as klarna:
            await klarna.ping()

    with pytest.raises(SecretStoreError, match="not loaded"):
        asyncio.run(ping())
    with pytest.raises(InputError):  # a live key never goes to the sandbox
        asyncio.run(ping(api_key="klarna_live_api_" + "L" * 32))
    session.unlock(sandbox.api_key)
    assert isinstance(session.client(), contextlib.AbstractAsyncContextManager)
    asyncio.run(ping())


def test_kept_connections_are_one_per_trust_and_closed_after(paths, sandbox):
    session = Session(paths, "p")
    session.configure("sandbox", sandbox.account_id, base_url=sandbox.base_url, ca_bundle=sandbox.ca_bundle)
    session.unlock(sandbox.api_key)
    clients: ClientFactory = session.clients
    seen = []

    async def twice() -> None:
        async with clients.connections():
            for _ in range(2):
                async with session.client() as klarna:
                    await klarna.ping()
                    seen.append(klarna._http)
            assert not seen[0].is_closed
        assert seen[0].is_closed

    asyncio.run(twice())
    assert seen[0] is seen[1]


def test_a_pair_with_its_own_passphrase_gets_a_session_of_its_own(paths):
    """pair_doctor checks a named pair with that pair's passphrase; the profile's stays in place."""
    session = Session(paths, "p")
    session.unlock(KEY, PASSPHRASE)
    session.clients.keep_connections()
    other = session.with_key_passphrase(b"pair secret")
    assert other.key_passphrase == b"pair secret" and other.custody.api_key() == KEY
    assert session.key_passphrase == PASSPHRASE and session.custody is not other.custody
    assert other.clients is not session.clients and other.state is session.state
