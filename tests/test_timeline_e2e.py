"""Safe over time (issue 21), each red-team reproduction against the sandbox over real mTLS: short
certificate lifetimes (``certificate_lifetime``), Klarna's clock moved (``advance_clock``, with
``date_follows_clock`` for a managing machine whose clock is behind), enforcement scheduled ahead.

- LO-01 / A45: enforcement scheduled after a counted certificate expires is refused.
- LO-09: a clock off from Klarna's ``Date`` refuses enforcing, with the skew named.
- LO-10: a scheduled enforcement is re-judged by ``check`` (critical), ``status`` and the runtime commands.
- LO-20: DONE and ENFORCED only when Klarna says so now."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from conftest import BOTH_ANSWER_MODES
from test_runtimes_e2e import Hosts, onboard_runtime, probe_and_report
from tests_support import session_for

from wizard.core import rules
from wizard.core.errors import InterlockRefused
from wizard.core.paths import Paths
from wizard.services import onboarding
from wizard.services.session import Session

pytestmark = pytest.mark.e2e
FOREVER = timedelta(days=3 * 365)


@pytest.fixture
def hosts(tmp_path, monkeypatch, sandbox) -> Hosts:
    """A managing machine and runtime hosts, each with its own home (as in test_runtimes_e2e)."""
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    simulated = Hosts(tmp_path, monkeypatch, sandbox)
    simulated.use("manager")
    return simulated


def server_enforcement(sandbox) -> dict | None:
    return sandbox._state.data["accounts"][sandbox.account_id].get("enforcement")


def onboard_with_lifetime(sandbox, onboard, lifetime: timedelta, profile: str = "p", **extra) -> dict:
    """Onboard while the sandbox issues certificates of ``lifetime``; later ones get 3 years again."""
    sandbox.certificate_lifetime = lifetime
    try:
        return onboard(profile, **extra)
    finally:
        sandbox.certificate_lifetime = FOREVER


def at(delta: timedelta) -> str:
    return rules.format_utc(rules.utc_now() + delta)


def schedule_elsewhere(sandbox, profile: str, enforced_from: str) -> None:
    """Someone else (the portal, another tool) schedules enforcement: straight to the API, no gate."""
    session = session_for(profile, sandbox)

    async def go():
        async with session.client() as klarna:
            await klarna.set_enforcement(enforced_from)

    asyncio.run(go())


# ---------------------------------------------------------------- LO-01, A45
def test_lo01_enforcement_after_the_installed_certificate_expires_is_refused(onboard, cli, sandbox):
    onboard_with_lifetime(sandbox, onboard, timedelta(seconds=240))
    for when in (at(timedelta(minutes=10)), "NOW"):  # NOW too: it expires while enforcement applies
        code, out = cli("enforce", "--profile", "p", "--at", when)
        assert code == 3, out
        message = out["error"]["message"]
        assert "The certificate installed here" in message and "expires at" in message, message
        assert "Rotate it first" in message and "rotate" in out["error"]["hint"]
    assert server_enforcement(sandbox) is None


def test_a45_enforcement_60_days_out_with_10_days_left_is_refused_and_an_earlier_time_works(onboard, cli, sandbox):
    onboard_with_lifetime(sandbox, onboard, timedelta(days=10))
    code, out = cli("enforce", "--profile", "p", "--at", at(timedelta(days=60)))
    assert code == 3 and "choose a start no later than" in out["error"]["message"], out
    assert server_enforcement(sandbox) is None
    code, out = cli("enforce", "--profile", "p", "--at", at(timedelta(days=1)))
    assert code == 0 and out["enforcement_mode"] == "REPORTING", out
    # allowed, but inside the renewal window when it starts: said
    assert any("rotate it before then" in w for w in out["warnings"]), out


def test_a_runtime_whose_certificate_expires_first_is_refused_unless_left_out(hosts, onboard, cli, sandbox):
    onboard("mgr")
    sandbox.certificate_lifetime = timedelta(seconds=240)
    onboard_runtime(hosts, cli, "host-a", "refunds")  # its certificate lives 4 minutes
    sandbox.certificate_lifetime = FOREVER
    probe_and_report(hosts, cli, "host-a")  # VALID and fresh: ready by the report alone
    code, out = cli("enforce", "--profile", "mgr", "--at", "NOW")
    assert code == 3 and "current certificate of runtime refunds expires at" in out["error"]["message"], out
    assert server_enforcement(sandbox) is None
    code, out = cli("enforce", "--profile", "mgr", "--at", "NOW", "--leave-out", "refunds")
    assert code == 0, out  # left out on purpose: not counted


# ---------------------------------------------------------------- LO-09
def test_lo09_a_clock_behind_klarnas_date_refuses_enforcing(onboard, cli, sandbox):
    onboard()
    sandbox.configure(date_follows_clock=True)
    sandbox.advance_clock(timedelta(days=3).total_seconds())  # Klarna's Date is 3 days ahead of ours
    code, out = cli("enforce", "--profile", "p", "--at", "NOW")
    assert code == 3 and "3.0 d behind Klarna's" in out["error"]["message"], out
    assert "clock" in out["error"]["hint"]
    assert server_enforcement(sandbox) is None


def test_lo09_a_session_clock_three_days_slow_is_refused_too(onboard, sandbox):
    """The red team's skewed.py: the tool's own clock shifted, Klarna's Date right."""
    onboard()
    slow = Session(Paths.from_env(), "p", clock=lambda: rules.utc_now() - timedelta(days=3))
    slow.unlock(sandbox.api_key)
    with pytest.raises(InterlockRefused, match="behind Klarna's"):
        asyncio.run(onboarding.enforce(slow, "NOW"))
    assert server_enforcement(sandbox) is None


