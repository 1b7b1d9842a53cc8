"""The API key in Vault or OpenBao: ``--secret-store vault:secret/klarna-mtls/PROFILE``.

One KV version 2 secret at the named place; each name the store is asked about (the profile, or
the name a service's key is kept under) is one field of it. Read from Vault on each run, nothing
kept on this machine's disk. A change writes a new version with check-and-set on top of the
version read, so a concurrent writer is never overwritten silently (VaultCasConflict instead).
Every refusal is a VaultError, itself a SecretStoreError."""

from __future__ import annotations

from wizard.vault.kv import VaultKv
from wizard.vault.place import VaultPlace, parse_place
from wizard.vault.settings import VaultSettings

KIND = "vault"


class VaultStore:
    """A SecretStore (see wizard.secrets.stores) over one KV version 2 secret. Vault is reached on
    the first get, set or delete, with the settings given or else those of the environment."""

    kind = KIND
    persistent = True

    def __init__(
        self, place: VaultPlace | str, *, kv: VaultKv | None = None, settings: VaultSettings | None = None
    ) -> None:
        self.place = parse_place(place) if isinstance(place, str) else place
        self.display_name = f"Vault / OpenBao at {self.place}"
        self._kv = kv
        self._settings = settings

    def __repr__(self) -> str:
        return f"VaultStore({str(self.place)!r})"

    def get(self, profile: str) -> str | None:
        current = self._connection().read(self.place)
        if current is None or current.deleted:
            return None
        return current.data.get(profile) or None

    def set(self, profile: str, api_key: str) -> None:
        self._connection().update(self.place, lambda fields: {**fields, profile: api_key})

    def delete(self, profile: str) -> None:
        """Remove the field (a new version without it); nothing written when it is not there."""
        self._connection().update(self.place, lambda fields: {k: v for k, v in fields.items() if k != profile})

    def prove_writable(self) -> None:
        """Refuse (VaultError) unless Vault answers and lets this token write the place: asked
        before anything else changes, so a refusal leaves nothing half done."""
        self._connection().may_write(self.place)

    def _connection(self) -> VaultKv:
        if self._kv is None:
            self._kv = VaultKv.connect(self._settings)
        return self._kv
