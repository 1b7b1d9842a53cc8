"""Where the API key lives: the OS keyring, a passphrase-encrypted file, or this run only.

Never silently in plaintext: when the only keyring backend is the failing, the null or a plaintext
one, ``store_choices`` says so and offers explicit alternatives. No secret ever reaches an
exception, a repr or a log line: errors are raised ``from None`` so a backend's own exception text
(which we do not control) is not chained in."""

from __future__ import annotations

import base64
import binascii
import contextlib
import getpass
import json
import os
import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from wizard.core.errors import SecretStoreError
from wizard.core.fsutil import write_private
from wizard.core.paths import Paths
from wizard.core.rules import api_key_environment

SERVICE = "klarna-mtls"
ENV_VAR = "KLARNA_API_KEY"
STORE_PASSPHRASE_ENV = "KLARNA_MTLS_STORE_PASSPHRASE"
KINDS = ("keyring", "encrypted-file", "env", "stdin", "sandbox")
PERSISTENT_KINDS = ("keyring", "encrypted-file", "sandbox")
PROBE_TIMEOUT = 3.0
# Reads and writes may wait on an unlock prompt a person answers: far longer than the probe.
OPERATION_TIMEOUT = 120.0

T = TypeVar("T")


class SecretStore(Protocol):
    """What every store offers. ``kind`` is recorded in the journal as Evidence.secret_backend."""

    kind: str
    display_name: str
    persistent: bool

    def get(self, profile: str) -> str | None: ...
    def set(self, profile: str, api_key: str) -> None: ...
    def delete(self, profile: str) -> None: ...


class _TimedOut(Exception):
    """A keyring call did not return in time (a locked or hung Secret Service)."""


def _call_with_timeout(action: Callable[[], T], timeout: float) -> T:
    """Run ``action`` in a daemon thread: a hung backend must not hang us, nor block exit."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = action()
        except BaseException as exc:  # handed back to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True, name="klarna-mtls-keyring")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise _TimedOut
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome.get("value")  # type: ignore[return-value]


# ---------------------------------------------------------------- keyring
@dataclass(frozen=True)
class KeyringProbe:
    usable: bool
    backend_name: str
    reason: str
    plaintext: bool = False


def _backend_name(backend: object) -> str:
    return str(getattr(backend, "name", None) or type(backend).__name__)


def _backend_priority(backend: KeyringBackend) -> float | None:
    try:
        return float(type(backend).priority)  # a classproperty; may raise when not viable
    except Exception:
        return None


def _is_plaintext(backend: KeyringBackend) -> bool:
    """keyrings.alt's PlaintextKeyring and friends, or any low-priority backend not encrypted."""
    qualified = f"{type(backend).__module__}.{type(backend).__name__}".lower()
    if "plaintext" in qualified or "uncrypted" in qualified:
        return True
    priority = _backend_priority(backend)
    return priority is not None and priority < 1 and "encrypt" not in qualified


def _members(backend: KeyringBackend) -> list[KeyringBackend]:
    """The backends a ChainerBackend would write through; the backend itself otherwise."""
    from keyring.backends.chainer import ChainerBackend

    if isinstance(backend, ChainerBackend):
        return list(backend.backends)
    return [backend]


def _judge_backend(backend: KeyringBackend) -> KeyringProbe | None:
    """A verdict when the backend must not be used, None when it may be tried."""
    from keyring.backends import fail, null

    members = _members(backend)
    if not members or all(isinstance(m, fail.Keyring) for m in members):
        return KeyringProbe(False, _backend_name(backend), "No OS keyring is available on this machine.")
    if any(isinstance(m, null.Keyring) for m in members):
        return KeyringProbe(False, _backend_name(backend), "The keyring is disabled (null backend): it keeps nothing.")
    plaintext = [m for m in members if _is_plaintext(m)]
    if plaintext:
        return KeyringProbe(
            False,
            _backend_name(plaintext[0]),
            "The only keyring available stores secrets in plaintext; klarna-mtls will not use it silently.",
            plaintext=True,
        )
    return None


def _probe_now() -> KeyringProbe:
    import keyring

    backend = keyring.get_keyring()
    verdict = _judge_backend(backend)
    if verdict is not None:
        return verdict
    backend.get_password(SERVICE, "__probe__")  # harmless: reads a name nobody stores
    name = _backend_name(_members(backend)[0])
    return KeyringProbe(True, name, f"The OS keyring ({name}) answered.")


