"""A rotation never makes things worse, every flow finishes, and the way back (issue 21, rules 2,
4 and 5), each test built from the red team's reproduction (reviews/redteam-fresh-t3.md) against
the sandbox over real mTLS: short certificate lifetimes, the sandbox clock, injected faults, a
hostile issuer standing in for Klarna's CA, and real SIGKILLs in a subprocess."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shlex
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from tests_support import self_signed, session_for

from wizard.core import crypto, rules
from wizard.core.errors import WizardError, storage_error
from wizard.core.journal import Journal
from wizard.core.paths import Paths
from wizard.core.replacement import Replacement, judge
from wizard.klarna import client
from wizard.sandbox.server import Fault
from wizard.services import certificate_rotation
from wizard.services.install import current_pair
from wizard.services.session import Session

pytestmark = pytest.mark.e2e
ROTATE = ("rotate", "--profile", "p", "--poll-interval", "0.05")
THREE_YEARS = 94608000


def statuses(status: dict) -> dict[str, str]:
    return {c["credential_id"]: c["status"] for c in status["certificates"]}


def enforce_elsewhere(sandbox, when: str = "NOW") -> None:
    """Enforcement set on the account by another system (Klarna's portal, another machine)."""
    state = sandbox._state
    with state.lock:
        state.set_enforcement(sandbox.account_id, {"enforced_from": when})
        state.save()


# ---------------------------------------------------------------- rule 2: never worse (LO-02, LO-13)
@pytest.mark.parametrize(
    ("lifetime", "reasons"),
    [
        (30, ["inside the 60-day renewal window", "before the certificate it would replace"]),
        (2 * 365 * 86400, ["before the certificate it would replace"]),
    ],
)
def test_rotate_never_switches_to_a_certificate_that_expires_sooner(onboard, sandbox, cli, lifetime, reasons):
    """LO-02: `rotate --retire-old` while Klarna issues 30-second (or 2-year) certificates."""
    old = onboard(enforce_at="NOW")["certificate_id"]
    sandbox.configure(certificate_lifetime_seconds=lifetime)
    code, out = cli(*ROTATE, "--retire-old")
    sandbox.configure(certificate_lifetime_seconds=THREE_YEARS)
    assert code == 3 and out["error"]["title"] == "Rotation ended: certificate not used"
    assert all(reason in out["error"]["message"] for reason in reasons), out["error"]["message"]
    unused = list(session_for("p", sandbox).state.flows.unused_certificates)
    assert len(unused) == 1 and unused[0] in out["error"]["message"] + out["error"]["hint"]
    sandbox.advance_clock(45)  # the 30-second certificate is expired at Klarna by now
    code, status = cli("status", "--profile", "p")
    assert code == 0 and status["verification"] == "VALID" and status["current_id"] == old
    assert statuses(status)[old] == "ACTIVE"  # never retired


def hostile_issuer(sandbox, monkeypatch, variant: str) -> None:
    """Klarna's answer replaced by a certificate that must not be used (the red team's sc_certs.py)."""
    state = sandbox._state
    real_sign = state._sign

    def sign(csr, account_id):
        cert = real_sign(csr, account_id)
        subject, issuer, signer = cert.subject, cert.issuer, state.ca_key
        public_key, ca = cert.public_key(), False
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
        if variant == "cn":
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SOMEONE-ELSE")])
        elif variant == "otherkey":
            public_key = crypto.make_private_key().public_key()
        elif variant == "ca":
            ca = True
        elif variant == "expired":
            not_before, not_after = not_before - timedelta(days=20), datetime.now(UTC) - timedelta(days=1)
        elif variant == "issuer":
            signer = crypto.make_private_key()
            issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Someone-Else-CA")])
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(signer, hashes.SHA256())
        )

    monkeypatch.setattr(state, "_sign", sign)


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ("cn", "CN is 'SOMEONE-ELSE'"),
        ("otherkey", "for another key"),
        ("ca", "CA:TRUE"),
        ("expired", "expired on"),
        ("issuer", "not by 'CN=Klarna-Network-Clients-Sandbox-CA'"),
    ],
)
def test_a_certificate_that_may_not_replace_the_current_one_ends_the_rotation_and_the_next_starts_afresh(
    onboard, sandbox, cli, monkeypatch, variant, reason
):
    """LO-13 (another CN) and LO-14 (another key, CA:TRUE, expired; one bad answer wedged every
    later rotate): the rotation ends with the reason, the current pair stays, nothing is retired,
    the unused certificate is recorded for certs revoke, and the next rotate starts afresh."""
    old = onboard(enforce_at="NOW")["certificate_id"]
    with monkeypatch.context() as hostile:
        hostile_issuer(sandbox, hostile, variant)
        code, out = cli(*ROTATE, "--retire-old")
    assert code == 3 and out["error"]["title"] == "Rotation ended: certificate not used"
    assert reason in out["error"]["message"]
    session = session_for("p", sandbox)
    assert session.state.flows.rotation is None
    [unused] = session.state.flows.unused_certificates
    code, status = cli("status", "--profile", "p")
    assert code == 0 and status["current_id"] == old and status["verification"] == "VALID"
    assert statuses(status)[old] == "ACTIVE"
    code, out = cli(*ROTATE, "--retire-old")  # Klarna answers properly again: not wedged
    assert code == 0 and out["new_certificate_id"] not in (old, unused) and out["retired"] is True
    code, out = cli("certs", "revoke", unused, "--profile", "p")
    if variant == "expired":  # Klarna lists it EXPIRED already: nothing to revoke, and nothing to remember
        assert code == 3 and "already EXPIRED" in out["error"]["message"]
    else:
        assert code == 0
    assert not session_for("p", sandbox).state.flows.unused_certificates


