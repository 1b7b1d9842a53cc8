"""`klarna-mtls renew` (issue 24): unattended renewal as certbot does it, driven by the sandbox's
short certificate lifetimes. Outside the renewal window nothing happens; inside it the pair
rotates without a gap, the deploy hook runs once with the new paths, and the old certificate is
revoked after the grace (time is the injected sleep, never waited for)."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from tests_support import onboard_with_store, session_for

from wizard.core import crypto
from wizard.core.env_vars import API_KEY_ENV

pytestmark = pytest.mark.e2e

WINDOW_OPEN = timedelta(days=30)  # issued this short, a certificate is in its 60-day window at once
WINDOW_SHUT = timedelta(days=90)  # its window opens in 30 days


def recording_hook(tmp_path) -> tuple[str, object]:
    """A deploy hook that appends its KLARNA_* environment to a file, one JSON line per run."""
    out = tmp_path / "hook-runs.jsonl"
    script = (
        "import json, os, sys; "
        "open(sys.argv[1], 'a').write(json.dumps({k: v for k, v in os.environ.items() if k.startswith('KLARNA')}) + '\\n')"
    )
    return shlex.join([sys.executable, "-c", script, str(out)]), out


def runs(out) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def status_of(sandbox, profile: str, credential_id: str) -> str:
    from wizard.services.status import gather_status

    session = session_for(profile, sandbox)
    session.read_only = True
    listed = asyncio.run(gather_status(session)).certificates
    return next(c.status for c in listed if c.credential_id == credential_id)


def fake_grace_clock(monkeypatch, on_sleep) -> None:
    """The grace period's waits (the rotation's journaled retire step, which renew and rotate
    --also-export schedule after the switch) go to ``on_sleep`` instead of passing: no test waits
    for real time."""
    from wizard.services import certificate_rotation

    async def pause(seconds: float) -> None:
        await asyncio.to_thread(on_sleep, seconds)  # off the loop: ``on_sleep`` may call Klarna itself

    monkeypatch.setattr(certificate_rotation, "grace_pause", pause)


@pytest.fixture
def sleeps(monkeypatch):
    """The grace period's sleeps, recorded instead of waited."""
    seen: list[float] = []
    fake_grace_clock(monkeypatch, seen.append)
    return seen


def test_outside_the_renewal_window_renew_does_nothing(onboard, cli, sandbox, tmp_path, sleeps):
    sandbox.certificate_lifetime = WINDOW_SHUT
    done = onboard()
    hook, out = recording_hook(tmp_path)
    code, result = cli("renew", "--profile", "p", "--deploy-hook", hook, "--retire-old", "--grace", "60")
    assert code == 0, result
    assert result["action"] == "nothing" and "the renewal window opens on" in result["message"]
    assert "(in 29 days)" in result["message"] or "(in 30 days)" in result["message"]
    assert runs(out) == [] and sleeps == []
    code, status = cli("status", "--profile", "p")
    assert status["current_id"] == done["certificate_id"] and len(status["certificates"]) == 1


def test_inside_the_window_renew_rotates_runs_the_hook_once_and_retires_after_the_grace(
    onboard, cli, sandbox, tmp_path, monkeypatch
):
    sandbox.certificate_lifetime = WINDOW_OPEN
    old = onboard(enforce_at="NOW")
    sandbox.certificate_lifetime = WINDOW_SHUT  # the renewed certificate is outside its window
    old_id = old["certificate_id"]
    during_grace: list[tuple[float, str]] = []
    fake_grace_clock(monkeypatch, lambda s: during_grace.append((s, status_of(sandbox, "p", old_id))))
    hook, out = recording_hook(tmp_path)
    argv = (
        "renew",
        "--profile",
        "p",
        "--deploy-hook",
        hook,
        "--retire-old",
        "--grace",
        "90",
        "--poll-interval",
        "0.05",
    )
    code, result = cli(*argv)
    assert code == 0, result
    assert result["action"] == "renewed" and result["old_certificate_id"] == old_id
    new_id, new_fingerprint = result["new_certificate_id"], result["new_fingerprint"]
    [run] = runs(out)
    assert run["KLARNA_MTLS_PROFILE"] == "p" and run["KLARNA_MTLS_CREDENTIAL_ID"] == new_id
    assert run["KLARNA_MTLS_OLD_CREDENTIAL_ID"] == old_id
    cert = crypto.load_certificate(Path(run["KLARNA_MTLS_CERT"]).read_bytes())
    assert crypto.fingerprint_sha256(cert) == new_fingerprint
    key = crypto.load_private_key(Path(run["KLARNA_MTLS_KEY"]).read_bytes())
    assert crypto.valid_cert_matches_key(cert, key)
    assert API_KEY_ENV not in run  # the hook never gets the tool's secrets
    assert result["deploy_hook"]["exit_code"] == 0
    assert sum(s for s, _ in during_grace) == 90 and {st for _, st in during_grace} == {"ACTIVE"}
    assert result["retired"] == old_id and status_of(sandbox, "p", old_id) == "REVOKED"
    code, status = cli("status", "--profile", "p")
    assert code == 0 and status["current_id"] == new_id and status["verification"] == "VALID"
    code, again = cli(*argv)  # the next cron run: outside the new certificate's window
    assert code == 0 and again["action"] == "nothing" and len(runs(out)) == 1