def probe_keyring(timeout: float = PROBE_TIMEOUT) -> KeyringProbe:
    """Find the keyring backend and do a harmless round trip, within ``timeout`` seconds."""
    try:
        return _call_with_timeout(_probe_now, timeout)
    except _TimedOut:
        return KeyringProbe(
            False, "unresponsive", f"The OS keyring did not answer within {timeout:g} s (is it locked?)."
        )
    except Exception as exc:  # any backend failure means: not usable
        return KeyringProbe(False, "unavailable", f"The OS keyring failed ({type(exc).__name__}).")


class KeyringStore:
    """The API key in the OS keyring, under ``service`` with the profile as user name."""

    kind = "keyring"
    persistent = True

    def __init__(
        self, service: str = SERVICE, *, probe: KeyringProbe | None = None, timeout: float = OPERATION_TIMEOUT
    ) -> None:
        self.service = service
        self.probe = probe or probe_keyring()
        self.timeout = timeout
        self.display_name = f"OS keyring ({self.probe.backend_name})"

    def __repr__(self) -> str:
        return f"KeyringStore(service={self.service!r}, backend={self.probe.backend_name!r})"

    def _call(self, action: Callable[[], T], failure: str) -> T:
        if not self.probe.usable:
            raise SecretStoreError(
                self.probe.reason,
                hint="Choose the encrypted file, or provide the key per run (KLARNA_API_KEY or standard input).",
            )
        try:
            return _call_with_timeout(action, self.timeout)
        except _TimedOut:
            raise SecretStoreError(
                f"{failure}: the OS keyring did not answer within {self.timeout:g} s.",
                hint="Unlock your keyring and try again.",
            ) from None
        except PasswordDeleteError:
            raise
        except Exception as exc:
            raise SecretStoreError(
                f"{failure} ({type(exc).__name__}).",
                hint="Unlock your keyring and try again, or choose the encrypted file.",
            ) from None

    def get(self, profile: str) -> str | None:
        import keyring

        return (
            self._call(lambda: keyring.get_password(self.service, profile), "The OS keyring could not be read") or None
        )

    def set(self, profile: str, api_key: str) -> None:
        import keyring

        self._call(
            lambda: keyring.set_password(self.service, profile, api_key), "The OS keyring refused to store the key"
        )

    def delete(self, profile: str) -> None:
        import keyring

        with contextlib.suppress(PasswordDeleteError):  # nothing stored: already the wanted state
            self._call(
                lambda: keyring.delete_password(self.service, profile), "The OS keyring could not delete the key"
            )


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring backend for tests (tests/conftest.py installs a fresh one per test)."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # keyring leaves KeyringBackend.__init__ unannotated
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


# Defining a KeyringBackend subclass registers it for keyring's auto-detection; a memory backend
# chosen in production would "store" the key until exit. Only explicit set_keyring may use it.
KeyringBackend._classes.discard(MemoryKeyring)


# ---------------------------------------------------------------- encrypted file
# The file's JSON shapes: a document {"version", "kdf", "salt", "entries", "check"?}, each entry
# {"nonce", "ciphertext"} (base64), and the KDF's name and parameters.
Document = dict[str, Any]
Entry = dict[str, str]
KdfParams = dict[str, Any]
FORMAT_VERSION = 1
SCRYPT_PARAMS = {"n": 2**15, "r": 8, "p": 1}  # files written before Argon2id: still read, upgraded on write
# OWASP's Argon2id minimum (19 MiB, 2 passes, 1 lane); about 60 ms here, memory-hard against GPUs.
# Without Argon2id in this cryptography/OpenSSL, OWASP's scrypt minimum (2^17, 8, 1: 128 MiB).
CURRENT_KDF: KdfParams = {"name": "argon2id", "memory_cost": 19 * 1024, "iterations": 2, "lanes": 1}
try:
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
except ImportError:  # pragma: no cover - cryptography < 44
    CURRENT_KDF = {"name": "scrypt", "n": 2**17, "r": 8, "p": 1}
