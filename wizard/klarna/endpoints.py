"""Where Klarna's credentials API lives: the base URL of each environment and the path of each
operation. The client, the sandbox (which routes the same paths) and the install snippets (which
show a curl probe) all read them from here."""

from __future__ import annotations

from wizard.core.environments import ENVIRONMENTS

BASE_URLS = {env.name: env.base_url for env in ENVIRONMENTS.values() if env.base_url}

CERTIFICATES_PATH = "/v2/account/integration/credentials/client-certificate"
API_KEYS_PATH = "/v2/account/integration/credentials/api-key"
ENFORCEMENT_PATH = "/v2/account/integration/client-certificates/enforcement"
CREDENTIAL_ID = "{credential_id}"  # the one placeholder in a path template

# operation -> (method, path template). The sandbox names its routes and fault targets the same way.
ENDPOINTS: dict[str, tuple[str, str]] = {
    "list_certificates": ("GET", CERTIFICATES_PATH),
    "create_certificate": ("POST", CERTIFICATES_PATH),
    "get_certificate": ("GET", f"{CERTIFICATES_PATH}/{CREDENTIAL_ID}"),
    "update_certificate": ("PATCH", f"{CERTIFICATES_PATH}/{CREDENTIAL_ID}"),
    "revoke_certificate": ("POST", f"{CERTIFICATES_PATH}/{CREDENTIAL_ID}/revoke"),
    "get_enforcement": ("GET", ENFORCEMENT_PATH),
    "set_enforcement": ("PUT", ENFORCEMENT_PATH),
    "remove_enforcement": ("DELETE", ENFORCEMENT_PATH),
    "list_api_keys": ("GET", API_KEYS_PATH),
    "create_api_key": ("POST", API_KEYS_PATH),
    "get_api_key": ("GET", f"{API_KEYS_PATH}/{CREDENTIAL_ID}"),
    "update_api_key": ("PATCH", f"{API_KEYS_PATH}/{CREDENTIAL_ID}"),
    "disable_api_key": ("DELETE", f"{API_KEYS_PATH}/{CREDENTIAL_ID}"),
}
