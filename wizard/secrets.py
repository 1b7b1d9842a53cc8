"""Where the API key lives: the OS keyring, a passphrase-encrypted file, or this run only.

Never silently in plaintext: when the only keyring backend is the failing one or a plaintext one,
``store_choices`` says so and offers explicit alternatives."""

from __future__ import annotations

import base64
import getpass
import json
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import SecretStoreError
from .fsutil import write_private
from .paths import Paths

SERVICE = "klarna-mtls"
ENV_VAR = "KLARNA_API_KEY"
KINDS = ("keyring", "encrypted-file", "env", "stdin", "sandbox")


class SecretStore(Protocol):
    kind: str
    display_name: str
    persistent: bool

    def get(self, name: str) -> str | None: ...
    def set(self, name: str, secret: str) -> None: ...
    def delete(self, name: str) -> None: ...


# ---------------------------------------------------------------- keyring
@dataclass(frozen=True)
class KeyringProbe:
    usable: bool
    backend_name: str
    reason: str
    plaintext: bool = False


def _backend_is_plaintext(backend) -> bool:
    name = f"{type(backend).__module__}.{type(backend).__name__}".lower()
    return "plaintext" in name or "uncrypted" in name or "null" in name


def probe_keyring(timeout: float = 3.0) -> KeyringProbe:
    """Find the keyring backend and do a harmless round trip, in a thread with a timeout:
    a locked or hung Secret Service must not hang us."""
    result: list[KeyringProbe] = []

    def probe() -> None:
        try:
            import keyring
            from keyring.backends import fail

            backend = keyring.get_keyring()
            name = getattr(backend, "name", type(backend).__name__)
            if isinstance(backend, fail.Keyring):
                result.append(KeyringProbe(False, name, "No OS keyring is available on this machine."))
                return
            if _backend_is_plaintext(backend):
                result.append(KeyringProbe(False, name, "The only keyring stores secrets in plaintext.", True))
                return
            backend.get_password(SERVICE, "__probe__")
            result.append(KeyringProbe(True, name, "OS keyring available."))
        except Exception as exc:  # any backend failure means: not usable
            result.append(KeyringProbe(False, "unavailable", f"The OS keyring failed ({type(exc).__name__})."))

    thread = threading.Thread(target=probe, daemon=True, name="keyring-probe")
    thread.start()
    thread.join(timeout)
    if not result:
        return KeyringProbe(False, "unresponsive", f"The OS keyring did not answer within {timeout:g} s (locked?).")
    return result[0]


class KeyringStore:
    kind = "keyring"
    persistent = True

    def __init__(self, probe: KeyringProbe | None = None) -> None:
        self.probe = probe or probe_keyring()
        self.display_name = f"OS keyring ({self.probe.backend_name})"

    def _keyring(self):
        if not self.probe.usable:
            raise SecretStoreError(
                self.probe.reason,
                hint="Choose the encrypted file, or provide the key per run (KLARNA_API_KEY or standard input).",
            )
        import keyring

        return keyring

    def get(self, name: str) -> str | None:
        try:
            return self._keyring().get_password(SERVICE, name)
        except SecretStoreError:
            raise
        except Exception:
            raise SecretStoreError("The OS keyring could not be read.", hint="Unlock it and try again.") from None

    def set(self, name: str, secret: str) -> None:
        try:
            self._keyring().set_password(SERVICE, name, secret)
        except SecretStoreError:
            raise
        except Exception:
            raise SecretStoreError("The OS keyring refused to store the key.", hint="Unlock it and try again.") from None

    def delete(self, name: str) -> None:
        try:
            self._keyring().delete_password(SERVICE, name)
        except SecretStoreError:
            raise
        except Exception:
            pass  # already absent


# ---------------------------------------------------------------- encrypted file
class EncryptedFileStore:
    """scrypt-derived key + AES-GCM per entry; the entry name is bound as associated data."""

    kind = "encrypted-file"
    persistent = True
    SCRYPT = {"n": 2**15, "r": 8, "p": 1}

    def __init__(self, path: Path, passphrase: bytes) -> None:
        if not passphrase:
            raise SecretStoreError("The encrypted file needs a passphrase.")
        self.path = path
        self.display_name = f"Encrypted file {path}"
        self._passphrase = passphrase

    def __repr__(self) -> str:
        return f"EncryptedFileStore({str(self.path)!r})"

    def _read(self) -> dict:
        if not self.path.is_file():
            return {"version": 1, "kdf": {"name": "scrypt", **self.SCRYPT}, "salt": _b64(os.urandom(16)), "entries": {}}
        try:
            data = json.loads(self.path.read_text())
            assert isinstance(data.get("entries"), dict)
            return data
        except Exception:
            raise SecretStoreError(f"The encrypted secrets file {self.path} is damaged.",
                                   hint="Move it aside and store the key again.") from None

    def _aead(self, data: dict) -> AESGCM:
        kdf = data["kdf"]
        key = Scrypt(salt=_unb64(data["salt"]), length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]).derive(self._passphrase)
        return AESGCM(key)

    def get(self, name: str) -> str | None:
        data = self._read()
        entry = data["entries"].get(name)
        if entry is None:
            return None
        try:
            return self._aead(data).decrypt(_unb64(entry["nonce"]), _unb64(entry["ciphertext"]), name.encode()).decode()
        except InvalidTag:
            raise SecretStoreError("Wrong passphrase for the encrypted secrets file (or it was tampered with).") from None
        except Exception:
            raise SecretStoreError(f"The encrypted secrets file {self.path} is damaged.") from None

    def set(self, name: str, secret: str) -> None:
        data = self._read()
        aead = self._aead(data)
        for other, entry in data["entries"].items():  # refuse to mix passphrases in one file
            try:
                aead.decrypt(_unb64(entry["nonce"]), _unb64(entry["ciphertext"]), other.encode())
            except InvalidTag:
                raise SecretStoreError("Wrong passphrase for the encrypted secrets file.") from None
            break
        nonce = os.urandom(12)
        data["entries"][name] = {"nonce": _b64(nonce), "ciphertext": _b64(aead.encrypt(nonce, secret.encode(), name.encode()))}
        write_private(self.path, json.dumps(data, indent=1).encode())

    def delete(self, name: str) -> None:
        data = self._read()
        if data["entries"].pop(name, None) is not None:
            write_private(self.path, json.dumps(data, indent=1).encode())


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


