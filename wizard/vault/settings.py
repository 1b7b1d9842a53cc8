"""How to reach Vault and sign in, read from the environment the way Vault's own command line reads it.

``VAULT_ADDR`` is required. A person's token comes from ``VAULT_TOKEN``, else from ``~/.vault-token``
(which ``vault login`` and ``bao login`` write). A cron job signs in with AppRole: ``VAULT_ROLE_ID``
plus the secret id in the file ``VAULT_SECRET_ID_FILE`` names, a file only its owner can read: never
a value in the environment or on a command line, where other processes and shell histories see it.
TLS verification is always on (``VAULT_CACERT`` adds the CA that signed the server's certificate);
plain http is accepted for this machine only, where a development server listens."""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from wizard.core.env_vars import (
    VAULT_ADDR,
    VAULT_CACERT,
    VAULT_NAMESPACE,
    VAULT_ROLE_ID,
    VAULT_SECRET_ID_FILE,
    VAULT_TOKEN,
)
from wizard.core.logs import register_secret
from wizard.core.secret_value import SecretValue
from wizard.vault.errors import VaultConfigError

TOKEN_FILE_NAME = ".vault-token"  # in the home folder, as the Vault CLI's default token helper keeps it

APPROLE_MOUNT = "approle"
_MAX_SECRET_ID_BYTES = 4096
_SIGN_IN_HINT = (
    "Sign in with `vault login` or `bao login` (they write ~/.vault-token), or set VAULT_TOKEN; "
    "for cron, set VAULT_ROLE_ID and VAULT_SECRET_ID_FILE (AppRole)."
)


@dataclass(frozen=True)
class AppRole:
    """An AppRole sign-in: the role id, and the file holding the secret id (read at sign-in)."""

    role_id: SecretValue[str]
    secret_id_file: Path
    mount: str = APPROLE_MOUNT


@dataclass(frozen=True)
class VaultSettings:
    """Where Vault is and who we are there. Exactly one of ``token`` and ``approle`` is set;
    ``token_source`` says where the token comes from, for messages (never the token itself)."""

    address: str
    token: SecretValue[str] | None = None
    approle: AppRole | None = None
    ca_file: Path | None = None
    namespace: str | None = None
    token_source: str = VAULT_TOKEN

    @property
    def verify(self) -> str | bool:
        """What the HTTP client verifies the server against: the CA file, else its default trust."""
        return str(self.ca_file) if self.ca_file else True


def settings_from_env(environ: Mapping[str, str] | None = None, home: Path | None = None) -> VaultSettings:
    """The settings the environment gives; VaultConfigError saying what is missing or unsafe."""
    env = os.environ if environ is None else environ
    address = check_address(env.get(VAULT_ADDR, "").strip())
    ca_file = _ca_file(env.get(VAULT_CACERT, "").strip())
    namespace = env.get(VAULT_NAMESPACE, "").strip() or None
    role_id = env.get(VAULT_ROLE_ID, "").strip()
    token = env.get(VAULT_TOKEN, "").strip()
    if role_id and token:
        raise VaultConfigError(
            f"Both {VAULT_TOKEN} and {VAULT_ROLE_ID} are set: klarna-mtls will not guess which one to sign in with.",
            hint=f"Unset one: {VAULT_TOKEN} for a person, {VAULT_ROLE_ID} with {VAULT_SECRET_ID_FILE} for cron.",
        )
    if role_id:
        approle = AppRole(SecretValue(role_id), _secret_id_file(env))
        return VaultSettings(address, None, approle, ca_file, namespace, token_source="AppRole")
    if token:
        register_secret(token)
        return VaultSettings(address, SecretValue(token), None, ca_file, namespace, token_source=VAULT_TOKEN)
    stored = _read_token_file((home or Path.home()) / TOKEN_FILE_NAME)
    if stored is None:
        raise VaultConfigError(
            f"No Vault token: {VAULT_TOKEN} is not set and there is no ~/{TOKEN_FILE_NAME}.", hint=_SIGN_IN_HINT
        )
    return VaultSettings(address, stored, None, ca_file, namespace, token_source=f"~/{TOKEN_FILE_NAME}")


def check_address(address: str) -> str:
    """``address`` without a trailing slash, once it is an https URL (http on loopback only)."""
    if not address:
        raise VaultConfigError(
            f"{VAULT_ADDR} is not set: klarna-mtls does not know which Vault to use.",
            hint=f"Set {VAULT_ADDR}=https://vault.example.com:8200, as for the vault or bao command line.",
        )
    try:
        parts = urlsplit(address)
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    if (
        parts is None
        or parts.scheme not in ("https", "http")
        or not host
        or parts.username
        or parts.password
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise VaultConfigError(
            f"{VAULT_ADDR} must be https://host[:port], with no path, user or password.",
            hint="Use the address the vault or bao command line uses.",
        )
    if parts.scheme == "http" and not is_loopback(host):
        raise VaultConfigError(
            f"{VAULT_ADDR} uses plain http to {host}: tokens and secrets would cross the network unencrypted.",
            hint="Use https (with VAULT_CACERT for a private CA); plain http is for a development server on 127.0.0.1.",
        )
    return address.rstrip("/")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_secret_id(path: Path) -> SecretValue[str]:
    """The AppRole secret id in ``path``, refused when other users could read or change the file."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not hang us
    except OSError as exc:
        raise _unreadable(path, exc) from None
    with os.fdopen(descriptor, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode  # the opened file itself: no swap after the check
        if not stat.S_ISREG(mode):
            raise VaultConfigError(f"The AppRole secret-id file {path} is not a regular file.")
        if mode & 0o077:
            raise VaultConfigError(
                f"The AppRole secret-id file {path} is open to other users (mode {stat.S_IMODE(mode):04o}).",
                hint=f"Run chmod 600 {path}; if others may have read it, issue a new secret id.",
            )
        try:
            raw = handle.read(_MAX_SECRET_ID_BYTES)
        except OSError as exc:
            raise _unreadable(path, exc) from None
    value = raw.decode("utf-8", "replace").strip()
    if not value:
        raise VaultConfigError(f"The AppRole secret-id file {path} is empty.")
    register_secret(value)
    return SecretValue(value)


def _secret_id_file(env: Mapping[str, str]) -> Path:
    name = env.get(VAULT_SECRET_ID_FILE, "").strip()
    if not name:
        raise VaultConfigError(
            f"{VAULT_ROLE_ID} is set, but {VAULT_SECRET_ID_FILE} is not.",
            hint=f"Put the AppRole secret id in a file only you can read (chmod 600) and set {VAULT_SECRET_ID_FILE} "
            "to its path; the secret id itself is never read from the environment or an argument.",
        )
    return Path(name).expanduser()


def _ca_file(name: str) -> Path | None:
    if not name:
        return None
    path = Path(name).expanduser()
    if not path.is_file():
        raise VaultConfigError(
            f"{VAULT_CACERT} names {path}, which is not a file.",
            hint="Point it at the PEM file of the CA that signed the Vault server's certificate.",
        )
    return path


def _read_token_file(path: Path) -> SecretValue[str] | None:
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise VaultConfigError(
            f"Cannot read the Vault token file {path}: {exc.strerror}.", hint=_SIGN_IN_HINT
        ) from None
    if not token:
        return None
    register_secret(token)
    return SecretValue(token)


def _unreadable(path: Path, exc: OSError) -> VaultConfigError:
    return VaultConfigError(
        f"Cannot read the AppRole secret-id file {path}: {exc.strerror or type(exc).__name__}.",
        hint=f"Check {VAULT_SECRET_ID_FILE} and the file's owner.",
    )
