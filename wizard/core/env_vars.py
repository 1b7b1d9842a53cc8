"""Every environment variable klarna-mtls reads, by name, in one place.

Secrets come from the environment only for headless runs, never from arguments. The snippets that
``export`` prints mention others (``KLARNA_MTLS_TRUST_PASSWORD``) for the user's own tools; this
tool never reads them."""

from __future__ import annotations

# The API key for this run: preferred over the profile's store when set (secrets/resolve.py).
API_KEY_ENV = "KLARNA_API_KEY"
# The passphrase of an encrypted private key (headless; the TUI asks for it otherwise).
KEY_PASSPHRASE_ENV = "KLARNA_MTLS_KEY_PASSPHRASE"
# The passphrase of the encrypted secrets file that holds API keys.
STORE_PASSPHRASE_ENV = "KLARNA_MTLS_STORE_PASSPHRASE"
# The password of a PKCS#12 export (`export --format p12`).
EXPORT_PASSWORD_ENV = "KLARNA_MTLS_EXPORT_PASSWORD"
# One folder for every file the tool keeps, instead of the platform's folders (tests, CI, scripts).
HOME_ENV = "KLARNA_MTLS_HOME"
# Seconds a second writer waits for a profile's lock before refusing.
LOCK_WAIT_ENV = "KLARNA_MTLS_LOCK_WAIT"
# The proxy httpx takes from the environment, in the order it looks, and the hosts it skips.
PROXY_ENVS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
NO_PROXY_ENVS = ("NO_PROXY", "no_proxy")
# Vault / OpenBao, by Vault's own names, so a shell set up for the `vault` or `bao` command line
# works unchanged (wizard/vault/settings.py), plus the AppRole pair cron jobs use.
VAULT_ADDR = "VAULT_ADDR"  # required: https://host:port (plain http only on this machine)
VAULT_TOKEN = "VAULT_TOKEN"  # else the token file ~/.vault-token that `vault login` / `bao login` write
VAULT_CACERT = "VAULT_CACERT"  # a CA file the server's certificate must chain to
VAULT_NAMESPACE = "VAULT_NAMESPACE"
VAULT_ROLE_ID = "VAULT_ROLE_ID"  # AppRole, for cron: the role id ...
VAULT_SECRET_ID_FILE = "VAULT_SECRET_ID_FILE"  # ... and the file holding its secret id (never the value itself)