# ---------------------------------------------------------------- per run
class EnvStore:
    kind = "env"
    persistent = False
    display_name = f"Environment variable {ENV_VAR} (this run only)"

    def get(self, name: str) -> str | None:
        return os.environ.get(ENV_VAR) or None

    def set(self, name: str, secret: str) -> None:
        raise SecretStoreError(f"{ENV_VAR} is read per run; it cannot store a key.",
                               hint="Choose the OS keyring or the encrypted file to keep the key.")

    def delete(self, name: str) -> None:
        pass


class StdinStore:
    kind = "stdin"
    persistent = False
    display_name = "Standard input (this run only)"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._value: str | None = None

    def get(self, name: str) -> str | None:
        if self._value is None:
            if self._stream.isatty():
                self._value = getpass.getpass("Klarna API key: ").strip() or None
            else:
                self._value = self._stream.readline().strip() or None
        return self._value

    def set(self, name: str, secret: str) -> None:
        self._value = secret  # this run only

    def delete(self, name: str) -> None:
        self._value = None


class SandboxStore:
    """Throwaway sandbox credentials only, in a 0600 file: never used for live or test keys."""

    kind = "sandbox"
    persistent = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.display_name = f"Sandbox-only file {path} (sandbox keys are throwaway)"

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text()) if self.path.is_file() else {}
        except (OSError, json.JSONDecodeError):
            return {}

    def get(self, name: str) -> str | None:
        return self._read().get(name)

    def set(self, name: str, secret: str) -> None:
        if not secret.startswith("klarna_test_"):
            raise SecretStoreError("The sandbox store holds sandbox (test-shaped) keys only.")
        data = self._read()
        data[name] = secret
        write_private(self.path, json.dumps(data).encode())

    def delete(self, name: str) -> None:
        data = self._read()
        if data.pop(name, None) is not None:
            write_private(self.path, json.dumps(data).encode())


# ---------------------------------------------------------------- choosing
@dataclass(frozen=True)
class StoreChoice:
    kind: str
    label: str
    explanation: str
    available: bool


def store_choices(probe: KeyringProbe) -> list[StoreChoice]:
    keyring_choice = StoreChoice(
        "keyring",
        f"OS keyring ({probe.backend_name})" if probe.usable else "OS keyring (not available)",
        "Kept by your operating system's keyring." if probe.usable else probe.reason,
        probe.usable,
    )
    return [
        keyring_choice,
        StoreChoice("encrypted-file", "Encrypted file", "AES-GCM with a key derived from your passphrase (scrypt).", True),
        StoreChoice("env", f"{ENV_VAR} for this run", "Nothing is stored; set the variable for each run.", True),
        StoreChoice("stdin", "Standard input for this run", "Nothing is stored; pipe or type the key each run.", True),
    ]


def open_store(kind: str, paths: Paths, *, passphrase: bytes | None = None, stdin: IO[str] | None = None) -> SecretStore:
    if kind == "keyring":
        return KeyringStore()
    if kind == "encrypted-file":
        if not passphrase:
            raise SecretStoreError(
                "The API key is in the encrypted file, which needs its passphrase.",
                hint="Set KLARNA_MTLS_STORE_PASSPHRASE for headless runs.",
            )
        return EncryptedFileStore(paths.secrets_file(), passphrase)
    if kind == "env":
        return EnvStore()
    if kind == "stdin":
        return StdinStore(stdin)
    if kind == "sandbox":
        return SandboxStore(paths.sandbox_dir() / "credentials.json")
    raise SecretStoreError(f"Unknown secret store '{kind}'.", hint=f"Use one of: {', '.join(KINDS)}.")


class MemoryKeyring:
    """An in-memory keyring backend, for tests (a real KeyringBackend subclass)."""

    def __new__(cls):
        from keyring.backend import KeyringBackend

        class _Memory(KeyringBackend):
            priority = 1  # type: ignore[assignment]
            name = "Memory"  # type: ignore[assignment]

            def __init__(self) -> None:
                super().__init__()
                self.passwords: dict[tuple[str, str], str] = {}

            def get_password(self, service, username):
                return self.passwords.get((service, username))

            def set_password(self, service, username, password):
                self.passwords[(service, username)] = password

            def delete_password(self, service, username):
                from keyring.errors import PasswordDeleteError

                if self.passwords.pop((service, username), None) is None:
                    raise PasswordDeleteError(username)

        return _Memory()
