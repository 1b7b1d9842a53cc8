"""The sandbox answers every documented rule with its documented error, over real mTLS."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from tests_support import create_certificate, issue_pair, write_self_signed_pair

from wizard.core import crypto, rules
from wizard.core.errors import ApiError, HandshakeRejected
from wizard.klarna.client import KlarnaClient
from wizard.klarna.tls import make_http_client
from wizard.sandbox.server import Fault

pytestmark = pytest.mark.e2e


def run(coro):
    return asyncio.run(coro)


def csr_pem(key, names, extensions=()):
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


async def listing(sb, cert=None, key=None, api_key=None):
    async with make_http_client(ca_bundle=sb.ca_bundle, client_cert=cert, client_key=key) as http:
        return await KlarnaClient(
            http, sb.base_url, api_key or sb.api_key, with_certificate=cert is not None
        ).list_certificates()


CN = [x509.NameAttribute(NameOID.COMMON_NAME, "X")]


@pytest.mark.parametrize("case", ["extra attribute", "extension", "rsa", "p384", "wrong cn"])
def test_csr_rules_answer_validation_errors(sandbox, case):
    key = crypto.make_private_key()
    cn = [x509.NameAttribute(NameOID.COMMON_NAME, rules.default_cn(sandbox.account_id))]
    pem = {
        "extra attribute": lambda: csr_pem(key, cn + [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme")]),
        "extension": lambda: csr_pem(key, cn, [x509.SubjectAlternativeName([x509.DNSName("a.example")])]),
        "rsa": lambda: csr_pem(rsa.generate_private_key(65537, 2048), cn),
        "p384": lambda: csr_pem(ec.generate_private_key(ec.SECP384R1()), cn),
        "wrong cn": lambda: csr_pem(key, CN),
    }[case]()
    with pytest.raises(ApiError) as caught:
        run(create_certificate(sandbox, pem))
    error = caught.value
    assert (error.status, error.error_type, error.error_code) == (400, "INPUT_ERROR", "VALIDATION_ERROR")
    assert error.validation_errors[0]["parameter"] == "config.certificate_signing_request"
    assert error.error_id and error.klarna_correlation_id


def test_eleventh_active_certificate_is_refused(sandbox, tmp_path):
    for i in range(10):
        issue_pair(sandbox, tmp_path, f"p{i}")
    with pytest.raises(ApiError) as caught:
        issue_pair(sandbox, tmp_path, "p10")
    assert (caught.value.status, caught.value.error_code) == (409, "LIMIT_EXCEEDED")
    assert "Revoke" in caught.value.hint


def test_verification_header_not_present_valid_invalid(sandbox, tmp_path):
    info, cert, key = issue_pair(sandbox, tmp_path)
    assert run(listing(sandbox)).verification.value == "NOT_PRESENT"
    assert run(listing(sandbox, cert, key)).verification.value == "VALID"
    # another account's certificate, from the same CA, is INVALID for this account
    other_account, other_key = sandbox.mint_account()
    _, other_cert, other_pkey = issue_pair(sandbox, tmp_path, "other", other_key, other_account)
    assert run(listing(sandbox, other_cert, other_pkey)).verification.value == "INVALID"

    async def revoke():
        async with make_http_client(ca_bundle=sandbox.ca_bundle) as http:
            await KlarnaClient(http, sandbox.base_url, sandbox.api_key).revoke_certificate(info.credential_id)

    run(revoke())
    assert run(listing(sandbox, cert, key)).verification.value == "INVALID"


def test_expired_by_the_sandbox_clock_is_invalid(sandbox, tmp_path):
    _, cert, key = issue_pair(sandbox, tmp_path)
    sandbox.advance_clock(timedelta(days=3 * 365 + 1).total_seconds())
    answer = run(listing(sandbox, cert, key))
    assert answer.verification.value == "INVALID"
    assert answer.value[0].status == "EXPIRED"


def test_foreign_certificate_is_rejected_in_the_handshake(sandbox, tmp_path):
    foreign_cert, foreign_key = write_self_signed_pair(tmp_path / "foreign", cn="X")
    issue_pair(sandbox, tmp_path)
    with pytest.raises(HandshakeRejected):
        run(listing(sandbox, foreign_cert, foreign_key))


def test_enforcement_rules_and_effect(sandbox, tmp_path):
    _, cert, key = issue_pair(sandbox, tmp_path)

    async def scenario():
        async with make_http_client(ca_bundle=sandbox.ca_bundle, client_cert=cert, client_key=key) as http:
            klarna = KlarnaClient(http, sandbox.base_url, sandbox.api_key, with_certificate=True)
            for bad in ("2020-01-01T00:00:00Z", rules.format_utc(rules.utc_now() + timedelta(days=120))):
                with pytest.raises(ApiError) as caught:
                    await klarna.set_enforcement(bad)
                assert caught.value.validation_errors[0]["parameter"] == "enforced_from"
            state = (await klarna.set_enforcement("NOW")).value
            assert state.mode.value == "REPORTING"
            await asyncio.sleep(0.7)
            assert (await klarna.get_enforcement()).value.mode.value == "ENFORCED"
            await klarna.remove_enforcement()
            assert (await klarna.get_enforcement()).value.mode.value == "REPORTING"

    run(scenario())


def test_enforcement_put_answering_204_is_tolerated(sandbox, tmp_path):
    issue_pair(sandbox, tmp_path)
    sandbox.put_enforcement_answers_204 = True

    async def scenario():
        async with make_http_client(ca_bundle=sandbox.ca_bundle) as http:
            return (await KlarnaClient(http, sandbox.base_url, sandbox.api_key).set_enforcement("NOW")).value

    assert run(scenario()).mode.value == "REPORTING"


def test_repeated_idempotency_key_returns_the_first_result(sandbox):
    key = crypto.make_private_key()
    pem = crypto.make_csr_pem(key, rules.default_cn(sandbox.account_id)).decode()

    async def twice():
        async with make_http_client(ca_bundle=sandbox.ca_bundle) as http:
            klarna = KlarnaClient(http, sandbox.base_url, sandbox.api_key)
            first = await klarna.create_certificate(pem, "t", "same-key")
            second = await klarna.create_certificate(pem, "t", "same-key")
            return first.value, second.value, (await klarna.list_certificates()).value

    first, second, certs = run(twice())
    assert first.credential_id == second.credential_id and len(certs) == 1


def test_restart_keeps_everything(tmp_path):
    from wizard.sandbox import start_sandbox

    with start_sandbox(tmp_path / "sb") as sb:
        info, *_ = issue_pair(sb, tmp_path)
        account, api_key = sb.account_id, sb.api_key
    with start_sandbox(tmp_path / "sb") as again:
        assert (again.account_id, again.api_key) == (account, api_key)
        assert [c.credential_id for c in run(listing(again)).value] == [info.credential_id]


def test_wrong_and_missing_api_key(sandbox):
    with pytest.raises(ApiError) as caught:
        run(listing(sandbox, api_key="klarna_test_api_" + "x" * 30))
    assert caught.value.status == 401 and caught.value.error_code == "UNAUTHORIZED"


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_docs_curl_usage_shows_valid(sandbox, tmp_path):
    _, cert, key = issue_pair(sandbox, tmp_path)
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-i",
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--cacert",
            str(sandbox.ca_bundle),
            "-H",
            f"Authorization: Basic {sandbox.api_key}",
            f"{sandbox.base_url}/v2/account/integration/credentials/client-certificate",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert "klarna-mtls-verification-status: valid" in out.lower()


def test_each_fault_kind(sandbox):
    async def one(fault):
        sandbox.inject(fault)
        async with make_http_client(ca_bundle=sandbox.ca_bundle) as http:
            klarna = KlarnaClient(http, sandbox.base_url, sandbox.api_key, max_attempts=1)
            return await klarna.list_certificates()

    assert run(one(Fault(kind="latency", seconds=0.2))).status_code == 200
    for fault, status in [
        (Fault(kind="status", status=503), 503),
        (Fault(kind="rate_limit", retry_after=0), 429),
        (Fault(kind="html_error"), 502),
        (Fault(kind="malformed_json"), 200),
    ]:
        with pytest.raises(ApiError) as caught:
            run(one(fault))
        assert caught.value.status == status
    from wizard.core.errors import TransportError

    for kind in ("reset", "drop_after_commit"):
        with pytest.raises(TransportError):
            run(one(Fault(kind=kind)))
