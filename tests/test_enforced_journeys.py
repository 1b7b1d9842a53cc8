"""Issue 23 on an enforced account, through the CLI and the services against the sandbox over real
loopback mTLS, in both answer modes: a new certificate that Klarna needs minutes to accept
(``propagation_delay``, time moved by the sandbox clock, never waited for), no verification header
once enforced (``no_header_once_enforced``), a refusal of the installed certificate told from a
wrong API key by its typed error (K1), and the whole enforced journey against each answer option
(tests/test_shapes_e2e.py has the shapes' own details). Enforcement applies the moment it is asked for."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
import time

import pytest
from tests_support import sandbox_profile_args, session_for

from wizard.cli import main
from wizard.core.errors import ApiError, CertificateRefused
from wizard.sandbox.options import ANSWER_MODES
from wizard.services import certificate_rotation, doctor, pair_doctor, waits
from wizard.services.install import current_pair
from wizard.services.runtime_exchange import verification_of

pytestmark = pytest.mark.e2e

WRONG_KEY = "klarna_test_api_" + "W" * 24


def in_both_modes(**settings):
    """Parametrize the ``sandbox`` fixture: these settings in each answer mode."""
    return pytest.mark.parametrize(
        "sandbox", [(mode, settings) for mode in ANSWER_MODES], ids=ANSWER_MODES, indirect=True
    )


@pytest.fixture
def sandbox_settings() -> dict:
    """conftest's sandbox, with enforcement applied at once."""
    return {"enforcement_delay": 0}


def onboard_enforced(sandbox, run_json, profile: str = "p") -> dict:
    code, out, _ = run_json(
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
        "20",
    )
    assert code == 0, out
    assert out["enforcement"]["mode"] == "ENFORCED"
    return out


def revoke_installed_elsewhere(sandbox, credential_id: str) -> None:
    """Another admin (or the portal) revokes ours, straight to the API: no interlock of ours sees it."""
    session = session_for("p", sandbox)

    async def go():
        async with session.client() as klarna:
            await klarna.revoke_certificate(credential_id)

    asyncio.run(go())


# ---------------------------------------------------------------------------- K1: typed refusals
@in_both_modes(refusal_status=401)
def test_a_probe_with_a_wrong_api_key_is_a_key_error_not_a_refused_certificate(sandbox, run_json, monkeypatch):
    onboard_enforced(sandbox, run_json)
    session = session_for("p", sandbox)
    pair = current_pair(session.install_dir)
    assert pair is not None
    assert asyncio.run(verification_of(session, pair)) == "VALID"
    session.custody.hold(WRONG_KEY)  # Klarna's 401 UNAUTHORIZED: the key, whatever the certificate
    with pytest.raises(ApiError) as raised:
        asyncio.run(verification_of(session, pair))
    assert not isinstance(raised.value, CertificateRefused) and raised.value.status == 401


@in_both_modes(refusal_status=401)
def test_doctor_cert_key_with_a_wrong_api_key_says_the_call_was_made_and_the_key_refused(sandbox, run_json):
    onboard_enforced(sandbox, run_json)
    session = session_for("p", sandbox)
    pair = current_pair(session.install_dir)
    assert pair is not None
    session.custody.hold(WRONG_KEY)  # Klarna's 401 UNAUTHORIZED: the key, whatever the pair
    findings = asyncio.run(pair_doctor.doctor_pair(session, pair.cert_path, pair.key_path))
    live = next(f for f in findings if f.check == "verification")
    assert "No live call was made" not in live.summary, live
    assert "call was made" in live.summary and "refused the API key" in live.summary, live
    assert "could not be judged" in live.summary and live.severity.value == "error", live  # the key, not the pair


