"""The embedded sandbox, driven with plain httpx over real loopback TLS with client certificates.

These tests pin the sandbox's own contract (klarna-api.md and the [ours] choices), independent of
wizard.klarna, so a client bug cannot hide a sandbox bug or the other way round."""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID
from tests_support import write_self_signed_pair

from wizard.core import crypto, rules
from wizard.sandbox import start_sandbox
from wizard.sandbox.server import Fault

CERTS = "/v2/account/integration/credentials/client-certificate"
KEYS = "/v2/account/integration/credentials/api-key"
ENFORCEMENT = "/v2/account/integration/client-certificates/enforcement"
VERIFICATION = "Klarna-Mtls-Verification-Status"


# ---------------------------------------------------------------------------- helpers
def tls_context(sb, pair: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(sb.ca_bundle))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if pair:
        context.load_cert_chain(str(pair[0]), str(pair[1]))
    return context


def client(sb, pair=None, api_key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Basic {api_key or sb.api_key}"}
    return httpx.Client(base_url=sb.base_url, verify=tls_context(sb, pair), headers=headers, timeout=10)


def call(sb, method: str, path: str, *, pair=None, api_key=None, **kwargs) -> httpx.Response:
    with client(sb, pair, api_key) as http:
        return http.request(method, path, **kwargs)


def csr_pem(key, names, extensions=()) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def create_body(pem: str, description: str = "test") -> dict:
    return {"description": description, "config": {"usage": "MTLS", "certificate_signing_request": pem}}


def issue(sb, tmp_path: Path, *, api_key=None, account_id=None, cn=None) -> tuple[dict, tuple[Path, Path]]:
    """Create a certificate for a fresh key; answer the 201 body and the (cert, key) files."""
    key = crypto.make_private_key()
    pem = crypto.make_csr_pem(key, cn or rules.default_cn(account_id or sb.account_id)).decode()
    answer = call(sb, "POST", CERTS, api_key=api_key, json=create_body(pem))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    name = uuid.uuid4().hex[:8]
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_text(body["secret"]["certificate"])
    key_path.write_bytes(crypto.make_private_key_pem(key))
    return body, (cert_path, key_path)


def assert_klarna_error(answer: httpx.Response, status: int, error_type: str, code: str) -> dict:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error_type"] == error_type and body["error_code"] == code
    assert body["error_id"] and body["error_message"]
    return body


@pytest.fixture
def sb(tmp_path):
    with start_sandbox(tmp_path / "sandbox", enforcement_delay=0.3) as sandbox:
        yield sandbox


# ---------------------------------------------------------------------------- authentication, headers
def test_missing_and_wrong_keys_get_401_unauthorized(sb):
    with httpx.Client(base_url=sb.base_url, verify=tls_context(sb)) as http:
        missing = http.get(CERTS)
    assert_klarna_error(missing, 401, "ACCESS_ERROR", "UNAUTHORIZED")
    wrong = call(sb, "GET", CERTS, api_key="klarna_test_api_" + "x" * 40)
    assert_klarna_error(wrong, 401, "ACCESS_ERROR", "UNAUTHORIZED")
    assert sb.api_key not in missing.text + wrong.text


def test_raw_key_and_base64_of_empty_user_both_authenticate(sb):
    assert sb.api_key.startswith("klarna_test_api_")
    assert rules.parse_account_id(sb.account_id).environment == "test"
    assert call(sb, "GET", CERTS).status_code == 200
    encoded = base64.b64encode(f":{sb.api_key}".encode()).decode()
    answer = call(sb, "GET", CERTS, api_key=encoded)
    assert answer.status_code == 200 and answer.json() == {"credentials": []}


def test_common_headers_on_every_answer(sb):
    ok = call(sb, "GET", CERTS, headers={"Partner-Correlation-Id": "abc123"})
    refused = call(sb, "GET", CERTS, api_key="nope", headers={"Partner-Correlation-Id": "xyz789"})
    for answer, partner in ((ok, "abc123"), (refused, "xyz789")):
        assert answer.headers["Partner-Correlation-Id"] == partner
        assert len(answer.headers["klarna-correlation-id"]) >= 16
        assert answer.headers["Date"].endswith("GMT")
    assert ok.headers["klarna-correlation-id"] != refused.headers["klarna-correlation-id"]
    assert VERIFICATION not in ok.headers  # no certificate yet: not mTLS enabled


def test_server_certificate_names_every_loopback_form(sb):
    names = x509.load_pem_x509_certificate((sb.state_dir / "server.pem").read_bytes()).extensions
    san = names.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    port = sb.base_url.rsplit(":", 1)[1]
    with httpx.Client(verify=tls_context(sb), headers={"Authorization": f"Basic {sb.api_key}"}) as http:
        assert http.get(f"https://localhost:{port}{CERTS}").status_code == 200


# ---------------------------------------------------------------------------- CSR rules
def _other_account_cn(sb) -> str:
    return rules.default_cn(sb.mint_account()[0])


CSR_CASES = {
    "extra subject attribute": lambda cn: csr_pem(
        ec.generate_private_key(ec.SECP256R1()),
        [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme")],
    ),
    "extension": lambda cn: csr_pem(
        ec.generate_private_key(ec.SECP256R1()),
        [x509.NameAttribute(NameOID.COMMON_NAME, cn)],
        [x509.SubjectAlternativeName([x509.DNSName("example.com")])],
    ),
    "rsa key": lambda cn: csr_pem(rsa.generate_private_key(65537, 2048), [x509.NameAttribute(NameOID.COMMON_NAME, cn)]),
    "p-384 key": lambda cn: csr_pem(
        ec.generate_private_key(ec.SECP384R1()), [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    ),
    "wrong cn": lambda cn: csr_pem(
        ec.generate_private_key(ec.SECP256R1()), [x509.NameAttribute(NameOID.COMMON_NAME, cn + "X")]
    ),
    "no cn": lambda cn: csr_pem(ec.generate_private_key(ec.SECP256R1()), []),
    "not a csr": lambda cn: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
}


@pytest.mark.parametrize("case", sorted(CSR_CASES))
def test_each_csr_rule_is_refused_with_a_validation_error(sb, case):
    pem = CSR_CASES[case](rules.default_cn(sb.account_id))
    answer = call(sb, "POST", CERTS, json=create_body(pem))
    body = assert_klarna_error(answer, 400, "INPUT_ERROR", "VALIDATION_ERROR")
    assert [e["parameter"] for e in body["validation_errors"]] == ["config.certificate_signing_request"]
    assert call(sb, "GET", CERTS).json() == {"credentials": []}


def test_tampered_csr_signature_is_refused(sb):
    key = crypto.make_private_key()
    der = bytearray(crypto.make_csr(key, rules.default_cn(sb.account_id)).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # flip a bit inside the ECDSA signature
    pem = (
        "-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(bytes(der)).decode()
        + "-----END CERTIFICATE REQUEST-----\n"
    )
    answer = call(sb, "POST", CERTS, json=create_body(pem))
    assert_klarna_error(answer, 400, "INPUT_ERROR", "VALIDATION_ERROR")


@pytest.mark.filterwarnings("ignore:Attribute's length")  # the 65-character CN is the point
def test_another_accounts_cn_is_refused_by_default_and_custom_cn_is_opt_in(sb):
    key = crypto.make_private_key()
    foreign = call(sb, "POST", CERTS, json=create_body(crypto.make_csr_pem(key, _other_account_cn(sb)).decode()))
    assert "should be" in assert_klarna_error(foreign, 400, "INPUT_ERROR", "VALIDATION_ERROR")["error_message"]
    sb.allow_custom_cn = True
    custom = call(sb, "POST", CERTS, json=create_body(crypto.make_csr_pem(key, "payments-node-1").decode()))
    assert custom.status_code == 201
    assert crypto.certificate_cn(crypto.load_certificate(custom.json()["secret"]["certificate"])) == "payments-node-1"
    long_name = [x509.NameAttribute(NameOID.COMMON_NAME, "a" * 65, _validate=False)]
    too_long = call(sb, "POST", CERTS, json=create_body(csr_pem(key, long_name)))
    assert_klarna_error(too_long, 400, "INPUT_ERROR", "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "body,parameter",
    [
        ({"description": "bad<desc>", "config": {"usage": "MTLS", "certificate_signing_request": "x"}}, "description"),
        ({"description": "ok", "config": {"usage": "TLS", "certificate_signing_request": "x"}}, "config.usage"),
        ({"description": "ok", "config": {"usage": "MTLS"}}, "config.certificate_signing_request"),
    ],
)
def test_create_body_fields_are_validated(sb, body, parameter):
    answer = assert_klarna_error(call(sb, "POST", CERTS, json=body), 400, "INPUT_ERROR", "VALIDATION_ERROR")
    assert answer["validation_errors"][0]["parameter"] == parameter


# ---------------------------------------------------------------------------- issued certificates
def test_issued_certificate_follows_klarnas_profile(sb, tmp_path):
    body, (cert_path, _) = issue(sb, tmp_path)
    assert body["credential_id"].startswith("krn:")
    for field in (
        "description",
        "usage",
        "status",
        "created_at",
        "expires_at",
        "revoked_from",
        "certificate",
        "fingerprint_sha256",
    ):
        assert field in body
    assert body["status"] == "ACTIVE" and body["usage"] == "MTLS" and body["revoked_from"] is None
    cert = crypto.load_certificate(cert_path.read_bytes())
    assert body["fingerprint_sha256"] == crypto.fingerprint_sha256(cert)
    assert crypto.certificate_cn(cert) == rules.default_cn(sb.account_id)
    assert cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Klarna-Network-Clients-Sandbox-CA"
    san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [sb.account_id]
    constraints = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS)
    usage = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE)
    assert constraints.critical and constraints.value.ca is False
    assert usage.critical and usage.value.digital_signature
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=3 * 365) <= lifetime <= timedelta(days=3 * 365, hours=1)


def test_read_one_update_description_and_revoke(sb, tmp_path):
    body, _ = issue(sb, tmp_path)
    path = f"{CERTS}/{body['credential_id']}"
    assert call(sb, "GET", path).json()["credential_id"] == body["credential_id"]
    patched = call(sb, "PATCH", path, json={"description": "renamed: node 1"})
    assert patched.status_code == 200 and patched.json()["description"] == "renamed: node 1"
    assert_klarna_error(
        call(sb, "PATCH", path, json={"description": "x" * 101}), 400, "INPUT_ERROR", "VALIDATION_ERROR"
    )
    revoked = call(sb, "POST", f"{path}/revoke", json={})  # revoked_from optional: now
    assert revoked.status_code == 200 and revoked.json()["status"] == "REVOKED"
    assert revoked.json()["revoked_from"].endswith("Z")
    again = call(sb, "POST", f"{path}/revoke", json={"revoked_from": "2030-01-01T00:00:00Z"})
    assert again.json()["revoked_from"] == revoked.json()["revoked_from"]  # the first revocation stands
    listed = call(sb, "GET", CERTS).json()["credentials"]
    assert [(e["credential_id"], e["status"]) for e in listed] == [(body["credential_id"], "REVOKED")]
    assert_klarna_error(call(sb, "GET", f"{CERTS}/krn:nope"), 404, "RESOURCE_ERROR", "NOT_FOUND")


def test_scheduled_revocation_applies_on_the_sandbox_clock(sb, tmp_path):
    body, _ = issue(sb, tmp_path)
    later = rules.format_utc(sb.now() + timedelta(hours=1))
    answer = call(sb, "POST", f"{CERTS}/{body['credential_id']}/revoke", json={"revoked_from": later})
    assert answer.json()["status"] == "ACTIVE" and answer.json()["revoked_from"] == later
    sb.advance_clock(3601)
    assert call(sb, "GET", f"{CERTS}/{body['credential_id']}").json()["status"] == "REVOKED"
    bad = call(sb, "POST", f"{CERTS}/{body['credential_id']}/revoke", json={"revoked_from": "soon"})
    assert bad.status_code == 200  # already revoked: unchanged, not re-validated


def test_eleventh_active_certificate_gets_409_and_a_revocation_frees_a_slot(sb, tmp_path):
    first = [issue(sb, tmp_path)[0] for _ in range(10)][0]
    key = crypto.make_private_key()
    pem = crypto.make_csr_pem(key, rules.default_cn(sb.account_id)).decode()
    assert_klarna_error(call(sb, "POST", CERTS, json=create_body(pem)), 409, "RESOURCE_ERROR", "LIMIT_EXCEEDED")
    call(sb, "POST", f"{CERTS}/{first['credential_id']}/revoke", json={})
    assert call(sb, "POST", CERTS, json=create_body(pem)).status_code == 201


def test_concurrent_creates_never_exceed_ten_active(sb):
    pem = crypto.make_csr_pem(crypto.make_private_key(), rules.default_cn(sb.account_id)).decode()
    statuses: list[int] = []

    def create() -> None:
        statuses.append(call(sb, "POST", CERTS, json=create_body(pem)).status_code)

    threads = [threading.Thread(target=create) for _ in range(14)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] * 10 + [409] * 4
    assert len(call(sb, "GET", CERTS).json()["credentials"]) == 10


# ---------------------------------------------------------------------------- verification header
def test_verification_header_not_present_valid_and_invalid(sb, tmp_path):
    body, pair = issue(sb, tmp_path)
    assert call(sb, "GET", CERTS).headers[VERIFICATION] == "NOT_PRESENT"
    assert call(sb, "GET", CERTS, pair=pair).headers[VERIFICATION] == "VALID"
    # another account's certificate, from the same CA: accepted by TLS, INVALID for this account
    other_account, other_key = sb.mint_account()
    _, other_pair = issue(sb, tmp_path, api_key=other_key, account_id=other_account)
    assert call(sb, "GET", CERTS, pair=other_pair).headers[VERIFICATION] == "INVALID"
    assert call(sb, "GET", CERTS, pair=other_pair, api_key=other_key).headers[VERIFICATION] == "VALID"
    # revoked
    call(sb, "POST", f"{CERTS}/{body['credential_id']}/revoke", json={})
    assert call(sb, "GET", CERTS, pair=pair).headers[VERIFICATION] == "INVALID"
    # errors carry it too once the account is known
    missing = call(sb, "GET", f"{CERTS}/krn:none", pair=pair)
    assert missing.status_code == 404 and missing.headers[VERIFICATION] == "INVALID"


def test_expired_by_the_sandbox_clock_is_invalid_and_listed_expired(sb, tmp_path):
    sb.certificate_lifetime = timedelta(days=30)
    body, pair = issue(sb, tmp_path)
    assert body["expires_at"] == rules.format_utc(rules.parse_timestamp(body["created_at"]) + timedelta(days=30))
    sb.advance_clock(31 * 86400)
    answer = call(sb, "GET", CERTS, pair=pair)  # TLS still accepts it: X.509 uses real time
    assert answer.headers[VERIFICATION] == "INVALID"
    assert answer.json()["credentials"][0]["status"] == "EXPIRED"


def test_a_certificate_from_another_ca_or_expired_in_real_time_fails_the_handshake(sb, tmp_path):
    foreign = write_self_signed_pair(tmp_path / "foreign", cn=rules.default_cn(sb.account_id))
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        call(sb, "GET", CERTS, pair=foreign)

    sb.certificate_lifetime = timedelta(seconds=1)
    _, short_pair = issue(sb, tmp_path)
    time.sleep(1.2)
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        call(sb, "GET", CERTS, pair=short_pair)


# ---------------------------------------------------------------------------- enforcement
def test_enforcement_is_not_enabled_before_any_certificate(sb, tmp_path):
    assert call(sb, "GET", ENFORCEMENT).json() == {"enforcement_mode": "NOT_ENABLED", "enforced_from": None}
    issue(sb, tmp_path)
    assert call(sb, "GET", ENFORCEMENT).json() == {"enforcement_mode": "REPORTING", "enforced_from": None}


@pytest.mark.parametrize("value", ["2000-01-01T00:00:00Z", "+100d", "2026-12-01T09:00:00", "", None, 5])
def test_bad_enforced_from_is_a_validation_error(sb, tmp_path, value):
    if value == "+100d":
        value = rules.format_utc(sb.now() + timedelta(days=100))
    issue(sb, tmp_path)
    answer = call(sb, "PUT", ENFORCEMENT, json={"enforced_from": value})
    body = assert_klarna_error(answer, 400, "INPUT_ERROR", "VALIDATION_ERROR")
    assert body["validation_errors"][0]["parameter"] == "enforced_from"
    assert call(sb, "GET", ENFORCEMENT).json()["enforcement_mode"] == "REPORTING"


def test_enforcement_now_applies_after_the_delay_and_delete_restores(sb, tmp_path):
    _, pair = issue(sb, tmp_path)
    answer = call(sb, "PUT", ENFORCEMENT, json={"enforced_from": "NOW"}, pair=pair)
    assert answer.status_code == 200
    assert answer.json()["enforcement_mode"] == "REPORTING" and answer.json()["enforced_from"].endswith("Z")
    assert call(sb, "GET", CERTS).status_code == 200  # reporting: cert-less calls still pass
    time.sleep(0.4)  # the fixture's enforcement delay is 0.3 s of real time
    assert call(sb, "GET", ENFORCEMENT, pair=pair).json()["enforcement_mode"] == "ENFORCED"
    refused = call(sb, "GET", CERTS)
    assert_klarna_error(refused, 403, "ACCESS_ERROR", "MTLS_REQUIRED")
    assert refused.headers[VERIFICATION] == "NOT_PRESENT"
    assert call(sb, "GET", CERTS, pair=pair).status_code == 200
    removed = call(sb, "DELETE", ENFORCEMENT, pair=pair)
    assert removed.status_code == 204 and removed.content == b""
    assert call(sb, "GET", ENFORCEMENT).json() == {"enforcement_mode": "REPORTING", "enforced_from": None}


def test_a_future_enforcement_waits_for_its_time_plus_the_delay(sb, tmp_path):
    sb.enforcement_delay = 300.0
    _, pair = issue(sb, tmp_path)
    at = rules.format_utc(sb.now() + timedelta(days=60))
    assert call(sb, "PUT", ENFORCEMENT, json={"enforced_from": at}).json() == {
        "enforcement_mode": "REPORTING",
        "enforced_from": at,
    }
    sb.advance_clock(60 * 86400 + 200)
    assert call(sb, "GET", ENFORCEMENT).json()["enforcement_mode"] == "REPORTING"
    sb.advance_clock(120)
    assert call(sb, "GET", ENFORCEMENT, pair=pair).json()["enforcement_mode"] == "ENFORCED"


def test_once_enforced_a_revoked_or_foreign_certificate_is_refused(sb, tmp_path):
    sb.enforcement_delay = 0
    body, pair = issue(sb, tmp_path)
    _, spare = issue(sb, tmp_path)
    call(sb, "PUT", ENFORCEMENT, json={"enforced_from": "NOW"}, pair=pair)
    call(sb, "POST", f"{CERTS}/{body['credential_id']}/revoke", json={}, pair=spare)
    refused = call(sb, "GET", CERTS, pair=pair)
    assert_klarna_error(refused, 403, "ACCESS_ERROR", "MTLS_REQUIRED")
    assert refused.headers[VERIFICATION] == "INVALID"
    assert call(sb, "GET", CERTS, pair=spare).status_code == 200


def test_put_enforcement_can_answer_204(sb, tmp_path):
    issue(sb, tmp_path)
    sb.put_enforcement_answers_204 = True
    answer = call(sb, "PUT", ENFORCEMENT, json={"enforced_from": "NOW"})
    assert answer.status_code == 204 and answer.content == b""
    assert call(sb, "GET", ENFORCEMENT).json()["enforced_from"] is not None


# ---------------------------------------------------------------------------- idempotency
def test_a_repeated_idempotency_key_answers_the_first_result(sb, tmp_path):
    pem = crypto.make_csr_pem(crypto.make_private_key(), rules.default_cn(sb.account_id)).decode()
    headers = {"Klarna-Idempotency-Key": str(uuid.uuid4())}
    first = call(sb, "POST", CERTS, json=create_body(pem), headers=headers)
    again = call(sb, "POST", CERTS, json=create_body(pem), headers=headers)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert len(call(sb, "GET", CERTS).json()["credentials"]) == 1
    other = call(sb, "POST", CERTS, json=create_body(pem), headers={"Klarna-Idempotency-Key": str(uuid.uuid4())})
    assert other.json()["credential_id"] != first.json()["credential_id"]

    path = f"{CERTS}/{first.json()['credential_id']}"
    patch_key = {"Klarna-Idempotency-Key": str(uuid.uuid4())}
    call(sb, "PATCH", path, json={"description": "one"}, headers=patch_key)
    replay = call(sb, "PATCH", path, json={"description": "two"}, headers=patch_key)
    assert replay.json()["description"] == "one"
    assert call(sb, "GET", path).json()["description"] == "one"


def test_idempotency_records_expire_after_24_hours(sb):
    headers = {"Klarna-Idempotency-Key": str(uuid.uuid4())}
    first = call(sb, "POST", KEYS, json={"description": "a"}, headers=headers)
    sb.advance_clock(25 * 3600)
    later = call(sb, "POST", KEYS, json={"description": "a"}, headers=headers)
    assert later.json()["credential_id"] != first.json()["credential_id"]


# ---------------------------------------------------------------------------- persistence
def test_restart_with_the_same_folder_keeps_everything(tmp_path):
    folder = tmp_path / "sandbox"
    with start_sandbox(folder, enforcement_delay=3600) as first:
        body, pair = issue(first, tmp_path)
        call(first, "PUT", ENFORCEMENT, json={"enforced_from": "NOW"})
        created_key = call(first, "POST", KEYS, json={"description": "ci"}).json()["secret"]["secret"]
        first.advance_clock(10)
        account, api_key, ca_pem = first.account_id, first.api_key, first.ca_bundle.read_bytes()
    with start_sandbox(folder) as second:
        assert (second.account_id, second.api_key) == (account, api_key)
        assert second.ca_bundle.read_bytes() == ca_pem
        listing = call(second, "GET", CERTS, pair=pair)  # the old pair still passes the handshake
        assert listing.headers[VERIFICATION] == "VALID"
        assert [e["credential_id"] for e in listing.json()["credentials"]] == [body["credential_id"]]
        assert call(second, "GET", ENFORCEMENT).json()["enforced_from"] is not None
        assert call(second, "GET", CERTS, api_key=created_key).status_code == 200


def test_state_files_are_private_and_minted_keys_are_kept_hashed(sb):
    # The initial key is kept (0600) so sb.api_key survives a restart; every other key is hashed.
    minted = call(sb, "POST", KEYS, json={"description": "x"}).json()["secret"]["secret"]
    _, other_key = sb.mint_account()
    assert stat.S_IMODE(sb.state_dir.stat().st_mode) == 0o700
    for name in ("ca-key.pem", "server-key.pem", "state.json"):
        assert stat.S_IMODE((sb.state_dir / name).stat().st_mode) == 0o600
    stored = (sb.state_dir / "state.json").read_text()
    assert minted not in stored and other_key not in stored


def test_stop_ends_keep_alive_connections_and_frees_the_port(tmp_path):
    sandbox = start_sandbox(tmp_path / "s")
    http = client(sandbox)
    assert http.get(CERTS).status_code == 200  # the pooled connection stays open
    sandbox.stop()
    sandbox.stop()  # twice is harmless
    with pytest.raises(httpx.TransportError):
        http.get(CERTS)
    http.close()


# ---------------------------------------------------------------------------- faults
def test_latency_fault(sb):
    sb.inject(Fault(kind="latency", operation="list_certificates", seconds=0.3))
    started = time.monotonic()
    assert call(sb, "GET", CERTS).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_status_fault_targets_its_operation_for_its_count(sb):
    sb.inject(Fault(kind="status", operation="list_certificates", status=503, count=2))
    assert call(sb, "GET", ENFORCEMENT).status_code == 200  # another operation: untouched
    for _ in range(2):
        assert_klarna_error(call(sb, "GET", CERTS), 503, "TECHNICAL_ERROR", "INTERNAL_ERROR")
    assert call(sb, "GET", CERTS).status_code == 200


def test_rate_limit_fault_sends_retry_after(sb):
    sb.inject(Fault(kind="rate_limit", operation="any", retry_after=7))
    answer = call(sb, "GET", CERTS)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
    assert answer.json()["error_type"] == "ACCESS_ERROR"


def test_malformed_json_and_html_error_faults(sb):
    sb.inject(Fault(kind="malformed_json", operation="get_enforcement"))
    broken = call(sb, "GET", ENFORCEMENT)
    assert broken.status_code == 200 and broken.headers["Content-Type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        broken.json()
    sb.inject(Fault(kind="html_error"))
    page = call(sb, "GET", CERTS)
    assert page.status_code == 502 and page.headers["Content-Type"].startswith("text/html")


def test_reset_fault_changes_nothing(sb):
    sb.inject(Fault(kind="reset", operation="create_api_key"))
    with pytest.raises(httpx.TransportError):
        call(sb, "POST", KEYS, json={"description": "lost"})
    assert len(call(sb, "GET", KEYS).json()["credentials"]) == 1  # only the initial key


def test_drop_after_commit_commits_then_the_retry_with_the_same_key_finds_it(sb):
    pem = crypto.make_csr_pem(crypto.make_private_key(), rules.default_cn(sb.account_id)).decode()
    headers = {"Klarna-Idempotency-Key": str(uuid.uuid4())}
    sb.inject(Fault(kind="drop_after_commit", operation="create_certificate"))
    with pytest.raises(httpx.TransportError):
        call(sb, "POST", CERTS, json=create_body(pem), headers=headers)
    committed = call(sb, "GET", CERTS).json()["credentials"]
    assert len(committed) == 1
    retry = call(sb, "POST", CERTS, json=create_body(pem), headers=headers)
    assert retry.status_code == 201 and retry.json()["credential_id"] == committed[0]["credential_id"]


def test_clear_faults_and_bad_faults(sb):
    sb.inject(Fault(kind="status", status=500, count=5))
    sb.clear_faults()
    assert call(sb, "GET", CERTS).status_code == 200
    with pytest.raises(ValueError):
        Fault(kind="explode")
    with pytest.raises(ValueError):
        Fault(kind="status", operation="create_certificates")  # a typo must not silently never fire


def test_admin_endpoint_needs_its_token_and_drives_faults_clock_and_accounts(sb):
    with httpx.Client(base_url=sb.base_url, verify=tls_context(sb)) as http:
        assert http.post("/__sandbox__/faults", json={"kind": "status"}).status_code == 401
        assert (
            http.post(
                "/__sandbox__/faults", json={"kind": "status"}, headers={"X-Sandbox-Admin": sb.admin_token[:-1] + "x"}
            ).status_code
            == 401
        )
        admin = {"X-Sandbox-Admin": sb.admin_token}
        assert http.post("/__sandbox__/faults", json={"kind": "nope"}, headers=admin).status_code == 400
        assert (
            http.post(
                "/__sandbox__/faults",
                headers=admin,
                json={"kind": "status", "status": 502, "operation": "list_certificates"},
            ).status_code
            == 200
        )
        assert call(sb, "GET", CERTS).status_code == 502
        http.post("/__sandbox__/faults", json={"kind": "status"}, headers=admin)
        assert http.delete("/__sandbox__/faults", headers=admin).status_code == 200
        assert call(sb, "GET", CERTS).status_code == 200

        before = sb.now()
        moved = http.post(
            "/__sandbox__/clock", json={"advance": 86400}, headers={"Authorization": f"Bearer {sb.admin_token}"}
        ).json()
        assert rules.parse_timestamp(moved["now"]) >= before + timedelta(days=1) - timedelta(seconds=1)

        minted = http.post("/__sandbox__/accounts", json={"environment": "live"}, headers=admin).json()
        assert minted["account_id"].startswith("krn:partner:global:account:live:")
        assert minted["api_key"].startswith("klarna_live_api_")
        assert call(sb, "GET", CERTS, api_key=minted["api_key"]).status_code == 200

        config = http.post(
            "/__sandbox__/config", headers=admin, json={"put_enforcement_answers_204": True, "enforcement_delay": 2}
        ).json()
        assert config["put_enforcement_answers_204"] is True and sb.enforcement_delay == 2


def test_oversized_body_gets_413(sb):
    answer = call(sb, "POST", KEYS, content=b"x" * 1_000_001, headers={"Content-Type": "application/json"})
    assert_klarna_error(answer, 413, "INPUT_ERROR", "PAYLOAD_TOO_LARGE")


# ---------------------------------------------------------------------------- API keys
def test_api_key_lifecycle(sb):
    initial = call(sb, "GET", KEYS).json()["credentials"]
    assert len(initial) == 1
    assert initial[0]["is_initial"] is True and initial[0]["description"] == "Initial API key"
    assert initial[0]["key_suffix"] == sb.api_key[-4:] and initial[0]["last_used_at"].endswith("Z")

    created = call(sb, "POST", KEYS, json={"description": "ci runner"})
    assert created.status_code == 201
    body = created.json()
    secret = body["secret"]["secret"]
    assert secret.startswith("klarna_test_api_") and rules.api_key_environment(secret) == "test"
    assert body["credential_id"].startswith("krn:") and body["key_suffix"] == secret[-4:]
    assert body["status"] == "ACTIVE" and body["is_initial"] is False and body["last_used_at"] is None

    path = f"{KEYS}/{body['credential_id']}"
    read = call(sb, "GET", path).json()
    assert "secret" not in read and secret not in json.dumps(call(sb, "GET", KEYS).json())
    assert call(sb, "PATCH", path, json={"description": "renamed"}).json()["description"] == "renamed"
    assert_klarna_error(
        call(sb, "PATCH", path, json={"description": "no/slash"}), 400, "INPUT_ERROR", "VALIDATION_ERROR"
    )
    assert_klarna_error(call(sb, "POST", KEYS, json={"description": 7}), 400, "INPUT_ERROR", "VALIDATION_ERROR")

    assert call(sb, "GET", CERTS, api_key=secret).status_code == 200
    assert call(sb, "GET", path).json()["last_used_at"] is not None
    assert call(sb, "DELETE", path).status_code == 204
    assert call(sb, "GET", path).json()["status"] == "DISABLED"
    refused = assert_klarna_error(call(sb, "GET", CERTS, api_key=secret), 401, "ACCESS_ERROR", "API_KEY_DISABLED")
    assert "disabled" in refused["error_message"].lower() and secret not in json.dumps(refused)


def test_api_keys_belong_to_their_account(sb):
    other_account, other_key = sb.mint_account()
    mine = call(sb, "GET", KEYS).json()["credentials"][0]["credential_id"]
    assert_klarna_error(call(sb, "GET", f"{KEYS}/{mine}", api_key=other_key), 404, "RESOURCE_ERROR", "NOT_FOUND")
    assert_klarna_error(call(sb, "DELETE", f"{KEYS}/{mine}", api_key=other_key), 404, "RESOURCE_ERROR", "NOT_FOUND")
    assert call(sb, "GET", CERTS).status_code == 200


# ---------------------------------------------------------------------------- the process and curl
def test_sandbox_serve_json_prints_its_line_and_serves(tmp_path):
    command = [
        sys.executable,
        "-m",
        "wizard.cli",
        "sandbox",
        "serve",
        "--json",
        "--port",
        "0",
        "--state-dir",
        str(tmp_path / "served"),
        "--enforcement-delay",
        "1",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        info = json.loads(process.stdout.readline())
        assert set(info) >= {"base_url", "ca_bundle", "api_key", "account_id", "admin_token"}
        context = ssl.create_default_context(cafile=info["ca_bundle"])
        with httpx.Client(base_url=info["base_url"], verify=context, timeout=10) as http:
            answer = http.get(CERTS, headers={"Authorization": f"Basic {info['api_key']}"})
            assert answer.status_code == 200 and answer.json() == {"credentials": []}
            minted = http.post("/__sandbox__/accounts", json={}, headers={"X-Sandbox-Admin": info["admin_token"]})
            assert minted.status_code == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert info["api_key"] not in stderr


def test_docs_curl_usage_shows_valid(sb, tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    _, (cert_path, key_path) = issue(sb, tmp_path)
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--cert",
            str(cert_path),
            "--key",
            str(key_path),
            "--cacert",
            str(sb.ca_bundle),
            "-H",
            f"Authorization: Basic {sb.api_key}",
            f"{sb.base_url}{CERTS}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "klarna-mtls-verification-status: valid" in out.stdout.lower()


def test_sandbox_serve_reports_a_taken_port(sb, tmp_path):
    port = sb.base_url.rsplit(":", 1)[1]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "wizard.cli",
            "sandbox",
            "serve",
            "--json",
            "--port",
            port,
            "--state-dir",
            str(tmp_path / "other"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 3 and "could not listen" in out.stderr and out.stdout == ""