_ARGON2_BOUNDS = {"memory_cost": (19 * 1024, 256 * 1024), "iterations": (1, 10), "lanes": (1, 4)}
# A known plaintext under its own associated data tells a wrong passphrase from a tampered entry.
_CHECK_AD = b"klarna-mtls:passphrase-check"
_CHECK_PLAINTEXT = b"klarna-mtls"


class EncryptedFileStore:
    """One JSON file; Argon2id (older files: scrypt) derives an AES-256-GCM key from the passphrase, one nonce per entry,
    and the profile name is the associated data, so an entry moved to another profile is refused."""

    kind = "encrypted-file"
    persistent = True

    def __init__(self, path: Path, passphrase: bytes) -> None:
        if isinstance(passphrase, str):
            passphrase = passphrase.encode()
        if not passphrase:
            raise SecretStoreError("The encrypted file needs a passphrase.")
        self.path = path
        self.display_name = f"Encrypted file {_home_relative(path)}"
        self._passphrase = passphrase
        self._derived: dict[tuple[object, ...], AESGCM] = {}

    def __repr__(self) -> str:
        return f"EncryptedFileStore({str(self.path)!r})"

    def get(self, profile: str) -> str | None:
        document = self._load()
        if document is None or profile not in document["entries"]:
            return None
        cipher = self._unlock(document)
        return self._decrypt_entry(cipher, document["entries"][profile], profile)

    def set(self, profile: str, api_key: str) -> None:
        with self._locked():  # read, change, write under one lock: no other writer's entry is lost
            document = self._current(self._load())
            cipher = self._unlock(document)
            if "check" not in document:
                document["check"] = _seal(cipher, _CHECK_PLAINTEXT, _CHECK_AD)
            document["entries"][profile] = _seal(cipher, api_key.encode(), profile.encode())
            self._save(document)

    def delete(self, profile: str) -> None:
        with self._locked():
            document = self._load()
            if document is None or profile not in document["entries"]:
                return
            self._unlock(document)  # only the passphrase holder may change the file
            document = self._current(document)
            del document["entries"][profile]
            self._save(document)

    def verify_passphrase(self) -> None:
        """Raise SecretStoreError unless this passphrase opens the file (a missing file: nothing to
        check). Callers ask before doing anything whose result must then be kept here."""
        document = self._load()
        if document is not None:
            self._unlock(document)

    def _locked(self) -> AbstractContextManager[None]:
        from wizard.core.locking import file_lock

        return file_lock(self.path.with_name(self.path.name + ".lock"), "secrets file write")

    def _current(self, document: Document | None) -> Document:
        """The document under the current KDF: a file made with older parameters is re-encrypted
        (every entry opened with its old key, sealed again under a fresh salt) on its next write."""
        if document is None:
            return self._new_document()
        if document["kdf"] == CURRENT_KDF:
            return document
        old = self._unlock(document)
        fresh = self._new_document()
        new = self._cipher(fresh)
        for name, entry in document["entries"].items():
            try:
                plaintext = _open(old, entry, name.encode())
            except InvalidTag:
                raise self._damaged() from None
            fresh["entries"][name] = _seal(new, plaintext, name.encode())
        fresh["check"] = _seal(new, _CHECK_PLAINTEXT, _CHECK_AD)
        return fresh

    # -- file format
    def _new_document(self) -> Document:
        return {
            "version": FORMAT_VERSION,
            "kdf": dict(CURRENT_KDF),
            "salt": _b64(os.urandom(16)),
            "entries": {},
        }

    def _load(self) -> Document | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SecretStoreError(f"Cannot read {self.path}: {exc.strerror}.") from None
        try:
            document: Document = json.loads(raw)
        except ValueError:
            raise self._damaged() from None
        if not _valid_document(document):
            raise self._damaged()
        return document

    def _save(self, document: Document) -> None:
        write_private(self.path, json.dumps(document, indent=1, sort_keys=True).encode())

    def _damaged(self) -> SecretStoreError:
        return SecretStoreError(
            f"The encrypted secrets file {self.path} is damaged or was altered.",
            hint="Move it aside and store the API key again.",
        )

    # -- crypto
    def _unlock(self, document: Document) -> AESGCM:
        """The AES-GCM key for this file, after proving the passphrase is the right one."""
        cipher = self._cipher(document)
        proof = document.get("check")
        if proof is None:  # a file with no proof yet: any entry proves the passphrase
            proof_ad = next(iter(document["entries"]), None)
            proof = document["entries"].get(proof_ad)
            proof_ad = proof_ad.encode() if proof_ad else b""
        else:
            proof_ad = _CHECK_AD
        if proof is not None:
            try:
                _open(cipher, proof, proof_ad)
            except InvalidTag:
                raise SecretStoreError(
                    f"Wrong passphrase for the encrypted secrets file {self.path}.",
                    hint=f"Type the passphrase you chose when the key was stored (headless: {STORE_PASSPHRASE_ENV}).",
                ) from None
        return cipher

    def _cipher(self, document: Document) -> AESGCM:
        kdf = document["kdf"]
        cache_key = (document["salt"], *sorted(kdf.items()))
        if cache_key not in self._derived:  # the KDF is deliberately slow: derive once per file state
            self._derived[cache_key] = AESGCM(_kdf(kdf, _unb64(document["salt"])).derive(self._passphrase))
        return self._derived[cache_key]

    def _decrypt_entry(self, cipher: AESGCM, entry: Entry, profile: str) -> str:
        try:
            return _open(cipher, entry, profile.encode()).decode()
        except (InvalidTag, UnicodeDecodeError):
            raise SecretStoreError(
                f"The entry for profile '{profile}' in {self.path} was altered and cannot be trusted.",
                hint="Store the API key again for this profile.",
            ) from None


