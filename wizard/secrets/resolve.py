"""Which store holds a profile's API key: the choices offered, opening a store by kind, and the
one way every front end loads the key (``resolve_api_key``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO

from wizard.core.env_vars import API_KEY_ENV, STORE_PASSPHRASE_ENV
from wizard.core.errors import SecretStoreError
from wizard.core.paths import Paths
from wizard.secrets.base import SecretStore
from wizard.secrets.encrypted_file import EncryptedFileStore
from wizard.secrets.keyring_store import KeyringProbe, KeyringStore
from wizard.secrets.simple_stores import EnvStore, SandboxStore, StdinStore

KINDS = ("keyring", "encrypted-file", "env", "stdin", "sandbox")
PERSISTENT_KINDS = ("keyring", "encrypted-file", "sandbox")


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
            "env",
            f"{API_KEY_ENV} for this run",
            f"Nothing is stored; set {API_KEY_ENV} in the environment for each run.",
            True,
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
    elif use_env and os.environ.get(API_KEY_ENV):
        return os.environ[API_KEY_ENV], EnvStore()
    elif not kind_hint:
        raise SecretStoreError(
            f"No API key for profile '{profile}': {API_KEY_ENV} is not set and no store was recorded.",
            hint=f"Set {API_KEY_ENV} for this run, or run the wizard to store the key.",
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
    per_run = f"set {API_KEY_ENV} for this run"
    return {
        "keyring": f"Unlock your keyring, run the wizard to store the key again, or {per_run}.",
        "encrypted-file": f"Run the wizard to store the key again, or {per_run}.",
        "env": f"The key was meant to come from the environment: {per_run}.",
        "stdin": "The key was meant to come from standard input: pipe it in (e.g. --api-key-stdin).",
        "sandbox": f"Start the sandbox again (it mints a new key), or {per_run}.",
    }.get(kind, f"{per_run[0].upper()}{per_run[1:]}.")
