"""The API key kept in Vault (``--secret-store vault:secret/klarna-mtls/PROFILE``) against a real
OpenBao server: stored and read back on each run, nothing on local disk, a concurrent writer never
overwritten, and a server stopped mid-run a clear error that changes nothing here."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest

from wizard.core.errors import SecretStoreError
from wizard.secrets.vault_store import VaultStore
from wizard.vault import errors
from wizard.vault.kv import VaultKv

pytest_plugins = ["openbao"]
pytestmark = pytest.mark.usefixtures("forget_registered_secrets")

KEY = "klarna_test_api_" + "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA"
OTHER_KEY = "klarna_test_api_" + "b3RoZXJrZXlvdGhlcmtleW90aGVyaw"


@pytest.fixture
def vault_env(monkeypatch, tmp_path):
    """Point the environment at a server, as a person's shell would (HOME is this test's own)."""

    def point_at(server) -> None:
        monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
        for name in ("VAULT_CACERT", "VAULT_NAMESPACE", "VAULT_ROLE_ID", "VAULT_SECRET_ID_FILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("VAULT_ADDR", server.address)
        monkeypatch.setenv("VAULT_TOKEN", server.root_token)

    return point_at


def fresh_spec(profile: str = "checkout") -> str:
    return f"vault:secret/klarna-mtls/{profile}-{uuid.uuid4().hex[:10]}"


def files_under(*folders: Path) -> dict[str, bytes]:
    """Every file below the folders, with its content: what "nothing local changed" compares."""
    found = {}
    for folder in folders:
        if folder.exists():
            found.update({str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()})
    return found


def kv_data(server, spec: str) -> dict:
    mount, _, path = spec.removeprefix("vault:").partition("/")
    shown = json.loads(server.bao("kv", "get", "-format=json", f"-mount={mount}", path))
    return shown["data"]["data"]


def test_the_key_is_stored_and_read_back_on_each_run(openbao, vault_env, isolated_home, tmp_path):
    vault_env(openbao)
    spec = fresh_spec()
    before = files_under(isolated_home, tmp_path)
    VaultStore(spec).set("checkout", KEY)
    again = VaultStore(spec)  # a later run: a new store, reading Vault again
    assert again.get("checkout") == KEY
    assert again.get("another-profile") is None
    assert kv_data(openbao, spec) == {"checkout": KEY}
    assert files_under(isolated_home, tmp_path) == before  # nothing written to local disk


def test_the_store_looks_like_the_other_stores(openbao, vault_env):
    vault_env(openbao)
    spec = fresh_spec()
    store = VaultStore(spec)
    assert (store.kind, store.persistent) == ("vault", True)
    assert store.display_name == f"Vault / OpenBao at {spec}"
    assert repr(store) == f"VaultStore('{spec}')"


def test_other_names_are_fields_beside_the_profiles_key(openbao, vault_env):
    vault_env(openbao)
    spec = fresh_spec()
    store = VaultStore(spec)
    store.set("checkout", KEY)
    store.set("checkout#key:cred-2", OTHER_KEY)
    assert kv_data(openbao, spec) == {"checkout": KEY, "checkout#key:cred-2": OTHER_KEY}
    store.delete("checkout#key:cred-2")
    assert store.get("checkout#key:cred-2") is None and store.get("checkout") == KEY
    version = json.loads(openbao.bao("kv", "metadata", "get", "-format=json", spec.removeprefix("vault:")))
    store.delete("never-stored")  # nothing to remove: no new version
    after = json.loads(openbao.bao("kv", "metadata", "get", "-format=json", spec.removeprefix("vault:")))
    assert after["data"]["current_version"] == version["data"]["current_version"] == 3


def test_deleting_from_an_empty_place_writes_nothing(openbao, vault_env):
    vault_env(openbao)
    spec = fresh_spec()
    VaultStore(spec).delete("checkout")
    assert VaultStore(spec).get("checkout") is None
    missing = openbao.run("kv", "get", spec.removeprefix("vault:"))
    assert missing.returncode == 2  # no secret was created


def test_a_concurrent_writer_is_not_overwritten(openbao, vault_env, monkeypatch):
    vault_env(openbao)
    spec = fresh_spec()
    kv = VaultKv.connect()
    store = VaultStore(spec, kv=kv)
    store.set("checkout", KEY)
    read = kv.read

    def read_then_someone_writes(place):
        current = read(place)
        openbao.bao("kv", "put", spec.removeprefix("vault:"), f"checkout={OTHER_KEY}")
        return current

    monkeypatch.setattr(kv, "read", read_then_someone_writes)
    with pytest.raises(errors.VaultCasConflict) as caught:
        store.set("checkout", "klarna_test_api_" + "bmV3a2V5bmV3a2V5bmV3a2V5bmV3a2V5")
    assert spec in caught.value.message
    assert isinstance(caught.value, SecretStoreError)
    leaked = sum(k in str(caught.value) for k in (KEY, OTHER_KEY, openbao.root_token))
    assert leaked == 0, "a secret appears in the error"
    assert kv_data(openbao, spec) == {"checkout": OTHER_KEY}


def test_no_vault_address_is_a_store_error_saying_what_to_set(monkeypatch):
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    with pytest.raises(SecretStoreError) as caught:
        VaultStore(fresh_spec()).get("checkout")
    assert isinstance(caught.value, errors.VaultConfigError) and "VAULT_ADDR" in caught.value.message


def test_a_server_stopped_mid_run_is_a_clear_error_and_nothing_local_changes(
    own_openbao, vault_env, isolated_home, tmp_path, caplog
):
    vault_env(own_openbao)
    spec = fresh_spec()
    store = VaultStore(spec)
    store.set("checkout", KEY)
    before = files_under(isolated_home, tmp_path / "user-home")
    own_openbao.stop()
    caplog.set_level(logging.DEBUG)
    for attempt in (lambda: store.set("checkout", OTHER_KEY), lambda: store.get("checkout")):
        with pytest.raises(errors.VaultUnreachable) as caught:
            attempt()
        error = caught.value
        assert own_openbao.address in error.message and spec in error.message
        assert "connection refused" in error.message and "nothing was changed" in error.hint
        assert isinstance(error, SecretStoreError)
    assert files_under(isolated_home, tmp_path / "user-home") == before
    leaked = sum(k in caplog.text + str(error) for k in (KEY, OTHER_KEY, own_openbao.root_token))
    assert leaked == 0, "a secret appears in the log or the error"


def test_a_round_trip_logs_no_secret(openbao, vault_env, caplog):
    vault_env(openbao)
    caplog.set_level(logging.DEBUG)
    store = VaultStore(fresh_spec())
    store.set("checkout", KEY)
    assert store.get("checkout") == KEY
    assert "/v1/secret/data/klarna-mtls/" in caplog.text  # the HTTP client's log is there, and holds no secret
    leaked = sum(k in caplog.text for k in (KEY, openbao.root_token))
    assert leaked == 0, "a secret appears in the log"
