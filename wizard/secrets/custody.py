"""Custody of this run's secrets: the API key and the private key's passphrase.

Both live in memory only, for this run, as ``SecretValue``s: a crash report, a debugger or a
repr shows them masked. Other modules ask custody questions ("is a key loaded?", "is it the
recorded one?", "which environment is it from?") instead of reaching for the value; only the
code that makes a request takes the key itself, through ``api_key()``."""

from __future__ import annotations

from wizard.core import rules
from wizard.core.env_vars import API_KEY_ENV
from wizard.core.errors import SecretStoreError
from wizard.core.secret_value import SecretValue


class KeyCustody:
    """The API key and the key passphrase held for this run; neither is ever written anywhere."""

    __slots__ = ("_api_key", "_passphrase")

    def __init__(self) -> None:
        self._api_key: SecretValue[str] | None = None
        self._passphrase: SecretValue[bytes] | None = None

    def __repr__(self) -> str:  # never a secret, not even masked
        return f"KeyCustody(unlocked={self.unlocked}, passphrase={self._passphrase is not None})"

    def hold(self, api_key: str | SecretValue[str], key_passphrase: bytes | SecretValue[bytes] | None = None) -> None:
        """Hold the API key (and, when given, the key passphrase) for this run only."""
        self._api_key = SecretValue(api_key)
        if key_passphrase is not None:
            self._passphrase = SecretValue(key_passphrase)

    def set_passphrase(self, passphrase: bytes | SecretValue[bytes] | None) -> None:
        """Hold the private key's passphrase for this run; None (or empty) forgets it."""
        self._passphrase = SecretValue(passphrase) if passphrase else None

    def with_passphrase(self, passphrase: bytes | SecretValue[bytes] | None) -> KeyCustody:
        """Another custody holding the same API key and ``passphrase`` (a pair with its own);
        this one is unchanged."""
        other = KeyCustody()
        other._api_key = self._api_key
        other.set_passphrase(passphrase)
        return other

    @property
    def unlocked(self) -> bool:
        return self._api_key is not None

    @property
    def passphrase(self) -> bytes | None:
        return self._passphrase.reveal() if self._passphrase else None

    @property
    def api_key_suffix(self) -> str | None:
        """The last four characters of the key in use: enough to match it in a listing."""
        return self._api_key.reveal()[-4:] if self._api_key else None

    def api_key(self) -> str:
        """The key, at the point of use; SecretStoreError (with what to do) when none is loaded."""
        if not self._api_key:
            raise SecretStoreError(
                "The API key is not loaded for this run.",
                hint=f"Enter it on the Credentials step, or set {API_KEY_ENV} for headless runs.",
            )
        return self._api_key.reveal()

    def api_key_environment(self) -> str | None:
        """The environment the loaded key belongs to (from its shape); None when none is loaded."""
        return rules.api_key_environment(self._api_key.reveal()) if self._api_key else None

    def matches(self, masked: str | None) -> bool | None:
        """Whether the loaded key is the one whose masked form is ``masked`` (as recorded at the
        Credentials step); None when no key is loaded."""
        if not self._api_key:
            return None
        return bool(rules.mask_key(self._api_key.reveal()) == masked)
