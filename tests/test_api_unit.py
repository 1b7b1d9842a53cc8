"""The API client against httpx.MockTransport: headers, shapes, errors, retries, reconciliation."""

from __future__ import annotations

import json

import httpx
import pytest

from wizard.core import crypto, rules
from wizard.core.errors import ApiError, TransportError
from wizard.klarna.client import KlarnaClient
from wizard.klarna.endpoints import ENDPOINTS

KEY = "klarna_test_api_" + "Q" * 28 + "WXYZ"
BASE = "https://api-global.test.klarna.com"


class Recorder:
    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(answer, Exception):
            raise answer
        return answer(request) if callable(answer) else answer


def client(recorder, **kw):
    sleeps: list[float] = []

    async def sleep(seconds):
        sleeps.append(seconds)

    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    return KlarnaClient(http, BASE, KEY, sleep=sleep, rng=lambda: 1.0, **kw), sleeps


def ok(body=None, status=200, headers=None):
    return httpx.Response(status, json=body, headers=headers or {})


async def test_headers_and_verification_parsing():
    recorder = Recorder(
        ok(
            {"credentials": []},
            headers={
                "Klarna-Mtls-Verification-Status": "VALID, VALID",
                "klarna-correlation-id": "k1",
                "Date": "Tue, 01 Dec 2026 09:00:00 GMT",
                "Klarna-Ip-Validation-Status": "ALLOWED",
            },
        )
    )
    klarna, _ = client(recorder)
    answer = await klarna.list_certificates()
    request = recorder.requests[0]
    assert request.headers["Authorization"] == f"Basic {KEY}"
    assert rules.valid_correlation_id(request.headers["Partner-Correlation-Id"])
    assert str(request.url) == BASE + ENDPOINTS["list_certificates"][1]
    assert answer.verification is rules.VerificationStatus.VALID
    assert answer.ip_validation == "ALLOWED" and answer.klarna_correlation_id == "k1"
    assert answer.server_date is not None and answer.clock_skew_seconds is not None


async def test_create_sends_idempotency_key_and_reads_secret_certificate():
    from tests_support import self_signed

    key = crypto.make_private_key()
    recorder = Recorder(ok({"credential_id": "krn:c:1", "secret": {"certificate": self_signed(key)}}, status=201))
    klarna, _ = client(recorder)
    answer = await klarna.create_certificate("CSR", "desc", "idem-1")
    request = recorder.requests[0]
    assert request.headers["Klarna-Idempotency-Key"] == "idem-1"
    assert json.loads(request.content)["config"] == {"usage": "MTLS", "certificate_signing_request": "CSR"}
    info = answer.value
    assert info.public_key_id == crypto.public_key_id(key) and info.fingerprint.count(":") == 31
    assert info.status == "ACTIVE" and info.expires_at


@pytest.mark.parametrize(
    "response,status,words",
    [
        (
            httpx.Response(
                401,
                json={
                    "error_id": "e1",
                    "error_type": "ACCESS_ERROR",
                    "error_code": "UNAUTHORIZED",
                    "error_message": "Unauthorized",
                },
            ),
            401,
            "e1",
        ),
        (httpx.Response(403), 403, "DDoS"),
        (httpx.Response(404, json={"error_code": "NOT_FOUND", "error_message": "nope"}), 404, "List the certificates"),
        (httpx.Response(409, json={"error_code": "LIMIT_EXCEEDED", "error_message": "too many"}), 409, "Revoke"),
        (
            httpx.Response(
                400,
                json={
                    "error_code": "VALIDATION_ERROR",
                    "error_message": "bad",
                    "validation_errors": [{"parameter": "enforced_from", "reason": "past"}],
                },
            ),
            400,
            "enforced_from",
        ),
        (httpx.Response(502, text="<html>bad gateway</html>", headers={"content-type": "text/html"}), 502, "HTML"),
        (httpx.Response(200, text="{oops", headers={"content-type": "application/json"}), 200, "not valid JSON"),
    ],
)
async def test_error_mapping(response, status, words):
    klarna, _ = client(Recorder(response), max_attempts=1)
    with pytest.raises(ApiError) as caught:
        await klarna.list_certificates()
    assert caught.value.status == status
    assert words in str(caught.value)
    assert KEY not in str(caught.value) and KEY not in repr(klarna)


async def test_safe_calls_retry_with_backoff_and_honour_retry_after():
    recorder = Recorder(ok(status=503), ok(status=429, headers={"Retry-After": "7"}), ok({"credentials": []}))
    klarna, sleeps = client(recorder)
    await klarna.list_certificates()
    assert len(recorder.requests) == 3
    assert sleeps == [0.5, 7.0]  # full jitter with rng=1.0 gives the cap of attempt 1; then Retry-After


async def test_gives_up_after_max_attempts():
    recorder = Recorder(httpx.ConnectError("down"))
    klarna, sleeps = client(recorder, max_attempts=3)
    with pytest.raises(TransportError, match="connect"):
        await klarna.get_enforcement()
    assert len(recorder.requests) == 3 and len(sleeps) == 2


async def test_create_is_not_blindly_retried_and_is_reconciled_by_public_key():
    from tests_support import self_signed

    key = crypto.make_private_key()
    listing = {"credentials": [{"credential_id": "krn:c:ours", "status": "ACTIVE", "certificate": self_signed(key)}]}

    def route(request):
        if request.method == "POST":
            raise httpx.ReadTimeout("lost", request=request)
        return ok(listing)

    recorder = Recorder(route)
    klarna, _ = client(recorder)
    answer = await klarna.create_certificate_reconciled("CSR", "d", "idem-1", crypto.public_key_id(key))
    assert answer.value.credential_id == "krn:c:ours"
    assert [r.method for r in recorder.requests] == ["POST", "GET"]


async def test_reconcile_retries_with_the_same_idempotency_key_when_nothing_was_created():
    from tests_support import self_signed

    key = crypto.make_private_key()
    created = {"credential_id": "krn:c:new", "secret": {"certificate": self_signed(key)}}
    recorder = Recorder(ok(status=503), ok({"credentials": []}), ok(created, status=201))
    klarna, _ = client(recorder)
    answer = await klarna.create_certificate_reconciled("CSR", "d", "idem-9", crypto.public_key_id(key))
    posts = [r for r in recorder.requests if r.method == "POST"]
    assert answer.value.credential_id == "krn:c:new"
    assert [p.headers["Klarna-Idempotency-Key"] for p in posts] == ["idem-9", "idem-9"]


async def test_enforcement_accepts_204_then_reads_state():
    recorder = Recorder(ok(status=204), ok({"enforcement_mode": "REPORTING", "enforced_from": "2026-12-01T09:00:00Z"}))
    klarna, _ = client(recorder)
    state = (await klarna.set_enforcement("NOW")).value
    assert state.mode is rules.EnforcementMode.REPORTING
    assert [r.method for r in recorder.requests] == ["PUT", "GET"]


async def test_new_api_key_secret_never_reprs():
    secret = "klarna_test_api_" + "N" * 28 + "NEW1"
    recorder = Recorder(
        ok(
            {"credential_id": "krn:k:1", "description": "svc", "status": "ACTIVE", "secret": {"secret": secret}},
            status=201,
        )
    )
    klarna, _ = client(recorder)
    info = (await klarna.create_api_key("svc", "idem")).value
    assert info.secret.reveal() == secret
    assert secret not in repr(info) and secret not in str(info.secret)