@in_both_modes(refusal_status=401)
def test_a_probe_of_a_certificate_revoked_elsewhere_is_refused_whatever_the_status(sandbox, run_json):
    onboarded = onboard_enforced(sandbox, run_json)
    revoke_installed_elsewhere(sandbox, onboarded["certificate_id"])
    session = session_for("p", sandbox)
    pair = current_pair(session.install_dir)
    assert pair is not None
    assert asyncio.run(verification_of(session, pair)) == "REFUSED"


@in_both_modes(refusal_status=401)
def test_the_doctor_says_the_installed_certificate_is_refused_not_that_klarna_is_unreachable(sandbox, run_json):
    onboarded = onboard_enforced(sandbox, run_json)
    revoke_installed_elsewhere(sandbox, onboarded["certificate_id"])
    findings = asyncio.run(doctor.run_doctor(session_for("p", sandbox)))
    assert not [f for f in findings if f.check == "reachability"], findings
    refused = next(f for f in findings if f.check == "verification")
    assert refused.severity.value == "critical"
    assert refused.summary.startswith("Klarna refuses the installed certificate")
    steps = refused.next_step  # repair or a runtime certificate, the account staying enforced; unenforce last
    assert "klarna-mtls repair --profile p" in steps and "runtime request --name NAME --profile p" in steps
    assert (
        steps.index("repair") < steps.index("runtime install") < steps.index("last resort") < steps.index("unenforce")
    )
    code, out, _ = run_json("doctor", "--profile", "p")
    assert code == 2, out  # critical: the installed certificate is refused; not a tool error (3)


@in_both_modes(refusal_status=401)
def test_check_on_a_certificate_refused_under_enforcement_gives_the_lock_out_steps_not_rotate(sandbox, run_json):
    """`check` advised `rotate` for a certificate Klarna refuses under enforcement, where rotate is
    locked too (it needs a certificate Klarna accepts, or enforcement off)."""
    onboarded = onboard_enforced(sandbox, run_json)
    revoke_installed_elsewhere(sandbox, onboarded["certificate_id"])
    code, checked, _ = run_json("check", "--profile", "p")
    refused = next(f for f in checked["findings"] if f["check"] == "verification")
    assert code == 2 and refused["severity"] == "critical", checked
    assert "runtime request --name NAME --profile p" in refused["next_step"], refused
    assert "Rotate now" not in refused["next_step"], refused


# ---------------------------------------------------------------------------- item 1: a new certificate needs minutes
class KlarnasClock:
    """The tool's waits move the sandbox clock instead of passing: Klarna's minutes in no real time.
    The poll's own clock follows, so its limit is measured in the same moved time."""

    def __init__(self, sandbox, monkeypatch) -> None:
        self.sandbox, self.moved = sandbox, 0.0
        monkeypatch.setattr(waits, "pause", self.pause)
        monkeypatch.setattr(waits, "monotonic", lambda: time.monotonic() + self.moved)

    async def pause(self, seconds: float) -> None:
        self.sandbox.advance_clock(seconds)
        self.moved += seconds
        await asyncio.sleep(0)


def active_ids(sandbox) -> list[str]:
    state = sandbox._state
    return [
        cid
        for cid, entry in state.account_certificates(sandbox.account_id).items()
        if state.certificate_status(entry) == "ACTIVE"
    ]


@in_both_modes()
def test_rotate_retire_old_with_a_two_minute_propagation_delay_leaves_one_active_certificate_the_new_one(
    sandbox, run_json, monkeypatch
):
    old = onboard_enforced(sandbox, run_json)["certificate_id"]
    sandbox.advance_clock(121)  # the onboarded certificate was issued long ago…
    sandbox.configure(propagation_delay=120)  # …and a new one needs two minutes
    klarna = KlarnasClock(sandbox, monkeypatch)
    code, out, progress = run_json("rotate", "--profile", "p", "--retire-old")
    assert code == 0, out
    new = out["new_certificate_id"]
    assert out["old_certificate_id"] == old and new != old and out["retired"]
    assert klarna.moved >= 120  # it kept polling through the refusals, for Klarna's two minutes
    assert "INVALID" in out["statuses_seen"] and out["statuses_seen"][-1] == "VALID"
    assert out["verification"] == "VALID"  # the header said so
    assert "verify attempt 1 of" in progress and ": INVALID (" in progress  # progress shown on stderr
    assert "Klarna may take up to 5 minutes to accept a new certificate, the current pair stays in use" in progress
    assert active_ids(sandbox) == [new]  # exactly one ACTIVE certificate: the new one
    code, status, _ = run_json("status", "--profile", "p")
    assert code == 0 and status["current_id"] == new and status["verification"] == "VALID"
    assert status["enforcement_mode"] == "ENFORCED"


