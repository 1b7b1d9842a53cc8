"""The client tolerates what Klarna's docs allow (issue 12, rule 4): repeated or lower-case header
values, extra and missing optional fields, ids in other formats, timestamps with or without
fractions, 200 or 204 for writes, 429 with Retry-After in either form, a certificate installed
exactly as Klarna returned it, and a bare 403 that is told apart from "mTLS required"."""

from __future__ import annotations

import email.utils
import ssl
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from wizard.core import crypto, rules
from wizard.core.errors import ApiError, CryptoError, InputError
from wizard.klarna.client import KlarnaClient
from wizard.klarna.models import CertificateInfo

KEY = "klarna_test_api_" + "R" * 28 + "TOLR"
BASE = "https://api-global.test.klarna.com"
CERTS = BASE + "/v2/account/integration/credentials/client-certificate"
ENFORCEMENT = BASE + "/v2/account/integration/client-certificates/enforcement"


def client(*responses, max_attempts: int = 4):
    """A KlarnaClient whose transport answers ``responses`` in turn (the last one repeats)."""
    requests: list[httpx.Request] = []
    sleeps: list[float] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return KlarnaClient(http, BASE, KEY, sleep=sleep, rng=lambda: 1.0, max_attempts=max_attempts), requests, sleeps


def json_answer(body, status: int = 200, headers=None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers or [])


# ---------------------------------------------------------------- a certificate issued for our key
def issued(key, *, ca_key=None, cn: str = "LYABCDEI", ca: bool = False) -> x509.Certificate:
    ca_key = ca_key or crypto.make_private_key()
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Klarna-Network-Clients-Test-CA-2024")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1095))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )


@pytest.fixture
def pair():
    """(our key, our certificate's PEM, the issuing CA's PEM)."""
    ca_key, key = crypto.make_private_key(), crypto.make_private_key()
    ca_pem = crypto.certificate_pem(issued(ca_key, ca_key=ca_key, cn="Klarna CA", ca=True))
    return key, crypto.certificate_pem(issued(key, ca_key=ca_key)), ca_pem


# ---------------------------------------------------------------- headers
@pytest.mark.parametrize(
    "headers",
    [
        [("Klarna-Mtls-Verification-Status", "VALID, VALID")],
        [("klarna-mtls-verification-status", "valid")],
        [("Klarna-Mtls-Verification-Status", " Valid ,valid")],
        [("Klarna-Mtls-Verification-Status", "VALID"), ("klarna-mtls-verification-status", "VALID")],
    ],
)
async def test_verification_header_repeated_or_in_any_case(headers):
    klarna, _, _ = client(json_answer({"credentials": []}, headers=headers))
    assert (await klarna.list_certificates()).verification is rules.VerificationStatus.VALID


async def test_ip_validation_header_repeated_and_lower_case():
    klarna, _, _ = client(
        json_answer(
            {"credentials": []},
            headers=[("klarna-ip-validation-status", "allowed"), ("Klarna-Ip-Validation-Status", "ALLOWED")],
        )
    )
    assert (await klarna.list_certificates()).ip_validation == "ALLOWED"


# ---------------------------------------------------------------- fields
async def test_listing_with_only_ids_and_with_extra_fields(pair):
    key, cert_pem, _ = pair
    listing = {
        "credentials": [
            {"credential_id": "krn:partner:global:credential:test:ONLYID"},
            {
                "credential_id": "krn:c:2",
                "status": " active ",
                "usage": "mtls",
                "certificate": cert_pem.decode(),
                "labels": {"team": "payments"},
                "version": 3,
                "revoked_from": None,
                "new_field": [1, 2],
            },
        ],
        "pagination": {"next": None},
    }
    klarna, _, _ = client(json_answer(listing))
    bare, full = (await klarna.list_certificates()).value
    assert bare.credential_id.endswith("ONLYID") and bare.status == "UNKNOWN" and bare.fingerprint is None
    assert full.status == "ACTIVE" and full.public_key_id == crypto.public_key_id(key)
    assert full.revoked_from is None and full.expires_at  # derived from the certificate


async def test_api_key_and_enforcement_with_extra_and_missing_fields():
    klarna, _, _ = client(
        json_answer({"credentials": [{"credential_id": "krn:k:1", "scopes": ["x"]}]}),
        json_answer(
            {
                "enforcement_mode": "reporting",
                "enforced_from": "2026-12-01T09:00:00.25Z",
                "applies_at": "later",
                "extra": {"a": 1},
            }
        ),
    )
    (only,) = (await klarna.list_api_keys()).value
    assert only.credential_id == "krn:k:1" and only.status == "UNKNOWN" and only.key_suffix is None
    state = (await klarna.get_enforcement()).value
    assert state.mode is rules.EnforcementMode.REPORTING and state.enforced_from == "2026-12-01T09:00:00Z"