def test_a_failing_deploy_hook_is_a_warning_and_the_old_certificate_is_kept(onboard, cli, sandbox, sleeps):
    sandbox.certificate_lifetime = WINDOW_OPEN
    old = onboard()
    sandbox.certificate_lifetime = WINDOW_SHUT
    hook = shlex.join([sys.executable, "-c", "import sys; print('nginx: bad config'); sys.exit(4)"])
    code, result = cli("renew", "--profile", "p", "--deploy-hook", hook, "--retire-old", "--poll-interval", "0.05")
    assert code == 1, result
    assert result["action"] == "renewed" and result["deploy_hook"]["exit_code"] == 4
    assert result["deploy_hook"]["output"] == ["nginx: bad config"]
    assert result["retired"] is None and sleeps == []
    assert any("the old certificate is kept" in note for note in result["notes"])
    assert status_of(sandbox, "p", old["certificate_id"]) == "ACTIVE"


def test_a_hook_owed_and_run_by_hand_is_recorded_with_hook_done_and_the_old_certificate_then_retired(
    onboard, cli, sandbox, sleeps
):
    sandbox.certificate_lifetime = WINDOW_OPEN
    old_id = onboard()["certificate_id"]
    sandbox.certificate_lifetime = WINDOW_SHUT
    failing = shlex.join([sys.executable, "-c", "import sys; sys.exit(4)"])
    code, result = cli("renew", "--profile", "p", "--deploy-hook", failing, "--retire-old", "--poll-interval", "0.05")
    assert code == 1 and result["retired"] is None, result  # the hook is owed: the old certificate kept
    new_id = result["new_certificate_id"]
    code, result = cli("renew", "--profile", "p", "--retire-old")
    assert code == 1 and any("--hook-done" in note for note in result["notes"]), result  # the way out is named
    code, refused = cli("renew", "--profile", "p", "--hook-done", "--deploy-hook", "true")
    assert code == 3 and "--hook-done" in refused["error"]["message"], refused  # one or the other
    code, result = cli("renew", "--profile", "p", "--hook-done", "--retire-old", "--grace", "30")
    assert code == 0, result  # the service was reloaded by hand: said so, then the retirement
    assert "run by hand" in result["message"] and result["deploy_hook"] is None
    assert result["retired"] == old_id and sleeps == [30] and status_of(sandbox, "p", old_id) == "REVOKED"
    [confirmed] = [e for e in session_for("p", sandbox).audit.entries() if e["action"] == "deploy_hook_run_by_hand"]
    assert confirmed["certificate_id"] == new_id and confirmed["old_certificate_id"] == old_id
    code, refused = cli("renew", "--profile", "p", "--hook-done")  # nothing owed now: nothing is taken
    assert code == 3 and "No deploy hook is owed" in refused["message"], refused
    assert status_of(sandbox, "p", new_id) == "ACTIVE"


def test_a_hook_that_cannot_be_read_is_refused_before_anything_changes(onboard, cli, sandbox):
    sandbox.certificate_lifetime = WINDOW_OPEN
    old = onboard()
    code, result = cli("renew", "--profile", "p", "--deploy-hook", "systemctl 'reload nginx")
    assert code == 3 and "--deploy-hook" in result["error"]["message"]
    code, status = cli("status", "--profile", "p")
    assert status["current_id"] == old["certificate_id"] and len(status["certificates"]) == 1


