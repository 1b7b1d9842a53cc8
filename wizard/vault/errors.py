"""What can go wrong with Vault, one class per cause, each naming the place and Vault's reason.

They are SecretStoreErrors, so a front end that already handles a store's refusal (and the key
service that disables a new key no store would keep) handles Vault's too. No message holds a
token, a secret id or a stored value: only places, addresses, versions and Vault's own reason."""

from __future__ import annotations

from wizard.core.errors import SecretStoreError


class VaultError(SecretStoreError):
    """Vault or OpenBao could not do what was asked. ``place`` is the ``vault:`` place concerned
    (when there is one) and ``reason`` Vault's own words, cleaned for a terminal."""

    title = "Vault problem"

    def __init__(
        self, message: str, title: str | None = None, hint: str = "", *, place: str = "", reason: str = ""
    ) -> None:
        super().__init__(message, title=title, hint=hint)
        self.place = place
        self.reason = reason


class VaultConfigError(VaultError):
    """The environment does not say how to reach or sign in to Vault, or says it unsafely."""

    title = "Vault settings problem"


class VaultUnreachable(VaultError):
    """No answer from the address: connection refused, reset or timed out."""

    title = "Vault unreachable"


class VaultTlsError(VaultError):
    """The server's certificate could not be verified (verification is never turned off)."""

    title = "Vault certificate not trusted"


class VaultSealed(VaultError):
    """The server answers but is sealed (or not initialised): it can read and write nothing."""

    title = "Vault is sealed"


class VaultInvalidToken(VaultError):
    """The token is unknown, expired or revoked, or the AppRole login was refused."""

    title = "Vault sign-in refused"


class VaultPermissionDenied(VaultError):
    """The token is valid, but its policies do not allow this operation on this path."""

    title = "Vault permission denied"


class VaultNotKv2(VaultError):
    """The place is not on a KV version 2 mount: another engine, KV version 1, or no mount at all."""

    title = "Not a KV version 2 mount"


class VaultCasConflict(VaultError):
    """Check-and-set refused the write: someone else wrote the path since it was read."""

    title = "Someone else wrote to Vault"


class VaultRefused(VaultError):
    """Any other refusal or unexpected answer (a bad request, a server error, a redirect)."""

    title = "Vault refused the request"
