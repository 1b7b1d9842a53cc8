"""Klarna's failures in the wizard's error hierarchy: an error status becomes an ``ApiError`` with
Klarna's error id and code and what to do next; a failure without an answer (DNS, refused, reset,
timeout, proxy, TLS) becomes the ``TransportError`` subclass of its cause. Only the text shown to a
person is worded here; what is retried is decided by the class."""

from __future__ import annotations

import email.utils
import os
import re
import socket
import ssl
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from wizard.core import rules
from wizard.core.env_vars import PROXY_ENVS
from wizard.core.errors import (
    ApiError,
    CertificateRefused,
    ClientCertificateRequired,
    HandshakeRejected,
    ProxyFailed,
    RequestTimeout,
    TlsTooOld,
    TransportError,
    UntrustedServer,
)
from wizard.klarna.models import read_json
from wizard.klarna.tls import ACCEPTED_SUITES

_STATUS_ADVICE = {
    400: "Klarna refused the request as invalid.",
    401: "The API key was refused: check it is the right key for this environment and still enabled.",
    403: "Access denied.",
    404: "Not found: check the id, and that the key belongs to the account you expect.",
    409: "Conflict with the account's current state.",
    413: "The request body is too large (over 1 MB).",
    429: "Klarna is rate-limiting this account: wait and try again.",
}


def error_from_response(response: httpx.Response, correlation_id: str, *, with_certificate: bool = False) -> ApiError:
    """The ApiError for an error answer; ``with_certificate`` says whether the call presented our
    client certificate (an mTLS refusal then refuses that certificate: ``CertificateRefused``)."""
    status = response.status_code
    common: dict[str, Any] = dict(
        status=status,
        correlation_id=correlation_id,
        klarna_correlation_id=response.headers.get("klarna-correlation-id"),
        retry_after=_retry_after(response),
    )
    if 300 <= status < 400:  # whatever its body says: a redirect is never an answer
        return _redirect(response, status, common)
    try:
        body: Any = read_json(response)
    except ValueError:
        body = None
    if isinstance(body, dict) and ("error_code" in body or "error_message" in body):
        return _klarna_error(body, with_certificate, common)
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


def _klarna_error(body: dict[str, Any], with_certificate: bool, common: dict[str, Any]) -> ApiError:
    """An error in Klarna's documented shape: its message, ids and code, classified by the code and
    the call's shape (``refuses_certificate``), never by the status alone."""
    status = common["status"]
    message = str(body.get("error_message") or _STATUS_ADVICE.get(status, "Klarna returned an error."))
    details = body.get("validation_errors") or []
    if details:
        parts = [f"{d.get('parameter', '?')}: {d.get('reason', '')}" for d in details if isinstance(d, dict)]
        message = f"{message} ({'; '.join(parts)})"
    code = body.get("error_code")
    refused = with_certificate and refuses_certificate(status, code)
    return (CertificateRefused if refused else ApiError)(
        rules.redact(message),
        error_id=body.get("error_id"),
        error_code=code,
        error_type=body.get("error_type"),
        validation_errors=[d for d in details if isinstance(d, dict)],
        hint=CERTIFICATE_REFUSED_HINT if refused else _hint(status, code),
        **common,
    )


def _redirect(response: httpx.Response, status: int, common: dict[str, Any]) -> ApiError:
    """A 3xx is never success and never followed: Klarna's API does not redirect, so a redirect
    comes from a wrong base URL, a proxy or a hostile server."""
    try:
        host = urlsplit(response.headers.get("location", "")).netloc
    except ValueError:
        host = ""
    to = f" to {rules.clean_text(host)[:80]}" if host else ""
    return ApiError(
        f"The server answered with a redirect ({status}{to}). klarna-mtls never follows a redirect and "
        "counts it as a failure: the request may not have been carried out.",
        title="Unexpected redirect",
        hint="Klarna's API does not redirect: check the base URL and any proxy, then check the result "
        "with a listing (klarna-mtls status).",
        **common,
    )


def refuses_certificate(status: int, code: object) -> bool:
    """Klarna's refusal under enforcement: an error code naming mTLS (``MTLS_REQUIRED``), answered
    401 or 403; the status is not documented. A wrong or disabled API key is also a 401, told apart
    by its code (``UNAUTHORIZED``, ``API_KEY_DISABLED``): never by the status alone."""
    return status in (401, 403) and isinstance(code, str) and "MTLS" in code.upper()