def test_renew_with_a_broken_installed_pair_says_repair_first(onboard, cli, sandbox, paths):
    sandbox.certificate_lifetime = WINDOW_OPEN
    onboard()
    journal = json.loads(paths.journal_path("p").read_text())
    (Path(journal["settings"]["install_dir"]) / "current").resolve().joinpath("certificate.pem").write_text("x")
    code, result = cli("renew", "--profile", "p")
    assert code == 2 and result["action"] == "repair first"
    assert "klarna-mtls repair --profile p" in result["message"]


def test_renew_names_declared_runtimes_in_their_window(onboard, cli, sandbox):
    from wizard.core import rules
    from wizard.core.runtimes import RuntimeRecord

    sandbox.certificate_lifetime = WINDOW_SHUT
    onboard()
    session = session_for("p", sandbox)
    soon = rules.format_utc(rules.utc_now() + timedelta(days=20))
    session.state.runtimes["refunds"] = RuntimeRecord("refunds", ["krn:refunds:1"], "AA:BB", soon)
    session.save()
    code, result = cli("renew", "--profile", "p")
    assert code == 1 and result["action"] == "nothing"
    [due] = result["runtimes"]
    assert due["name"] == "refunds" and "klarna-mtls runtime request --name refunds --new-key" in due["commands"]
    assert "klarna-mtls runtime issue --profile p runtime-request-refunds.json" in due["commands"]


def test_renew_all_renews_each_profile_due_with_its_own_stored_key(sandbox, cli, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(API_KEY_ENV, sandbox.api_key)
    sandbox.certificate_lifetime = WINDOW_OPEN
    onboard_with_store(sandbox, "due", "keyring")
    sandbox.certificate_lifetime = WINDOW_SHUT
    onboard_with_store(sandbox, "later", "keyring")
    capsys.readouterr()
    monkeypatch.delenv(API_KEY_ENV)  # cron
    hook, out = recording_hook(tmp_path)
    code, result = cli("renew", "--all", "--deploy-hook", hook, "--poll-interval", "0.05")
    assert code == 0, result
    rows = {row["profile"]: row for row in result["profiles"]}
    assert rows["due"]["action"] == "renewed" and rows["later"]["action"] == "nothing"
    assert [run["KLARNA_MTLS_PROFILE"] for run in runs(out)] == ["due"]


def test_renew_all_interrupted_in_its_grace_period_leaves_every_retirement_to_the_next_run(
    sandbox, cli, monkeypatch, capsys
):
    """Every profile's retirement is journaled before the one grace period is waited out: an
    interruption during it leaves each old certificate active and due, and the next renew --all,
    once the grace is over, revokes each exactly there, without waiting again."""
    from wizard.services import certificate_rotation
    from wizard.services.session import Session

    monkeypatch.setenv(API_KEY_ENV, sandbox.api_key)
    sandbox.certificate_lifetime = WINDOW_OPEN
    for profile in ("a", "b"):
        onboard_with_store(sandbox, profile, "keyring")
    sandbox.certificate_lifetime = WINDOW_SHUT
    old = {p: session_for(p, sandbox).evidence.certificate_id for p in ("a", "b")}
    capsys.readouterr()
    monkeypatch.delenv(API_KEY_ENV)  # cron

    async def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(certificate_rotation, "grace_pause", interrupted)
    renew_all = ("renew", "--all", "--retire-old", "--grace", "600", "--poll-interval", "0.05")
    code, _ = cli(*renew_all)
    assert code == 130  # Ctrl+C: 128 + SIGINT
    for profile, old_id in old.items():
        flow = session_for(profile, sandbox).state.flows.rotation
        assert flow is not None and flow.step == "retire" and flow.old_certificate_id == old_id
        assert status_of(sandbox, profile, old_id) == "ACTIVE"
    sandbox.advance_clock(601)  # the grace is over: Klarna's clock and this machine's move together
    monkeypatch.setitem(Session.__init__.__kwdefaults__, "clock", sandbox.now)
    pauses: list[float] = []
    fake_grace_clock(monkeypatch, pauses.append)
    code, result = cli(*renew_all)
    assert code == 0, result
    rows = {row["profile"]: row for row in result["profiles"]}
    assert {p: rows[p]["retired"] for p in old} == old and pauses == []
    for profile, old_id in old.items():
        assert status_of(sandbox, profile, old_id) == "REVOKED"
        assert rows[profile]["new_certificate_id"] == session_for(profile, sandbox).evidence.certificate_id


def test_renew_help_says_what_hook_done_records(capsys):
    from wizard.cli import main

    with pytest.raises(SystemExit):
        main(["renew", "--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert "--hook-done" in said and "run by hand" in said and "refused when no hook is owed" in said
