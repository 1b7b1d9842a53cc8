"""The journeys of issue 23, items 3 to 6, through the CLI against the sandbox over real loopback
mTLS, in both answer modes: onboarding to ENFORCED, ``status`` and ``check`` with the mode in a field
named ``status``, empty listings answered ``null`` and a CN Klarna assigns; ``check`` once the
installed certificate is revoked elsewhere while refusals are answered 401. Enforcement applies the
moment it is asked for (``enforcement_delay=0``): no test waits on a clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests_support import sandbox_profile_args, session_for

from wizard.core import crypto, rules
from wizard.core.stages import Stage
from wizard.klarna.client import KlarnaClient
from wizard.klarna.tls import make_http_client
from wizard.sandbox.options import ANSWER_MODES

pytestmark = pytest.mark.e2e

SWITCHES = {
    "mode in status": {"enforcement_field": "status"},
    "mode in both": {"enforcement_field": "both"},
    "null lists": {"null_empty_lists": True},
    "assigned CN": {"assigned_cn": True},
}


def shaped(switches: dict[str, dict]):
    """Parametrize conftest's ``sandbox`` fixture: each switch in each answer mode."""
    cases = [(mode, settings) for settings in switches.values() for mode in ANSWER_MODES]
    ids = [f"{name}-{mode}" for name in switches for mode in ANSWER_MODES]
    return pytest.mark.parametrize("sandbox", cases, ids=ids, indirect=True)


@pytest.fixture
def sandbox_settings() -> dict:
    """conftest's sandbox, with enforcement applied at once."""
    return {"enforcement_delay": 0}


def onboard_now(sandbox, run_json, profile: str = "p", enforce_wait: str = "20"):
    return run_json(
        "onboard",
        "--profile",
        profile,
        "--non-interactive",
        *sandbox_profile_args(sandbox),
        "--enforce-at",
        "NOW",
        "--poll-interval",
        "0.05",
        "--enforce-wait",
        enforce_wait,
    )


def assert_enforced_and_healthy(run_json, onboarded: dict) -> None:
    """``status`` shows ENFORCED with the installed certificate current and VALID; ``check`` is OK."""
    code, status, _ = run_json("status", "--profile", "p")
    assert code == 0 and status["enforcement_mode"] == "ENFORCED"
    assert status["current_id"] == onboarded["certificate_id"] and status["verification"] == "VALID"
    code, checked, _ = run_json("check", "--profile", "p")
    assert code == 0, checked
    assert {f["check"]: f["severity"] for f in checked["findings"]}["verification"] == "ok"


# ---------------------------------------------------------------------------- items 3, 5, 6: the journeys
@shaped(SWITCHES)
def test_onboarding_to_enforced_then_status_and_check_with_each_shape(sandbox, run_json):
    code, onboarded, progress = onboard_now(sandbox, run_json)
    assert code == 0, onboarded
    assert onboarded["stage"] == "DONE" and onboarded["enforcement"]["mode"] == "ENFORCED"
    assert "proved: a request without a client certificate is refused" in progress
    assert_enforced_and_healthy(run_json, onboarded)


@shaped({"mode in status": {"enforcement_field": "status"}})
def test_with_the_mode_in_status_the_enforce_stage_records_what_klarna_answered(sandbox, run_json):
    code, onboarded, _ = onboard_now(sandbox, run_json)
    assert code == 0, onboarded
    session = session_for("p", sandbox)
    assert session.evidence.enforcement_mode == "ENFORCED"
    assert sandbox._state.enforcement_state(sandbox.account_id)["enforcement_mode"] == "ENFORCED"


@shaped({"null lists": {"null_empty_lists": True}})
def test_with_null_lists_the_first_listing_is_empty_and_one_certificate_is_issued(sandbox, run_json):
    code, onboarded, _ = onboard_now(sandbox, run_json)
    assert code == 0, onboarded
    assert list(sandbox._state.data["certificates"]) == [onboarded["certificate_id"]]  # one, not a retry's two


@shaped({"assigned CN": {"assigned_cn": True}})
def test_an_assigned_cn_passes_the_issue_check_with_a_note_shown(sandbox, run_json):
    code, onboarded, progress = onboard_now(sandbox, run_json)
    assert code == 0, onboarded
    suffix = rules.default_cn(sandbox.account_id)
    cn = crypto.certificate_cn(crypto.load_certificate(Path(onboarded["cert_path"]).read_bytes()))
    assert cn != suffix and rules.is_assigned_cn(cn, sandbox.account_id)
    session = session_for("p", sandbox)
    result = next(r for r in session.model.results(Stage.ISSUE) if r.name == "certificate_cn")
    assert result.ok and result.noted and f"Klarna assigned the CN '{cn}'" in result.reason
    assert f"note: Klarna assigned the CN '{cn}'" in progress  # shown by onboard too
    assert (
        session.evidence.account_ca_issuer
        == crypto.load_certificate(sandbox.ca_bundle.read_bytes()).subject.rfc4514_string()
    )


