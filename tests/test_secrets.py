"""Secret stores: the memory keyring (tests/memory_keyring.py), no keyring, a hung keyring, the encrypted
file, per-run stores."""

from __future__ import annotations

import io
import json
import os
import threading
import time

import keyring
import pytest
from keyring.backends import fail, null
from keyring.backends.chainer import ChainerBackend
from memory_keyring import MemoryKeyring

from wizard.core import env_vars
from wizard.core.errors import SecretStoreError
from wizard.secrets import encrypted_file, keyring_store, resolve, simple_stores

KEY = "klarna_test_api_" + "S" * 28 + "ab12"
OTHER_KEY = "klarna_test_api_" + "T" * 28 + "cd34"


# ---------------------------------------------------------------- keyring
def test_keyring_round_trip_with_memory_backend(memory_keyring):
    store = keyring_store.KeyringStore()
    assert store.probe.usable and "Memory" in store.display_name
    store.set("p", KEY)
    assert memory_keyring.passwords[("klarna-mtls", "p")] == KEY
    assert store.get("p") == KEY
    store.delete("p")
    assert store.get("p") is None
    store.delete("p")  # deleting what is not there is not an error


def test_the_product_brings_no_keyring_backend_of_its_own():
    """Keyring's discovery picks any KeyringBackend subclass it has seen; a memory backend chosen in
    production would "store" the key until exit. The test double lives in tests/ for that reason."""
    import importlib
    import pkgutil

    from keyring.backend import KeyringBackend

    import wizard.secrets

    for module in pkgutil.iter_modules(wizard.secrets.__path__, "wizard.secrets."):
        importlib.import_module(module.name)
    ours = [c for c in KeyringBackend.get_viable_backends() if c.__module__.startswith("wizard")]
    assert ours == [] and MemoryKeyring.__module__ == "memory_keyring"


def test_no_keyring_is_said_and_offers_explicit_choices():
    keyring.set_keyring(fail.Keyring())
    probe = keyring_store.probe_keyring()
    assert not probe.usable and "No OS keyring" in probe.reason and not probe.plaintext
    choices = {c.kind: c for c in resolve.store_choices(probe)}
    assert not choices["keyring"].available and "not available" in choices["keyring"].label
    assert "plaintext" in choices["keyring"].explanation
    assert all(choices[k].available for k in ("encrypted-file", "env", "stdin"))
    with pytest.raises(SecretStoreError, match="No OS keyring"):
        keyring_store.KeyringStore(probe=probe).set("p", KEY)
    with pytest.raises(SecretStoreError, match="No OS keyring"):
        keyring_store.KeyringStore().get("p")


def test_usable_keyring_is_offered_first_by_name():
    choices = resolve.store_choices(keyring_store.probe_keyring())
    assert choices[0].kind == "keyring" and choices[0].available and "Memory" in choices[0].label
    assert [c.kind for c in choices] == ["keyring", "encrypted-file", "env", "stdin"]


def test_null_backend_is_not_usable():
    keyring.set_keyring(null.Keyring())
    probe = keyring_store.probe_keyring()
    assert not probe.usable and "null" in probe.reason


def test_plaintext_backend_is_not_used_silently():
    class PlaintextKeyring(MemoryKeyring):
        pass

    keyring.set_keyring(PlaintextKeyring())
    probe = keyring_store.probe_keyring()
    assert not probe.usable and probe.plaintext
    with pytest.raises(SecretStoreError, match="plaintext"):
        keyring_store.KeyringStore(probe=probe).set("p", KEY)


def test_low_priority_unencrypted_backend_counts_as_plaintext():
    class FileKeyring(MemoryKeyring):
        priority = 0.5  # like keyrings.alt's file backends

    class EncryptedFileKeyring(MemoryKeyring):
        priority = 0.6

    keyring.set_keyring(FileKeyring())
    assert keyring_store.probe_keyring().plaintext
    keyring.set_keyring(EncryptedFileKeyring())
    assert keyring_store.probe_keyring().usable


def test_chainer_with_a_plaintext_member_is_not_usable(monkeypatch):
    class PlaintextKeyring(MemoryKeyring):
        pass

    monkeypatch.setattr(ChainerBackend, "backends", [MemoryKeyring(), PlaintextKeyring()])
    keyring.set_keyring(ChainerBackend())
    probe = keyring_store.probe_keyring()
    assert not probe.usable and probe.plaintext


def test_hung_keyring_hits_the_probe_timeout():
    backend = MemoryKeyring()
    released, answered = threading.Event(), threading.Event()

    def hang(*args):
        released.wait(60)
        answered.set()

    backend.get_password = hang
    keyring.set_keyring(backend)
    probe = keyring_store.probe_keyring(timeout=0.2)
    assert not probe.usable and "did not answer" in probe.reason
    assert not answered.is_set()  # the probe gave up; it did not wait for the hung backend
    released.set()