CERTIFICATE_REFUSED_HINT = (
    "mTLS is enforced and Klarna does not accept the certificate this call presented: it may be revoked, "
    "expired or another account's, or issued moments ago (Klarna takes up to 5 minutes). The API key "
    "was not the problem. klarna-mtls doctor explains; rotate if it stays refused."
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


def tls_reason(exc: BaseException) -> str | None:
    """The OpenSSL reason (e.g. TLSV1_ALERT_UNKNOWN_CA) of the TLS error behind a failure, if any."""
    for item in _exception_chain(exc):
        reason = getattr(item, "reason", None) if isinstance(item, ssl.SSLError) else None
        if reason:
            return str(reason).upper()
        match = _SSL_REASON.search(str(item))
        if match:
            return match.group(1)
    return None


def transport_error(exc: Exception, with_certificate: bool) -> TransportError:
    """A failure that got no HTTP answer, as the TransportError of its cause; ``with_certificate``
    says whether the call sent our client certificate (an alert then refuses it)."""
    text = chain_text(exc)
    reason = tls_reason(exc)
    where = _where(exc)
    if reason == "CERTIFICATE_VERIFY_FAILED" or "certificate verify failed" in text or "hostname mismatch" in text:
        intercepted = (
            "self-signed certificate in certificate chain" in text
            or "self signed certificate in" in text
            or "unable to get local issuer" in text
        )
        return UntrustedServer(
            f"The TLS certificate {where} showed is not trusted, or is for another host name."
            + (" A proxy or security product on this network may be intercepting TLS." if intercepted else ""),
            hint="Check the base URL and any TLS-inspecting proxy; klarna-mtls never turns server verification off.",
        )
    if "wrong version number" in text or "unsupported protocol" in text or "protocol version" in text:
        return TlsTooOld(
            f"{where.capitalize()} does not speak TLS 1.2 or newer.",
            hint="klarna-mtls refuses TLS older than 1.2; check the base URL.",
        )
    if reason in CERTIFICATE_ALERTS:
        # The server's alert names the certificate: in TLS 1.3 it arrives at the first read.
        return handshake_rejected(reason) if with_certificate else _certificate_required()
    if reason in NO_COMMON_SUITE and isinstance(exc, httpx.ConnectError):
        return _no_common_suite(where, with_certificate)
    if isinstance(exc, httpx.ProxyError):
        return ProxyFailed(
            f"The proxy {_proxy() or ''} failed to reach {where}.".replace("  ", " "),
            hint="Check HTTPS_PROXY / NO_PROXY and the proxy itself.",
        )
    if isinstance(exc, httpx.TimeoutException):
        phase = "did not accept a connection" if isinstance(exc, httpx.ConnectTimeout) else "did not answer"
        return RequestTimeout(
            f"{where.capitalize()} {phase} in time.",
            hint=f"A firewall may be dropping the traffic. {_network_hint()}",
        )
    if isinstance(exc, httpx.ConnectError):
        return TransportError(f"Could not connect to {where}: {_connect_cause(text)}.", hint=_network_hint())
    return TransportError(
        f"The connection to {where} broke before an answer arrived.", hint="Try again; nothing is lost."
    )


# The handshake ended before any certificate was judged: no protocol and suite in common (a server
# offering only CBC suites answers our ClientHello with handshake_failure).
NO_COMMON_SUITE = frozenset({"SSLV3_ALERT_HANDSHAKE_FAILURE", "NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE"})


def _no_common_suite(where: str, with_certificate: bool) -> TlsTooOld:
    maybe = " (or, on TLS 1.2, it refused our client certificate)" if with_certificate else ""
    return TlsTooOld(
        f"{where.capitalize()} ended the TLS handshake: it offers no protocol and cipher suite klarna-mtls "
        f"accepts{maybe}. klarna-mtls speaks {ACCEPTED_SUITES} only; CBC suites are refused on purpose.",
        title="TLS too weak",
        hint="Check the base URL and any TLS-inspecting proxy; Klarna's hosts offer these suites.",
    )


def chain_text(exc: BaseException) -> str:
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
    for name in PROXY_ENVS:
        if os.environ.get(name):
            return f"{name}={rules.redact(os.environ[name].split('@')[-1])}"  # never a proxy password
    return None


def _network_hint() -> str:
    proxy = _proxy()
    via = f" Requests go through the proxy set in {proxy}." if proxy else ""
    return f"Check the network, proxy and firewall, then try again.{via} Details are in the log."


def handshake_rejected(reason: str | None) -> HandshakeRejected:
    alert = f" (TLS alert: {_alert_words(reason)})" if reason else ""
    return HandshakeRejected(
        f"The server refused our client certificate during the TLS handshake{alert}.",
        hint="The certificate is not one the server accepts (another CA, expired or revoked).",
    )


def _certificate_required() -> ClientCertificateRequired:
    return ClientCertificateRequired(
        "The server requires a client certificate in the TLS handshake, and this call sent none.",
        hint="mTLS is enforced for this account: install this profile's certificate, then try again.",
    )


def _alert_words(reason: str) -> str:
    for prefix in ("TLSV13_ALERT_", "TLSV1_ALERT_", "SSLV3_ALERT_"):
        reason = reason.removeprefix(prefix)
    return reason.replace("_", " ").lower()


def may_be_refusal(exc: BaseException, error: TransportError) -> bool:
    """A reset, an EOF or a bare handshake failure can be the server refusing our certificate
    (TLS 1.3 sends its verdict after the client's handshake is done); a timeout, a refused
    connection or a failed DNS look-up cannot. Only a failure with no more specific cause (a plain
    TransportError, not one of its subclasses) is a candidate."""
    if type(error) is not TransportError:
        return False
    chain = _exception_chain(exc)
    return not any(isinstance(item, (ConnectionRefusedError, socket.gaierror, TimeoutError)) for item in chain)
