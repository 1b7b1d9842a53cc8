"""API keys end to end against the sandbox: create, list, describe, disable, rotate the tool's key."""

from __future__ import annotations

import asyncio

import pytest
from tests_support import name_initial_key

from wizard.core.errors import ApiError, InterlockRefused, SecretStoreError
from wizard.core.paths import Paths
from wizard.secrets import encrypted_file, keyring_store
from wizard.services import api_key_hygiene, api_key_rotation, api_keys, onboarding
from wizard.services.session import Session

pytestmark = pytest.mark.e2e


@pytest.fixture
def keyring_profile(sandbox):
    """A sandbox profile whose API key is in the (in-memory) OS keyring."""
    session = Session(Paths.from_env(), "k")
    session.configure("sandbox", sandbox.account_id, base_url=sandbox.base_url, ca_bundle=sandbox.ca_bundle)
    store = keyring_store.KeyringStore()
    asyncio.run(onboarding.check_credentials(session, sandbox.api_key, store))
    name_initial_key(session)
    return session, store


def test_create_list_describe_disable(keyring_profile, sandbox):
    session, store = keyring_profile
    row, secret = asyncio.run(api_keys.create_key(session, "checkout service", store=store))
    assert store.get(f"k#key:{row.credential_id}") == secret.reveal()
    listed = {r.credential_id: r for r in asyncio.run(api_keys.list_keys(session))}
    assert listed[row.credential_id].description == "checkout service"
    tool = [r for r in listed.values() if r.used_by_tool]
    assert len(tool) == 1 and tool[0].is_initial

    async def describe():
        async with session.client() as klarna:
            return (await klarna.update_api_key(row.credential_id, "checkout service eu")).value

    assert asyncio.run(describe()).description == "checkout service eu"
    asyncio.run(api_keys.disable_key(session, row.credential_id))

    async def call_with_disabled_key():
        async with session.client(api_key=secret.reveal()) as klarna:
            await klarna.ping()

    with pytest.raises(ApiError) as caught:
        asyncio.run(call_with_disabled_key())
    assert caught.value.status == 401 and "disabled" in str(caught.value)


def test_disabling_the_tools_own_key_is_refused(keyring_profile):
    session, _ = keyring_profile
    tool = next(r for r in asyncio.run(api_keys.list_keys(session)) if r.used_by_tool)
    with pytest.raises(InterlockRefused, match="leave the tool without a working key"):
        asyncio.run(api_keys.disable_key(session, tool.credential_id))


def test_rotation_of_the_tools_key(keyring_profile, sandbox):
    session, store = keyring_profile
    old = next(r for r in asyncio.run(api_keys.list_keys(session)) if r.used_by_tool)
    new_id = asyncio.run(api_key_rotation.rotate_tool_key(session, store, description="klarna-mtls on host a"))
    assert store.get("k") != sandbox.api_key and store.get("k#pending-api-key") is None
    rows = {r.credential_id: r for r in asyncio.run(api_keys.list_keys(session))}
    assert rows[new_id].used_by_tool and rows[old.credential_id].status == "DISABLED"
    fresh = Session(Paths.from_env(), "k")
    fresh.unlock(store.get("k"))
    asyncio.run(_ping(fresh))  # the stored key works for a new run


async def _ping(session):
    async with session.client() as klarna:
        await klarna.ping()


@pytest.mark.parametrize("stop_after", ["create", "prove", "switch"])
def test_interrupted_rotation_resumes_without_losing_the_working_key(keyring_profile, sandbox, stop_after):
    session, store = keyring_profile

    class Stop(Exception):
        pass

    def interrupt(step):
        if step == {"create": "prove", "prove": "switch", "switch": "disable_old"}[stop_after]:
            raise Stop

    with pytest.raises(Stop):
        asyncio.run(api_key_rotation.rotate_tool_key(session, store, on_step=interrupt))
    # mid-way, the stored key still works
    working = Session(Paths.from_env(), "k")
    working.unlock(store.get("k"))
    asyncio.run(_ping(working))
    new_id = asyncio.run(api_key_rotation.rotate_tool_key(working, store))
    rows = {r.credential_id: r for r in asyncio.run(api_keys.list_keys(working))}
    assert rows[new_id].used_by_tool
    assert sum(1 for r in rows.values() if r.status == "ACTIVE") == 1  # only the new key stays active


def test_secret_lost_before_store_is_abandoned_not_left_active(keyring_profile, sandbox, monkeypatch):
    session, store = keyring_profile
    real_set = store.set

    def crash_on_pending(name, value):
        if name.endswith("#pending-api-key"):
            raise KeyboardInterrupt  # the process dies between Klarna's answer and the store
        real_set(name, value)

    monkeypatch.setattr(store, "set", crash_on_pending)
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(api_key_rotation.rotate_tool_key(session, store))
    orphan = session.state.flows.key_rotation.new_credential_id
    monkeypatch.setattr(store, "set", real_set)
    asyncio.run(_ping(session))  # the old key still works
    new_id = asyncio.run(api_key_rotation.rotate_tool_key(session, store))
    rows = {r.credential_id: r for r in asyncio.run(api_keys.list_keys(session))}
    assert new_id != orphan and rows[orphan].status == "DISABLED" and rows[new_id].used_by_tool


def test_keys_cli_and_secret_never_in_output_or_files(
    keyring_profile, sandbox, cli, capsys, monkeypatch, isolated_home
):
    session, store = keyring_profile
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    code, out = cli("keys", "create", "--profile", "k", "--description", "payments worker")
    assert code == 0 and out["stored_as"].startswith("k#key:")
    secret = store.get(out["stored_as"])
    assert secret and secret.startswith("klarna_test_api_")
    import json

    code, listed = cli("keys", "list", "--profile", "k")
    assert code == 0 and len(listed["keys"]) == 2
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err + json.dumps(out) + json.dumps(listed)
    for path in isolated_home.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    code, out = cli("keys", "disable", "--profile", "k", out["key"]["credential_id"])
    assert code == 0


def test_show_secret_once_prints_it_only_on_request(keyring_profile, sandbox, cli, monkeypatch):
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    code, out = cli("keys", "create", "--profile", "k", "--description", "batch", "--show-secret-once")
    assert code == 0 and out["secret"].startswith("klarna_test_api_")


def test_hygiene_findings_in_the_doctor(keyring_profile):
    session, _ = keyring_profile
    findings = asyncio.run(api_key_hygiene.hygiene_findings(session, None))
    assert any("initial API key" in f.summary for f in findings)


def test_a_store_that_cannot_be_opened_is_refused_before_the_key_exists(keyring_profile, tmp_path):
    session, _ = keyring_profile
    encrypted_file.EncryptedFileStore(tmp_path / "s.json", b"right").set("k", "klarna_test_api_" + "A" * 40)
    wrong = encrypted_file.EncryptedFileStore(tmp_path / "s.json", b"wrong")
    before = asyncio.run(api_keys.list_keys(session))
    with pytest.raises(SecretStoreError, match="Wrong passphrase"):
        asyncio.run(api_keys.create_key(session, "checkout service", store=wrong))
    assert [r.credential_id for r in asyncio.run(api_keys.list_keys(session))] == [r.credential_id for r in before]