# ---------------------------------------------------------------- ids
@pytest.mark.parametrize(
    "credential_id",
    [
        "krn:partner:global:credential:test:ABC123",
        "0d9f3c5e-8a55-4c61-9d1a-6b7c2f0e4a11",
        "12345",
        "cert_1.v2",
    ],
)
async def test_ids_in_other_formats_are_accepted_and_sent_as_one_segment(credential_id):
    klarna, requests, _ = client(json_answer({"credential_id": credential_id, "status": "ACTIVE"}))
    info = (await klarna.get_certificate(credential_id)).value
    assert info.credential_id == credential_id
    assert requests[0].url.raw_path.decode().rsplit("/", 1)[1].replace("%3A", ":") == credential_id


@pytest.mark.parametrize("credential_id", ["", " ", "a/b", "..", ".", "a\\b", "a?b", "a#b", "a\nb", KEY, KEY + "/x"])
async def test_ids_that_could_leave_their_path_segment_are_never_sent(credential_id):
    klarna, requests, _ = client(json_answer({"credential_id": "krn:c:1"}))
    with pytest.raises(InputError) as caught:
        await klarna.revoke_certificate(credential_id)
    assert requests == [] and KEY not in str(caught.value)  # an API key pasted as an id never leaks


async def test_unusable_ids_from_the_server_are_read_as_absent():
    klarna, _, _ = client(
        json_answer({"credentials": [{"credential_id": "../api-key", "status": "ACTIVE"}]}),
        json_answer({"credential_id": "a/b"}),
    )
    (entry,) = (await klarna.list_certificates()).value
    assert entry.credential_id == ""
    with pytest.raises(ApiError, match="expected shape"):
        await klarna.get_certificate("krn:c:1")


# ---------------------------------------------------------------- timestamps
@pytest.mark.parametrize(
    "text",
    [
        "2026-12-01T09:00:00Z",
        "2026-12-01T09:00:00+00:00",
        "2026-12-01T09:00:00.123Z",
        "2026-12-01T09:00:00.123456789Z",
        "2026-12-01T09:00:00.5+00:00",
        "2026-12-01T10:00:00.123+01:00",
        "2026-12-01t09:00:00z",
    ],
)
async def test_timestamps_with_or_without_fractions_and_with_z_or_offset(text):
    assert rules.format_utc(rules.parse_timestamp(text)) == "2026-12-01T09:00:00Z"
    klarna, _, _ = client(
        json_answer(
            {
                "credentials": [
                    {"credential_id": "krn:c:1", "created_at": text, "expires_at": text, "revoked_from": text}
                ]
            }
        )
    )
    (info,) = (await klarna.list_certificates()).value
    assert info.created_at == info.expires_at == info.revoked_from == "2026-12-01T09:00:00Z"


async def test_an_unreadable_timestamp_is_absent_and_expiry_comes_from_the_certificate(pair):
    _, cert_pem, _ = pair
    klarna, _, _ = client(
        json_answer(
            {
                "credentials": [
                    {"credential_id": "krn:c:1", "expires_at": "in three years", "certificate": cert_pem.decode()}
                ]
            }
        )
    )
    (info,) = (await klarna.list_certificates()).value
    assert info.expires_at == rules.format_utc(crypto.load_certificate(cert_pem).not_valid_after_utc)


# ---------------------------------------------------------------- 200 or 204 for writes
STATE = {"enforcement_mode": "ENFORCED", "enforced_from": "2026-12-01T09:00:00Z"}


@pytest.mark.parametrize(
    "write",
    [
        httpx.Response(204),
        httpx.Response(200),
        json_answer({}),
        json_answer({"enforced_from": "NOW"}),
        httpx.Response(200, content=b" \n", headers={"content-type": "application/json"}),
    ],
)
@pytest.mark.parametrize("operation", ["set", "remove"])
async def test_enforcement_writes_without_a_state_read_the_state(write, operation):
    klarna, requests, _ = client(write, json_answer(STATE))
    answer = await (klarna.set_enforcement("NOW") if operation == "set" else klarna.remove_enforcement())
    assert answer.value.mode is rules.EnforcementMode.ENFORCED
    assert [r.method for r in requests] == ["PUT" if operation == "set" else "DELETE", "GET"]


async def test_enforcement_write_with_a_state_is_read_directly():
    klarna, requests, _ = client(json_answer(STATE))
    assert (await klarna.set_enforcement("NOW")).value.mode is rules.EnforcementMode.ENFORCED
    assert len(requests) == 1


@pytest.mark.parametrize(
    "write",
    [
        httpx.Response(204),
        httpx.Response(200),
        json_answer({}),
        json_answer({"status": "REVOKED"}),
    ],
)
async def test_revoke_and_disable_accept_200_or_204(write):
    klarna, _, _ = client(write)
    assert (await klarna.revoke_certificate("krn:c:1")).value is None
    assert (await klarna.disable_api_key("krn:k:1")).value is None


