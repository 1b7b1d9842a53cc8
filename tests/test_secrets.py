"""Secret stores: memory keyring, no keyring, a hung keyring, the encrypted file, per-run stores."""

from __future__ import annotations

import io
import os
import time

import keyring
import pytest
from keyring.backends import fail

from wizard import secrets
from wizard.errors import SecretStoreError

KEY = "klarna_test_api_" + "S" * 28 + "ab12"


def test_keyring_round_trip_with_memory_backend(memory_keyring):
    store = secrets.KeyringStore()
    assert store.probe.usable and "Memory" in store.display_name
    store.set("p", KEY)
    assert store.get("p") == KEY
    store.delete("p")
    assert store.get("p") is None


def test_no_keyring_is_said_and_offers_explicit_choices():
    keyring.set_keyring(fail.Keyring())
    probe = secrets.probe_keyring()
    assert not probe.usable and "No OS keyring" in probe.reason
    choices = {c.kind: c for c in secrets.store_choices(probe)}
    assert not choices["keyring"].available
    assert all(choices[k].available for k in ("encrypted-file", "env", "stdin"))
    with pytest.raises(SecretStoreError, match="No OS keyring"):
        secrets.KeyringStore(probe).set("p", KEY)


def test_plaintext_backend_is_not_used_silently():
    class PlaintextKeyring(type(secrets.MemoryKeyring())):
        pass

    keyring.set_keyring(PlaintextKeyring())
    probe = secrets.probe_keyring()
    assert not probe.usable and probe.plaintext


def test_hung_keyring_hits_the_probe_timeout():
    backend = secrets.MemoryKeyring()
    backend.get_password = lambda *a: time.sleep(5)
    keyring.set_keyring(backend)
    started = time.monotonic()
    probe = secrets.probe_keyring(timeout=0.2)
    assert not probe.usable and "did not answer" in probe.reason
    assert time.monotonic() - started < 2


def test_encrypted_file_round_trip_modes_and_wrong_passphrase(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "cfg" / "secrets.enc.json"
        secrets.EncryptedFileStore(path, b"correct horse").set("p", KEY)
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert KEY not in path.read_text()
    assert secrets.EncryptedFileStore(path, b"correct horse").get("p") == KEY
    with pytest.raises(SecretStoreError, match="Wrong passphrase"):
        secrets.EncryptedFileStore(path, b"wrong").get("p")


def test_tampered_ciphertext_is_refused(tmp_path):
    import json

    path = tmp_path / "s.json"
    secrets.EncryptedFileStore(path, b"pw").set("p", KEY)
    data = json.loads(path.read_text())
    data["entries"]["q"] = data["entries"].pop("p")  # moved to another profile: associated data differs
    path.write_text(json.dumps(data))
    with pytest.raises(SecretStoreError):
        secrets.EncryptedFileStore(path, b"pw").get("q")


def test_env_and_stdin_stores(monkeypatch):
    monkeypatch.setenv("KLARNA_API_KEY", KEY)
    env = secrets.EnvStore()
    assert env.get("p") == KEY and not env.persistent
    with pytest.raises(SecretStoreError, match="cannot store"):
        env.set("p", KEY)
    stdin = secrets.StdinStore(io.StringIO(KEY + "\n"))
    assert stdin.get("p") == KEY and stdin.get("p") == KEY  # read once, kept for the run


def test_sandbox_store_refuses_live_keys(paths):
    store = secrets.open_store("sandbox", paths)
    with pytest.raises(SecretStoreError):
        store.set("p", "klarna_live_api_" + "x" * 30)
    store.set("p", KEY)
    assert store.get("p") == KEY


@pytest.mark.keyring_real
def test_real_secret_service_round_trip():
    """Against a real gnome-keyring Secret Service (.ci/run starts one in a private D-Bus session)."""
    if not os.environ.get("KLARNA_MTLS_REAL_KEYRING"):
        pytest.skip("no real Secret Service in this environment (.ci/run starts gnome-keyring when apt is available)")
    from keyring.backends import SecretService

    backend = SecretService.Keyring()
    keyring.set_keyring(backend)
    store = secrets.KeyringStore()
    assert store.probe.usable and "SecretService" in type(backend).__module__ + store.display_name
    store.set("ci-profile", KEY)
    try:
        assert secrets.KeyringStore().get("ci-profile") == KEY
    finally:
        store.delete("ci-profile")
    assert store.get("ci-profile") is None
