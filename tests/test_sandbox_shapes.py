"""The sandbox's switchable answer shapes and timings (issues 23 and 21; wizard/sandbox/options.py),
each shown off and on over real loopback mTLS with plain httpx, in both answer modes where the mode
changes what is said. Off is the default: every other test sees the sandbox as before."""

from __future__ import annotations

import email.utils
import json
import re
import subprocess
import sys
import uuid
from datetime import timedelta

import httpx
import pytest
from cryptography import x509

from tests.test_sandbox import CERTS, ENFORCEMENT, KEYS, VERIFICATION, assert_klarna_error, call, create_body
from tests.test_sandbox_docs_only import tls_context_from
from wizard.core import crypto, rules
from wizard.sandbox import start_sandbox

BOTH_MODES = pytest.mark.parametrize("answers", ["ours", "docs-only"])


@pytest.fixture
def shaped(tmp_path):
    """Start a sandbox with the given settings (enforcement applies at once); stopped afterwards."""
    started = []

    def start(**settings):
        settings.setdefault("enforcement_delay", 0)
        sandbox = start_sandbox(tmp_path / f"sandbox-{len(started)}", **settings)
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()


def issue(sb, tmp_path, *, pair=None, cn=None):
    """A certificate for a fresh key (200 or 201: the status is not documented); its id and files."""
    key = crypto.make_private_key()
    pem = crypto.make_csr_pem(key, cn or rules.default_cn(sb.account_id)).decode()
    answer = call(sb, "POST", CERTS, pair=pair, json=create_body(pem))
    assert answer.status_code in (200, 201), answer.text
    name = uuid.uuid4().hex[:8]
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_text(answer.json()["secret"]["certificate"])
    key_path.write_bytes(crypto.make_private_key_pem(key))
    return answer.json()["credential_id"], (cert_path, key_path)


def verification(answer: httpx.Response) -> str | None:
    """The header's first value (docs-only sends it twice), or None when it is not there."""
    value = answer.headers.get(VERIFICATION)
    return value.split(",")[0].strip() if value is not None else None


def enforce_now(sb, pair) -> None:
    call(sb, "PUT", ENFORCEMENT, pair=pair, json={"enforced_from": "NOW"})
    assert call(sb, "GET", ENFORCEMENT, pair=pair).status_code == 200


def certificate_cn(pem: str) -> str:
    return crypto.certificate_cn(crypto.load_certificate(pem))


# ---------------------------------------------------------------------------- 1. propagation delay
@BOTH_MODES
def test_a_new_certificate_is_refused_on_an_enforced_account_until_the_propagation_delay_passes(
    shaped, tmp_path, answers
):
    sb = shaped(answers=answers, propagation_delay=120)
    _, old = issue(sb, tmp_path)
    _, young_before_enforcement = issue(sb, tmp_path)
    # Not enforced: a certificate issued a moment ago is VALID at once.
    assert verification(call(sb, "GET", CERTS, pair=young_before_enforcement)) == "VALID"
    sb.advance_clock(121)
    enforce_now(sb, old)
    _, new = issue(sb, tmp_path, pair=old)

    refused = call(sb, "GET", CERTS, pair=new)
    assert_klarna_error(refused, 403, "ACCESS_ERROR", "MTLS_REQUIRED")
    assert verification(refused) == "INVALID"
    assert call(sb, "GET", CERTS, pair=old).status_code == 200  # the pair in use keeps working
    sb.advance_clock(60)
    assert call(sb, "GET", CERTS, pair=new).status_code == 403  # 60 s of 120: still refused
    sb.advance_clock(61)
    accepted = call(sb, "GET", CERTS, pair=new)
    assert accepted.status_code == 200 and verification(accepted) == "VALID"


def test_without_a_propagation_delay_a_new_certificate_is_accepted_at_once(shaped, tmp_path):
    sb = shaped()
    assert sb.options.propagation_delay == 0
    _, old = issue(sb, tmp_path)
    enforce_now(sb, old)
    _, new = issue(sb, tmp_path, pair=old)
    answer = call(sb, "GET", CERTS, pair=new)
    assert answer.status_code == 200 and verification(answer) == "VALID"