def test_a_cn_klarna_assigns_in_its_documented_form_is_accepted_with_a_note(onboard, sandbox, cli):
    onboard()
    sandbox.configure(assigned_cn=True)
    code, out = cli(*ROTATE)
    assert code == 0 and any("the form it documents for a CN it assigns" in note for note in out["notes"])
    reopened = session_for("p", sandbox)  # the journal as the next command reads it
    assert reopened.model.pulled_back is None and reopened.evidence.certificate_id == out["new_certificate_id"]
    sandbox.configure(assigned_cn=False)
    code, again = cli(*ROTATE)  # the next rotation asks for the profile's own CN again
    assert code == 0 and again["notes"] == []


def test_the_judgement_of_a_replacement_names_every_reason():
    key, other = crypto.make_private_key(), crypto.make_private_key()
    account = "krn:partner:global:account:test:LYABCDEI"
    current = crypto.load_certificate(self_signed(key, "LYABCDEI", days=400))
    short = self_signed(key, "LYABCDEI-0123456789abcdef", days=30)
    verdict = judge(
        Replacement(short, crypto.public_key_id(other), "LYABCDEI", account, crypto.certificate_pem(current).decode()),
        datetime.now(UTC),
    )
    words = " ".join(verdict.reasons)
    assert "another key" in words and "renewal window" in words and "before the certificate" in words
    assert verdict.notes and "LYABCDEI-0123456789abcdef" in verdict.notes[0]
    assert rules.is_assigned_cn("LYABCDEI-0123456789abcdef", account)
    assert rules.is_assigned_cn("LYABCDEI-0123456789ABCDEF", account)  # the docs do not say the hex case
    assert not rules.is_assigned_cn("LYABCDEI-0123456789abcdeg", account)
    assert not rules.is_assigned_cn("LYABCDEI-0123456789abcde", account)
    assert not rules.is_assigned_cn("SOMEONE-0123456789abcdef", account)


