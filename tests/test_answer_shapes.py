"""The client reads the other shapes Klarna's docs allow (issue 23, items 3 to 6): the enforcement
mode in a field named ``status``, an enforcement refusal answered 401, a collection answered
``null`` or left out, and a CN Klarna assigns. Each is read through the real client over loopback
mTLS against the sandbox switch that produces it, in both answer modes ("ours" and "docs-only"),
with the parsing and classification rules pinned beside it."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from tests import test_sandbox_shapes
from tests.test_sandbox_shapes import enforce_now, issue
from wizard.core import crypto, rules
from wizard.core.checks import CHECKS, Note
from wizard.core.errors import ApiError, CertificateRefused
from wizard.core.evidence import Evidence
from wizard.core.model import Onboarding
from wizard.core.stages import Stage
from wizard.klarna.client import KlarnaClient
from wizard.klarna.errors import error_from_response
from wizard.klarna.models import EnforcementState, parse_api_keys, parse_certificates
from wizard.klarna.tls import make_http_client
from wizard.sandbox.options import ANSWER_MODES

BOTH_MODES = pytest.mark.parametrize("answers", ANSWER_MODES)
shaped = test_sandbox_shapes.shaped  # the fixture: a sandbox with the given switches, stopped afterwards
Mode = rules.EnforcementMode


def klarna_call(sb, operation, *args, pair=None, api_key=None):
    """``operation`` of a KlarnaClient on ``sb``, with ``pair`` (certificate, key) when given."""

    async def go():
        cert, key = pair if pair else (None, None)
        async with make_http_client(ca_bundle=sb.ca_bundle, client_cert=cert, client_key=key) as http:
            client = KlarnaClient(http, sb.base_url, api_key or sb.api_key, with_certificate=pair is not None)
            return await getattr(client, operation)(*args)

    return asyncio.run(go())


# ---------------------------------------------------------------------------- 3. the mode in `status`
@BOTH_MODES
@pytest.mark.parametrize("field", ["status", "both"])
def test_the_enforcement_mode_is_read_from_status_or_from_both_fields_when_they_agree(shaped, tmp_path, answers, field):
    sb = shaped(answers=answers, enforcement_field=field, enforcement_delay=300)
    _, pair = issue(sb, tmp_path)
    assert klarna_call(sb, "get_enforcement", pair=pair).value.mode is Mode.REPORTING  # nothing asked yet
    asked = klarna_call(sb, "set_enforcement", "NOW", pair=pair)  # "ours": the state body; docs-only: 204 + GET
    assert asked.value.mode is Mode.REPORTING  # applies 300 s later (sandbox clock)
    sb.advance_clock(301)
    assert klarna_call(sb, "get_enforcement", pair=pair).value.mode is Mode.ENFORCED


@BOTH_MODES
def test_two_fields_that_disagree_are_unknown_never_either_of_them(shaped, tmp_path, answers):
    sb = shaped(answers=answers, enforcement_field="both-disagree")
    _, pair = issue(sb, tmp_path)
    assert klarna_call(sb, "get_enforcement", pair=pair).value.mode is Mode.UNKNOWN  # REPORTING vs ENFORCED
    enforce_now(sb, pair)
    assert klarna_call(sb, "get_enforcement", pair=pair).value.mode is Mode.UNKNOWN  # ENFORCED vs REPORTING


@pytest.mark.parametrize(
    "answer,mode",
    [
        ({"status": "ENFORCED"}, Mode.ENFORCED),
        ({"status": " reporting "}, Mode.REPORTING),
        ({"status": "NOT_ENABLED", "enforced_from": None}, Mode.NOT_ENABLED),
        ({"enforcement_mode": "ENFORCED", "status": "ENFORCED"}, Mode.ENFORCED),
        ({"enforcement_mode": "ENFORCED", "status": None}, Mode.ENFORCED),  # null says nothing
        ({"enforcement_mode": "ENFORCED", "status": "REPORTING"}, Mode.UNKNOWN),
        ({"enforcement_mode": "REPORTING", "status": "ENFORCED"}, Mode.UNKNOWN),
        ({"enforcement_mode": "ENFORCED", "status": "ACTIVE"}, Mode.UNKNOWN),  # not a mode: cannot confirm
        ({"status": 3}, Mode.UNKNOWN),
        ({"enforcement_mode": "NOT_ENABLED", "status": "ENFORCED"}, Mode.UNKNOWN),  # never NOT_ENABLED
    ],
)
def test_the_mode_in_either_field_and_unknown_when_they_disagree(answer, mode):
    assert EnforcementState.from_json(answer).mode is mode


# ---------------------------------------------------------------------------- 4. a refusal answered 401
@BOTH_MODES
@pytest.mark.parametrize("status", [401, 403])
def test_an_mtls_refusal_of_our_certificate_is_its_own_class_whatever_the_status(shaped, tmp_path, answers, status):
    sb = shaped(answers=answers, refusal_status=status)
    credential_id, installed = issue(sb, tmp_path)
    _, second = issue(sb, tmp_path)
    enforce_now(sb, installed)
    klarna_call(sb, "revoke_certificate", credential_id, pair=second)  # behind the tool's back

    with pytest.raises(CertificateRefused) as refused:
        klarna_call(sb, "list_certificates", pair=installed)
    assert (refused.value.status, refused.value.error_code) == (status, "MTLS_REQUIRED")
    assert refused.value.title == "Client certificate refused" and "API key was not the problem" in refused.value.hint

    with pytest.raises(ApiError) as wrong_key:  # a wrong key with a good certificate: Klarna's 401
        klarna_call(sb, "list_certificates", pair=second, api_key="klarna_test_api_" + "W" * 24)
    assert (wrong_key.value.status, wrong_key.value.error_code) == (401, "UNAUTHORIZED")
    assert not isinstance(wrong_key.value, CertificateRefused)

    with pytest.raises(ApiError) as without:  # no certificate at all: not a refusal of ours
        klarna_call(sb, "list_certificates")
    assert without.value.error_code == "MTLS_REQUIRED" and not isinstance(without.value, CertificateRefused)


def _answer(status: int, body=None) -> httpx.Response:
    return httpx.Response(status, json=body) if body is not None else httpx.Response(status)


@pytest.mark.parametrize(
    "status,body,with_certificate,refused",
    [
        (401, {"error_type": "ACCESS_ERROR", "error_code": "MTLS_REQUIRED", "error_message": "m"}, True, True),
        (403, {"error_type": "ACCESS_ERROR", "error_code": "MTLS_REQUIRED", "error_message": "m"}, True, True),
        (401, {"error_type": "ACCESS_ERROR", "error_code": "mtls_required"}, True, True),
        (401, {"error_type": "ACCESS_ERROR", "error_code": "UNAUTHORIZED", "error_message": "no key"}, True, False),
        (401, {"error_type": "ACCESS_ERROR", "error_code": "API_KEY_DISABLED"}, True, False),
        (401, None, True, False),  # no code: the documented meaning of 401, the key
        (403, None, True, False),  # DDoS protection
        (401, {"error_type": "ACCESS_ERROR", "error_code": "MTLS_REQUIRED"}, False, False),  # we sent none
        (400, {"error_type": "INPUT_ERROR", "error_code": "MTLS_REQUIRED"}, True, False),  # not a refusal status
    ],
)
def test_the_refusal_is_told_by_code_and_the_calls_shape_not_by_the_status(status, body, with_certificate, refused):
    error = error_from_response(_answer(status, body), "cid", with_certificate=with_certificate)
    assert isinstance(error, CertificateRefused) is refused and error.status == status


# ---------------------------------------------------------------------------- 5. null and missing collections
@BOTH_MODES
def test_a_null_listing_is_read_as_no_certificates(shaped, tmp_path, answers):
    sb = shaped(answers=answers, null_empty_lists=True)
    assert klarna_call(sb, "list_certificates").value == []
    credential_id, pair = issue(sb, tmp_path)
    assert [c.credential_id for c in klarna_call(sb, "list_certificates", pair=pair).value] == [credential_id]
    assert klarna_call(sb, "list_api_keys", pair=pair).value  # never empty: the initial key


@pytest.mark.parametrize("body", [{"credentials": None}, {}, {"other": []}])
def test_null_and_missing_collections_are_empty_for_certificates_and_api_keys(body):
    assert parse_certificates(body) == [] and parse_api_keys(body) == []


@pytest.mark.parametrize("operation", ["list_certificates", "list_api_keys"])
@pytest.mark.parametrize("body", [{"credentials": None}, {}])
def test_the_client_reads_a_null_or_missing_collection_as_empty(operation, body):
    async def go():
        http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200, json=body)))
        async with http:
            return await getattr(KlarnaClient(http, "https://k.example", "klarna_test_api_" + "x" * 20), operation)()

    assert asyncio.run(go()).value == []


@pytest.mark.parametrize("credentials", ["none", 3, {"credential_id": "krn:x"}])
def test_a_collection_of_another_type_is_not_a_listing(credentials):
    for parse in (parse_certificates, parse_api_keys):
        with pytest.raises(ValueError):
            parse({"credentials": credentials})


# ---------------------------------------------------------------------------- 6. a CN Klarna assigns
ACCOUNT = "krn:partner:global:account:test:LYABCDEI"


@pytest.mark.parametrize(
    "cn,assigned",
    [
        ("LYABCDEI-0123456789abcdef", True),
        ("LYABCDEI-0123456789ABCDEF", True),
        ("LYABCDEI", False),  # the suffix itself: the CN we ask for, not an assigned one
        ("LYABCDEI-0123456789abcde", False),
        ("LYABCDEI-0123456789abcdef0", False),
        ("LYABCDEI-0123456789abcdeg", False),
        ("LYABCDEI_0123456789abcdef", False),
        ("OTHERACC-0123456789abcdef", False),
        ("xLYABCDEI-0123456789abcdef", False),
        ("LYABCDEI-0123456789abcdef\n", False),
        (None, False),
    ],
)
def test_the_assigned_cn_form_is_the_account_suffix_a_dash_and_16_hex(cn, assigned):
    assert rules.is_assigned_cn(cn, ACCOUNT) is assigned
    assert rules.is_assigned_cn("LYABCDEI-0123456789abcdef", "not an account") is False


def _issued(key, ca_key, *, cn: str, issuer: str = "Klarna-Network-Clients-Test-CA-2024", account: str = ACCOUNT):
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1095))
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(account)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return crypto.certificate_pem(cert).decode()


def _issue_evidence(*, cn: str, issuer_known: str | None = "CN=Klarna-Network-Clients-Test-CA-2024", **issued):
    key, ca_key = crypto.make_private_key(), crypto.make_private_key()
    pem = _issued(issued.pop("key", key), ca_key, cn=cn, **issued)
    ev = Evidence(account_id=ACCOUNT, cn="LYABCDEI", key_public_id=crypto.public_key_id(key))
    ev.certificate_id, ev.certificate_pem, ev.account_ca_issuer = "krn:c:1", pem, issuer_known
    return ev


def _cn_result(ev: Evidence):
    check = next(c for c in CHECKS[Stage.ISSUE] if c.name == "certificate_cn")
    return check.result(Stage.ISSUE, ev, datetime.now(UTC))


def test_an_assigned_cn_on_our_key_from_the_accounts_ca_passes_with_a_note():
    assigned = f"LYABCDEI-{secrets.token_hex(8)}"
    result = _cn_result(_issue_evidence(cn=assigned))
    assert result.ok and result.noted and isinstance(result.reason, Note)
    assert assigned in result.reason and "Klarna assigned" in result.reason and "'LYABCDEI'" in result.reason
    plain = _cn_result(_issue_evidence(cn="LYABCDEI"))
    assert plain.ok and not plain.noted and plain.reason == "Certificate CN is the one requested."


@pytest.mark.parametrize(
    "case,why",
    [
        (dict(cn="LYABCDEI-xyz"), "but we asked for 'LYABCDEI'."),
        (dict(cn="OTHERACC-0123456789abcdef"), "but we asked for 'LYABCDEI'."),
        (dict(cn="payments-node-1"), "but we asked for 'LYABCDEI'."),
        (dict(cn="LYABCDEI-0123456789abcdef", key=crypto.make_private_key()), "not for our key"),
        (
            dict(cn="LYABCDEI-0123456789abcdef", issuer="Someone-Else-CA"),
            "is not this account's CA (CN=Klarna-Network-Clients-Test-CA-2024)",
        ),
        (dict(cn="LYABCDEI-0123456789abcdef", issuer_known=None), "could not be established as this account's CA"),
        (
            dict(cn="LYABCDEI-0123456789abcdef", account="krn:partner:global:account:test:OTHERACC"),
            "names another account",
        ),
    ],
)
def test_any_other_cn_mismatch_still_blocks(case, why):
    result = _cn_result(_issue_evidence(**case))
    assert not result.ok and not result.noted and why in result.reason
    model = Onboarding(Stage.ISSUE, _issue_evidence(**case))
    assert result.reason in [b.reason for b in model.blockers()]


@BOTH_MODES
def test_the_sandbox_ca_is_established_only_by_its_signature(shaped, tmp_path, answers):
    """The account CA for a sandbox profile: the trusted sandbox CA when its key signed the
    certificate. Another sandbox's CA has the same name but another key: not established."""
    from wizard.core.paths import Paths
    from wizard.services.account_ca import account_ca_issuer
    from wizard.services.session import Session

    sb, stranger = shaped(answers=answers, assigned_cn=True), shaped(answers=answers, assigned_cn=True)
    session = Session(Paths.from_env(), "p")
    session.configure("sandbox", sb.account_id, base_url=sb.base_url, ca_bundle=str(sb.ca_bundle))
    ours, theirs = (issue(s, tmp_path)[1][0].read_text() for s in (sb, stranger))
    name = crypto.load_certificate(ours).issuer.rfc4514_string()
    assert name == crypto.load_certificate(theirs).issuer.rfc4514_string()
    assert account_ca_issuer(session, ours, "krn:c:1", []) == name
    assert account_ca_issuer(session, theirs, "krn:c:1", []) is None