async def test_revoke_and_disable_read_an_entry_when_one_comes_back():
    klarna, _, _ = client(json_answer({"credential_id": "krn:c:1", "status": "revoked"}))
    assert (await klarna.revoke_certificate("krn:c:1")).value.status == "REVOKED"
    assert (await klarna.disable_api_key("krn:c:1")).value.credential_id == "krn:c:1"


# ---------------------------------------------------------------- 429 and Retry-After
def _http_date(moment: datetime) -> str:
    return email.utils.format_datetime(moment.astimezone(UTC), usegmt=True)


@pytest.mark.parametrize(
    "retry_after,slept",
    [
        ("3", 3.0),
        ("3, 3", 3.0),
        ("1.5", 1.5),
        (_http_date(datetime.now(UTC) + timedelta(hours=1)), 60.0),  # a date: capped at a minute
        (_http_date(datetime.now(UTC) - timedelta(hours=1)), 0.0),  # a date already past
    ],
)
async def test_429_honours_retry_after_in_seconds_or_as_an_http_date(retry_after, slept):
    limited = httpx.Response(429, headers={"Retry-After": retry_after})
    klarna, requests, sleeps = client(limited, json_answer({"credentials": []}))
    await klarna.list_certificates()
    assert sleeps == [slept] and len(requests) == 2


async def test_429_that_persists_reports_the_wait():
    klarna, _, _ = client(httpx.Response(429, headers={"Retry-After": "12"}), max_attempts=2)
    with pytest.raises(ApiError) as caught:
        await klarna.list_certificates()
    assert caught.value.status == 429 and caught.value.retry_after == 12.0


# ---------------------------------------------------------------- 403 without a body
async def test_bare_403_is_ddos_protection_not_mtls_required():
    klarna, _, _ = client(httpx.Response(403), max_attempts=1)
    with pytest.raises(ApiError) as bare:
        await klarna.list_certificates()
    mtls_body = {
        "error_id": "e1",
        "error_type": "ACCESS_ERROR",
        "error_code": "MTLS_REQUIRED",
        "error_message": "mTLS is enforced.",
    }
    klarna, _, _ = client(json_answer(mtls_body, status=403), max_attempts=1)
    with pytest.raises(ApiError) as mtls:
        await klarna.list_certificates()
    assert "DDoS" in bare.value.title and "DDoS" in str(bare.value)
    assert "mtls" not in str(bare.value).lower() and bare.value.error_code is None
    assert bare.value.title != mtls.value.title and mtls.value.error_code == "MTLS_REQUIRED"


# ---------------------------------------------------------------- the certificate, as returned
def test_certificate_installs_byte_for_byte(tmp_path, pair):
    from wizard.services.install import install_pair

    key, cert_pem, ca_pem = pair
    variants = {
        "crlf-no-final-newline": cert_pem.replace(b"\n", b"\r\n").rstrip(b"\r\n"),
        "with-chain": cert_pem + ca_pem,
        "with-text-before": b"subject=CN = LYABCDEI\n" + cert_pem,
    }
    for label, returned in variants.items():
        installed = install_pair(tmp_path, returned, crypto.make_private_key_pem(key), label=label)
        assert installed.cert_path.read_bytes() == returned, label
        assert installed.fingerprint == crypto.fingerprint_sha256(crypto.load_certificate(cert_pem))


def test_a_chain_with_the_leaf_later_installs_the_leaf_first(tmp_path, pair):
    from wizard.services.install import install_pair

    key, cert_pem, ca_pem = pair
    installed = install_pair(tmp_path, ca_pem + cert_pem, crypto.make_private_key_pem(key), label="later")
    data = installed.cert_path.read_bytes()
    assert data.startswith(cert_pem.rstrip(b"\n")) and ca_pem.rstrip(b"\n") in data
    context = ssl.create_default_context()
    context.load_cert_chain(str(installed.cert_path), str(installed.key_path))  # OpenSSL accepts it as is


def test_a_certificate_for_another_key_is_refused(tmp_path, pair):
    from wizard.services.install import install_pair

    _, cert_pem, ca_pem = pair
    with pytest.raises(CryptoError, match="does not belong"):
        install_pair(tmp_path, cert_pem + ca_pem, crypto.make_private_key_pem(crypto.make_private_key()), label="x")
    assert not (tmp_path / "x").exists()


async def test_a_chain_in_the_answer_is_read_by_its_leaf(pair):
    key, cert_pem, ca_pem = pair
    for returned in (cert_pem + ca_pem, ca_pem + cert_pem):
        klarna, _, _ = client(
            json_answer({"credential_id": "krn:c:1", "secret": {"certificate": returned.decode()}}, status=201)
        )
        info = (await klarna.create_certificate("CSR", "d", "idem")).value
        assert info.public_key_id == crypto.public_key_id(key)
        assert info.certificate_pem == returned.decode()  # kept exactly as returned
    assert CertificateInfo.from_json({"credential_id": "krn:c:1"}, pem=(ca_pem + cert_pem).decode()).cn == "LYABCDEI"