# ---------------------------------------------------------------- LO-10
def test_lo10_check_is_critical_when_a_scheduled_enforcement_outlives_the_installed_certificate(onboard, cli, sandbox):
    onboard_with_lifetime(sandbox, onboard, timedelta(days=30))
    schedule_elsewhere(sandbox, "p", at(timedelta(days=40)))  # after the expiry: no gate on that path
    code, out = cli("check", "--profile", "p", "--warn-days", "60", "--critical-days", "14")
    assert code == 2, out
    scheduled = [f for f in out["findings"] if f["check"] == "scheduled enforcement"]
    assert scheduled and scheduled[0]["severity"] == "critical"
    assert "Enforcement applies at" in scheduled[0]["summary"] and "installed here" in scheduled[0]["summary"]
    code, status = cli("status", "--profile", "p")
    assert code == 2 and status["enforcement_outlook_severity"] == "critical", status
    assert any("expires at" in line for line in status["enforcement_outlook"])
    code, doctor = cli("doctor", "--profile", "p")
    assert any(f["check"] == "scheduled enforcement" and f["severity"] == "critical" for f in doctor["findings"])


def test_lo10_a_runtime_not_ready_when_enforcement_applies_is_critical_and_named(hosts, onboard, cli, sandbox):
    onboard("mgr")
    code, out = cli("enforce", "--profile", "mgr", "--at", at(timedelta(hours=1)))
    assert code == 0, out
    issued = onboard_runtime(hosts, cli, "host-late", "late")  # issued after the enforcement was scheduled
    assert "Enforcement applies at" in (issued["enforcement_notice"] or ""), issued  # LO-10: said at issue
    code, out = cli("check", "--profile", "mgr")
    assert code == 2, out
    scheduled = [f for f in out["findings"] if f["check"] == "scheduled enforcement" and f["severity"] == "critical"]
    assert any("Runtime late is not ready" in f["summary"] for f in scheduled), out
    assert all("Enforcement applies at" in f["summary"] for f in scheduled)
    # what `runtime issue` / `runtime request` can say (their call site: enforcement_notice)
    from wizard.services.enforcement_timeline import enforcement_notice

    notice = asyncio.run(enforcement_notice(session_for("mgr", sandbox), "late"))
    assert notice is not None and "Enforcement applies at" in notice and "runtime late" in notice


def test_a_healthy_schedule_is_reported_ok(onboard, cli, sandbox):
    onboard()
    assert cli("enforce", "--profile", "p", "--at", at(timedelta(days=2)))[0] == 0
    code, out = cli("check", "--profile", "p")
    assert code == 0, out
    scheduled = [f for f in out["findings"] if f["check"] == "scheduled enforcement"]
    assert [f["severity"] for f in scheduled] == ["ok"]


# ---------------------------------------------------------------- LO-20
def test_lo20_onboard_enforce_at_now_after_unenforce_enforces_again(onboard, cli, sandbox):
    first = onboard(enforce_at="NOW")
    assert first["stage"] == "DONE" and first["enforcement"]["mode"] == "ENFORCED"
    code, out = cli("unenforce", "--profile", "p")
    assert code == 0 and server_enforcement(sandbox) is None
    again = onboard(enforce_at="NOW")  # the documented CI command
    assert server_enforcement(sandbox) is not None, again  # it really asked Klarna again
    assert again["stage"] == "DONE" and again["enforcement"]["mode"] == "ENFORCED"
    assert again["enforcement"]["observed_at"]


def test_lo20_the_support_bundle_does_not_say_enforced_after_unenforce(onboard, cli, sandbox):
    onboard(enforce_at="NOW")
    assert cli("unenforce", "--profile", "p")[0] == 0
    code, bundle = cli("support-bundle", "--profile", "p")
    enforcement = bundle["enforcement"]
    assert "ENFORCED" not in json.dumps(enforcement), enforcement
    assert enforcement["last_observed"] == "REPORTING" and enforcement["observed_at"]
    assert bundle["stage"] == "ENFORCE"


@BOTH_ANSWER_MODES
def test_lo20_a_removal_elsewhere_reopens_the_enforce_stage_before_it_is_printed(onboard, cli, sandbox):
    onboard(enforce_at="NOW")
    with sandbox._state.lock:  # removed in the portal: the journal still says DONE / ENFORCED
        sandbox._state.remove_enforcement(sandbox.account_id)
        sandbox._state.save()
    code, status = cli("status", "--profile", "p")
    assert status["stage"] == "ENFORCE" and "the Enforce stage is open again" in status["stage_note"], status
    summary = onboard()  # --enforce-at never: reports what Klarna says, not the cache
    assert summary["stage"] == "ENFORCE" and summary["enforcement"]["mode"] == "REPORTING"


# ---------------------------------------------------------------- A57
def test_a57_a_poll_interval_longer_than_the_limit_is_refused_before_any_work(cli, sandbox, monkeypatch):
    from tests_support import sandbox_profile_args

    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    code, out = cli(
        "onboard", "--profile", "p", *sandbox_profile_args(sandbox), "--poll-interval", "400", "--poll-limit", "1"
    )
    assert code == 3 and "--poll-limit" in out["error"]["message"], out
    assert not Paths.from_env().journal_path("p").exists()
