"""Opening a profile for a command: the session, its API key and the private key's passphrase.

Secrets never come from arguments: the API key from standard input (``--api-key-stdin``),
``KLARNA_API_KEY`` or the profile's recorded store; the passphrases from the environment."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from wizard.core import rules
from wizard.core.env_vars import API_KEY_ENV, KEY_PASSPHRASE_ENV, STORE_PASSPHRASE_ENV
from wizard.core.errors import InputError, SecretStoreError
from wizard.core.paths import Paths
from wizard.services.session import Session

if TYPE_CHECKING:
    from wizard.secrets.base import SecretStore


def open_session(args: argparse.Namespace) -> Session:
    """The profile named by --profile, as it is on disk; no key loaded."""
    session = Session(Paths.from_env(), getattr(args, "profile", "default"))
    session.read_only = bool(getattr(args, "read_only", False))  # a reader while another process writes
    return session


def open_unlocked_session(args: argparse.Namespace) -> Session:
    """An existing profile with its API key loaded, for the management commands."""
    return unlock(args, open_set_up_session(args))


def open_set_up_session(args: argparse.Namespace) -> Session:
    """An existing profile, its key passphrase (if given) held but no API key loaded yet: what a
    command needs to judge this machine's files before asking the secret store."""
    session = open_session(args)
    if not session.has_journal or not session.evidence.account_id:
        raise InputError(
            f"Profile '{session.profile}' has not been set up.",
            hint=f"Run klarna-mtls --profile {session.profile} (the wizard) or klarna-mtls onboard first.",
        )
    session.set_key_passphrase(key_passphrase())
    return session


def unlock(args: argparse.Namespace, session: Session) -> Session:
    """Load the profile's API key (see load_api_key) into ``session``."""
    api_key, _ = load_api_key(args, session)
    session.unlock(api_key, key_passphrase())
    return session


def load_api_key(args: argparse.Namespace, session: Session) -> tuple[str, SecretStore]:
    """Return (api_key, store to keep it in). Never from an argument: the domain's one loader
    (standard input when asked, else KLARNA_API_KEY, else the profile's recorded store; for a
    profile that records none yet, a ``vault:`` place named with --secret-store)."""
    from wizard.secrets.resolve import open_store, recorded_store, resolve_api_key, store_place
    from wizard.vault.place import is_vault_place

    allowed = _env_key_allowed(args, session)
    wanted = getattr(args, "secret_store", None)
    recorded = recorded_store(session.evidence)
    key, store = resolve_api_key(
        session.profile,
        session.paths,
        recorded or (wanted if wanted and is_vault_place(wanted) else None),
        stdin=sys.stdin,
        read_stdin=getattr(args, "api_key_stdin", False),
        use_env=allowed,
    )
    if store.kind == "env" and not allowed:
        raise SecretStoreError(
            f"KLARNA_API_KEY is not the key recorded for profile '{session.profile}'; status --all does not send it there.",
            hint=f"Run klarna-mtls status --profile {session.profile} with that profile's key.",
        )
    if wanted and wanted != (store_place(store) or store.kind):
        passphrase = os.environ.get(STORE_PASSPHRASE_ENV, "").encode() or None
        store = open_store(wanted, session.paths, passphrase=passphrase)
    return key, store


def add_secret_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--secret-store",
        type=secret_store_arg,
        metavar="{keyring,encrypted-file,env,stdin,vault:MOUNT/PATH}",
        help="where the API key is kept (default: where it came from); vault:secret/klarna-mtls/PROFILE "
        "keeps it in Vault / OpenBao KV v2 only, read from there on each run (VAULT_ADDR, VAULT_TOKEN)",
    )


def secret_store_arg(text: str) -> str:
    """argparse type for --secret-store: a store's kind, or a ``vault:`` place."""
    from wizard.secrets.resolve import verify_store_name

    try:
        return verify_store_name(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(f"{error.message} {error.hint}") from None


def prove_secret_store(args: argparse.Namespace, session: Session) -> None:
    """A ``vault:`` place named with --secret-store must answer and be writable with this token
    before the command changes anything (the profile, Klarna, a key)."""
    wanted = getattr(args, "secret_store", None)
    if wanted:
        from wizard.secrets.resolve import prove_named_store

        prove_named_store(wanted, session.paths)


def key_passphrase() -> bytes | None:
    """The private key's passphrase from KLARNA_MTLS_KEY_PASSPHRASE; None when unset or empty."""
    value = os.environ.get(KEY_PASSPHRASE_ENV)
    return value.encode() if value else None


def _env_key_allowed(args: argparse.Namespace, session: Session) -> bool:
    """Walking several profiles (status --all), KLARNA_API_KEY goes only to the profile whose
    recorded key it is: one profile's key never reaches another profile's host. Unset (cron),
    every profile reads its key from its own store."""
    if not getattr(args, "bound_keys_only", False):
        return True
    given, recorded = os.environ.get(API_KEY_ENV), session.evidence.api_key_masked
    return bool(given and recorded) and rules.mask_key(given or "") == recorded
