"""How much the sandbox says: everything it knows ("ours"), or only what Klarna documents.

In ``docs-only`` mode every answer is cut down to the fields that Klarna's public pages and request
collection show ([seed]/[docs]/[collection] in klarna-api.md), so the client is exercised as it will
be against Klarna itself, where the [ours] fields may be missing:

- certificate entries (list, read, update, revoke) carry only ``credential_id``; a create answers
  200 with ``credential_id`` and ``secret.certificate`` (the status code is not public);
- PUT enforcement answers 204 (as the collection shows); GET enforcement keeps only the mode;
- API-key entries carry ``credential_id``, ``description`` and ``status``, never the key's suffix;
  a create adds the secret, which Klarna shows once;
- the verification header arrives duplicated and in lower case, which HTTP and the docs allow.

Errors keep Klarna's documented error shape in both modes.

In either mode, the answer-shape switches of options.py then apply: the mode's field name
(``enforcement_field``), empty listings as ``null`` (``null_empty_lists``) and no verification
header once enforced (``no_header_once_enforced``)."""

from __future__ import annotations

from typing import Any

from wizard.sandbox.options import SandboxOptions

_CERTIFICATE_ENTRY = ("credential_id",)
_API_KEY_ENTRY = ("credential_id", "description", "status")
VERIFICATION_HEADER = "Klarna-Mtls-Verification-Status"


def _only(entry: Any, names: tuple[str, ...]) -> Any:
    if not isinstance(entry, dict):
        return entry
    return {name: entry[name] for name in names if name in entry}


def docs_only(operation: str, status: int, payload: Any) -> tuple[int, Any]:
    """The documented part of a successful answer to ``operation``."""
    if operation == "list_certificates":
        return status, {"credentials": [_only(e, _CERTIFICATE_ENTRY) for e in payload["credentials"]]}
    if operation == "create_certificate":
        return 200, {"credential_id": payload["credential_id"], "secret": dict(payload["secret"])}
    if operation in ("get_certificate", "update_certificate", "revoke_certificate"):
        return status, _only(payload, _CERTIFICATE_ENTRY)
    if operation == "get_enforcement":
        return status, {"enforcement_mode": payload["enforcement_mode"]}
    if operation == "set_enforcement":
        return 204, None
    if operation == "list_api_keys":
        return status, {"credentials": [_only(e, _API_KEY_ENTRY) for e in payload["credentials"]]}
    if operation == "create_api_key":
        return status, _only(payload, _API_KEY_ENTRY) | {"secret": dict(payload["secret"])}
    if operation in ("get_api_key", "update_api_key"):
        return status, _only(payload, _API_KEY_ENTRY)
    return status, payload


def shape(options: SandboxOptions, operation: str, status: int, payload: Any) -> tuple[int, Any]:
    """A successful answer as the sandbox's settings have it said."""
    if options.answers == "docs-only":
        status, payload = docs_only(operation, status, payload)
    if operation in ("get_enforcement", "set_enforcement") and isinstance(payload, dict):
        payload = enforcement_field(options.enforcement_field, payload)
    if options.null_empty_lists and isinstance(payload, dict) and payload.get("credentials") == []:
        payload = payload | {"credentials": None}
    return status, payload


def enforcement_field(field: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The enforcement state with its mode under ``enforcement_mode``, ``status`` or both."""
    mode = payload.get("enforcement_mode")
    if field == "status":
        return {"status": mode} | {k: v for k, v in payload.items() if k != "enforcement_mode"}
    if field == "both":
        return payload | {"status": mode}
    if field == "both-disagree":  # the two fields name different modes: a reader cannot tell which
        return payload | {"status": "REPORTING" if mode == "ENFORCED" else "ENFORCED"}
    return payload


def verification_headers(options: SandboxOptions, status: str | None, enforced: bool) -> dict[str, str]:
    if not status or (enforced and options.no_header_once_enforced):
        return {}
    if options.answers == "docs-only":
        return {VERIFICATION_HEADER.lower(): f"{status}, {status}"}
    return {VERIFICATION_HEADER: status}
