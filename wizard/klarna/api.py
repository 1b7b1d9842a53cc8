"""Async client for Klarna's credentials API (client certificates, enforcement, API keys).

One injected ``httpx.AsyncClient``; every path in ENDPOINTS; TLS 1.2 minimum with server
verification always on; every answer surfaces ``Klarna-Mtls-Verification-Status``. Errors map to
``ApiError`` / ``TransportError`` / ``HandshakeRejected`` with what to do next and the correlation
ids Klarna support asks for. The API key never appears in a repr, a log or an exception."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import os
import random
import re
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeGuard, TypeVar

import httpx

from wizard.core import crypto, rules
from wizard.core.env_vars import NO_PROXY_ENVS, PROXY_ENVS
from wizard.core.errors import (
    ApiError,
    CryptoError,
    HandshakeRejected,
    InputError,
    KeyLocked,
    TransportError,
    WizardError,
)
from wizard.core.secret_value import SecretValue

if TYPE_CHECKING:
    from cryptography import x509

T = TypeVar("T")
U = TypeVar("U")

BASE_URLS = {"live": "https://api-global.klarna.com", "test": "https://api-global.test.klarna.com"}

_CERTS = "/v2/account/integration/credentials/client-certificate"
_KEYS = "/v2/account/integration/credentials/api-key"
_ENFORCEMENT = "/v2/account/integration/client-certificates/enforcement"

# operation -> (method, path template). The sandbox names its fault targets the same way.
ENDPOINTS: dict[str, tuple[str, str]] = {
    "list_certificates": ("GET", _CERTS),
    "create_certificate": ("POST", _CERTS),
    "get_certificate": ("GET", _CERTS + "/{credential_id}"),
    "update_certificate": ("PATCH", _CERTS + "/{credential_id}"),
    "revoke_certificate": ("POST", _CERTS + "/{credential_id}/revoke"),
    "get_enforcement": ("GET", _ENFORCEMENT),
    "set_enforcement": ("PUT", _ENFORCEMENT),
    "remove_enforcement": ("DELETE", _ENFORCEMENT),
    "list_api_keys": ("GET", _KEYS),
    "create_api_key": ("POST", _KEYS),
    "get_api_key": ("GET", _KEYS + "/{credential_id}"),
    "update_api_key": ("PATCH", _KEYS + "/{credential_id}"),
    "disable_api_key": ("DELETE", _KEYS + "/{credential_id}"),
}
# Methods whose repeat cannot change the outcome (PUT/DELETE of enforcement are idempotent).
SAFE_METHODS = {"GET", "PUT", "DELETE"}
RETRY_STATUSES = {429, 500, 502, 503, 504}
USER_AGENT = "klarna-mtls"
# Bounds on one answer: Klarna's are a few KB (10 certificates at most), so 2 MB is generous; one
# attempt may take REQUEST_DEADLINE seconds in all, however slowly the bytes trickle in.
MAX_ANSWER_BYTES = 2_000_000
REQUEST_DEADLINE = 60.0
log = logging.getLogger("klarna_mtls.api")


def make_ssl_context(
    *,
    ca_bundle: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    key_passphrase: bytes | None = None,
) -> ssl.SSLContext:
    """TLS 1.2+, server verification always on: the bundled root set (certifi) for Klarna's
    hosts, or only the sandbox CA. Nothing from the environment decides trust: SSL_CERT_FILE and
    SSL_CERT_DIR are not read, and SSLKEYLOGFILE never receives TLS secrets.

    The key is loaded with a password callback, never ``password=None``: OpenSSL would otherwise
    prompt ``Enter PEM pass phrase:`` on the terminal and hang the TUI or a cron job. An encrypted
    key without its passphrase, or with a wrong one, raises KeyLocked for the front end to ask."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # not create_default_context: it reads env
    try:
        context.load_verify_locations(cafile=str(ca_bundle) if ca_bundle else trusted_roots())
    except (ssl.SSLError, OSError) as exc:
        raise CryptoError(
            f"The CA bundle {ca_bundle or trusted_roots()} could not be read.",
            title="CA bundle missing",
            hint="Check the file exists and holds PEM certificates; for the sandbox, restart it "
            "(klarna-mtls sandbox serve) and pass its --ca-bundle again.",
        ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if client_cert and client_key:
        load_client_pair(context, client_cert, client_key, key_passphrase)
    return context


def load_client_pair(context: ssl.SSLContext, cert: Path, key: Path, passphrase: bytes | None) -> None:
    """``load_cert_chain`` that never prompts; maps every failure to a WizardError."""
    asked: list[bool] = []

    def password() -> bytes:
        asked.append(True)
        if not passphrase:
            raise KeyLocked(key)
        return passphrase

    try:
        context.load_cert_chain(str(cert), str(key), password=password)
    except KeyLocked:
        raise
    except (ssl.SSLError, ValueError) as exc:
        if asked and getattr(exc, "reason", None) != "KEY_VALUES_MISMATCH":
            raise KeyLocked(key, wrong=True) from None  # OpenSSL refused the passphrase (or its length)
        raise CryptoError(
            f"The client certificate {cert} and key {key} could not be loaded together.",
            hint="Check both files belong together (klarna-mtls doctor).",
        ) from exc
    except OSError as exc:
        raise CryptoError(
            f"Cannot read the client certificate or key ({exc.filename or key}): {exc.strerror}.",
            hint="Check the install folder (klarna-mtls doctor).",
        ) from exc


def make_http_client(
    *,
    ca_bundle: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    key_passphrase: bytes | None = None,
    timeout: float = 20.0,
) -> httpx.AsyncClient:
    context = shared_ssl_context(
        ca_bundle=ca_bundle, client_cert=client_cert, client_key=client_key, key_passphrase=key_passphrase
    )
    return httpx.AsyncClient(
        verify=context,
        # The environment may choose a proxy (HTTPS_PROXY, NO_PROXY); never the trust: with an
        # SSLContext given, httpx reads neither SSL_CERT_FILE nor SSL_CERT_DIR.
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
    )


def trusted_roots() -> str:
    """The CA set live and test trust: certifi's bundled roots (shown by `doctor`)."""
    import certifi

    return certifi.where()


def environment_proxy() -> str | None:
    """The proxy httpx takes from the environment (it only carries TLS: it cannot read it);
    NO_PROXY still applies per host. Shown by `doctor`."""
    import os

    if next((os.environ[name] for name in NO_PROXY_ENVS if name in os.environ), "").strip() == "*":
        return None
    for name in PROXY_ENVS:
        if os.environ.get(name):
            return os.environ[name]
    return None


# ---------------------------------------------------------------- reuse
# One SSLContext per (trust, certificate) pair: building one parses the CA bundle (the whole system
# store for Klarna's hosts) and loads the key, the largest per-profile cost of a fleet `status`.
_CONTEXTS: OrderedDict[tuple[object, ...], ssl.SSLContext] = OrderedDict()
_CONTEXTS_LOCK = threading.Lock()
_CONTEXTS_MAX = 64
_PASSPHRASE_SALT = secrets.token_bytes(16)  # the cache key never holds a passphrase, nor its plain hash


def _file_identity(path: Path | None) -> tuple[str, int, int, int] | None:
    if path is None:
        return None
    stat = os.stat(path)  # follows links: a replaced file is a new identity
    return (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


def tls_identity(
    *, ca_bundle: Path | None, client_cert: Path | None, client_key: Path | None, key_passphrase: bytes | None
) -> tuple[object, ...]:
    """What makes two TLS contexts interchangeable: the files (path, inode, size, mtime) and the
    passphrase (salted digest). Raises OSError when a file is missing."""
    tag = hashlib.blake2b(key_passphrase, key=_PASSPHRASE_SALT, digest_size=16).digest() if key_passphrase else None
    return (_file_identity(ca_bundle), _file_identity(client_cert), _file_identity(client_key), tag)


def shared_ssl_context(
    *,
    ca_bundle: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    key_passphrase: bytes | None = None,
) -> ssl.SSLContext:
    """make_ssl_context, cached while the CA bundle, certificate and key files are unchanged."""

    def made() -> ssl.SSLContext:
        return make_ssl_context(
            ca_bundle=ca_bundle, client_cert=client_cert, client_key=client_key, key_passphrase=key_passphrase
        )

    try:
        identity = tls_identity(
            ca_bundle=ca_bundle, client_cert=client_cert, client_key=client_key, key_passphrase=key_passphrase
        )
    except OSError:
        return made()  # a missing file fails there, with its own message
    with _CONTEXTS_LOCK:
        context = _CONTEXTS.get(identity)
        if context is not None:
            _CONTEXTS.move_to_end(identity)
            return context
    context = made()
    with _CONTEXTS_LOCK:
        _CONTEXTS[identity] = context
        while len(_CONTEXTS) > _CONTEXTS_MAX:
            _CONTEXTS.popitem(last=False)
    return context


class ConnectionPool:
    """HTTP clients kept open for a run, one per (event loop, TLS identity): each step and each
    profile with the same trust and certificate reuses one keep-alive connection instead of a new
    handshake. Bound to no session, so `status --all` shares one across profiles."""

    def __init__(self, *, timeout: float = 20.0) -> None:
        self._timeout = timeout
        self._clients: dict[object, tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]] = {}

    def client(self, **tls: Any) -> httpx.AsyncClient:
        """An open client for these TLS options (ca_bundle, client_cert, client_key, key_passphrase)."""
        loop = asyncio.get_running_loop()
        try:
            identity: object = tls_identity(**tls)
        except OSError:
            identity = object()  # a missing file: make_http_client says so
        held = self._clients.get(identity)
        if held is not None and held[0] is loop and not held[1].is_closed:
            return held[1]
        client = make_http_client(timeout=self._timeout, **tls)
        self._clients[identity] = (loop, client)
        return client

    @property
    def size(self) -> int:
        return len(self._clients)

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        held, self._clients = list(self._clients.values()), {}
        for owner, client in held:
            if owner is loop:
                await client.aclose()

    async def __aenter__(self) -> ConnectionPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# ---------------------------------------------------------------- answers
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


@dataclass(frozen=True)
class EnforcementState:
    """The account's enforcement as answered. A missing or unreadable mode is UNKNOWN (never
    NOT_ENABLED); ``scheduled`` is True when an ``enforced_from`` is set, False when the answer says
    null, and None when the answer does not say (Klarna's documented answer may carry only the mode)."""

    mode: rules.EnforcementMode
    enforced_from: str | None = None
    scheduled: bool | None = None

    @classmethod
    def from_json(cls, data: Any) -> EnforcementState:
        if not isinstance(data, dict):
            return cls(rules.EnforcementMode.UNKNOWN)
        raw = data.get("enforcement_mode", data.get("mode"))
        try:
            mode = rules.EnforcementMode(raw.strip().upper()) if isinstance(raw, str) else rules.EnforcementMode.UNKNOWN
        except ValueError:
            mode = rules.EnforcementMode.UNKNOWN
        when = data.get("enforced_from")
        moment = _utc_text(when) if isinstance(when, str) and when else None  # unreadable: not said
        scheduled = True if moment else (False if "enforced_from" in data and when is None else None)
        return cls(mode, moment, scheduled)

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


# ---------------------------------------------------------------- errors
class AnswerTooLarge(Exception):
    """An answer over MAX_ANSWER_BYTES (internal: becomes an ApiError in _call)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _json_body(response: httpx.Response) -> Any:
    """The answer's JSON, or raises ValueError for anything unreadable (bad UTF-8, bad JSON, or
    nesting deep enough to exhaust the parser's recursion)."""
    if not response.content.strip():
        return None
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError("unreadable JSON") from exc


_STATUS_ADVICE = {
    400: "Klarna refused the request as invalid.",
    401: "The API key was refused: check it is the right key for this environment and still enabled.",
    403: "Access denied.",
    404: "Not found: check the id, and that the key belongs to the account you expect.",
    409: "Conflict with the account's current state.",
    413: "The request body is too large (over 1 MB).",
    429: "Klarna is rate-limiting this account: wait and try again.",
}


def _error_from_response(response: httpx.Response, correlation_id: str) -> ApiError:
    status = response.status_code
    klarna_cid = response.headers.get("klarna-correlation-id")
    retry_after = _retry_after(response)
    body: Any = None
    try:
        body = _json_body(response)
    except ValueError:
        body = None
    common = dict(
        status=status, correlation_id=correlation_id, klarna_correlation_id=klarna_cid, retry_after=retry_after
    )
    if isinstance(body, dict) and ("error_code" in body or "error_message" in body):
        message = str(body.get("error_message") or _STATUS_ADVICE.get(status, "Klarna returned an error."))
        details = body.get("validation_errors") or []
        if details:
            parts = [f"{d.get('parameter', '?')}: {d.get('reason', '')}" for d in details if isinstance(d, dict)]
            message = f"{message} ({'; '.join(parts)})"
        return ApiError(
            rules.redact(message),
            error_id=body.get("error_id"),
            error_code=body.get("error_code"),
            error_type=body.get("error_type"),
            validation_errors=[d for d in details if isinstance(d, dict)],
            hint=_hint(status, body.get("error_code")),
            **common,
        )
    if status == 403:
        # Klarna documents a bare 403 as its DDoS protection: no error body, so no error code; a
        # refusal for a missing client certificate carries an error body and is handled above.
        return ApiError(
            "Klarna refused the request with no explanation: a 403 without an error body is what "
            "Klarna's DDoS protection answers. It does not say the certificate or the API key is wrong.",
            title="Blocked by Klarna's DDoS protection",
            hint="Wait a few minutes before trying again, and slow down any scripts using this key; "
            "contact Klarna support with the correlation ids if it persists.",
            **common,
        )
    if status >= 500:
        kind = "an HTML error page" if "html" in response.headers.get("content-type", "") else f"status {status}"
        return ApiError(
            f"Klarna's server had a problem ({kind}).",
            hint="This is on Klarna's side: try again in a minute.",
            **common,
        )
    return ApiError(
        _STATUS_ADVICE.get(status, f"Klarna answered with status {status}."),
        hint=_hint(status, None),
        **common,
    )


def _hint(status: int, code: str | None) -> str:
    if code == "MTLS_REQUIRED":
        return "mTLS is enforced: send the installed client certificate with every request."
    if code == "API_KEY_DISABLED":
        return "This API key is disabled: use another key, or create one in Klarna's portal."
    if code == "LIMIT_EXCEEDED" or status == 409:
        return "Revoke a certificate you no longer use, then try again."
    if status == 401:
        return "Enter the key again, or check it has not been disabled."
    if status == 404:
        return "List the certificates to see the valid ids."
    if status == 429:
        return "klarna-mtls retries automatically; if you see this, wait a minute."
    if status == 400:
        return "Correct the value named above and try again."
    return ""


def _first_value(response: httpx.Response, name: str) -> str | None:
    """The first value of a header that may arrive repeated (``VALID, VALID``), trimmed."""
    value = response.headers.get(name)
    first = value.split(",")[0].strip() if value else ""
    return first or None


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds or as an HTTP date, possibly repeated; None when unreadable."""
    value = (response.headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value.split(",")[0])
        return max(0.0, seconds) if seconds == seconds else None  # NaN is unreadable
    except ValueError:
        pass
    if "GMT" in value.upper():
        value = value[: value.upper().index("GMT") + 3]  # a repeated date: its first copy
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000": UTC by RFC 5322
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


# TLS alerts (OpenSSL reason names) by which a server refuses the client certificate it was sent.
# A bare handshake_failure is not among them: it also means "no cipher or version in common".
CERTIFICATE_ALERTS = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "TLSV1_ALERT_UNKNOWN_CA",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV1_ALERT_ACCESS_DENIED",
    }
)
_SSL_REASON = re.compile(r"\[SSL: ([A-Z0-9_]+)\]")


def _exception_chain(exc: BaseException | None) -> list[BaseException]:
    """httpx -> httpcore -> anyio -> ssl/OS: the causes of one failure, outermost first."""
    chain: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in chain):
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def _tls_reason(exc: BaseException) -> str | None:
    """The OpenSSL reason (e.g. TLSV1_ALERT_UNKNOWN_CA) of the TLS error behind a failure, if any."""
    for item in _exception_chain(exc):
        reason = getattr(item, "reason", None) if isinstance(item, ssl.SSLError) else None
        if reason:
            return str(reason).upper()
        match = _SSL_REASON.search(str(item))
        if match:
            return match.group(1)
    return None


def _transport_error(exc: Exception, with_certificate: bool) -> TransportError:
    text = _chain_text(exc)
    reason = _tls_reason(exc)
    where = _where(exc)
    if reason == "CERTIFICATE_VERIFY_FAILED" or "certificate verify failed" in text or "hostname mismatch" in text:
        intercepted = (
            "self-signed certificate in certificate chain" in text
            or "self signed certificate in" in text
            or "unable to get local issuer" in text
        )
        return TransportError(
            f"The TLS certificate {where} showed is not trusted, or is for another host name."
            + (" A proxy or security product on this network may be intercepting TLS." if intercepted else ""),
            title="Untrusted server",
            hint="Check the base URL and any TLS-inspecting proxy; klarna-mtls never turns server verification off.",
        )
    if "wrong version number" in text or "unsupported protocol" in text or "protocol version" in text:
        return TransportError(
            f"{where.capitalize()} does not speak TLS 1.2 or newer.",
            title="TLS too old",
            hint="klarna-mtls refuses TLS older than 1.2; check the base URL.",
        )
    if reason in CERTIFICATE_ALERTS:
        # The server's alert names the certificate: in TLS 1.3 it arrives at the first read.
        return _rejected(reason) if with_certificate else _certificate_required()
    if isinstance(exc, httpx.ProxyError):
        return TransportError(
            f"The proxy {_proxy() or ''} failed to reach {where}.".replace("  ", " "),
            title="Proxy problem",
            hint="Check HTTPS_PROXY / NO_PROXY and the proxy itself.",
        )
    if isinstance(exc, httpx.TimeoutException):
        phase = "did not accept a connection" if isinstance(exc, httpx.ConnectTimeout) else "did not answer"
        return TransportError(
            f"{where.capitalize()} {phase} in time.",
            title="Timeout",
            hint=f"A firewall may be dropping the traffic. {_network_hint()}",
        )
    if isinstance(exc, httpx.ConnectError):
        return TransportError(f"Could not connect to {where}: {_connect_cause(text)}.", hint=_network_hint())
    return TransportError(
        f"The connection to {where} broke before an answer arrived.", hint="Try again; nothing is lost."
    )


def _chain_text(exc: BaseException) -> str:
    """The error and its causes, lower case: httpx/anyio wrap the OS error (refused, DNS) inside
    "All connection attempts failed"."""
    return " | ".join(f"{type(item).__name__}: {item}" for item in _exception_chain(exc)).lower()


def _where(exc: Exception) -> str:
    """``Klarna (api-global.test.klarna.com:443)``: the host a request went to, when known."""
    try:
        url = exc.request.url  # type: ignore[attr-defined]  # httpx errors carry their request
    except (AttributeError, RuntimeError):
        return "Klarna"
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"Klarna ({url.host}:{port})"


def _connect_cause(text: str) -> str:
    causes = (
        (
            (
                "name or service not known",
                "nodename nor servname",
                "temporary failure in name resolution",
                "getaddrinfo failed",
                "no address associated",
            ),
            "the host name could not be looked up (DNS)",
        ),
        (
            ("connection refused", "connectionrefusederror", "errno 111"),
            "the connection was refused (nothing listening there, or a firewall)",
        ),
        (
            ("network is unreachable", "no route to host", "errno 101", "errno 113"),
            "the network is unreachable (offline, or no route)",
        ),
        (("connection reset",), "the connection was reset (a firewall or proxy cut it)"),
    )
    for needles, cause in causes:
        if any(n in text for n in needles):
            return cause
    return "the connection failed"


def _proxy() -> str | None:
    import os

    for name in PROXY_ENVS:
        if os.environ.get(name):
            return f"{name}={rules.redact(os.environ[name].split('@')[-1])}"  # never a proxy password
    return None


def _network_hint() -> str:
    proxy = _proxy()
    via = f" Requests go through the proxy set in {proxy}." if proxy else ""
    return f"Check the network, proxy and firewall, then try again.{via} Details are in the log."


def _rejected(reason: str | None) -> HandshakeRejected:
    alert = f" (TLS alert: {_alert_words(reason)})" if reason else ""
    return HandshakeRejected(
        f"The server refused our client certificate during the TLS handshake{alert}.",
        hint="The certificate is not one the server accepts (another CA, expired or revoked).",
    )


def _certificate_required() -> TransportError:
    return TransportError(
        "The server requires a client certificate in the TLS handshake, and this call sent none.",
        title="Client certificate required",
        hint="mTLS is enforced for this account: install this profile's certificate, then try again.",
    )


def _alert_words(reason: str) -> str:
    for prefix in ("TLSV13_ALERT_", "TLSV1_ALERT_", "SSLV3_ALERT_"):
        reason = reason.removeprefix(prefix)
    return reason.replace("_", " ").lower()


def _may_be_refusal(exc: BaseException, error: TransportError) -> bool:
    """A reset, an EOF or a bare handshake failure can be the server refusing our certificate
    (TLS 1.3 sends its verdict after the client's handshake is done); a timeout, a refused
    connection or a failed DNS look-up cannot."""
    if isinstance(error, HandshakeRejected) or error.title != TransportError.title:
        return False
    chain = _exception_chain(exc)
    return not any(isinstance(item, (ConnectionRefusedError, socket.gaierror, TimeoutError)) for item in chain)


class HandshakeProbe:
    """Settles an ambiguous failure with fresh TLS connections that send nothing, so no reset can
    overtake the server's alert: first with the certificate, then (if the connection just
    closed) without it. ``contexts(True)``/``contexts(False)`` build the two client contexts."""

    def __init__(
        self, contexts: Callable[[bool], ssl.SSLContext], *, verdict_wait: float = 3.0, connect_timeout: float = 5.0
    ) -> None:
        self._contexts = contexts
        self._verdict_wait = verdict_wait
        self._connect_timeout = connect_timeout

    async def refuses_certificate(self, base_url: str) -> tuple[bool, str | None]:
        """(True, alert) when the server refuses the certificate; (False, None) when it does not or
        when that cannot be settled (unknown is never a refusal)."""
        with_certificate = await self._outcome(base_url, True)
        if with_certificate in CERTIFICATE_ALERTS:
            return True, with_certificate
        if with_certificate != "closed":
            return False, None
        # The connection closed with no word. Without the certificate, a server that waits for the
        # request or asks for a certificate shows that our certificate made the difference.
        without = await self._outcome(base_url, False)
        return without == "open" or without in CERTIFICATE_ALERTS, None

    async def _outcome(self, base_url: str, with_certificate: bool) -> str:
        """An alert reason, "closed" (EOF, reset or another TLS failure), "open" (the server waits
        for a request) or "unknown" (no connection at all)."""
        url = httpx.URL(base_url)
        try:
            context = await asyncio.to_thread(self._contexts, with_certificate)
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(url.host, url.port or 443, ssl=context, server_hostname=url.host),
                self._connect_timeout,
            )
        except (OSError, TimeoutError, WizardError) as exc:
            return _probe_failure(exc)
        try:
            data = await asyncio.wait_for(reader.read(1), self._verdict_wait)
            return "open" if data else "closed"
        except TimeoutError:
            return "open"
        except OSError as exc:
            return _probe_failure(exc)
        finally:
            writer.close()


def handshake_probe_for(
    *, ca_bundle: Path | None, client_cert: Path, client_key: Path, key_passphrase: bytes | None = None
) -> HandshakeProbe:
    """The probe for a client made by make_http_client with the same trust and client pair."""

    def contexts(with_certificate: bool) -> ssl.SSLContext:
        if not with_certificate:
            return make_ssl_context(ca_bundle=ca_bundle)
        return make_ssl_context(
            ca_bundle=ca_bundle, client_cert=client_cert, client_key=client_key, key_passphrase=key_passphrase
        )

    return HandshakeProbe(contexts)


def _probe_failure(exc: BaseException) -> str:
    reason = _tls_reason(exc)
    if reason in CERTIFICATE_ALERTS:
        return reason
    if isinstance(exc, (ConnectionRefusedError, socket.gaierror, TimeoutError, WizardError)):
        return "unknown"
    return "closed"


# ---------------------------------------------------------------- client
class KlarnaClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: str,
        *,
        max_attempts: int = 4,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        with_certificate: bool = False,
        deadline: float = REQUEST_DEADLINE,
        handshake_probe: HandshakeProbe | None = None,
    ) -> None:
        self._http = http
        self._deadline = deadline
        self._base_url = base_url.rstrip("/")
        self.__api_key = SecretValue(api_key)  # masked in any repr or crash report
        self._max_attempts = max(1, max_attempts)
        self._sleep = sleep
        self._rng = rng
        # Whether a broken first read may be the server refusing our client certificate, and the
        # probe that settles it (its verdict is kept: one probe per client at most).
        self._with_certificate = with_certificate
        self._probe = handshake_probe
        self._refusal: tuple[bool, str | None] | None = None

    def __repr__(self) -> str:
        return f"KlarnaClient(base_url={self._base_url!r}, api_key={rules.mask_key(self.__api_key.reveal())!r})"

    # -- the operations --------------------------------------------------
    async def ping(self) -> Answer[list[CertificateInfo]]:
        """The cheapest authenticated call: list certificates."""
        return await self.list_certificates()

    async def list_certificates(self) -> Answer[list[CertificateInfo]]:
        return await self._call("list_certificates", parse=_parse_certificates)

    async def get_certificate(self, credential_id: str) -> Answer[CertificateInfo]:
        return await self._call("get_certificate", credential_id=credential_id, parse=_parse_certificate)

    async def create_certificate(self, csr_pem: str, description: str, idempotency_key: str) -> Answer[CertificateInfo]:
        body = {"description": description, "config": {"usage": "MTLS", "certificate_signing_request": csr_pem}}
        return await self._call(
            "create_certificate", json_body=body, idempotency_key=idempotency_key, parse=_parse_certificate
        )

    async def create_certificate_reconciled(
        self, csr_pem: str, description: str, idempotency_key: str, public_key_id: str
    ) -> Answer[CertificateInfo]:
        """Create once. After an unknown outcome, look for our public key on the server before
        trying again with the same idempotency key, so no slot of the 10 is wasted."""
        last_error: Exception | None = None
        for attempt in range(self._max_attempts):
            if attempt:
                found = await self._find_certificate(public_key_id)
                if found is not None:
                    return found
                await self._sleep(self._backoff(attempt, None))
            try:
                return await self.create_certificate(csr_pem, description, idempotency_key)
            except ApiError as exc:
                # A 4xx is a definite "no". A 2xx we could not read (malformed body) is not: the
                # certificate may exist, so it is reconciled like a 5xx or a lost answer.
                if 400 <= exc.status < 500 and exc.status != 429:
                    raise
                last_error = exc
            except TransportError as exc:
                if isinstance(exc, HandshakeRejected) or exc.title in ("Untrusted server", "TLS too old"):
                    raise
                last_error = exc
        found = await self._find_certificate(public_key_id)
        if found is not None:
            return found
        raise TransportError(
            "The certificate request's outcome is unknown.",
            title="Outcome unknown",
            hint="Run the step again: it reuses the same request id and checks Klarna first, "
            "so no duplicate certificate is created.",
        ) from last_error

    async def _find_certificate(self, public_key_id: str) -> Answer[CertificateInfo] | None:
        listing = await self.list_certificates()
        for info in listing.value:
            if info.public_key_id == public_key_id and info.status == "ACTIVE":
                return _replace_value(listing, info)
        return None

    async def update_certificate(self, credential_id: str, description: str) -> Answer[CertificateInfo]:
        rules.verify_description(description)
        return await self._call(
            "update_certificate",
            credential_id=credential_id,
            json_body={"description": description},
            idempotency_key=str(uuid.uuid4()),
            parse=_parse_certificate,
        )

    async def revoke_certificate(
        self, credential_id: str, revoked_from: datetime | None = None
    ) -> Answer[CertificateInfo | None]:
        body = {"revoked_from": rules.format_utc(revoked_from or rules.utc_now())}
        return await self._call(
            "revoke_certificate",
            credential_id=credential_id,
            json_body=body,
            idempotency_key=str(uuid.uuid4()),
            parse=_parse_optional_certificate,
        )

    async def get_enforcement(self) -> Answer[EnforcementState]:
        return await self._call("get_enforcement", parse=_parse_enforcement)

    async def set_enforcement(self, enforced_from: str) -> Answer[EnforcementState]:
        answer = await self._call(
            "set_enforcement", json_body={"enforced_from": enforced_from}, parse=_parse_optional_enforcement
        )
        return _settled(answer) or await self.get_enforcement()

    async def remove_enforcement(self) -> Answer[EnforcementState]:
        answer = await self._call("remove_enforcement", parse=_parse_optional_enforcement)
        return _settled(answer) or await self.get_enforcement()

    async def list_api_keys(self) -> Answer[list[ApiKeyInfo]]:
        return await self._call("list_api_keys", parse=_parse_api_keys)

    async def get_api_key(self, credential_id: str) -> Answer[ApiKeyInfo]:
        return await self._call("get_api_key", credential_id=credential_id, parse=_parse_api_key)

    async def create_api_key(self, description: str, idempotency_key: str) -> Answer[ApiKeyInfo]:
        rules.verify_description(description)
        return await self._call(
            "create_api_key",
            json_body={"description": description},
            idempotency_key=idempotency_key,
            parse=_parse_api_key,
        )

    async def update_api_key(self, credential_id: str, description: str) -> Answer[ApiKeyInfo]:
        rules.verify_description(description)
        return await self._call(
            "update_api_key",
            credential_id=credential_id,
            json_body={"description": description},
            idempotency_key=str(uuid.uuid4()),
            parse=_parse_api_key,
        )

    async def disable_api_key(self, credential_id: str) -> Answer[ApiKeyInfo | None]:
        return await self._call("disable_api_key", credential_id=credential_id, parse=_parse_optional_api_key)

    # -- the machinery -----------------------------------------------------
    async def _call(
        self,
        operation: str,
        *,
        parse: Callable[[Any], T],
        credential_id: str | None = None,
        json_body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Answer[T]:
        method, template = ENDPOINTS[operation]
        path = template.replace("{credential_id}", _quote_id(credential_id)) if "{" in template else template
        # POST/PATCH carry an idempotency key; a repeat with the same key cannot duplicate.
        retriable = method in SAFE_METHODS or idempotency_key is not None
        attempts = self._max_attempts if retriable else 1
        for attempt in range(attempts):
            correlation_id = uuid.uuid4().hex
            started = time.monotonic()
            try:
                response = await self._send(method, path, correlation_id, idempotency_key, json_body)
            except (httpx.HTTPError, ssl.SSLError, OSError) as exc:  # TLS 1.3 alerts can surface raw
                await self._after_transport_error(exc, operation, method, attempt, attempts)
                continue
            log.info(
                "%s %s -> %s (partner-correlation-id %s, klarna-correlation-id %s)",
                method,
                operation,
                response.status_code,
                correlation_id,
                response.headers.get("klarna-correlation-id"),
            )
            if response.status_code >= 400:
                await self._after_error_status(response, correlation_id, operation, attempt, attempts)
                continue
            return self._answer(response, correlation_id, started, parse)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self,
        method: str,
        path: str,
        correlation_id: str,
        idempotency_key: str | None,
        json_body: dict[str, Any] | None,
    ) -> httpx.Response:
        try:
            return await self._bounded_request(
                method,
                self._base_url + path,
                headers=self._headers(correlation_id, idempotency_key if method in ("POST", "PATCH") else None),
                json=json_body,
            )
        except AnswerTooLarge as exc:
            raise ApiError(
                f"Klarna's answer was larger than {MAX_ANSWER_BYTES // 1_000_000} MB; it was not read.",
                status=exc.status,
                correlation_id=correlation_id,
                hint="This is not an answer Klarna sends: check the base URL.",
            ) from None

    async def _after_transport_error(
        self, exc: Exception, operation: str, method: str, attempt: int, attempts: int
    ) -> None:
        """Raise the classified failure when a retry cannot help or could duplicate; else wait."""
        error = await self._transport_error(exc)
        log.warning(
            "%s %s failed (try %d of %d): %s %s",
            method,
            operation,
            attempt + 1,
            attempts,
            error.message,
            type(exc).__name__,
        )
        log.debug("%s %s cause: %s", method, operation, _chain_text(exc))  # --debug
        unknown = not isinstance(exc, httpx.ConnectError)
        if (
            isinstance(error, HandshakeRejected)
            or error.title in ("Untrusted server", "TLS too old")
            or attempt + 1 >= attempts
            or (unknown and method not in SAFE_METHODS and operation == "create_certificate")
        ):
            raise error from None
        await self._sleep(self._backoff(attempt + 1, None))

    async def _after_error_status(
        self, response: httpx.Response, correlation_id: str, operation: str, attempt: int, attempts: int
    ) -> None:
        """Raise the answer's error unless its status is worth another attempt; else wait."""
        error = _error_from_response(response, correlation_id)
        log.warning("%s refused: %s", operation, error)
        if (
            response.status_code in RETRY_STATUSES
            and attempt + 1 < attempts
            and not (operation == "create_certificate" and response.status_code != 429)
        ):
            await self._sleep(self._backoff(attempt + 1, error.retry_after))
            return
        raise error

    async def _bounded_request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request with an overall deadline (not per read) and a cap on the body size: a
        hostile or broken server can neither stall a run nor fill the memory."""
        try:
            async with asyncio.timeout(self._deadline):
                async with self._http.stream(method, url, **kwargs) as streamed:
                    declared = streamed.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
                        raise AnswerTooLarge(streamed.status_code)
                    chunks, size = [], 0
                    async for chunk in streamed.aiter_bytes():
                        size += len(chunk)
                        if size > MAX_ANSWER_BYTES:
                            raise AnswerTooLarge(streamed.status_code)
                        chunks.append(chunk)
        except TimeoutError:
            raise httpx.ReadTimeout(f"no complete answer within {self._deadline:g} s") from None
        return httpx.Response(
            streamed.status_code,
            headers=streamed.headers,
            content=b"".join(chunks),
            request=streamed.request,
            extensions=streamed.extensions,
        )

    async def _transport_error(self, exc: Exception) -> TransportError:
        """Classify a failure; a reset or EOF with our certificate is settled by the probe."""
        error = _transport_error(exc, self._with_certificate)
        if not (self._with_certificate and self._probe is not None and _may_be_refusal(exc, error)):
            return error
        if self._refusal is None:
            self._refusal = await self._probe.refuses_certificate(self._base_url)
        refused, reason = self._refusal
        return _rejected(reason) if refused else error

    def _headers(self, correlation_id: str, idempotency_key: str | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Basic {self.__api_key.reveal()}",
            "Partner-Correlation-Id": correlation_id,
            "Accept": "application/json",
        }
        if idempotency_key:
            headers["Klarna-Idempotency-Key"] = idempotency_key
        return headers

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 60.0)
        return self._rng() * min(8.0, 0.5 * 2.0 ** (attempt - 1))  # full jitter

    def _answer(
        self, response: httpx.Response, correlation_id: str, started: float, parse: Callable[[Any], T]
    ) -> Answer[T]:
        received = datetime.now(UTC)
        try:
            body = _json_body(response)
        except ValueError:
            raise ApiError(
                "Klarna's answer was not valid JSON.",
                status=response.status_code,
                correlation_id=correlation_id,
                klarna_correlation_id=response.headers.get("klarna-correlation-id"),
                hint="Try again; if it persists, contact Klarna support with these ids.",
            ) from None
        try:
            value = parse(body)
        except (TypeError, KeyError, AttributeError, ValueError, RecursionError) as exc:
            raise ApiError(
                "Klarna's answer did not have the expected shape.",
                status=response.status_code,
                correlation_id=correlation_id,
                klarna_correlation_id=response.headers.get("klarna-correlation-id"),
                hint="Try again; if it persists, contact Klarna support with these ids.",
            ) from exc
        server_date = _parse_http_date(response.headers.get("date"))
        return Answer(
            value=value,
            status_code=response.status_code,
            verification=rules.VerificationStatus.parse(response.headers.get("klarna-mtls-verification-status")),
            ip_validation=(_first_value(response, "klarna-ip-validation-status") or "").upper() or None,
            server_date=server_date,
            clock_skew_seconds=(server_date - received).total_seconds() if server_date else None,
            correlation_id=correlation_id,
            klarna_correlation_id=response.headers.get("klarna-correlation-id"),
            tls_version=_tls_version(response),
            elapsed_seconds=time.monotonic() - started,
        )


def _quote_id(credential_id: str | None) -> str:
    """One path segment: an id that could reach another resource is refused, never sent."""
    from urllib.parse import quote

    if not usable_id(credential_id):
        raise InputError(
            f"'{rules.redact(str(credential_id))[:60]}' is not a credential id.",
            hint="Copy the id from the certificate or key listing (ids look like krn:…).",
        )
    return quote(credential_id, safe=":")


def _tls_version(response: httpx.Response) -> str | None:
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    try:
        ssl_object = stream.get_extra_info("ssl_object")
    except Exception:
        return None
    return ssl_object.version() if ssl_object is not None else None


def _parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _replace_value(answer: Answer[Any], value: U) -> Answer[U]:
    from dataclasses import replace

    return replace(answer, value=value)


def _settled(answer: Answer[EnforcementState | None]) -> Answer[EnforcementState] | None:
    """The answer when it carried the enforcement state, else None (the caller reads it)."""
    value = answer.value
    return None if value is None else _replace_value(answer, value)


def _parse_certificates(body: Any) -> list[CertificateInfo]:
    entries = body.get("credentials", []) if isinstance(body, dict) else []
    return [CertificateInfo.from_json(e) for e in entries if isinstance(e, dict)]


def _parse_certificate(body: Any) -> CertificateInfo:
    if not _has_id(body):
        raise ValueError("no usable credential_id")
    return CertificateInfo.from_json(body)


def _parse_optional_certificate(body: Any) -> CertificateInfo | None:
    """A write may answer 204, ``{}`` or an entry: only an entry with an id is read."""
    return _parse_certificate(body) if _has_id(body) else None


def _parse_enforcement(body: Any) -> EnforcementState:
    """Whatever the answer (a 204, no body, another shape), a state: UNKNOWN when unreadable."""
    return EnforcementState.from_json(body)


def _parse_optional_enforcement(body: Any) -> EnforcementState | None:
    """PUT/DELETE may answer 204 or a body without the mode: then the state is read with a GET."""
    has_mode = isinstance(body, dict) and any(_text(body.get(k)) for k in ("enforcement_mode", "mode"))
    return _parse_enforcement(body) if has_mode else None


def _parse_api_keys(body: Any) -> list[ApiKeyInfo]:
    entries = body.get("credentials", []) if isinstance(body, dict) else []
    return [ApiKeyInfo.from_json(e) for e in entries if isinstance(e, dict)]


def _parse_api_key(body: Any) -> ApiKeyInfo:
    if not _has_id(body):
        raise ValueError("no usable credential_id")
    return ApiKeyInfo.from_json(body)


def _parse_optional_api_key(body: Any) -> ApiKeyInfo | None:
    return _parse_api_key(body) if _has_id(body) else None


def _has_id(body: Any) -> bool:
    return isinstance(body, dict) and usable_id(body.get("credential_id"))
