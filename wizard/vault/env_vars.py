"""The environment variables this package reads: Vault's own names, so a shell set up for the
``vault`` or ``bao`` command line works unchanged (plus the AppRole pair used by cron jobs)."""

from __future__ import annotations

VAULT_ADDR = "VAULT_ADDR"  # required: https://host:port (plain http only on this machine)
VAULT_TOKEN = "VAULT_TOKEN"  # else the token file ~/.vault-token that `vault login` / `bao login` write
VAULT_CACERT = "VAULT_CACERT"  # a CA file the server's certificate must chain to
VAULT_NAMESPACE = "VAULT_NAMESPACE"
VAULT_ROLE_ID = "VAULT_ROLE_ID"  # AppRole, for cron: the role id ...
VAULT_SECRET_ID_FILE = "VAULT_SECRET_ID_FILE"  # ... and the file holding its secret id (never the value itself)
TOKEN_FILE_NAME = ".vault-token"  # in the home folder, as the Vault CLI's default token helper keeps it
