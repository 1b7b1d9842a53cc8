"""Lifecycle domain end to end against the sandbox: rotation without a gap (and resumed after a
crash), the revocation interlock, the live-profile confirmation. CLI paths: test_cli_manage.py."""

from __future__ import annotations

import asyncio
import concurrent.futures
import pathlib

import pytest
from tests_support import session_for

from wizard.core.errors import InterlockRefused, TransportError
from wizard.core.paths import Paths
from wizard.services import certificate_rotation, doctor, onboarding, revocation
from wizard.services.session import Session
from wizard.services.status import CertificateRow, ProfileStatus, gather_status

pytestmark = pytest.mark.e2e


def test_rotation_never_leaves_a_gap_and_retires_the_old(onboard, sandbox):
    old = onboard(enforce_at="NOW")
    session = session_for("p", sandbox)
    steps, seen = [], []

    def installed_status() -> str:
        """What a runtime pointed at install_dir/current sees right now (own thread, own loop)."""
        from wizard.klarna.client import KlarnaClient
        from wizard.klarna.tls import make_http_client
        from wizard.services.install import current_pair

        async def probe():
            pair = current_pair(session.install_dir)
            async with make_http_client(
                ca_bundle=sandbox.ca_bundle, client_cert=pair.cert_path, client_key=pair.key_path
            ) as http:
                return (
                    await KlarnaClient(http, sandbox.base_url, sandbox.api_key, with_certificate=True).ping()
                ).verification.value

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, probe()).result()

    def watch(step):
        steps.append(step)
        seen.append(installed_status())

    result = asyncio.run(certificate_rotation.rotate(session, verify_interval=0.05, on_step=watch))
    seen.append(installed_status())
    assert steps == ["key", "issue", "install", "verify", "switch"]
    assert seen == ["VALID"] * 6  # before every step and after the switch: never a gap
    assert result.new_certificate_id != old["certificate_id"]
    assert result.statuses_seen[-1] == "VALID"  # the new pair was VALID before the switch
    status = asyncio.run(gather_status(session))
    assert status.current.credential_id == result.new_certificate_id and status.verification == "VALID"
    # the old certificate is installed beside it, not current, and now safe to retire
    assert revocation.revoke_refusal(session, status, old["certificate_id"]) is None
    after = asyncio.run(revocation.revoke(session, old["certificate_id"]))
    states = {c.credential_id: c.status for c in after.certificates}
    assert states[old["certificate_id"]] == "REVOKED" and after.verification == "VALID"


def test_rotation_refused_when_no_slot_is_free(onboard, sandbox, tmp_path):
    from tests_support import issue_pair

    onboard()
    for i in range(9):
        issue_pair(sandbox, tmp_path, f"x{i}")
    with pytest.raises(InterlockRefused, match="All 10 certificate slots are in use") as caught:
        asyncio.run(certificate_rotation.rotate(session_for("p", sandbox)))
    assert "krn:" in str(caught.value) and "certs revoke" in caught.value.hint


def test_interlock_last_valid_while_enforced():
    session = Session(Paths.from_env(), "p")  # a profile with no runtimes, alone on this machine
    row = dict(
        cn="X",
        fingerprint="AA",
        fingerprint_suffix="AA",
        created_at=None,
        expires_at=None,
        days_left=100,
        status="ACTIVE",
        lifetime_elapsed=0.1,
        in_renewal_window=False,
    )
    other = CertificateRow(credential_id="b", installed_here=False, current=False, last_seen_valid="t", **row)
    current = CertificateRow(credential_id="a", installed_here=True, current=True, last_seen_valid="t", **row)
    status = ProfileStatus(
        "p", "test", "acc", "DONE", [current, other], "ENFORCED", "NOW", 2, "k", "VALID", installed=True, current_id="a"
    )
    assert "installed and in use" in revocation.revoke_refusal(session, status, "a")
    # b was the last seen VALID elsewhere and nothing else installed here is VALID… except a is: allowed
    assert revocation.revoke_refusal(session, status, "b") is None
    lonely = ProfileStatus(
        "p",
        "test",
        "acc",
        "DONE",
        [other],
        "REPORTING",
        "2027-01-01T00:00:00Z",
        1,
        "k",
        None,
        installed=False,
        enforcement_scheduled=True,
    )
    assert "last certificate that works" in revocation.revoke_refusal(session, lonely, "b")
    # enforcement unreadable: unknown means no
    unknown = ProfileStatus("p", "test", "acc", "DONE", [other], "UNKNOWN", None, 1, "k", None, installed=False)
    assert "UNKNOWN" in revocation.revoke_refusal(session, unknown, "b")
    # no enforcement at all: revoking a certificate not in use here is allowed
    off = ProfileStatus("p", "test", "acc", "DONE", [other], "NOT_ENABLED", None, 1, "k", None, installed=False)
    assert revocation.revoke_refusal(session, off, "b") is None