def test_rotate_keeps_polling_beyond_five_minutes_by_default_and_its_limit_is_a_flag(sandbox, run_json, monkeypatch):
    old = onboard_enforced(sandbox, run_json)["certificate_id"]
    sandbox.advance_clock(401)
    sandbox.configure(propagation_delay=400)  # longer than Klarna's 5 minutes: the default limit is above it
    KlarnasClock(sandbox, monkeypatch)
    code, out, progress = run_json("rotate", "--profile", "p", "--poll-limit", "60")
    assert code == 3 and "not seen VALID" in out["error"]["message"], out
    assert "of 60 s)" in progress
    code, status, _ = run_json("status", "--profile", "p")
    assert code == 0 and status["current_id"] == old  # the current pair stays in use
    code, out, _ = run_json("rotate", "--profile", "p")  # resumes at verify, with the default limit
    assert code == 0, out
    assert out["old_certificate_id"] == old and out["statuses_seen"][-1] == "VALID"


def runtime_on_enforced_account(sandbox, run_json, monkeypatch, tmp_path, name: str = "refunds"):
    """request on the runtime's host → issue on the managing machine (profile p) → install on the
    host; returns (install's exit code, JSON, stderr). Each host has its own home."""
    request, response = tmp_path / f"request-{name}.json", tmp_path / f"response-{name}.json"
    manager = tmp_path / "homes" / "manager"
    monkeypatch.setenv("KLARNA_MTLS_HOME", str(tmp_path / "homes" / name))
    code, out, _ = run_json("runtime", "request", "--name", name, "--out", str(request), *sandbox_profile_args(sandbox))
    assert code == 0, out
    monkeypatch.setenv("KLARNA_MTLS_HOME", str(manager))
    code, out, _ = run_json("runtime", "issue", str(request), "--profile", "p", "--out", str(response))
    assert code == 0, out
    monkeypatch.setenv("KLARNA_MTLS_HOME", str(tmp_path / "homes" / name))
    installed = run_json("runtime", "install", str(response))
    monkeypatch.setenv("KLARNA_MTLS_HOME", str(manager))
    return installed


def test_the_locked_out_advice_gives_the_profile_a_certificate_while_the_account_stays_enforced(
    sandbox, run_json, monkeypatch, tmp_path
):
    """Issue 23/24: the advice the lock-out leads with works as written: request here, issue from a
    machine whose pair Klarna accepts (the runtime ops), install here; no unenforce."""
    manager = tmp_path / "homes" / "manager"
    monkeypatch.setenv("KLARNA_MTLS_HOME", str(manager))
    first = onboard_enforced(sandbox, run_json)
    assert runtime_on_enforced_account(sandbox, run_json, monkeypatch, tmp_path, name="ops")[0] == 0
    revoke_installed_elsewhere(sandbox, first["certificate_id"])
    code, out, _ = run_json("status", "--profile", "p")
    assert code == 3 and out["error"]["title"] == "Locked out: mTLS enforced", out
    hint = out["error"]["hint"]
    assert (
        "runtime request --name NAME --profile p" in hint
        and "runtime install runtime-response-NAME.json --profile p" in hint
    )
    request, response = tmp_path / "runtime-request-p2.json", tmp_path / "runtime-response-p2.json"
    assert run_json("runtime", "request", "--name", "p2", "--profile", "p", "--out", str(request))[0] == 0
    monkeypatch.setenv("KLARNA_MTLS_HOME", str(tmp_path / "homes" / "ops"))  # a machine Klarna still accepts
    assert run_json("runtime", "issue", str(request), "--out", str(response))[0] == 0
    monkeypatch.setenv("KLARNA_MTLS_HOME", str(manager))
    code, installed, _ = run_json("runtime", "install", str(response), "--profile", "p")
    assert code == 0 and installed["verification_status"] == "VALID", installed
    _, status, _ = run_json("status", "--profile", "p")  # critical only for the runtime ops's missing report
    assert status["verification"] == "VALID" and status["enforcement_mode"] == "ENFORCED", status
    assert status["current_id"] == installed["certificate_id"] != first["certificate_id"]