# ---------------------------------------------------------------------------- item 3: two fields that disagree
@shaped({"disagreeing fields": {"enforcement_field": "both-disagree"}})
def test_when_the_two_fields_disagree_nothing_is_confirmed_and_status_says_unknown(sandbox, run_json):
    code, out, _ = onboard_now(sandbox, run_json, enforce_wait="1")  # UNKNOWN never turns ENFORCED: no need to wait
    assert code == 3 and "Klarna has not confirmed the enforcement yet" in out["error"]["message"]
    session = session_for("p", sandbox)
    assert session.model.stage is Stage.ENFORCE and session.evidence.enforcement_mode == "UNKNOWN"
    code, status, _ = run_json("status", "--profile", "p")
    assert code == 0 and status["enforcement_mode"] == "UNKNOWN"  # never NOT_ENABLED, never a guess


# ---------------------------------------------------------------------------- item 4: a refusal answered 401
def revoke_with_a_second_client(sandbox, credential_id: str, tmp_path) -> None:
    """Another machine of the account (its own certificate) revokes ours: no interlock of ours sees it."""
    key = crypto.make_private_key()
    csr = crypto.make_csr_pem(key, rules.default_cn(sandbox.account_id)).decode()
    cert_path, key_path = tmp_path / "other.crt", tmp_path / "other.key"
    key_path.write_bytes(crypto.make_private_key_pem(key))

    async def issue_and_revoke():
        installed = session_for("p", sandbox)
        async with installed.client() as klarna:  # our pair is still accepted: issue the other machine's
            created = await klarna.create_certificate(csr, "other machine", "idem-other-machine")
        cert_path.write_text(created.value.certificate_pem or "")
        async with make_http_client(ca_bundle=sandbox.ca_bundle, client_cert=cert_path, client_key=key_path) as http:
            other = KlarnaClient(http, sandbox.base_url, sandbox.api_key, with_certificate=True)
            await other.revoke_certificate(credential_id)

    asyncio.run(issue_and_revoke())


@pytest.mark.parametrize(
    "sandbox", [(mode, {"refusal_status": 401}) for mode in ANSWER_MODES], ids=ANSWER_MODES, indirect=True
)
def test_check_is_critical_when_the_installed_certificate_is_refused_401_after_a_revocation_elsewhere(
    sandbox, run_json, tmp_path
):
    code, onboarded, _ = onboard_now(sandbox, run_json)
    assert code == 0, onboarded
    assert_enforced_and_healthy(run_json, onboarded)
    revoke_with_a_second_client(sandbox, onboarded["certificate_id"], tmp_path)

    code, checked, _ = run_json("check", "--profile", "p")
    assert code == 2, checked  # critical: the installed certificate is refused, not a tool error (3)
    verification = next(f for f in checked["findings"] if f["check"] == "verification")
    assert verification["severity"] == "critical"
    assert verification["summary"].startswith("Klarna refused the installed certificate")
    assert "rotate" in verification["next_step"]


@pytest.mark.parametrize(
    "sandbox", [(mode, {"refusal_status": 401}) for mode in ANSWER_MODES], ids=ANSWER_MODES, indirect=True
)
def test_a_wrong_api_key_is_still_a_tool_error_not_a_refused_certificate(sandbox, run_json, monkeypatch):
    code, onboarded, _ = onboard_now(sandbox, run_json)
    assert code == 0, onboarded
    monkeypatch.setenv("KLARNA_API_KEY", "klarna_test_api_" + "W" * 24)
    code, out, _ = run_json("check", "--profile", "p")
    assert code == 3 and out["error"]["title"] == "Klarna API error"  # Klarna's 401 UNAUTHORIZED: the key


@pytest.mark.parametrize(
    "sandbox", [(mode, {"refusal_status": 401}) for mode in ANSWER_MODES], ids=ANSWER_MODES, indirect=True
)
def test_a_second_profile_on_an_account_enforcing_with_401_is_told_mtls_is_required(sandbox, run_json):
    code, onboarded, _ = onboard_now(sandbox, run_json)
    assert code == 0, onboarded
    code, out, _ = run_json("onboard", "--profile", "second", "--non-interactive", *sandbox_profile_args(sandbox))
    assert code == 3 and out["error"]["title"] == "mTLS required on this account"
    assert "already enforces mTLS" in out["error"]["message"] and "unenforce" in out["error"]["hint"]