# ---------------------------------------------------------------- rotate --abandon (LO-14)
def test_rotate_abandon_ends_a_rotation_that_cannot_finish_and_the_next_starts_fresh(onboard, sandbox, cli):
    old = onboard(enforce_at="NOW")["certificate_id"]
    sandbox.configure(propagation_delay=3600)  # the enforced account does not accept the new pair…
    sandbox.advance_clock(3601)  # …while the current one, older than that, stays accepted
    session = session_for("p", sandbox)
    with pytest.raises(WizardError, match="not seen VALID"):
        asyncio.run(certificate_rotation.rotate(session, verify_attempts=2, verify_interval=0.01))
    stuck = session_for("p", sandbox).state.flows.rotation
    assert stuck is not None and stuck.step == "verify" and stuck.certificate_id
    code, out = cli("rotate", "--profile", "p", "--abandon")
    assert code == 0 and out["unused_certificate_id"] == stuck.certificate_id
    assert out["in_use_certificate_id"] == old and f"certs revoke --profile p {stuck.certificate_id}" in out["message"]
    reopened = session_for("p", sandbox)
    assert reopened.state.flows.rotation is None and stuck.certificate_id in reopened.state.flows.unused_certificates
    code, status = cli("status", "--profile", "p")
    assert code == 0 and status["current_id"] == old and status["verification"] == "VALID"
    sandbox.configure(propagation_delay=0)
    code, out = cli(*ROTATE)  # afresh: a new key, a new certificate
    assert code == 0 and out["new_certificate_id"] not in (old, stuck.certificate_id)
    code, out = cli("rotate", "--profile", "p", "--abandon")
    assert code == 0 and "nothing was changed" in out["message"]