@in_both_modes()
def test_a_runtime_installed_on_an_enforced_account_keeps_checking_through_the_propagation_delay(
    sandbox, run_json, monkeypatch, tmp_path
):
    monkeypatch.setenv("KLARNA_MTLS_HOME", str(tmp_path / "homes" / "manager"))
    onboard_enforced(sandbox, run_json)
    sandbox.advance_clock(121)
    sandbox.configure(propagation_delay=120)
    klarna = KlarnasClock(sandbox, monkeypatch)
    code, installed, progress = runtime_on_enforced_account(sandbox, run_json, monkeypatch, tmp_path)
    assert code == 0 and installed["verification_status"] == "VALID", installed
    assert klarna.moved >= 120 and "INVALID" in progress  # refused at first, then accepted: progress shown


# ---------------------------------------------------------------------------- item 2: no header once enforced
ACCEPTED = "ACCEPTED_UNDER_ENFORCEMENT"


@in_both_modes(no_header_once_enforced=True)
def test_with_no_header_once_enforced_status_check_and_doctor_find_a_healthy_account(sandbox, run_json):
    onboarded = onboard_enforced(sandbox, run_json)
    code, status, _ = run_json("status", "--profile", "p")
    assert code == 0, status
    assert status["current_id"] == onboarded["certificate_id"] and status["enforcement_mode"] == "ENFORCED"
    assert status["verification"] == ACCEPTED  # its own kind of evidence, never shown as VALID
    code, checked, _ = run_json("check", "--profile", "p")
    assert code == 0, checked
    verification = next(f for f in checked["findings"] if f["check"] == "verification")
    assert verification["severity"] == "ok" and "accepted under enforcement" in verification["summary"]
    code, doctored, _ = run_json("doctor", "--profile", "p")
    assert code < 2, doctored
    verification = next(f for f in doctored["findings"] if f["check"] == "verification")
    assert verification["severity"] == "ok" and ACCEPTED in verification["summary"]


@in_both_modes(no_header_once_enforced=True)
def test_with_no_header_once_enforced_rotate_retire_old_ends_with_the_new_certificate_alone(sandbox, run_json):
    old = onboard_enforced(sandbox, run_json)["certificate_id"]
    code, out, _ = run_json("rotate", "--profile", "p", "--retire-old", "--poll-limit", "30", "--poll-interval", "0.05")
    assert code == 0, out
    new = out["new_certificate_id"]
    assert out["old_certificate_id"] == old and out["retired"] and out["statuses_seen"] == [ACCEPTED]
    assert out["verification"] == ACCEPTED  # the rotation's own verdict: never VALID without a header
    assert active_ids(sandbox) == [new]
    code, status, _ = run_json("status", "--profile", "p")
    assert code == 0 and status["current_id"] == new and status["verification"] == ACCEPTED