def test_hung_keyring_write_times_out_with_advice(memory_keyring):
    store = keyring_store.KeyringStore(timeout=0.2)
    memory_keyring.set_password = lambda *a: time.sleep(5)
    with pytest.raises(SecretStoreError, match="did not answer") as caught:
        store.set("p", KEY)
    assert "Unlock" in caught.value.hint


def test_keyring_failure_never_quotes_the_backend_error(memory_keyring):
    def broken(*args):
        raise RuntimeError(f"backend says {KEY}")

    store = keyring_store.KeyringStore()
    memory_keyring.set_password = broken
    with pytest.raises(SecretStoreError) as caught:
        store.set("p", KEY)
    assert KEY not in str(caught.value) and caught.value.__cause__ is None
    assert KEY not in repr(store)


# ---------------------------------------------------------------- encrypted file
def test_encrypted_file_round_trip_modes_and_wrong_passphrase(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "cfg" / "secrets.enc.json"
        encrypted_file.EncryptedFileStore(path, b"correct horse").set("p", KEY)
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert KEY not in path.read_text() and "correct horse" not in path.read_text()
    assert encrypted_file.EncryptedFileStore(path, b"correct horse").get("p") == KEY
    assert encrypted_file.EncryptedFileStore(path, b"correct horse").get("absent") is None
    with pytest.raises(SecretStoreError, match="Wrong passphrase") as caught:
        encrypted_file.EncryptedFileStore(path, b"wrong").get("p")
    assert "correct horse" not in str(caught.value)
    with pytest.raises(SecretStoreError, match="Wrong passphrase"):
        encrypted_file.EncryptedFileStore(path, b"wrong").set("q", OTHER_KEY)  # no mixing passphrases


def test_encrypted_file_format(tmp_path):
    path = tmp_path / "s.json"
    store = encrypted_file.EncryptedFileStore(path, b"pw")
    store.set("p", KEY)
    store.set("q", OTHER_KEY)
    data = json.loads(path.read_text())
    assert data["version"] == 1
    assert data["kdf"] == {"name": "argon2id", "memory_cost": 19 * 1024, "iterations": 2, "lanes": 1}
    assert len(encrypted_file._unb64(data["salt"])) == 16
    assert set(data["entries"]) == {"p", "q"}
    nonces = [encrypted_file._unb64(e["nonce"]) for e in data["entries"].values()]
    assert all(len(n) == 12 for n in nonces) and nonces[0] != nonces[1]
    store.delete("p")
    assert set(json.loads(path.read_text())["entries"]) == {"q"}
    assert store.get("q") == OTHER_KEY
    assert str(path) in repr(store) and "pw" not in repr(store).replace(str(path), "")


def test_tampered_ciphertext_is_refused(tmp_path):
    path = tmp_path / "s.json"
    encrypted_file.EncryptedFileStore(path, b"pw").set("p", KEY)
    data = json.loads(path.read_text())
    raw = bytearray(encrypted_file._unb64(data["entries"]["p"]["ciphertext"]))
    raw[0] ^= 1
    data["entries"]["p"]["ciphertext"] = encrypted_file._b64(bytes(raw))
    path.write_text(json.dumps(data))
    with pytest.raises(SecretStoreError, match="altered"):
        encrypted_file.EncryptedFileStore(path, b"pw").get("p")


def test_entry_moved_to_another_profile_is_refused(tmp_path):
    path = tmp_path / "s.json"
    encrypted_file.EncryptedFileStore(path, b"pw").set("p", KEY)
    data = json.loads(path.read_text())
    data["entries"]["q"] = data["entries"].pop("p")  # the profile is the associated data
    path.write_text(json.dumps(data))
    with pytest.raises(SecretStoreError, match="altered"):
        encrypted_file.EncryptedFileStore(path, b"pw").get("q")


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: "not json{",
        lambda d: json.dumps({**d, "version": 9}),
        lambda d: json.dumps({**d, "kdf": {**d["kdf"], "n": 2**30}}),  # would run scrypt for ages
        lambda d: json.dumps({**d, "kdf": {**d["kdf"], "n": 2**4}}),  # would weaken the key
        lambda d: json.dumps({**d, "salt": "!!"}),
        lambda d: json.dumps({**d, "entries": []}),
    ],
)
def test_damaged_file_is_a_clear_error(tmp_path, damage):
    path = tmp_path / "s.json"
    encrypted_file.EncryptedFileStore(path, b"pw").set("p", KEY)
    path.write_text(damage(json.loads(path.read_text())))
    with pytest.raises(SecretStoreError, match="damaged") as caught:
        encrypted_file.EncryptedFileStore(path, b"pw").get("p")
    assert "Move it aside" in caught.value.hint


