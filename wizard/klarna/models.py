"""Klarna's answers as values: the ``Answer`` envelope every call returns, the certificate, the
enforcement state and the API key, and the parsers that read them tolerantly (a field of the wrong
type is absent, never a crash)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeGuard, TypeVar

from wizard.core import crypto, rules
from wizard.core.errors import ApiError, CryptoError, WizardError
from wizard.core.secret_value import SecretValue

if TYPE_CHECKING:
    import httpx
    from cryptography import x509

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class Answer(Generic[T]):
    value: T
    status_code: int
    verification: rules.VerificationStatus
    ip_validation: str | None
    server_date: datetime | None
    clock_skew_seconds: float | None
    correlation_id: str
    klarna_correlation_id: str | None
    tls_version: str | None
    elapsed_seconds: float
    tls_cipher: str | None = None  # the negotiated suite (tls.negotiated_tls), for the doctor


@dataclass(frozen=True)
class CertificateInfo:
    credential_id: str
    description: str | None = None
    status: str = "UNKNOWN"  # ACTIVE | REVOKED | EXPIRED | UNKNOWN
    created_at: str | None = None
    expires_at: str | None = None
    revoked_from: str | None = None
    certificate_pem: str | None = None
    fingerprint: str | None = None
    public_key_id: str | None = None
    cn: str | None = None
    not_after: datetime | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any], pem: str | None = None) -> CertificateInfo:
        given = data.get("secret") if isinstance(data, dict) else None
        secret: dict[str, Any] = given if isinstance(given, dict) else {}
        data = _strings_only(data)
        pem = pem or data.get("certificate") or _text(secret.get("certificate"))
        cert = None
        if pem:
            try:
                cert = crypto.load_certificate(pem)
            except CryptoError:
                cert = None
        fingerprint = data.get("fingerprint_sha256")
        if cert is not None:
            fingerprint = crypto.fingerprint_sha256(cert)
        elif fingerprint:
            fingerprint = fingerprint.replace(":", "").upper()
            fingerprint = ":".join(fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2))
        expires_at = data.get("expires_at")
        if not expires_at and cert is not None:
            expires_at = rules.format_utc(cert.not_valid_after_utc)
        return cls(
            credential_id=str(data.get("credential_id", "")),
            description=data.get("description"),
            status=str(data.get("status") or _derived_status(cert)).upper(),
            created_at=data.get("created_at"),
            expires_at=expires_at,
            revoked_from=data.get("revoked_from"),
            certificate_pem=pem,
            fingerprint=fingerprint,
            public_key_id=crypto.public_key_id(cert.public_key()) if cert is not None else None,
            cn=crypto.certificate_cn(cert) if cert is not None else None,
            not_after=cert.not_valid_after_utc if cert is not None else None,
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# Fields read in a normal form, whatever form the docs allow them in.
_TIMESTAMP_FIELDS = frozenset({"created_at", "expires_at", "revoked_from", "last_used_at", "enforced_from"})
_ENUM_FIELDS = frozenset({"status", "enforcement_mode", "mode", "usage"})


def _strings_only(data: dict[str, Any]) -> dict[str, Any]:
    """Klarna's fields are strings (and is_initial a bool): anything else is treated as absent.
    Read tolerantly: timestamps with or without fractions, ``Z`` or an offset, become UTC ``Z``
    (unreadable ones are absent); enum values are trimmed and upper-cased; an id that could not
    name a resource in a path is absent. Certificates are kept byte for byte."""
    if not isinstance(data, dict):
        raise ApiError("Klarna's answer did not have the expected shape.", status=200)
    fields: dict[str, Any] = {
        k: v for k, v in data.items() if isinstance(v, str) or (k == "is_initial" and isinstance(v, bool))
    }
    for name in _TIMESTAMP_FIELDS & fields.keys():
        fields[name] = _utc_text(fields[name])
    for name in _ENUM_FIELDS & fields.keys():
        fields[name] = fields[name].strip().upper()
    if "credential_id" in fields and not usable_id(fields["credential_id"]):
        del fields["credential_id"]
    return {k: v for k, v in fields.items() if v is not None}


def _utc_text(value: str) -> str | None:
    try:
        return rules.format_utc(rules.parse_timestamp(value))
    except WizardError:
        return None


def usable_id(value: object) -> TypeGuard[str]:
    """A credential id is ``krn:…`` today, but any non-empty string that cannot step out of its
    path segment is accepted: no separators, no dot segments, no control characters, and never
    something shaped like an API key (it would travel in a URL)."""
    return (
        isinstance(value, str)
        and bool(value.strip())
        and value not in (".", "..")
        and not any(c in value for c in "/\\?#")
        and value.isprintable()
        and len(value) <= 512
        and rules.redact(value) == value
    )


def _derived_status(cert: x509.Certificate | None) -> str:
    if cert is None:
        return "UNKNOWN"
    return "EXPIRED" if cert.not_valid_after_utc <= datetime.now(UTC) else "ACTIVE"


# Where an answer may put the enforcement mode: ``enforcement_mode`` ([ours]), ``status`` (the seed
# page's "status verbs, ENFORCED or REPORTING") or ``mode`` (tolerated).
MODE_FIELDS = ("enforcement_mode", "status", "mode")


def enforcement_mode(data: dict[str, Any]) -> rules.EnforcementMode:
    """The mode an answer states in any of MODE_FIELDS. Every field present must name the same
    readable mode: none present, one unreadable, or two that disagree is UNKNOWN (never
    NOT_ENABLED), since nothing says which of two answers is the true one."""
    stated = {_mode(data[name]) for name in MODE_FIELDS if data.get(name) is not None}
    if len(stated) != 1:
        return rules.EnforcementMode.UNKNOWN
    return stated.pop()


def _mode(value: Any) -> rules.EnforcementMode:
    try:
        return rules.EnforcementMode(value.strip().upper()) if isinstance(value, str) else rules.EnforcementMode.UNKNOWN
    except ValueError:
        return rules.EnforcementMode.UNKNOWN


@dataclass(frozen=True)
class EnforcementState:
    """The account's enforcement as answered. The mode is read from ``enforcement_mode`` or
    ``status`` (``enforcement_mode()``); a missing, unreadable or contradicted one is UNKNOWN (never
    NOT_ENABLED); ``scheduled`` is True when an ``enforced_from`` is set, False when the answer says
    null, and None when the answer does not say (Klarna's documented answer may carry only the mode)."""

    mode: rules.EnforcementMode
    enforced_from: str | None = None
    scheduled: bool | None = None

    @classmethod
    def from_json(cls, data: Any) -> EnforcementState:
        if not isinstance(data, dict):
            return cls(rules.EnforcementMode.UNKNOWN)
        when = data.get("enforced_from")
        moment = _utc_text(when) if isinstance(when, str) and when else None  # unreadable: not said
        scheduled = True if moment else (False if "enforced_from" in data and when is None else None)
        return cls(enforcement_mode(data), moment, scheduled)

    @classmethod
    def unknown(cls) -> EnforcementState:
        return cls(rules.EnforcementMode.UNKNOWN)


@dataclass(frozen=True)
class ApiKeyInfo:
    credential_id: str
    description: str | None = None
    status: str = "UNKNOWN"
    created_at: str | None = None
    last_used_at: str | None = None
    key_suffix: str | None = None
    is_initial: bool = False
    secret: SecretValue[str] | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApiKeyInfo:
        raw = _text(data["secret"].get("secret")) if isinstance(data.get("secret"), dict) else None
        data = _strings_only(data)
        suffix = data.get("key_suffix") or (raw[-4:] if raw else None)
        return cls(
            credential_id=str(data.get("credential_id", "")),
            description=data.get("description"),
            status=str(data.get("status") or "UNKNOWN").upper(),
            created_at=data.get("created_at"),
            last_used_at=data.get("last_used_at"),
            key_suffix=suffix,
            is_initial=bool(data.get("is_initial", False)),
            secret=SecretValue(raw) if raw else None,
        )


def read_json(response: httpx.Response) -> Any:
    """The answer's JSON, or raises ValueError for anything unreadable (bad UTF-8, bad JSON, or
    nesting deep enough to exhaust the parser's recursion)."""
    if not response.content.strip():
        return None
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError("unreadable JSON") from exc


def replace_value(answer: Answer[Any], value: U) -> Answer[U]:
    """The same answer carrying another value (one entry of a listing, a settled state)."""
    return replace(answer, value=value)


def settled(answer: Answer[EnforcementState | None]) -> Answer[EnforcementState] | None:
    """The answer when it carried the enforcement state, else None (the caller reads it)."""
    value = answer.value
    return None if value is None else replace_value(answer, value)


def parse_certificates(body: Any) -> list[CertificateInfo]:
    return [CertificateInfo.from_json(e) for e in _entries(body)]


def parse_certificate(body: Any) -> CertificateInfo:
    if not _has_id(body):
        raise ValueError("no usable credential_id")
    return CertificateInfo.from_json(body)


def parse_optional_certificate(body: Any) -> CertificateInfo | None:
    """A write may answer 204, ``{}`` or an entry: only an entry with an id is read."""
    return parse_certificate(body) if _has_id(body) else None


def parse_enforcement(body: Any) -> EnforcementState:
    """Whatever the answer (a 204, no body, another shape), a state: UNKNOWN when unreadable."""
    return EnforcementState.from_json(body)


def parse_optional_enforcement(body: Any) -> EnforcementState | None:
    """PUT/DELETE may answer 204 or a body without the mode: then the state is read with a GET."""
    has_mode = isinstance(body, dict) and any(_text(body.get(k)) for k in MODE_FIELDS)
    return parse_enforcement(body) if has_mode else None


def parse_api_keys(body: Any) -> list[ApiKeyInfo]:
    return [ApiKeyInfo.from_json(e) for e in _entries(body)]


def _entries(body: Any) -> list[dict[str, Any]]:
    """A listing's entries. ``credentials`` null or missing is an empty collection (the docs do
    not say how an empty one is written); anything else but a list is not a listing."""
    entries = body.get("credentials") if isinstance(body, dict) else None
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ValueError("credentials is not a list")
    return [e for e in entries if isinstance(e, dict)]


def parse_api_key(body: Any) -> ApiKeyInfo:
    if not _has_id(body):
        raise ValueError("no usable credential_id")
    return ApiKeyInfo.from_json(body)


def parse_optional_api_key(body: Any) -> ApiKeyInfo | None:
    return parse_api_key(body) if _has_id(body) else None


def _has_id(body: Any) -> bool:
    return isinstance(body, dict) and usable_id(body.get("credential_id"))