@in_both_modes(no_header_once_enforced=True)
def test_with_no_header_once_enforced_the_rotation_ends_accepted_under_enforcement_never_valid(
    sandbox, run_json, capsys
):
    onboard_enforced(sandbox, run_json)
    events: list[waits.Event] = []
    session = session_for("p", sandbox)
    asyncio.run(certificate_rotation.rotate(session, verify_interval=0.05, verify_limit=30, on_event=events.append))
    done = events[-1]
    assert isinstance(done, waits.Done) and done.status == ACCEPTED, done  # the final event, as the TUI follows it
    assert "accepted under enforcement (no header)" in done.text and "VALID" not in done.text
    assert main(["rotate", "--profile", "p", "--poll-limit", "30", "--poll-interval", "0.05"]) == 0  # in text
    said = capsys.readouterr().out
    assert "accepted under enforcement (no header)" in said and "VALID" not in said, said


@in_both_modes(no_header_once_enforced=True)
def test_with_no_header_once_enforced_renew_says_the_new_certificate_was_accepted_under_enforcement(
    sandbox, run_json, capsys
):
    sandbox.configure(certificate_lifetime_days=30)  # in its renewal window at once
    onboard_enforced(sandbox, run_json)
    sandbox.configure(certificate_lifetime_days=90)
    failing = shlex.join([sys.executable, "-c", "import sys; sys.exit(4)"])
    renew = ("renew", "--profile", "p", "--poll-interval", "0.05", "--poll-limit", "30")
    code, out, _ = run_json(*renew, "--deploy-hook", failing)
    assert code == 1 and out["action"] == "renewed" and out["verification"] == ACCEPTED, out
    assert "accepted under enforcement (no header)" in out["message"], out
    # The hook it owes, run by hand: the finished rotation, read back from the journal, says it too.
    assert main([*renew, "--hook-done"]) == 0
    said = capsys.readouterr().out
    assert "accepted under enforcement (no header)" in said and "VALID" not in said, said


@in_both_modes(no_header_once_enforced=True)
def test_a_rotation_resumed_past_its_check_still_says_accepted_under_enforcement(sandbox, run_json):
    onboard_enforced(sandbox, run_json)
    session = session_for("p", sandbox)

    async def stop_at_the_switch() -> None:  # as a run killed once the check was journaled
        rotation = certificate_rotation.rotation(session, limits=waits.PollLimits.for_new_certificate(0.05, 30))
        async with contextlib.aclosing(rotation) as events:
            async for event in events:
                if isinstance(event, waits.Step) and event.step == "switch":
                    return

    asyncio.run(stop_at_the_switch())
    code, out, _ = run_json("rotate", "--profile", "p")
    assert code == 0 and out["statuses_seen"] == [], out  # nothing checked again in this run…
    assert out["verification"] == ACCEPTED  # …and what was seen is said, not VALID


@in_both_modes(no_header_once_enforced=True)
def test_with_no_header_once_enforced_a_runtime_install_and_its_reports_are_proved_by_accepted_calls(
    sandbox, run_json, monkeypatch, tmp_path
):
    monkeypatch.setenv("KLARNA_MTLS_HOME", str(tmp_path / "homes" / "manager"))
    onboard_enforced(sandbox, run_json)
    code, installed, _ = runtime_on_enforced_account(sandbox, run_json, monkeypatch, tmp_path)
    assert code == 0 and installed["verification_status"] == ACCEPTED, installed
    reports = tmp_path / "reports"
    monkeypatch.setenv("KLARNA_MTLS_HOME", str(tmp_path / "homes" / "refunds"))
    code, probed, _ = run_json("probe", "--report-dir", str(reports))
    assert code == 0 and probed["verification_status"] == ACCEPTED, probed
    monkeypatch.setenv("KLARNA_MTLS_HOME", str(tmp_path / "homes" / "manager"))
    code, recorded, _ = run_json("runtime", "report", str(reports), "--profile", "p")
    assert code == 0, recorded
    code, checked, _ = run_json("check", "--profile", "p")
    assert code == 0, checked  # the runtime is ready: its signed report proves acceptance under enforcement