# ---------------------------------------------------------------------------- 2. no header once enforced
@BOTH_MODES
def test_no_verification_header_while_enforced_when_asked(shaped, tmp_path, answers):
    sb = shaped(answers=answers, no_header_once_enforced=True)
    _, pair = issue(sb, tmp_path)
    assert verification(call(sb, "GET", CERTS, pair=pair)) == "VALID"  # REPORTING: the header is there
    enforce_now(sb, pair)
    accepted = call(sb, "GET", CERTS, pair=pair)
    refused = call(sb, "GET", CERTS)
    assert accepted.status_code == 200 and VERIFICATION not in accepted.headers
    assert refused.status_code == 403 and VERIFICATION not in refused.headers
    assert call(sb, "DELETE", ENFORCEMENT, pair=pair).status_code == 204
    assert verification(call(sb, "GET", CERTS, pair=pair)) == "VALID"  # back to REPORTING: back again


def test_by_default_the_header_stays_once_enforced(shaped, tmp_path):
    sb = shaped()
    _, pair = issue(sb, tmp_path)
    enforce_now(sb, pair)
    assert verification(call(sb, "GET", CERTS, pair=pair)) == "VALID"
    assert verification(call(sb, "GET", CERTS)) == "NOT_PRESENT"


# ---------------------------------------------------------------------------- 3. refusals answered 401
@BOTH_MODES
def test_enforcement_refusals_can_be_answered_401_with_the_same_error(shaped, tmp_path, answers):
    default, switched = shaped(answers=answers), shaped(answers=answers, refusal_status=401)
    for sb, status in ((default, 403), (switched, 401)):
        credential_id, pair = issue(sb, tmp_path)
        _, spare = issue(sb, tmp_path)
        enforce_now(sb, pair)
        assert_klarna_error(call(sb, "GET", CERTS), status, "ACCESS_ERROR", "MTLS_REQUIRED")
        call(sb, "POST", f"{CERTS}/{credential_id}/revoke", pair=spare, json={})
        revoked = call(sb, "GET", CERTS, pair=pair)
        assert_klarna_error(revoked, status, "ACCESS_ERROR", "MTLS_REQUIRED")
        # A wrong key is still told apart by its code, whatever the refusal's status.
        assert_klarna_error(
            call(sb, "GET", CERTS, pair=spare, api_key="klarna_test_api_wrong"), 401, "ACCESS_ERROR", "UNAUTHORIZED"
        )


def test_a_certificate_still_propagating_is_refused_401_with_the_switch(shaped, tmp_path):
    sb = shaped(propagation_delay=300, refusal_status=401)
    _, old = issue(sb, tmp_path)
    sb.advance_clock(301)
    enforce_now(sb, old)
    _, new = issue(sb, tmp_path, pair=old)
    assert_klarna_error(call(sb, "GET", CERTS, pair=new), 401, "ACCESS_ERROR", "MTLS_REQUIRED")


# ---------------------------------------------------------------------------- 4. the mode in `status`
@BOTH_MODES
@pytest.mark.parametrize(
    "field,expected",
    [
        ("enforcement_mode", {"enforcement_mode": "ENFORCED"}),
        ("status", {"status": "ENFORCED"}),
        ("both", {"enforcement_mode": "ENFORCED", "status": "ENFORCED"}),
        ("both-disagree", {"enforcement_mode": "ENFORCED", "status": "REPORTING"}),
    ],
)
def test_the_enforcement_mode_can_be_named_status_or_both(shaped, tmp_path, answers, field, expected):
    sb = shaped(answers=answers, enforcement_field=field)
    _, pair = issue(sb, tmp_path)
    enforce_now(sb, pair)
    body = call(sb, "GET", ENFORCEMENT, pair=pair).json()
    assert {k: v for k, v in body.items() if k in ("enforcement_mode", "status")} == expected
    if answers == "ours":
        assert body["enforced_from"].endswith("Z")  # the other fields stay as they were


def test_a_put_answer_with_the_state_names_the_mode_the_same_way(shaped, tmp_path):
    sb = shaped(enforcement_field="status", enforcement_delay=300)
    _, pair = issue(sb, tmp_path)
    put = call(sb, "PUT", ENFORCEMENT, pair=pair, json={"enforced_from": "NOW"})
    assert put.status_code == 200 and put.json()["status"] == "REPORTING" and "enforcement_mode" not in put.json()
    assert call(sb, "GET", ENFORCEMENT, pair=pair).json()["status"] == "REPORTING"