# ---------------------------------------------------------------- rule 5: every flow finishes
RUNNER = textwrap.dedent("""
    import os, signal, sys
    point = os.environ["KILL_POINT"]
    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    async def die_async(*args, **kwargs):
        die()
    from wizard.klarna import client
    if point == "revoke":  # between the switch and the revoke of rotate --retire-old
        client.KlarnaClient.revoke_certificate = die_async
    elif point == "grace":  # during the grace period (this version's wait, or an earlier one's sleep)
        import time
        from wizard.services import certificate_rotation
        certificate_rotation.grace_pause = die_async
        real_sleep = time.sleep
        time.sleep = lambda seconds: die() if seconds >= 1 else real_sleep(seconds)
    elif point == "hook":  # renew switched to the new pair; its deploy hook is about to run
        from wizard.services import renewal
        renewal.run_deploy_hook = die
    elif point == "created_key":  # Klarna created the key; the answer never reaches the store
        real_create = client.KlarnaClient.create_api_key
        async def create(self, *args, **kwargs):
            await real_create(self, *args, **kwargs)
            die()
        client.KlarnaClient.create_api_key = create
    from wizard.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def killed(point: str, *argv: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, *argv, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KILL_POINT": point},
    )
    assert done.returncode == -9, (done.returncode, done.stderr[-800:])


def test_a_kill_between_the_switch_and_the_revoke_is_finished_by_the_rerun(onboard, sandbox, cli):
    """RS-01: the old certificate stayed ACTIVE for good and the rerun rotated all over again."""
    old = onboard(enforce_at="NOW")["certificate_id"]
    killed("revoke", *ROTATE, "--retire-old")
    flow = session_for("p", sandbox).state.flows.rotation
    assert flow is not None and flow.step == "retire"
    code, out = cli(*ROTATE, "--retire-old")
    assert code == 0 and out["old_certificate_id"] == old and out["new_certificate_id"] == flow.certificate_id
    code, status = cli("status", "--profile", "p")
    assert statuses(status) == {old: "REVOKED", flow.certificate_id: "ACTIVE"}  # finished, not a new rotation
    assert status["current_id"] == flow.certificate_id and status["verification"] == "VALID"


def test_a_kill_during_the_grace_period_is_finished_when_it_is_over(onboard, sandbox, paths):
    old = onboard(enforce_at="NOW")["certificate_id"]
    killed("grace", *ROTATE, "--retire-old", "--grace", "600")
    later = Session(paths, "p", clock=lambda: rules.utc_now() + timedelta(seconds=601))  # the grace is over
    later.unlock(sandbox.api_key)
    result = asyncio.run(certificate_rotation.rotate(later, verify_interval=0.05))
    assert result.old_certificate_id == old and result.retired
    listed = {c.credential_id: c.status for c in asyncio.run(session_for("p", sandbox).look()).certificates}
    assert listed == {old: "REVOKED", result.new_certificate_id: "ACTIVE"}


@pytest.mark.parametrize(("rerun", "later"), [("renew", 601), ("rotate", 601), ("renew", 200)])
def test_a_renew_killed_during_its_grace_period_is_finished_by_the_next_run(
    onboard, sandbox, cli, monkeypatch, tmp_path, rerun, later
):
    """renew --retire-old --grace journals the retirement as rotate's does (RS-01 for renew): the
    next renew (or rotate), ``later`` seconds on, waits only what is left of the grace (none once
    it is over) and revokes the old certificate exactly once, without a new rotation or a second
    deploy hook."""
    sandbox.certificate_lifetime = timedelta(days=30)  # inside its 60-day renewal window at once
    old = onboard(enforce_at="NOW")["certificate_id"]
    sandbox.certificate_lifetime = timedelta(days=90)
    hook_runs = tmp_path / "hook-runs"
    hook = f"{sys.executable} -c \"open('{hook_runs}', 'a').write('ran\\n')\""
    renew = ("renew", "--profile", "p", "--deploy-hook", hook, "--retire-old", "--poll-interval", "0.05")
    killed("grace", *renew, "--grace", "600")
    flow = session_for("p", sandbox).state.flows.rotation
    assert flow is not None and flow.step == "retire" and flow.old_certificate_id == old
    new = flow.certificate_id
    sandbox.advance_clock(later)  # Klarna's clock and this machine's move together
    monkeypatch.setitem(Session.__init__.__kwdefaults__, "clock", sandbox.now)
    pauses: list[float] = []
    revoked: list[str] = []
    real_revoke = client.KlarnaClient.revoke_certificate

    async def pause(seconds):
        pauses.append(seconds)

    async def revoke(self, credential_id, *args, **kwargs):
        revoked.append(credential_id)
        return await real_revoke(self, credential_id, *args, **kwargs)

    monkeypatch.setattr(certificate_rotation, "grace_pause", pause)
    monkeypatch.setattr(client.KlarnaClient, "revoke_certificate", revoke)
    argv = renew if rerun == "renew" else ROTATE
    code, out = cli(*argv)
    assert code == 0 and out["old_certificate_id"] == old and out["new_certificate_id"] == new, out
    if rerun == "renew":  # and the next cron run has nothing left to do
        code, again = cli(*argv)
        assert code == 0 and again["action"] == "nothing", again
    assert revoked == [old] and 600 - later - 60 < sum(pauses) <= max(0, 600 - later)  # what was left, if any
    assert hook_runs.read_text() == "ran\n"  # the hook ran once, before the retirement was journaled
    code, status = cli("status", "--profile", "p")
    assert statuses(status) == {old: "REVOKED", new: "ACTIVE"}  # finished, not a new rotation
    assert status["current_id"] == new and status["verification"] == "VALID"


def test_a_renew_killed_before_its_deploy_hook_runs_the_hook_on_the_next_run_then_retires(
    onboard, sandbox, cli, monkeypatch, tmp_path
):
    """Rule 5 for renew: killed after the switch, before the deploy hook, the rerun used to say
    "nothing to do" (the new pair is outside its window), so nginx kept the old certificate loaded
    and the old one was never retired. The hook owed is journaled: a rerun without --deploy-hook
    says so (a warning), a rerun with it runs it once with the new pair's paths, then retires."""
    sandbox.certificate_lifetime = timedelta(days=30)  # inside its 60-day renewal window at once
    old = onboard(enforce_at="NOW")["certificate_id"]
    sandbox.certificate_lifetime = timedelta(days=90)
    out_file = tmp_path / "hook-runs.jsonl"
    script = (
        "import json, os, sys; open(sys.argv[1], 'a').write(json.dumps("
        "{k: v for k, v in os.environ.items() if k.startswith('KLARNA_MTLS')}) + '\\n')"
    )
    hook = shlex.join([sys.executable, "-c", script, str(out_file)])
    renew = ("renew", "--profile", "p", "--retire-old", "--grace", "60", "--poll-interval", "0.05")
    killed("hook", *renew, "--deploy-hook", hook)
    flow = session_for("p", sandbox).state.flows.rotation
    assert flow is not None and flow.step == "done" and flow.deploy_hook_owed and not out_file.exists()
    new = flow.certificate_id
    revoked: list[str] = []
    real_revoke = client.KlarnaClient.revoke_certificate

    async def revoke(self, credential_id, *args, **kwargs):
        revoked.append(credential_id)
        return await real_revoke(self, credential_id, *args, **kwargs)

    async def pause(seconds):
        pass

    monkeypatch.setattr(certificate_rotation, "grace_pause", pause)
    monkeypatch.setattr(client.KlarnaClient, "revoke_certificate", revoke)
    code, out = cli(*renew)  # cron without the hook: the hook is owed, not "nothing to do"
    assert code == 1 and out["action"] == "renewed" and any("--deploy-hook" in n for n in out["notes"]), out
    assert revoked == [] and not out_file.exists()
    code, out = cli(*renew, "--deploy-hook", hook)
    assert code == 0 and out["old_certificate_id"] == old and out["new_certificate_id"] == new, out
    assert out["retired"] == old and revoked == [old]
    [run] = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert run["KLARNA_MTLS_CREDENTIAL_ID"] == new and run["KLARNA_MTLS_OLD_CREDENTIAL_ID"] == old
    installed_for_hook = crypto.load_certificate(Path(run["KLARNA_MTLS_CERT"]).read_bytes())
    assert crypto.fingerprint_sha256(installed_for_hook) == flow.fingerprint
    code, again = cli(*renew, "--deploy-hook", hook)  # the next cron run: nothing left to do
    assert code == 0 and again["action"] == "nothing", again
    assert len(out_file.read_text().splitlines()) == 1 and revoked == [old]
    code, status = cli("status", "--profile", "p")
    assert statuses(status) == {old: "REVOKED", new: "ACTIVE"}
    assert status["current_id"] == new and status["verification"] == "VALID"


def test_a_deploy_hook_owed_by_a_killed_renew_is_still_owed_after_a_manual_rotate(onboard, sandbox, cli, tmp_path):
    """A renew killed before its deploy hook leaves the service on the old pair, the hook owed. A
    manual rotate in between started a new flow without the debt: the next renew said "nothing to
    do" and the service, never reloaded, stayed on a certificate in its renewal window."""
    sandbox.certificate_lifetime = timedelta(days=30)  # inside its 60-day renewal window at once
    onboard(enforce_at="NOW")
    sandbox.certificate_lifetime = timedelta(days=90)
    out_file = tmp_path / "hook-runs"
    hook = shlex.join([sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write('ran\\n')", str(out_file)])
    renew = ("renew", "--profile", "p", "--poll-interval", "0.05", "--deploy-hook", hook)
    killed("hook", *renew)
    code, rotated = cli(*ROTATE)
    assert code == 0, rotated
    flow = session_for("p", sandbox).state.flows.rotation
    assert flow is not None and flow.deploy_hook_owed  # the service has still not been reloaded
    code, out = cli(*renew)
    assert code == 0 and out["action"] == "renewed", out
    assert out_file.read_text() == "ran\n"  # reloaded onto the pair in use now
    assert out["new_certificate_id"] == rotated["new_certificate_id"]
    code, again = cli(*renew)
    assert code == 0 and again["action"] == "nothing", again


def test_a_full_disk_after_the_certificate_was_issued_says_what_changed(onboard, sandbox, cli, monkeypatch, paths):
    """FS-09: "nothing was changed" while Klarna had issued a certificate."""
    old = onboard()["certificate_id"]
    real_save = Journal.save

    def full_disk(journal, state):
        flow = state.flows.rotation
        if flow is not None and flow.certificate_id and flow.step == "install":
            raise storage_error(paths.journal_path("p"), OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        return real_save(journal, state)

    with monkeypatch.context() as full:
        full.setattr(Journal, "save", full_disk)
        code, out = cli(*ROTATE)
    issued = [cid for cid, e in sandbox._state.data["certificates"].items() if cid != old]
    said = out["error"]["message"] + " " + out["error"]["hint"]
    assert code == 3 and len(issued) == 1 and issued[0] in said and "the disk is full" in said
    assert "nothing was changed" not in said.lower() and "reconciles" in said
    code, out = cli(*ROTATE)  # space again: the same certificate, reconciled, not a second one
    assert code == 0 and out["new_certificate_id"] == issued[0]
    assert len(sandbox._state.data["certificates"]) == 2


def api_keys_described(sandbox, description: str) -> dict[str, str]:
    return {
        cid: e["status"]
        for cid, e in sandbox._state.data["api_keys"].items()
        if e["account_id"] == sandbox.account_id and e["description"] == description
    }


def test_a_lost_keys_create_answer_is_found_and_disabled_never_called_nothing_lost(onboard, sandbox, cli):
    """RS-04: the answer dropped after Klarna committed ("Try again; nothing is lost")."""
    onboard()
    sandbox.inject(Fault(kind="drop_after_commit", operation="create_api_key", count=10))
    code, out = cli("keys", "create", "--profile", "p", "--description", "checkout eu", "--show-secret-once")
    sandbox.clear_faults()
    said = json.dumps(out).lower()
    assert code == 3 and "nothing is lost" not in said and "may have created" in said
    [lost] = api_keys_described(sandbox, "checkout eu")
    code, out = cli("keys", "create", "--profile", "p", "--description", "refunds eu", "--show-secret-once")
    assert code == 3 and lost in out["error"]["message"] and "--lost-key" in out["error"]["hint"]
    assert api_keys_described(sandbox, "refunds eu") == {}  # nothing else created meanwhile
    create = ("keys", "create", "--profile", "p", "--description", "refunds eu", "--show-secret-once")
    code, out = cli(*create, "--lost-key", "disable")
    assert code == 0 and out["secret"] and api_keys_described(sandbox, "checkout eu") == {lost: "DISABLED"}
    assert session_for("p", sandbox).state.flows.key_creation is None


def test_a_keys_create_killed_after_klarna_created_the_key_is_reconciled(onboard, sandbox, cli):
    onboard()
    killed("created_key", "keys", "create", "--profile", "p", "--description", "refunds eu", "--show-secret-once")
    [made] = api_keys_described(sandbox, "refunds eu")
    code, out = cli("keys", "reconcile", "--profile", "p")
    assert code == 3 and made in out["error"]["message"]
    code, out = cli("keys", "reconcile", "--profile", "p", "--lost-key", "record")
    assert code == 0 and made in out["message"] and api_keys_described(sandbox, "refunds eu") == {made: "ACTIVE"}
    code, out = cli("keys", "reconcile", "--profile", "p")
    assert code == 0 and "nothing to do" in out["message"]


def test_a_create_that_never_reached_klarna_is_proven_to_have_made_nothing(onboard, sandbox, cli):
    onboard()
    sandbox.inject(Fault(kind="reset", operation="create_api_key", count=10))  # refused before any commit
    code, out = cli("keys", "create", "--profile", "p", "--description", "checkout eu", "--show-secret-once")
    sandbox.clear_faults()
    assert code == 3 and out["error"]["title"] == "Outcome unknown"
    code, out = cli("keys", "create", "--profile", "p", "--description", "checkout eu", "--show-secret-once")
    assert code == 0 and len(api_keys_described(sandbox, "checkout eu")) == 1  # the listing proved none was made


# ---------------------------------------------------------------- rule 4: the way back (LO-03)
def onboard_short_lived(onboard, sandbox, seconds: int = 10) -> str:
    """Onboard with a certificate that expires ``seconds`` from now, then wait until the TLS
    handshake refuses it (the sandbox checks X.509 validity on real time)."""
    sandbox.configure(certificate_lifetime_seconds=seconds)
    certificate_id = onboard()["certificate_id"]
    sandbox.configure(certificate_lifetime_seconds=THREE_YEARS)
    pair = current_pair(Session(Paths.from_env(), "p").install_dir)
    expires = crypto.load_certificate(pair.cert_path.read_bytes()).not_valid_after_utc
    while datetime.now(UTC) <= expires + timedelta(seconds=1):  # a wait for the expiry, not a timed assertion
        time.sleep(0.2)
    return certificate_id


def test_a_refused_installed_pair_is_recovered_without_a_certificate_while_enforcement_is_off(onboard, sandbox, cli):
    """LO-03 (with LO-01's scheduled enforcement): every command presented the expired pair."""
    old = onboard_short_lived(onboard, sandbox)
    enforce_elsewhere(sandbox, rules.format_utc(sandbox.now() + timedelta(hours=1)))
    for argv in (("status",), ("certs", "list")):
        code, out = cli(*argv, "--profile", "p")
        assert code == 2 and out["verification"] == "REJECTED" and statuses(out)[old] == "EXPIRED"
        assert "calls Klarna without a client certificate" in out["note"] and "scheduled from" in out["note"]
    code, out = cli("status", "--all")  # every profile takes the same way back, each with its note
    [row] = out["profiles"]
    assert code == 2 and row["ok"] and row["verification"] == "REJECTED" and statuses(row)[old] == "EXPIRED"
    assert "calls Klarna without a client certificate" in row["note"]
    code, out = cli("unenforce", "--profile", "p")
    assert code == 0 and "without a client certificate" in out["note"]
    code, out = cli(*ROTATE)
    assert code == 0 and any("without a client certificate" in note for note in out["notes"])
    code, status = cli("status", "--profile", "p")
    assert code == 0 and status["verification"] == "VALID" and status["current_id"] == out["new_certificate_id"]


def test_a_refused_installed_pair_on_an_enforced_account_says_what_is_locked(onboard, sandbox, cli):
    onboard_short_lived(onboard, sandbox)
    enforce_elsewhere(sandbox)
    sandbox.advance_clock(sandbox.enforcement_delay + 1)  # enforcement applies
    for argv in (ROTATE, ("status", "--profile", "p"), ("unenforce", "--profile", "p")):
        code, out = cli(*argv)
        assert code == 3 and out["error"]["title"] == "Locked out: mTLS enforced", out
        assert "mTLS is enforced on this account" in out["error"]["message"] and "Locked:" in out["error"]["message"]
        hint = out["error"]["hint"]  # the way that keeps the account enforced first; unenforcing last
        assert "klarna-mtls repair --profile p" in hint and "runtime request --name NAME --profile p" in hint
        assert hint.index("repair") < hint.index("runtime issue") < hint.index("runtime install")
        assert hint.index("runtime install") < hint.index("last resort") < hint.index("unenforce") and "portal" in hint
