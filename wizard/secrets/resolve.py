"""Which store holds a profile's API key: the choices offered, opening a store by name, and the
one way every front end loads the key (``resolve_api_key``).

A store is named by its kind (``keyring``, ``encrypted-file``, …) or, for Vault and OpenBao, by
its place (``vault:secret/klarna-mtls/checkout``): the journal records the kind ``vault`` and the
place beside it (``recorded_store`` puts them back together). Vault is reached only when a
``vault:`` place is named, and hvac is imported only then."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from wizard.core.env_vars import API_KEY_ENV, STORE_PASSPHRASE_ENV, VAULT_ADDR
from wizard.core.errors import InputError, SecretStoreError
from wizard.core.evidence import Evidence
from wizard.core.paths import Paths
from wizard.secrets.base import SecretStore
from wizard.secrets.encrypted_file import EncryptedFileStore
from wizard.secrets.keyring_store import KeyringProbe, KeyringStore
from wizard.secrets.simple_stores import EnvStore, SandboxStore, StdinStore
from wizard.vault.place import is_vault_place, parse_place

if TYPE_CHECKING:
    from wizard.secrets.vault_store import VaultStore

VAULT_KIND = "vault"
KINDS = ("keyring", "encrypted-file", "env", "stdin", "sandbox")  # opened by their kind alone
PERSISTENT_KINDS = ("keyring", "encrypted-file", "sandbox", VAULT_KIND)


@dataclass(frozen=True)
class StoreChoice:
    kind: str
    label: str
    explanation: str
    available: bool


def store_choices(probe: KeyringProbe, environ: Mapping[str, str] | None = None) -> list[StoreChoice]:
    """What the TUI and CLI offer: the keyring when usable, Vault / OpenBao when VAULT_ADDR names
    one, and always the explicit alternatives."""
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
        *_vault_choice(os.environ if environ is None else environ),
    ]


def _vault_choice(environ: Mapping[str, str]) -> list[StoreChoice]:
    address = environ.get(VAULT_ADDR, "").strip()
    if not address:
        return []
    explanation = (
        f"Kept in KV version 2 at the place you name (vault:MOUNT/PATH) on {address[:80]}, read from Vault "
        "on each run; nothing on this machine's disk. Signed in as the vault / bao command line is."
    )
    return [StoreChoice(VAULT_KIND, "Vault / OpenBao", explanation, True)]


def recorded_store(evidence: Evidence) -> str | None:
    """The store the profile recorded, named as ``open_store`` takes it: its kind, or its
    ``vault:`` place."""
    if evidence.secret_backend == VAULT_KIND:
        return evidence.secret_place or VAULT_KIND  # a bare "vault" is refused, naming the journal's gap
    return evidence.secret_backend


def store_place(store: SecretStore) -> str | None:
    """The ``vault:`` place of a Vault store (what the journal records beside the kind); None for the others."""
    place = getattr(store, "place", None) if store.kind == VAULT_KIND else None
    return str(place) if place is not None else None


def store_kind(name: str) -> str:
    """The kind of the store ``name`` names (a ``vault:`` place names the kind "vault")."""
    return VAULT_KIND if is_vault_place(name) else name


def verify_store_name(text: str) -> str:
    """A store someone named (--secret-store): a kind kept or read per run, or a well-formed
    ``vault:`` place (returned as it is written back); InputError otherwise."""
    if is_vault_place(text):
        return str(parse_place(text))
    if text not in KINDS or text == "sandbox":
        raise InputError(
            f"'{text[:40]}' is not a secret store.",
            hint="Use keyring, encrypted-file, env, stdin or vault:MOUNT/PATH (e.g. vault:secret/klarna-mtls/checkout).",
        )
    return text


def open_store(
    kind: str, paths: Paths, *, passphrase: bytes | None = None, stdin: IO[str] | None = None
) -> SecretStore:
    """The store ``kind`` names: a kind, or a ``vault:`` place (Vault is reached on first use)."""
    if kind == VAULT_KIND or is_vault_place(kind):
        return _vault_store(kind)
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
    raise SecretStoreError(
        f"Unknown secret store '{kind}'.", hint=f"Use one of: {', '.join(KINDS)}, or vault:MOUNT/PATH."
    )


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
    if kind is None or store_kind(kind) not in PERSISTENT_KINDS:
        raise SecretStoreError(
            f"The profile's key is not kept in a persistent store ({kind or 'none'}).",
            hint="Store it in the OS keyring or the encrypted file (the wizard's Credentials step).",
        )
    if kind == "encrypted-file" and not passphrase:
        passphrase = os.environ.get(STORE_PASSPHRASE_ENV, "").encode() or None
    return open_store(kind, paths, passphrase=passphrase)


def prove_opens(store: SecretStore) -> None:
    """Raise SecretStoreError when ``store`` is known not to accept writes with what it was
    opened with (an encrypted file with the wrong passphrase; a Vault place this token may not
    write, or a Vault that does not answer), before anything is created for it."""
    if isinstance(store, EncryptedFileStore):
        store.verify_passphrase()
    elif store.kind == VAULT_KIND:
        _as_vault(store).prove_writable()


def prove_named_store(name: str | None, paths: Paths) -> None:
    """For --secret-store: a ``vault:`` place is proved writable before a command changes anything
    (the other stores are proved where they are used)."""
    if name and is_vault_place(name):
        prove_opens(open_store(name, paths))


def _vault_store(name: str) -> VaultStore:
    from wizard.secrets.vault_store import VaultStore  # hvac and the adapter: only when a place is named

    if not is_vault_place(name):
        raise SecretStoreError(
            "The profile's API key is in Vault, but its journal does not say where.",
            hint="Run onboard again with --secret-store vault:MOUNT/PATH (the place that holds it).",
        )
    return VaultStore(name)


def _as_vault(store: SecretStore) -> VaultStore:
    from wizard.secrets.vault_store import VaultStore

    assert isinstance(store, VaultStore)
    return store


def _how_to_provide(kind: str) -> str:
    per_run = f"set {API_KEY_ENV} for this run"
    return {
        "keyring": f"Unlock your keyring, run the wizard to store the key again, or {per_run}.",
        "encrypted-file": f"Run the wizard to store the key again, or {per_run}.",
        "env": f"The key was meant to come from the environment: {per_run}.",
        "stdin": "The key was meant to come from standard input: pipe it in (e.g. --api-key-stdin).",
        "sandbox": f"Start the sandbox again (it mints a new key), or {per_run}.",
        VAULT_KIND: f"Check the place with `bao kv get` (one field named after the profile holds the key), or {per_run}.",
    }.get(kind, f"{per_run[0].upper()}{per_run[1:]}.")