def _seal(cipher: AESGCM, plaintext: bytes, associated_data: bytes) -> Entry:
    nonce = os.urandom(12)
    return {"nonce": _b64(nonce), "ciphertext": _b64(cipher.encrypt(nonce, plaintext, associated_data))}


def _open(cipher: AESGCM, entry: Entry, associated_data: bytes) -> bytes:
    return cipher.decrypt(_unb64(entry["nonce"]), _unb64(entry["ciphertext"]), associated_data)


def _valid_document(document: object) -> bool:
    """Shape and sane KDF bounds: a tampered file must not make us run a KDF for an hour."""
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        return False
    kdf, entries = document.get("kdf"), document.get("entries")
    if not isinstance(entries, dict) or not _valid_kdf(kdf):
        return False
    sealed = list(entries.values()) + ([document["check"]] if "check" in document else [])
    return _valid_b64(document.get("salt"), min_length=16) and all(_valid_sealed(e) for e in sealed)


def _valid_kdf(kdf: object) -> bool:
    """Known KDFs within bounds: a tampered header must not make us work for minutes or take
    gigabytes (scrypt is capped at 2^17 x 8, i.e. 128 MiB; Argon2id at 256 MiB)."""
    if not isinstance(kdf, dict):
        return False
    values = [v for k, v in kdf.items() if k != "name"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return False
    if kdf.get("name") == "scrypt" and set(kdf) == {"name", "n", "r", "p"}:
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        return 2**14 <= n <= 2**17 and n & (n - 1) == 0 and 1 <= r <= 8 and 1 <= p <= 4
    if kdf.get("name") == "argon2id" and set(kdf) == {"name", *_ARGON2_BOUNDS}:
        return all(low <= int(kdf[k]) <= high for k, (low, high) in _ARGON2_BOUNDS.items())
    return False


def _kdf(kdf: KdfParams, salt: bytes) -> Argon2id | Scrypt:
    if kdf["name"] == "argon2id":
        return Argon2id(
            salt=salt, length=32, iterations=kdf["iterations"], lanes=kdf["lanes"], memory_cost=kdf["memory_cost"]
        )
    return Scrypt(salt=salt, length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"])


def _valid_sealed(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and _valid_b64(entry.get("nonce"), min_length=12, max_length=12)
        and _valid_b64(entry.get("ciphertext"), min_length=16)
    )


def _valid_b64(text: object, min_length: int, max_length: int = 1 << 20) -> bool:
    if not isinstance(text, str):
        return False
    try:
        return min_length <= len(_unb64(text)) <= max_length
    except (binascii.Error, ValueError):
        return False


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _home_relative(path: Path) -> str:
    """``~/…`` when under the home folder: shorter in status views, same meaning."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except (ValueError, RuntimeError):
        return str(path)


# ---------------------------------------------------------------- per run
class EnvStore:
    """KLARNA_API_KEY, read each run; nothing is stored."""

    kind = "env"
    persistent = False
    display_name = f"Environment variable {ENV_VAR} (this run only)"

    def get(self, profile: str) -> str | None:
        return os.environ.get(ENV_VAR) or None

    def set(self, profile: str, api_key: str) -> None:
        raise SecretStoreError(
            f"{ENV_VAR} is read per run; it cannot store a key.",
            hint="Choose the OS keyring or the encrypted file to keep the key, or set the variable each run.",
        )

    def delete(self, profile: str) -> None:
        """Nothing to delete: the variable belongs to the caller's shell."""


class StdinStore:
    """One line read from ``stream`` the first time it is needed, then kept in memory for this run.
    On a terminal, getpass reads it without echo."""

    kind = "stdin"
    persistent = False
    display_name = "Standard input (this run only)"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._value: str | None = None
        self._read = False

    def __repr__(self) -> str:
        return "StdinStore()"

    def get(self, profile: str) -> str | None:
        if not self._read:
            self._read = True
            self._value = self._read_line() or None
        return self._value

    def _read_line(self) -> str:
        isatty = getattr(self._stream, "isatty", None)
        if isatty is not None and isatty():
            return getpass.getpass("Klarna API key (not echoed): ").strip()
        return self._stream.readline().strip()

    def set(self, profile: str, api_key: str) -> None:
        self._value, self._read = api_key, True  # this run only

    def delete(self, profile: str) -> None:
        self._value = None


class SandboxStore:
    """Sandbox credentials only, in a 0600 file: acceptable because sandbox keys are throwaway
    and minted by the local sandbox. It refuses anything but a test-shaped key."""

    kind = "sandbox"
    persistent = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.display_name = f"Sandbox-only file {_home_relative(path)} (throwaway sandbox keys, not encrypted)"

    def __repr__(self) -> str:
        return f"SandboxStore({str(self.path)!r})"

    def get(self, profile: str) -> str | None:
        return self._read().get(profile)

    def set(self, profile: str, api_key: str) -> None:
        if api_key_environment(api_key) != "test":
            raise SecretStoreError(
                "The sandbox store holds sandbox (test-shaped) keys only.",
                hint="Keep live and test keys in the OS keyring or the encrypted file.",
            )
        data = self._read()
        data[profile] = api_key
        write_private(self.path, json.dumps(data, sort_keys=True).encode())

    def delete(self, profile: str) -> None:
        data = self._read()
        if data.pop(profile, None) is not None:
            write_private(self.path, json.dumps(data, sort_keys=True).encode())

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise SecretStoreError(
                f"The sandbox credentials file {self.path} is damaged.",
                hint="Delete it and start the sandbox again: sandbox keys are throwaway.",
            )
        return data


# ---------------------------------------------------------------- choosing
@dataclass(frozen=True)
class StoreChoice:
    kind: str
    label: str
    explanation: str
    available: bool


def store_choices(probe: KeyringProbe) -> list[StoreChoice]:
    """What the TUI and CLI offer: the keyring when usable, and always the explicit alternatives."""
    if probe.usable:
        keyring_choice = StoreChoice(
            "keyring", f"OS keyring ({probe.backend_name})", "Kept by your operating system's keyring.", True
        )
    else:
        keyring_choice = StoreChoice(
            "keyring",
            "OS keyring (not available)",
            f"{probe.reason} Nothing is stored in plaintext: choose one of the options below.",
            False,
        )
    return [
        keyring_choice,
        StoreChoice(
            "encrypted-file",
            "Encrypted file (passphrase)",
            "AES-256-GCM with a key derived from your passphrase (Argon2id); "
            f"you type the passphrase each run, or set {STORE_PASSPHRASE_ENV} for headless runs.",
            True,
        ),
        StoreChoice(
            "env", f"{ENV_VAR} for this run", f"Nothing is stored; set {ENV_VAR} in the environment for each run.", True
        ),
        StoreChoice("stdin", "Standard input for this run", "Nothing is stored; type or pipe the key each run.", True),
    ]


def open_store(
    kind: str, paths: Paths, *, passphrase: bytes | None = None, stdin: IO[str] | None = None
) -> SecretStore:
    if kind == "keyring":
        return KeyringStore()
    if kind == "encrypted-file":
        if not passphrase:
            raise SecretStoreError(
                "The API key is in the encrypted file, which needs its passphrase.",
                hint=f"Headless: set {STORE_PASSPHRASE_ENV}. The wizard asks for it when it starts.",
            )
        return EncryptedFileStore(paths.secrets_file(), passphrase)
    if kind == "env":
        return EnvStore()
    if kind == "stdin":
        return StdinStore(stdin)
    if kind == "sandbox":
        return SandboxStore(paths.sandbox_dir() / "credentials.json")
    raise SecretStoreError(f"Unknown secret store '{kind}'.", hint=f"Use one of: {', '.join(KINDS)}.")


def resolve_api_key(
    profile: str,
    paths: Paths,
    kind_hint: str | None,
    *,
    passphrase: bytes | None = None,
    stdin: IO[str] | None = None,
    read_stdin: bool = False,
    use_env: bool = True,
) -> tuple[str, SecretStore]:
    """The one way every front end loads a profile's API key: standard input when asked
    (``read_stdin``), else KLARNA_API_KEY when set, else the store recorded for the profile.
    An encrypted file's passphrase is ``passphrase`` or KLARNA_MTLS_STORE_PASSPHRASE. ``stdin``
    is the stream a "stdin" store reads; None means there is none (the TUI), so that store is
    refused instead of read. ``use_env=False`` skips KLARNA_API_KEY unless the profile records it
    as its store (the caller then decides). Blocking (keyring): call it from a thread."""
    if read_stdin:
        store: SecretStore = StdinStore(stdin)
    elif use_env and os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR], EnvStore()
    elif not kind_hint:
        raise SecretStoreError(
            f"No API key for profile '{profile}': {ENV_VAR} is not set and no store was recorded.",
            hint=f"Set {ENV_VAR} for this run, or run the wizard to store the key.",
        )
    elif kind_hint == "stdin" and stdin is None:
        raise SecretStoreError(
            f"The API key for profile '{profile}' was meant to come from standard input.", hint=_how_to_provide("stdin")
        )
    else:
        if kind_hint == "encrypted-file" and not passphrase:
            passphrase = os.environ.get(STORE_PASSPHRASE_ENV, "").encode() or None
        store = open_store(kind_hint, paths, passphrase=passphrase, stdin=stdin)
    api_key = store.get(profile)
    if not api_key:
        raise SecretStoreError(
            f"The {store.display_name} holds no API key for profile '{profile}'.",
            hint=_how_to_provide(store.kind),
        )
    return api_key, store


def open_profile_store(kind: str | None, paths: Paths, *, passphrase: bytes | None = None) -> SecretStore:
    """The profile's own persistent store (where the wizard keeps its key), for keys created or
    rotated later: refused when the key is only read per run."""
    if kind not in PERSISTENT_KINDS:
        raise SecretStoreError(
            f"The profile's key is not kept in a persistent store ({kind or 'none'}).",
            hint="Store it in the OS keyring or the encrypted file (the wizard's Credentials step).",
        )
    if kind == "encrypted-file" and not passphrase:
        passphrase = os.environ.get(STORE_PASSPHRASE_ENV, "").encode() or None
    return open_store(kind, paths, passphrase=passphrase)


def prove_opens(store: SecretStore) -> None:
    """Raise SecretStoreError when ``store`` is known not to accept writes with what it was
    opened with (an encrypted file with the wrong passphrase), before anything is created for it."""
    if isinstance(store, EncryptedFileStore):
        store.verify_passphrase()


def _how_to_provide(kind: str) -> str:
    per_run = f"set {ENV_VAR} for this run"
    return {
        "keyring": f"Unlock your keyring, run the wizard to store the key again, or {per_run}.",
        "encrypted-file": f"Run the wizard to store the key again, or {per_run}.",
        "env": f"The key was meant to come from the environment: {per_run}.",
        "stdin": "The key was meant to come from standard input: pipe it in (e.g. --api-key-stdin).",
        "sandbox": f"Start the sandbox again (it mints a new key), or {per_run}.",
    }.get(kind, f"{per_run[0].upper()}{per_run[1:]}.")