def test_live_revocation_needs_the_fingerprint_suffix(onboard, sandbox, tmp_path, monkeypatch):
    from tests_support import issue_pair

    from wizard.klarna.endpoints import BASE_URLS

    onboard()
    spare, *_ = issue_pair(sandbox, tmp_path, "spare")
    session = session_for("p", sandbox)
    session.evidence.environment = "live"  # the interlock reads the profile's environment
    # A live profile talks to the live host of the environment table (played by the sandbox here)
    # and trusts a CA chosen with --trust-ca: never a host or CA from its settings.
    monkeypatch.setitem(BASE_URLS, "live", sandbox.base_url)
    session.settings.trust_ca, session.settings.base_url, session.settings.ca_bundle = (
        session.settings.ca_bundle,
        None,
        None,
    )
    session.clients.check_binding = lambda key: None  # a test key on a "live" profile: binding is tested elsewhere
    with pytest.raises(InterlockRefused, match="fingerprint suffix"):
        asyncio.run(revocation.revoke(session, spare.credential_id))
    from wizard.core import crypto

    asyncio.run(
        revocation.revoke(session, spare.credential_id, confirm_suffix=crypto.fingerprint_suffix(spare.fingerprint))
    )


class Killed(Exception):
    """Stands in for the process dying between two rotation steps."""


def test_rotation_resumes_after_a_crash_and_a_lost_answer_without_a_duplicate(onboard, sandbox):
    from wizard.sandbox.server import Fault

    old = onboard()
    session = session_for("p", sandbox)
    sandbox.inject(Fault(kind="drop_after_commit", operation="create_certificate"))

    def die_before_install(step):
        if step == "install":
            raise Killed

    # The lost answer surfaces as an error or is reconciled in place; either way the run dies
    # before installing, with the idempotency key journaled.
    with pytest.raises((Killed, TransportError)):
        asyncio.run(certificate_rotation.rotate(session, verify_interval=0.05, on_step=die_before_install))
    flow = session_for("p", sandbox).state.flows.rotation
    assert flow is not None and flow.step in ("issue", "install") and flow.idempotency_key

    steps = []
    resumed = session_for("p", sandbox)  # a new process reads the journal
    result = asyncio.run(certificate_rotation.rotate(resumed, verify_interval=0.05, on_step=steps.append))
    assert steps[-3:] == ["install", "verify", "switch"] and "key" not in steps
    assert result.old_certificate_id == old["certificate_id"]
    status = asyncio.run(gather_status(resumed))
    assert status.slots_used == 2  # the lost answer was reconciled, not re-issued
    assert status.current.credential_id == result.new_certificate_id
    assert resumed.evidence.certificate_id == result.new_certificate_id  # doctor/check follow the new pair
    assert pathlib.Path(resumed.evidence.key_path) != pathlib.Path(old["key_path"])
    assert pathlib.Path(old["key_path"]).exists()  # the old key was never overwritten


def test_revoking_the_last_valid_certificate_while_enforcement_is_scheduled_is_refused(onboard, sandbox):
    """After a rotation the new certificate is revoked elsewhere: the old one, installed beside it,
    is now the last one seen VALID and enforcement is scheduled, so revoking it would lock the
    partner out when enforcement applies."""
    from datetime import timedelta

    from wizard.core import rules

    old = onboard()
    session = session_for("p", sandbox)
    result = asyncio.run(certificate_rotation.rotate(session, verify_interval=0.05))
    asyncio.run(onboarding.enforce(session, rules.format_utc(session.clock() + timedelta(days=7))))

    async def revoke_behind_our_back():
        async with session.client() as klarna:
            await klarna.revoke_certificate(result.new_certificate_id)

    asyncio.run(revoke_behind_our_back())
    with pytest.raises(InterlockRefused, match="enforcement is on, scheduled or unknown"):
        asyncio.run(revocation.revoke(session, old["certificate_id"]))
    states = {c.credential_id: c.status for c in asyncio.run(gather_status(session)).certificates}
    assert states[old["certificate_id"]] == "ACTIVE"


@pytest.mark.parametrize(
    "days_later,expiry_severity,code",
    [(0, "ok", 0), (3 * 365 - 30, "warning", 1), (3 * 365 - 7, "critical", 2), (3 * 365 + 1, "critical", 2)],
)
def test_check_reads_expiry_through_the_session_clock(onboard, sandbox, days_later, expiry_severity, code):
    from datetime import timedelta

    from wizard.core import rules

    onboard()
    later = rules.utc_now() + timedelta(days=days_later)
    session = Session(Paths.from_env(), "p", clock=lambda: later)
    session.unlock(sandbox.api_key)
    got_code, findings = asyncio.run(doctor.cron_check(session, warn_days=60, critical_days=14))
    expiry = next(f for f in findings if f.check == "expiry")
    assert (got_code, expiry.severity) == (code, expiry_severity)
    assert ("expired" in expiry.summary) == (days_later > 3 * 365)


def test_check_does_not_blame_the_certificate_for_a_bare_403(onboard, sandbox, monkeypatch):
    """A 403 with no mTLS code (Klarna's DDoS protection answers so) stays critical for a monitor,
    since calls fail, but is not said to be a refusal of the installed certificate."""
    from wizard.core.errors import ApiError
    from wizard.services import onboarding

    onboard()
    session = Session(Paths.from_env(), "p")
    session.unlock(sandbox.api_key)

    async def forbidden(_session):
        raise ApiError("Forbidden", status=403)

    monkeypatch.setattr(onboarding, "observe", forbidden)
    code, findings = asyncio.run(doctor.cron_check(session, warn_days=60, critical_days=14))
    verification = next(f for f in findings if f.check == "verification")
    assert code == 2 and verification.severity == "critical"
    assert "refused the installed certificate" not in verification.summary
    assert "403" in verification.summary and "DDoS" in verification.summary