# ---------------------------------------------------------------------------- the journeys, against each answer option
OPTIONS = {
    "propagation delay": {"propagation_delay": 120},
    "no header once enforced": {"no_header_once_enforced": True},
    "401 refusals": {"refusal_status": 401},
    "mode in status": {"enforcement_field": "status"},
    "null lists": {"null_empty_lists": True},
    "assigned CN": {"assigned_cn": True},
}
ACCEPTED_STATUSES = ("VALID", ACCEPTED)


@pytest.mark.parametrize(
    "sandbox",
    [(mode, settings) for settings in OPTIONS.values() for mode in ANSWER_MODES],
    ids=[f"{name}-{mode}" for name in OPTIONS for mode in ANSWER_MODES],
    indirect=True,
)
def test_the_enforced_journey_holds_with_each_answer_option(sandbox, run_json, monkeypatch, tmp_path):
    """Onboarding to ENFORCED, status, check, rotate --retire-old, a runtime's request/issue/install,
    then check after the installed certificate is revoked elsewhere: every wait moves Klarna's clock."""
    monkeypatch.setenv("KLARNA_MTLS_HOME", str(tmp_path / "homes" / "manager"))
    KlarnasClock(sandbox, monkeypatch)
    code, onboarded, _ = run_json(
        "onboard", "--profile", "p", "--non-interactive", *sandbox_profile_args(sandbox),
        "--enforce-at", "NOW", "--poll-interval", "0.05", "--enforce-wait", "420",
    )  # fmt: skip
    assert code == 0 and onboarded["enforcement"]["mode"] == "ENFORCED", onboarded

    code, status, _ = run_json("status", "--profile", "p")
    assert code == 0 and status["enforcement_mode"] == "ENFORCED", status
    assert status["current_id"] == onboarded["certificate_id"] and status["verification"] in ACCEPTED_STATUSES
    code, checked, _ = run_json("check", "--profile", "p")
    assert code == 0, checked

    code, rotated, _ = run_json("rotate", "--profile", "p", "--retire-old", "--poll-interval", "1")
    assert code == 0, rotated
    new = rotated["new_certificate_id"]
    assert rotated["old_certificate_id"] == onboarded["certificate_id"] and rotated["retired"]
    assert active_ids(sandbox) == [new]
    code, status, _ = run_json("status", "--profile", "p")
    assert code == 0 and status["current_id"] == new and status["verification"] in ACCEPTED_STATUSES, status

    code, installed, _ = runtime_on_enforced_account(sandbox, run_json, monkeypatch, tmp_path)
    assert code == 0 and installed["verification_status"] in ACCEPTED_STATUSES, installed

    revoke_installed_elsewhere(sandbox, new)
    code, checked, _ = run_json("check", "--profile", "p")
    assert code == 2, checked  # critical: the installed certificate is refused (never a tool error)
    verification = next(f for f in checked["findings"] if f["check"] == "verification")
    assert verification["severity"] == "critical" and "rotate" in verification["next_step"]


def test_renew_on_an_enforced_account_waits_out_the_propagation_delay_within_its_poll_limit(
    sandbox, run_json, monkeypatch
):
    sandbox.configure(certificate_lifetime_days=30)  # issued this short, in its renewal window at once
    old = onboard_enforced(sandbox, run_json)["certificate_id"]
    sandbox.configure(certificate_lifetime_days=90, propagation_delay=400)
    sandbox.advance_clock(401)
    KlarnasClock(sandbox, monkeypatch)
    code, out, _ = run_json("renew", "--profile", "p", "--poll-limit", "60")
    assert code == 3 and "not seen VALID" in out["message"] and "current pair stays in use" in out["message"], out
    code, out, _ = run_json("renew", "--profile", "p")  # resumes; the default limit outlasts Klarna's 5 minutes
    assert code == 0, out
    code, status, _ = run_json("status", "--profile", "p")
    assert code == 0 and status["current_id"] not in (None, old) and status["verification"] == "VALID"