def test_encrypted_file_needs_a_passphrase(tmp_path, paths):
    with pytest.raises(SecretStoreError, match="passphrase"):
        encrypted_file.EncryptedFileStore(tmp_path / "s.json", b"")
    with pytest.raises(SecretStoreError, match="passphrase") as caught:
        resolve.open_store("encrypted-file", paths)
    assert env_vars.STORE_PASSPHRASE_ENV in caught.value.hint


# ---------------------------------------------------------------- per run
def test_env_and_stdin_stores(monkeypatch):
    monkeypatch.setenv("KLARNA_API_KEY", KEY)
    env = simple_stores.EnvStore()
    assert env.get("p") == KEY and not env.persistent and env.kind == "env"
    assert "KLARNA_API_KEY" in env.display_name and "this run only" in env.display_name
    with pytest.raises(SecretStoreError, match="cannot store"):
        env.set("p", KEY)
    stream = io.StringIO(KEY + "\n" + OTHER_KEY + "\n")
    stdin = simple_stores.StdinStore(stream)
    assert stdin.get("p") == KEY and stdin.get("p") == KEY  # read once, kept for the run
    assert stream.readline().strip() == OTHER_KEY  # the second line was not consumed
    assert not stdin.persistent and KEY not in repr(stdin)


def test_stdin_on_a_terminal_uses_getpass(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    prompts = []
    monkeypatch.setattr(simple_stores.getpass, "getpass", lambda prompt: prompts.append(prompt) or KEY)
    assert simple_stores.StdinStore(Terminal()).get("p") == KEY
    assert len(prompts) == 1


def test_empty_stdin_gives_no_key():
    assert simple_stores.StdinStore(io.StringIO("")).get("p") is None


def test_sandbox_store_refuses_live_keys(paths):
    old = os.umask(0)
    try:
        store = resolve.open_store("sandbox", paths)
        with pytest.raises(SecretStoreError):
            store.set("p", "klarna_live_api_" + "x" * 30)
        store.set("p", KEY)
    finally:
        os.umask(old)
    assert store.get("p") == KEY and "sandbox" in store.display_name.lower()
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"
    store.delete("p")
    assert store.get("p") is None


def test_every_kind_opens_and_reports_its_kind(paths):
    for kind in resolve.KINDS:
        store = resolve.open_store(kind, paths, passphrase=b"pw", stdin=io.StringIO(""))
        assert store.kind == kind and store.display_name
    with pytest.raises(SecretStoreError, match="Unknown secret store"):
        resolve.open_store("plaintext", paths)


# ---------------------------------------------------------------- headless resolution
def test_resolve_prefers_the_environment(paths, monkeypatch):
    keyring_store.KeyringStore().set("p", OTHER_KEY)
    monkeypatch.setenv("KLARNA_API_KEY", KEY)
    key, store = resolve.resolve_api_key("p", paths, "keyring")
    assert key == KEY and store.kind == "env"


def test_resolve_uses_the_recorded_store(paths, monkeypatch):
    keyring_store.KeyringStore().set("p", KEY)
    assert resolve.resolve_api_key("p", paths, "keyring")[0] == KEY
    resolve.open_store("encrypted-file", paths, passphrase=b"pw").set("e", OTHER_KEY)
    monkeypatch.setenv(env_vars.STORE_PASSPHRASE_ENV, "pw")
    key, store = resolve.resolve_api_key("e", paths, "encrypted-file")
    assert key == OTHER_KEY and store.kind == "encrypted-file"


def test_resolve_says_what_to_do_when_no_store_holds_a_key(paths):
    with pytest.raises(SecretStoreError, match="no store was recorded") as caught:
        resolve.resolve_api_key("p", paths, None)
    assert "KLARNA_API_KEY" in caught.value.hint
    with pytest.raises(SecretStoreError, match="holds no API key for profile 'p'") as caught:
        resolve.resolve_api_key("p", paths, "keyring")
    assert "KLARNA_API_KEY" in caught.value.hint
    with pytest.raises(SecretStoreError, match="KLARNA_API_KEY"):
        resolve.resolve_api_key("p", paths, "env")


@pytest.mark.keyring_real
def test_real_secret_service_round_trip():
    """Against a real gnome-keyring Secret Service (.ci/run starts one in a private D-Bus session)."""
    if not os.environ.get("KLARNA_MTLS_REAL_KEYRING"):
        pytest.skip("no real Secret Service in this environment (.ci/run starts gnome-keyring when apt is available)")
    from keyring.backends import SecretService

    backend = SecretService.Keyring()
    keyring.set_keyring(backend)
    store = keyring_store.KeyringStore()
    assert store.probe.usable and "SecretService" in type(backend).__module__ + store.display_name
    store.set("ci-profile", KEY)
    try:
        assert keyring_store.KeyringStore().get("ci-profile") == KEY
    finally:
        store.delete("ci-profile")
    assert store.get("ci-profile") is None
