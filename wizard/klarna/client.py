"""Async client for Klarna's credentials API (client certificates, enforcement, API keys).

One injected ``httpx.AsyncClient``; every path in ENDPOINTS; TLS 1.2 minimum with server
verification always on; every answer surfaces ``Klarna-Mtls-Verification-Status``. Errors map to
``ApiError`` / ``TransportError`` and its subclasses with what to do next and the correlation ids
Klarna support asks for. The API key never appears in a repr, a log or an exception."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from wizard.core import rules
from wizard.core.errors import ApiError, CertificateRefused, InputError, TransportError
from wizard.core.secret_value import SecretValue
from wizard.klarna.endpoints import CREDENTIAL_ID, ENDPOINTS
from wizard.klarna.errors import (
    chain_text,
    error_from_response,
    handshake_rejected,
    may_be_refusal,
    transport_error,
)
from wizard.klarna.models import (
    Answer,
    ApiKeyInfo,
    CertificateInfo,
    EnforcementState,
    parse_api_key,
    parse_api_keys,
    parse_certificate,
    parse_certificates,
    parse_enforcement,
    parse_optional_api_key,
    parse_optional_certificate,
    parse_optional_enforcement,
    read_json,
    replace_value,
    settled,
    usable_id,
)
from wizard.klarna.probe import HandshakeProbe
from wizard.klarna.tls import negotiated_tls

T = TypeVar("T")

# Methods whose repeat cannot change the outcome (PUT/DELETE of enforcement are idempotent).
SAFE_METHODS = {"GET", "PUT", "DELETE"}
RETRY_STATUSES = {429, 500, 502, 503, 504}
# Bounds on one answer: Klarna's are a few KB (10 certificates at most), so 2 MB is generous; one
# attempt may take REQUEST_DEADLINE seconds in all, however slowly the bytes trickle in.
MAX_ANSWER_BYTES = 2_000_000
REQUEST_DEADLINE = 60.0
log = logging.getLogger("klarna_mtls.api")


class AnswerTooLarge(Exception):
    """An answer over MAX_ANSWER_BYTES (internal: becomes an ApiError in _send)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class KlarnaClient:
    """One account's calls to Klarna: each operation is one ``_call`` with retries for what is
    safe to repeat, and every answer an ``Answer`` carrying the verification header."""

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
        return await self._call("list_certificates", parse=parse_certificates)

    async def get_certificate(self, credential_id: str) -> Answer[CertificateInfo]:
        return await self._call("get_certificate", credential_id=credential_id, parse=parse_certificate)

    async def create_certificate(self, csr_pem: str, description: str, idempotency_key: str) -> Answer[CertificateInfo]:
        body = {"description": description, "config": {"usage": "MTLS", "certificate_signing_request": csr_pem}}
        return await self._call(
            "create_certificate", json_body=body, idempotency_key=idempotency_key, parse=parse_certificate
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
                if not exc.retryable:
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
                return replace_value(listing, info)
        return None

    async def update_certificate(self, credential_id: str, description: str) -> Answer[CertificateInfo]:
        rules.verify_description(description)
        return await self._call(
            "update_certificate",
            credential_id=credential_id,
            json_body={"description": description},
            idempotency_key=str(uuid.uuid4()),
            parse=parse_certificate,
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
            parse=parse_optional_certificate,
        )

    async def get_enforcement(self) -> Answer[EnforcementState]:
        return await self._call("get_enforcement", parse=parse_enforcement)

    async def set_enforcement(self, enforced_from: str) -> Answer[EnforcementState]:
        answer = await self._call(
            "set_enforcement", json_body={"enforced_from": enforced_from}, parse=parse_optional_enforcement
        )
        return settled(answer) or await self._read_back(answer)

    async def remove_enforcement(self) -> Answer[EnforcementState]:
        answer = await self._call("remove_enforcement", parse=parse_optional_enforcement)
        return settled(answer) or await self._read_back(answer)

    async def _read_back(self, answer: Answer[EnforcementState | None]) -> Answer[EnforcementState]:
        """The state after a change answered 204. Klarna accepted the change; reading it back can be
        refused to our certificate (enforcement applying before a certificate issued minutes ago is
        accepted): the state is then UNKNOWN, for the caller to read again, never an error."""
        try:
            return await self.get_enforcement()
        except CertificateRefused:
            return replace_value(answer, EnforcementState.unknown())

    async def list_api_keys(self) -> Answer[list[ApiKeyInfo]]:
        return await self._call("list_api_keys", parse=parse_api_keys)

    async def get_api_key(self, credential_id: str) -> Answer[ApiKeyInfo]:
        return await self._call("get_api_key", credential_id=credential_id, parse=parse_api_key)

    async def create_api_key(self, description: str, idempotency_key: str) -> Answer[ApiKeyInfo]:
        rules.verify_description(description)
        return await self._call(
            "create_api_key",
            json_body={"description": description},
            idempotency_key=idempotency_key,
            parse=parse_api_key,
        )

    async def update_api_key(self, credential_id: str, description: str) -> Answer[ApiKeyInfo]:
        rules.verify_description(description)
        return await self._call(
            "update_api_key",
            credential_id=credential_id,
            json_body={"description": description},
            idempotency_key=str(uuid.uuid4()),
            parse=parse_api_key,
        )

    async def disable_api_key(self, credential_id: str) -> Answer[ApiKeyInfo | None]:
        return await self._call("disable_api_key", credential_id=credential_id, parse=parse_optional_api_key)

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
        path = template.replace(CREDENTIAL_ID, _quote_id(credential_id)) if CREDENTIAL_ID in template else template
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
            if not 200 <= response.status_code < 300:  # only 2xx is success: a 3xx is never followed
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
        log.debug("%s %s cause: %s", method, operation, chain_text(exc))  # --debug
        unknown = not isinstance(exc, httpx.ConnectError)
        if (
            not error.retryable
            or attempt + 1 >= attempts
            or (unknown and method not in SAFE_METHODS and operation == "create_certificate")
        ):
            raise error from None
        await self._sleep(self._backoff(attempt + 1, None))

    async def _after_error_status(
        self, response: httpx.Response, correlation_id: str, operation: str, attempt: int, attempts: int
    ) -> None:
        """Raise the answer's error unless its status is worth another attempt; else wait."""
        error = error_from_response(response, correlation_id, with_certificate=self._with_certificate)
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
                async with self._http.stream(method, url, follow_redirects=False, **kwargs) as streamed:
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
        error = transport_error(exc, self._with_certificate)
        if not (self._with_certificate and self._probe is not None and may_be_refusal(exc, error)):
            return error
        if self._refusal is None:
            self._refusal = await self._probe.refuses_certificate(self._base_url)
        refused, reason = self._refusal
        return handshake_rejected(reason) if refused else error

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
            body = read_json(response)
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
        tls = negotiated_tls(response)
        return Answer(
            value=value,
            status_code=response.status_code,
            verification=rules.VerificationStatus.parse(response.headers.get("klarna-mtls-verification-status")),
            ip_validation=(_first_value(response, "klarna-ip-validation-status") or "").upper() or None,
            server_date=server_date,
            clock_skew_seconds=(server_date - received).total_seconds() if server_date else None,
            correlation_id=correlation_id,
            klarna_correlation_id=response.headers.get("klarna-correlation-id"),
            tls_version=tls.protocol if tls else None,
            elapsed_seconds=time.monotonic() - started,
            tls_cipher=tls.cipher if tls else None,
        )


def _quote_id(credential_id: str | None) -> str:
    """One path segment: an id that could reach another resource is refused, never sent."""
    if not usable_id(credential_id):
        raise InputError(
            f"'{rules.redact(str(credential_id))[:60]}' is not a credential id.",
            hint="Copy the id from the certificate or key listing (ids look like krn:…).",
        )
    return quote(credential_id, safe=":")


def _parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _first_value(response: httpx.Response, name: str) -> str | None:
    """The first value of a header that may arrive repeated (``VALID, VALID``), trimmed."""
    value = response.headers.get(name)
    first = value.split(",")[0].strip() if value else ""
    return first or None