# ---------------------------------------------------------------------------- 5. empty lists as null
@BOTH_MODES
def test_an_empty_listing_can_be_null(shaped, tmp_path, answers):
    default, switched = shaped(answers=answers), shaped(answers=answers, null_empty_lists=True)
    assert call(default, "GET", CERTS).json() == {"credentials": []}
    assert call(switched, "GET", CERTS).json() == {"credentials": None}
    credential_id, _ = issue(switched, tmp_path)
    listed = call(switched, "GET", CERTS).json()["credentials"]
    assert [entry["credential_id"] for entry in listed] == [credential_id]  # not empty: a list as usual
    assert call(switched, "GET", KEYS).json()["credentials"]  # the initial key: never empty


# ---------------------------------------------------------------------------- 6. a CN Klarna assigns
@BOTH_MODES
def test_klarna_can_assign_each_certificate_its_own_cn(shaped, tmp_path, answers):
    default, switched = shaped(answers=answers), shaped(answers=answers, assigned_cn=True)
    suffix = rules.default_cn(switched.account_id)
    key = crypto.make_private_key()
    asked_for = crypto.make_csr_pem(key, "payments-node-1").decode()
    refused = call(default, "POST", CERTS, json=create_body(asked_for))
    assert_klarna_error(refused, 400, "INPUT_ERROR", "VALIDATION_ERROR")  # off: the suffix only

    names = []
    for csr in (asked_for, crypto.make_csr_pem(crypto.make_private_key(), suffix).decode()):
        created = call(switched, "POST", CERTS, json=create_body(csr))
        assert created.status_code in (200, 201), created.text
        pem = created.json()["secret"]["certificate"]
        names.append(certificate_cn(pem))
        san = crypto.load_certificate(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert switched.account_id in san.value.get_values_for_type(x509.UniformResourceIdentifier)
    assert all(re.fullmatch(rf"{suffix}-[0-9a-f]{{16}}", name) for name in names), names
    assert names[0] != names[1]  # per certificate


def test_an_assigned_cn_certificate_is_valid_and_the_default_keeps_the_csrs_cn(shaped, tmp_path):
    default, switched = shaped(), shaped(assigned_cn=True)
    _, pair = issue(switched, tmp_path)
    assert certificate_cn(pair[0].read_text()) != rules.default_cn(switched.account_id)
    assert verification(call(switched, "GET", CERTS, pair=pair)) == "VALID"
    _, default_pair = issue(default, tmp_path)
    assert certificate_cn(default_pair[0].read_text()) == rules.default_cn(default.account_id)


# ---------------------------------------------------------------------------- time
def _date(answer: httpx.Response):
    return email.utils.parsedate_to_datetime(answer.headers["Date"])


def test_the_date_header_follows_the_sandbox_clock_only_when_asked(shaped):
    default, switched = shaped(), shaped(date_follows_clock=True)
    for sb in (default, switched):
        sb.advance_clock(3 * 86400)
    real = rules.utc_now()
    assert abs((_date(call(default, "GET", CERTS)) - real).total_seconds()) < 60
    assert abs((_date(call(switched, "GET", CERTS)) - (real + timedelta(days=3))).total_seconds()) < 60
    assert abs((_date(call(switched, "GET", CERTS)) - switched.now()).total_seconds()) < 60


def test_a_short_certificate_lifetime_is_a_start_setting(shaped, tmp_path):
    sb = shaped(certificate_lifetime_seconds=90)
    _, pair = issue(sb, tmp_path)
    assert verification(call(sb, "GET", CERTS, pair=pair)) == "VALID"
    sb.advance_clock(91)  # expired by the sandbox clock; X.509 (real time) still lets TLS through
    answer = call(sb, "GET", CERTS, pair=pair)
    assert verification(answer) == "INVALID" and answer.json()["credentials"][0]["status"] == "EXPIRED"


# ---------------------------------------------------------------------------- the ways to set them
NEW_SETTINGS = {
    "propagation_delay": 120.0,
    "no_header_once_enforced": True,
    "refusal_status": 401,
    "enforcement_field": "both-disagree",
    "null_empty_lists": True,
    "assigned_cn": True,
    "date_follows_clock": True,
}


def test_every_switch_is_off_by_default_and_settable_through_the_admin_endpoint(shaped):
    sb = shaped()
    admin = {"X-Sandbox-Admin": sb.admin_token}
    with httpx.Client(base_url=sb.base_url, verify=tls_context_from({"ca_bundle": str(sb.ca_bundle)})) as http:
        before = http.post("/__sandbox__/config", headers=admin, json={}).json()
        assert {name: before[name] for name in NEW_SETTINGS} == {
            "propagation_delay": 0.0,
            "no_header_once_enforced": False,
            "refusal_status": 403,
            "enforcement_field": "enforcement_mode",
            "null_empty_lists": False,
            "assigned_cn": False,
            "date_follows_clock": False,
        }
        after = http.post("/__sandbox__/config", headers=admin, json=NEW_SETTINGS).json()
        assert {name: after[name] for name in NEW_SETTINGS} == NEW_SETTINGS
        assert call(sb, "GET", CERTS).json() == {"credentials": None}  # in force at once
        for bad in ({"refusal_status": 500}, {"enforcement_field": "mode"}, {"propagation_delay": -1}):
            answer = http.post("/__sandbox__/config", headers=admin, json=bad | {"assigned_cn": False})
            assert answer.status_code == 400 and answer.json()["error_code"] == "VALIDATION_ERROR"
        unknown = http.post("/__sandbox__/config", headers=admin, json={"null_lists": True})
        assert unknown.status_code == 400 and "null_empty_lists" in unknown.json()["error_message"]
        assert sb.options.assigned_cn is True  # a refused change changed nothing


def test_start_sandbox_and_configure_take_the_same_names(shaped, tmp_path):
    sb = shaped(**NEW_SETTINGS)
    assert {name: sb.options.as_dict()[name] for name in NEW_SETTINGS} == NEW_SETTINGS
    assert sb.configure(refusal_status=403)["refusal_status"] == 403
    with pytest.raises(ValueError, match="refusal_status"):
        sb.configure(refusal_status=402)
    with pytest.raises(ValueError, match="unknown sandbox setting"):
        start_sandbox(tmp_path / "typo", propagation_dealy=5)


def _serve(tmp_path, *flags: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "wizard.cli", "sandbox", "serve", "--json", "--state-dir", str(tmp_path / "s")]
    return subprocess.Popen([*command, *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sandbox_serve_takes_every_switch_as_a_flag(tmp_path):
    flags = ["--propagation-delay", "120", "--no-header-once-enforced", "--refusal-status", "401"]
    flags += ["--enforcement-field", "both-disagree", "--null-empty-lists", "--assigned-cn", "--date-follows-clock"]
    process = _serve(tmp_path, *flags, "--certificate-lifetime-seconds", "600")
    try:
        info = json.loads(process.stdout.readline())
        with httpx.Client(base_url=info["base_url"], verify=tls_context_from(info), timeout=10) as http:
            config = http.post("/__sandbox__/config", headers={"X-Sandbox-Admin": info["admin_token"]}, json={})
            listing = http.get(CERTS, headers={"Authorization": f"Basic {info['api_key']}"})
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert {name: config.json()[name] for name in NEW_SETTINGS} == NEW_SETTINGS
    assert config.json()["certificate_lifetime_seconds"] == 600
    assert listing.json() == {"credentials": None}


def test_a_second_sandbox_on_a_folder_in_use_is_refused_and_names_the_first(tmp_path):
    """Two sandboxes on one folder each kept their own copy of the state, and each save overwrote
    the other's certificates and keys (a wizard with --sandbox beside a `sandbox serve`)."""
    from wizard.core.locking import ProfileBusy

    first = _serve(tmp_path)
    try:
        assert first.stdout is not None and json.loads(first.stdout.readline())["base_url"]
        second = _serve(tmp_path)
        out, err = second.communicate(timeout=60)
        with pytest.raises(ProfileBusy, match=f"in use by pid {first.pid}"):
            start_sandbox(tmp_path / "s")
    finally:
        first.terminate()
        first.wait(timeout=10)
    assert second.returncode == 3 and json.loads(out)["error"]["title"] == "Sandbox in use"
    assert f"Sandbox in use: The sandbox folder {tmp_path / 's'} is in use by pid {first.pid}" in err
    assert "--state-dir DIR" in err
    with start_sandbox(tmp_path / "s") as sandbox:  # the lock went with the first; stop gives it back
        sandbox.stop()
        with start_sandbox(tmp_path / "s"):
            pass


def test_sandbox_serve_refuses_a_bad_value_and_names_it(tmp_path):
    process = _serve(tmp_path, "--enforcement-field", "mode")
    out, err = process.communicate(timeout=30)
    assert process.returncode == 3 and out == ""
    assert "enforcement_field must be one of" in err
