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
    session = open_session(args)
    if not session.has_journal or not session.evidence.account_id:
        raise InputError(
            f"Profile '{session.profile}' has not been set up.",
            hint="Run klarna-mtls (the wizard) or klarna-mtls onboard first.",
        )
    api_key, _ = load_api_key(args, session)
    session.unlock(api_key, key_passphrase())
    return session


def load_api_key(args: argparse.Namespace, session: Session) -> tuple[str, SecretStore]:
    """Return (api_key, store to keep it in). Never from an argument: the domain's one loader
    (standard input when asked, else KLARNA_API_KEY, else the profile's recorded store)."""
    from wizard.secrets.resolve import open_store, resolve_api_key

    allowed = _env_key_allowed(args, session)
    key, store = resolve_api_key(
        session.profile,
        session.paths,
        session.evidence.secret_backend,
        stdin=sys.stdin,
        read_stdin=getattr(args, "api_key_stdin", False),
        use_env=allowed,
    )
    if store.kind == "env" and not allowed:
        raise SecretStoreError(
            f"KLARNA_API_KEY is not the key recorded for profile '{session.profile}'; status --all does not send it there.",
            hint=f"Run klarna-mtls status --profile {session.profile} with that profile's key.",
        )
    wanted = getattr(args, "secret_store", None)
    if wanted and wanted != store.kind:
        passphrase = os.environ.get(STORE_PASSPHRASE_ENV, "").encode() or None
        store = open_store(wanted, session.paths, passphrase=passphrase)
    return key, store


def key_passphrase() -> bytes | None:
    """The private key's passphrase from KLARNA_MTLS_KEY_PASSPHRASE; None when unset or empty."""
    value = os.environ.get(KEY_PASSPHRASE_ENV)
    return value.encode() if value else None


def _env_key_allowed(args: argparse.Namespace, session: Session) -> bool:
    """Walking several profiles (status --all), KLARNA_API_KEY goes only to the profile whose
    recorded key it is: one profile's key never reaches another profile's host."""
    given = os.environ.get(API_KEY_ENV)
    if not getattr(args, "bound_keys_only", False) or not given:
        return True  # no key in the environment: each profile's own store is read
    recorded = session.evidence.api_key_masked
    return bool(recorded) and rules.mask_key(given) == recorded
