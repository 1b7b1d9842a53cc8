"""Every runtime, not just this machine: one managing machine and several runtime hosts, each with
its own KLARNA_MTLS_HOME, against the real sandbox over loopback mTLS. Keys never move: request →
issue → install; probes report readiness; enforcement counts every declared runtime."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from tests_support import sandbox_profile_args, signed_report

from wizard.core import rules

pytestmark = pytest.mark.e2e
# Each flow runs against our sandbox's answers and against Klarna's documented fields only.
BOTH = pytest.mark.parametrize("sandbox", ["ours", "docs-only"], indirect=True)


class Hosts:
    """Switches KLARNA_MTLS_HOME between simulated hosts; exchanged files live in one folder."""

    def __init__(self, root: Path, monkeypatch, sandbox) -> None:
        self.root, self.monkeypatch, self.sandbox = root, monkeypatch, sandbox
        self.exchange = root / "exchange"
        self.exchange.mkdir()

    def home(self, name: str) -> Path:
        return self.root / "homes" / name

    def use(self, name: str) -> None:
        self.monkeypatch.setenv("KLARNA_MTLS_HOME", str(self.home(name)))

    def sandbox_flags(self) -> list[str]:
        sb = self.sandbox
        return [
            *sandbox_profile_args(sb),
        ]


@pytest.fixture
def hosts(tmp_path, monkeypatch, sandbox):
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    h = Hosts(tmp_path, monkeypatch, sandbox)
    h.use("manager")
    return h


def onboard_runtime(hosts: Hosts, cli, host: str, name: str) -> dict:
    """request on the host → issue on the manager → install on the host."""
    request, response = hosts.exchange / f"request-{name}.json", hosts.exchange / f"response-{name}.json"
    hosts.use(host)
    code, out = cli("runtime", "request", "--name", name, "--out", str(request), *hosts.sandbox_flags())
    assert code == 0, out
    hosts.use("manager")
    code, out = cli("runtime", "issue", str(request), "--profile", "mgr", "--out", str(response))
    assert code == 0, out
    hosts.use(host)
    code, installed = cli("runtime", "install", str(response))
    assert code == 0 and installed["verification_status"] == "VALID", installed
    hosts.use("manager")
    return out


def probe_and_report(hosts: Hosts, cli, host: str) -> dict:
    reports = hosts.exchange / "reports"
    hosts.use(host)
    code, report = cli("probe", "--report-dir", str(reports))
    hosts.use("manager")
    code2, recorded = cli("runtime", "report", str(reports), "--profile", "mgr")
    assert code2 == 0, recorded
    return {"code": code, "report": report, "recorded": recorded}


def wait_enforced(hosts: Hosts, cli) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        code, status = cli("status", "--profile", "mgr")
        if status["enforcement_mode"] == "ENFORCED":
            return
        time.sleep(0.2)
    raise AssertionError("enforcement never applied")


def private_key_needles(home: Path) -> dict[str, bytes]:
    """Every private key file of a home, as the forms its bytes could leak in."""
    needles = {}
    for path in home.rglob("private-key.pem"):
        if path.is_symlink() or "current" in path.parts:
            continue
        pem = path.read_bytes()
        body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
        needles[f"{path} (PEM body)"] = body
        needles[f"{path} (DER)"] = base64.b64decode(body)
    return needles


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


@BOTH
def test_enforcement_counts_runtimes_and_a_new_runtime_joins_after_enforcement(hosts, onboard, cli, sandbox):
    onboard("mgr")
    onboard_runtime(hosts, cli, "host-a", "checkout")
    onboard_runtime(hosts, cli, "host-b", "refunds")
    code, listing = cli("runtime", "list", "--profile", "mgr")
    assert code == 1 and listing["runtimes_summary"].startswith("0 of 2 runtimes VALID")

    # Only checkout reports: the gate refuses and names refunds, not checkout.
    assert probe_and_report(hosts, cli, "host-a")["report"]["verification_status"] == "VALID"
    code, out = cli("enforce", "--profile", "mgr", "--at", "NOW")
    assert code == 3, out
    assert "refunds: no readiness report yet" in out["error"]["message"]
    assert "checkout" not in out["error"]["message"]
    code, status = cli("status", "--profile", "mgr")
    assert status["runtimes_summary"].startswith("1 of 2 runtimes VALID, last seen ")
    assert status["enforcement_mode"] != "ENFORCED"

    # Once refunds has reported VALID too, enforcement is allowed.
    probe_and_report(hosts, cli, "host-b")
    code, out = cli("enforce", "--profile", "mgr", "--at", "NOW")
    assert code == 0, out
    wait_enforced(hosts, cli)

    # A new runtime after enforcement: its host has no certificate, the manager uses its own pair.
    response = onboard_runtime(hosts, cli, "host-c", "orders")
    result = probe_and_report(hosts, cli, "host-c")
    assert result["code"] == 0 and result["report"]["verification_status"] == "VALID"
    assert result["report"]["certificate_fingerprint"] == response["fingerprint"]
    code, listing = cli("runtime", "list", "--profile", "mgr")
    assert code == 0 and listing["runtimes_summary"].startswith("3 of 3 runtimes VALID")

    # Each private key's bytes exist only in its own home: not in any other home, not in any
    # exchanged file (requests, responses, reports).
    homes = {name: hosts.home(name) for name in ("manager", "host-a", "host-b", "host-c")}
    for owner, home in homes.items():
        needles = private_key_needles(home)
        assert needles, f"no key found in {owner}'s home"
        elsewhere = files_under(hosts.exchange, *(h for n, h in homes.items() if n != owner))
        for path in elsewhere:
            data = path.read_bytes()
            for label, needle in needles.items():
                assert needle not in data, f"{label} leaked into {path}"
    for exchanged in hosts.exchange.rglob("*.json"):
        assert b"PRIVATE KEY" not in exchanged.read_bytes() and sandbox.api_key.encode() not in exchanged.read_bytes()


def test_reports_for_another_account_or_an_unknown_certificate_are_refused(hosts, onboard, cli, sandbox):
    onboard("mgr")
    onboard_runtime(hosts, cli, "host-a", "checkout")
    reports = hosts.exchange / "reports"
    hosts.use("host-a")
    cli("probe", "--report-dir", str(reports))
    (written,) = reports.glob("checkout.*.json")
    good = json.loads(written.read_text())
    other_account, _ = sandbox.mint_account()
    (reports / "other.json").write_text(json.dumps({**good, "account_id": other_account}))
    (reports / "unknown.json").write_text(json.dumps({**good, "certificate_fingerprint": "AB" * 32}))
    (reports / "stranger.json").write_text(json.dumps({**good, "runtime": "stranger"}))
    hosts.use("manager")
    code, out = cli("runtime", "report", str(reports), "--profile", "mgr")
    assert code == 1
    outcome = {Path(r["file"]).name: r for r in out["reports"]}
    assert outcome[written.name]["recorded"]
    assert "is for account" in outcome["other.json"]["outcome"]
    assert "never issued to that runtime" in outcome["unknown.json"]["outcome"]
    assert "No runtime named stranger" in outcome["stranger.json"]["outcome"]
    assert out["runtimes_summary"].startswith("1 of 1 runtimes VALID")


@BOTH
def test_a_report_for_a_rotated_away_certificate_no_longer_counts(hosts, onboard, cli):
    onboard("mgr")
    onboard_runtime(hosts, cli, "host-a", "checkout")
    probe_and_report(hosts, cli, "host-a")
    # Rotation of the remote runtime: the same request/issue path with a new key.
    request = hosts.exchange / "rotate.json"
    hosts.use("host-a")
    assert cli("runtime", "request", "--name", "checkout", "--new-key", "--out", str(request))[0] == 0
    hosts.use("manager")
    assert cli("runtime", "issue", str(request), "--profile", "mgr", "--out", str(hosts.exchange / "r2.json"))[0] == 0
    code, out = cli("enforce", "--profile", "mgr", "--at", "NOW")
    assert code == 3 and "checkout: its latest report is for certificate" in out["error"]["message"]
    hosts.use("host-a")
    assert cli("runtime", "install", str(hosts.exchange / "r2.json"))[0] == 0
    probe_and_report(hosts, cli, "host-a")
    assert cli("enforce", "--profile", "mgr", "--at", "NOW")[0] == 0


def test_leave_out_is_explicit_and_audited(hosts, onboard, cli):
    from wizard.core.journal import AuditLog
    from wizard.core.paths import Paths

    onboard("mgr")
    onboard_runtime(hosts, cli, "host-a", "checkout")
    code, out = cli("enforce", "--profile", "mgr", "--at", "NOW", "--leave-out", "nobody")
    assert code == 3 and "No runtime named nobody" in out["error"]["message"]
    code, out = cli("enforce", "--profile", "mgr", "--at", "NOW", "--leave-out", "checkout")
    assert code == 0, out
    entries = AuditLog.for_profile(Paths.from_env(), "mgr").entries()
    left = [e for e in entries if e["action"] == "enforcement_runtimes_left_out"]
    assert left and left[-1]["runtimes"] == ["checkout"] and "no readiness report" in left[-1]["reasons"][0]


@BOTH
def test_an_eleventh_certificate_is_refused_naming_the_ten(hosts, onboard, cli, sandbox):
    import asyncio

    from tests_support import session_for

    from wizard.core import crypto

    onboard("mgr")
    onboard_runtime(hosts, cli, "host-a", "checkout")
    session = session_for("mgr", sandbox)

    async def fill() -> None:
        async with session.client() as klarna:
            for n in range(8):
                csr = crypto.make_csr_pem(crypto.make_private_key(), rules.default_cn(sandbox.account_id)).decode()
                await klarna.create_certificate(csr, f"filler {n}", f"00000000-0000-4000-8000-00000000000{n}")

    asyncio.run(fill())
    request = hosts.exchange / "request-eleventh.json"
    hosts.use("host-b")
    cli("runtime", "request", "--name", "eleventh", "--out", str(request), *hosts.sandbox_flags())
    hosts.use("manager")
    code, out = cli("runtime", "issue", str(request), "--profile", "mgr")
    assert code == 3, out
    message = out["error"]["message"]
    assert "All 10 certificate slots are in use" in message
    assert message.count("krn:") == 10 and "checkout" in message and "this machine" in message


def test_issue_refuses_a_request_for_another_account_or_a_bad_csr(hosts, onboard, cli, sandbox):
    onboard("mgr")
    request = hosts.exchange / "request.json"
    hosts.use("host-a")
    cli("runtime", "request", "--name", "checkout", "--out", str(request), *hosts.sandbox_flags())
    data = json.loads(request.read_text())
    other, _ = sandbox.mint_account()
    (hosts.exchange / "other.json").write_text(json.dumps({**data, "account_id": other}))
    from tests_support import self_signed  # a certificate is not a CSR

    from wizard.core import crypto

    (hosts.exchange / "bad.json").write_text(json.dumps({**data, "csr": self_signed(crypto.make_private_key())}))
    hosts.use("manager")
    code, out = cli("runtime", "issue", str(hosts.exchange / "other.json"), "--profile", "mgr")
    assert code == 3 and "is for account" in out["error"]["message"]
    code, out = cli("runtime", "issue", str(hosts.exchange / "bad.json"), "--profile", "mgr")
    assert code == 3 and "CSR" in out["error"]["message"]


def test_install_refuses_a_certificate_for_another_key(hosts, onboard, cli):
    onboard("mgr")
    onboard_runtime(hosts, cli, "host-a", "checkout")
    hosts.use("host-b")
    cli("runtime", "request", "--name", "checkout", "--out", str(hosts.exchange / "b.json"), *hosts.sandbox_flags())
    code, out = cli("runtime", "install", str(hosts.exchange / "response-checkout.json"))
    assert code == 3 and "does not belong to the key made here" in out["error"]["message"]


@BOTH
def test_doctor_checks_a_pair_copied_from_a_runtime(hosts, onboard, cli, sandbox):
    onboard("mgr")
    onboard_runtime(hosts, cli, "host-a", "checkout")
    current = hosts.home("host-a") / "certs" / "default" / "current"
    code, out = cli(
        "doctor",
        "--profile",
        "mgr",
        "--cert",
        str(current / "certificate.pem"),
        "--key",
        str(current / "private-key.pem"),
    )
    assert code == 0, out
    checks = {f["check"]: f for f in out["findings"]}
    assert set(checks) == {"key match", "CN", "expiry", "chain", "account", "verification"}
    assert "runtime checkout" in checks["account"]["summary"]
    # The manager's own key with host A's certificate: a mismatch, said plainly, no live call.
    own_key = hosts.home("manager") / "certs" / "mgr" / "current" / "private-key.pem"
    code, out = cli("doctor", "--profile", "mgr", "--cert", str(current / "certificate.pem"), "--key", str(own_key))
    assert code == 2 and out["findings"][0]["check"] == "key match" and out["findings"][0]["severity"] == "critical"
    assert "verification" not in {f["check"] for f in out["findings"]}


def test_check_warns_about_a_stale_runtime_report(hosts, onboard, cli):
    onboard("mgr")
    onboard_runtime(hosts, cli, "host-a", "checkout")
    reports = hosts.exchange / "reports"
    hosts.use("host-a")
    cli("probe", "--report-dir", str(reports))
    (written,) = reports.glob("checkout.*.json")
    report = json.loads(written.read_text())
    old = rules.format_utc(rules.utc_now() - timedelta(hours=30))
    key = hosts.home("host-a") / "certs" / "default" / "current" / "private-key.pem"
    written.write_text(json.dumps(signed_report({**report, "at": old, "klarna_date": old}, key)))
    hosts.use("manager")
    cli("runtime", "report", str(reports), "--profile", "mgr")
    code, out = cli("check", "--profile", "mgr")
    assert code == 1, out
    warning = next(f for f in out["findings"] if f["check"] == "runtime checkout")
    assert "30 h old" in warning["summary"] and "probe" in warning["next_step"]


def test_probe_prints_one_json_line_without_secrets(hosts, onboard, capsys, sandbox):
    from wizard.cli import main

    onboard("mgr")
    capsys.readouterr()
    code = main(["probe", "--profile", "mgr", "--name", "manager"])
    out = capsys.readouterr().out
    assert code == 0 and len(out.strip().splitlines()) == 1
    report = json.loads(out)
    assert set(report) == {
        "kind",
        "runtime",
        "account_id",
        "certificate_fingerprint",
        "verification_status",
        "at",
        "tool_version",
        "klarna_date",
        "klarna_correlation_id",
        "nonce",
        "signing_key_id",
        "signature",
    }
    assert report["verification_status"] == "VALID" and report["runtime"] == "manager"
    assert sandbox.api_key[-12:] not in out and "PRIVATE" not in out


def test_probe_a_pair_mounted_like_a_kubernetes_secret(hosts, onboard, cli, tmp_path):
    """A Secret volume is a sticky, world-writable folder holding 0400 files behind symlinks:
    accepted. A key file others can read is refused with the fix."""
    import os
    import shutil

    onboard("mgr")
    onboard_runtime(hosts, cli, "host-a", "checkout")
    current = hosts.home("host-a") / "certs" / "default" / "current"
    mount = tmp_path / "secret-volume"
    data = mount / "..data"
    data.mkdir(parents=True)
    shutil.copy(current / "certificate.pem", data / "tls.crt")
    shutil.copy(current / "private-key.pem", data / "tls.key")
    os.chmod(data / "tls.key", 0o400)
    for name in ("tls.crt", "tls.key"):
        os.symlink(f"..data/{name}", mount / name)
    os.chmod(mount, 0o1777)
    hosts.use("pod")  # a CronJob's fresh container: no profile, only the mounted pair and flags
    code, report = cli(
        "probe",
        "--name",
        "checkout",
        "--cert",
        str(mount / "tls.crt"),
        "--key",
        str(mount / "tls.key"),
        *hosts.sandbox_flags(),
    )
    assert code == 0 and report["verification_status"] == "VALID" and report["runtime"] == "checkout"
    hosts.use("host-a")
    os.chmod(data / "tls.key", 0o644)
    code, out = cli("probe", "--cert", str(mount / "tls.crt"), "--key", str(mount / "tls.key"))
    assert code == 3 and "readable by others" in out["error"]["message"] and "chmod 600" in out["error"]["hint"]
    os.chmod(data / "tls.key", 0o400)
    os.chmod(mount, 0o777)  # world-writable without the sticky bit: anyone could swap the key
    code, out = cli("probe", "--cert", str(mount / "tls.crt"), "--key", str(mount / "tls.key"))
    assert code == 3 and "Others can replace files" in out["error"]["message"]


@BOTH
def test_issuing_the_same_request_twice_returns_the_same_certificate(hosts, onboard, cli):
    """A rerun (lost response file, retried command) must not spend a second slot."""
    onboard("mgr")
    first = onboard_runtime(hosts, cli, "host-a", "checkout")
    code, again = cli(
        "runtime",
        "issue",
        str(hosts.exchange / "request-checkout.json"),
        "--profile",
        "mgr",
        "--out",
        str(hosts.exchange / "again.json"),
    )
    assert code == 0 and again["certificate_id"] == first["certificate_id"]
    code, status = cli("status", "--profile", "mgr")
    assert len(status["certificates"]) == 2  # the manager's and checkout's: no second one for checkout
    # The same key offered under another runtime's name is refused.
    data = json.loads((hosts.exchange / "request-checkout.json").read_text())
    (hosts.exchange / "renamed.json").write_text(json.dumps({**data, "name": "refunds"}))
    code, out = cli("runtime", "issue", str(hosts.exchange / "renamed.json"), "--profile", "mgr")
    assert code == 3 and "already belongs to runtime checkout" in out["error"]["message"]


@BOTH
def test_revoking_a_runtimes_current_certificate_is_refused(hosts, onboard, cli):
    onboard("mgr")
    issued = onboard_runtime(hosts, cli, "host-a", "checkout")
    code, out = cli("certs", "revoke", issued["certificate_id"], "--profile", "mgr")
    assert code == 3 and "current certificate of runtime checkout" in out["error"]["message"]
    # After a rotation, its old certificate may go once the runtime reported VALID with the new one.
    request, response = hosts.exchange / "rotate.json", hosts.exchange / "rotated.json"
    hosts.use("host-a")
    assert cli("runtime", "request", "--name", "checkout", "--new-key", "--out", str(request))[0] == 0
    hosts.use("manager")
    assert cli("runtime", "issue", str(request), "--profile", "mgr", "--out", str(response))[0] == 0
    code, out = cli("certs", "revoke", issued["certificate_id"], "--profile", "mgr")
    assert code == 3 and "has not reported VALID with its newer" in out["error"]["message"]
    hosts.use("host-a")
    assert cli("runtime", "install", str(response))[0] == 0
    probe_and_report(hosts, cli, "host-a")
    code, out = cli("certs", "revoke", issued["certificate_id"], "--profile", "mgr")
    assert code == 0, out


def test_doctor_on_a_self_signed_pair_says_what_is_wrong(hosts, onboard, cli, tmp_path):
    import os

    from tests_support import self_signed

    from wizard.core import crypto

    onboard("mgr")
    folder = tmp_path / "copied"
    folder.mkdir(mode=0o700)
    key = crypto.make_private_key()
    (folder / "key.pem").write_bytes(crypto.make_private_key_pem(key))
    os.chmod(folder / "key.pem", 0o600)
    (folder / "cert.pem").write_text(self_signed(key, cn="SOMEONE"))
    code, out = cli("doctor", "--profile", "mgr", "--cert", str(folder / "cert.pem"), "--key", str(folder / "key.pem"))
    checks = {f["check"]: f for f in out["findings"]}
    assert code == 2
    assert checks["key match"]["severity"] == "ok"
    assert checks["CN"]["severity"] == "warning"
    assert checks["chain"]["severity"] == "critical" and "self-signed" in checks["chain"]["summary"]
    assert checks["account"]["severity"] == "warning" and "no record" in checks["account"]["summary"]
    assert checks["verification"]["severity"] == "critical" and checks["verification"]["next_step"]


def test_onboarding_with_enforce_at_counts_runtimes_too(hosts, onboard, cli, sandbox):
    onboard("mgr")
    assert cli("runtime", "add", "self", "--profile", "mgr")[0] == 0
    code, out = cli(
        "onboard",
        "--profile",
        "mgr",
        "--non-interactive",
        "--enforce-at",
        "NOW",
        "--poll-interval",
        "0.05",
        "--enforce-wait",
        "20",
    )
    assert code == 3 and "self: no readiness report yet" in out["error"]["message"]
    assert cli("probe", "--profile", "mgr", "--name", "self")[0] == 0  # records it: same profile
    code, out = cli(
        "onboard",
        "--profile",
        "mgr",
        "--non-interactive",
        "--enforce-at",
        "NOW",
        "--poll-interval",
        "0.05",
        "--enforce-wait",
        "20",
    )
    assert code == 0, out


# ---------------------------------------------------------------- the red team's reproductions
def test_a_forged_report_for_a_runtime_that_never_installed_does_not_open_the_gate(hosts, onboard, cli):
    """LO-05: the host never installs its pair; anyone who can write the shared folder writes a
    VALID report with the (public) fingerprint. Unsigned, or signed with any key but the runtime's,
    it is refused naming why, and enforcement stays refused."""
    from conftest import record_figure

    from wizard.core import crypto
    from wizard.core.runtimes import ReadinessReport

    onboard("mgr")
    request, response = hosts.exchange / "request.json", hosts.exchange / "response.json"
    hosts.use("host-a")
    assert cli("runtime", "request", "--name", "checkout", "--out", str(request), *hosts.sandbox_flags())[0] == 0
    hosts.use("manager")
    assert cli("runtime", "issue", str(request), "--profile", "mgr", "--out", str(response))[0] == 0
    fingerprint = json.loads(response.read_text())["fingerprint"]  # public: it travels in the response
    now = rules.format_utc(rules.utc_now())
    forged = ReadinessReport("checkout", hosts.sandbox.account_id, fingerprint, "VALID", now, "0.1.0", klarna_date=now)
    shared = hosts.exchange / "shared"
    shared.mkdir()
    manager_key = hosts.home("manager") / "certs" / "mgr" / "current" / "private-key.pem"
    as_written_by_the_red_team = {
        "kind": "klarna-mtls/readiness-report",
        "runtime": "checkout",
        "account_id": hosts.sandbox.account_id,
        "certificate_fingerprint": fingerprint,
        "verification_status": "VALID",
        "at": now,
        "tool_version": "0.1.0",
    }
    attempts = {
        "unsigned.json": (as_written_by_the_red_team, "is not signed"),
        "own-key.json": (forged.signed_with(crypto.make_private_key()).to_dict(), "signed by another key"),
        "manager-key.json": (signed_report(forged.to_dict(), manager_key), "signed by another key"),
    }
    for name, (data, _) in attempts.items():
        (shared / name).write_text(json.dumps(data))
    code, out = cli("runtime", "report", str(shared), "--profile", "mgr")
    assert code == 1, out
    outcome = {Path(r["file"]).name: r for r in out["reports"]}
    refused = 0
    for name, (_, reason) in attempts.items():
        assert not outcome[name]["recorded"] and reason in outcome[name]["outcome"], outcome[name]
        refused += 1
    assert "probe there again" in outcome["unsigned.json"]["outcome"]
    record_figure("signed readiness reports: forged or altered reports refused", refused, len(attempts))
    code, out = cli("enforce", "--profile", "mgr", "--at", "NOW")
    assert code == 3 and "checkout: no readiness report yet" in out["error"]["message"], out


@BOTH
def test_a_swapped_certificate_id_in_transit_cannot_make_the_host_revoke_its_own(hosts, onboard, cli, sandbox):
    """LO-08: the response file's certificate_id is changed in transit to the manager's certificate.
    The host must not believe it: revoking its real certificate there is refused."""
    onboard("mgr", enforce_at="NOW")
    code, manager = cli("status", "--profile", "mgr")
    manager_id = next(c["credential_id"] for c in manager["certificates"] if c["current"])
    request, response = hosts.exchange / "request-pos.json", hosts.exchange / "response-pos.json"
    hosts.use("host-a")
    assert cli("runtime", "request", "--name", "pos", "--out", str(request), *hosts.sandbox_flags())[0] == 0
    hosts.use("manager")
    assert cli("runtime", "issue", str(request), "--profile", "mgr", "--out", str(response))[0] == 0
    issued = json.loads(response.read_text())
    real_id = issued["certificate_id"]
    response.write_text(json.dumps({**issued, "certificate_id": manager_id}))  # in transit
    hosts.use("host-a")
    code, installed = cli("runtime", "install", str(response))
    assert installed["verification_status"] == "VALID", installed
    if sandbox.answers == "ours":  # Klarna's listing carries the certificate: the real id is found
        assert code == 1 and installed["certificate_id"] == real_id, installed
        assert f"not {manager_id} as the response file says" in installed["certificate_id_note"]
    else:  # only ids: nothing ties one to the certificate, so the id stays unconfirmed
        assert code == 0 and installed["certificate_id"] is None, installed
        assert installed["certificate_id_note"].startswith("unconfirmed")
    code, out = cli("certs", "revoke", real_id)
    assert code == 3 and out["error"]["message"].startswith("Refusing to revoke a certificate"), out
    code, report = cli("probe", "--name", "pos")
    assert code == 0 and report["verification_status"] == "VALID", report  # its pair still works


def test_a_runtime_whose_certificate_expired_does_not_count_as_ready(hosts, onboard, cli, sandbox):
    """LO-04: the runtime's certificate expired after its VALID report; enforce NOW went ahead."""
    from wizard.core import crypto

    onboard("mgr")
    request, response = hosts.exchange / "request.json", hosts.exchange / "response.json"
    hosts.use("host-a")
    assert cli("runtime", "request", "--name", "refunds", "--out", str(request), *hosts.sandbox_flags())[0] == 0
    hosts.use("manager")
    sandbox.certificate_lifetime = timedelta(seconds=10)
    assert cli("runtime", "issue", str(request), "--profile", "mgr", "--out", str(response))[0] == 0
    sandbox.certificate_lifetime = timedelta(days=3 * 365)
    hosts.use("host-a")
    assert cli("runtime", "install", str(response))[0] == 0
    assert probe_and_report(hosts, cli, "host-a")["report"]["verification_status"] == "VALID"
    code, listing = cli("runtime", "list", "--profile", "mgr")
    assert code == 0 and listing["runtimes"][0]["ready"], listing
    expiry = crypto.load_certificate(json.loads(response.read_text())["certificate"]).not_valid_after_utc
    time.sleep(max(0.0, (expiry - rules.utc_now()).total_seconds()) + 1.2)
    code, listing = cli("runtime", "list", "--profile", "mgr")
    assert code == 1 and "its certificate expired at" in listing["runtimes"][0]["reason"], listing
    code, out = cli("enforce", "--profile", "mgr", "--at", "NOW")
    assert code == 3 and "refunds: its certificate expired at" in out["error"]["message"], out


def test_with_this_clock_days_behind_klarnas_readiness_is_not_judged(hosts, onboard, cli, sandbox):
    """LO-09: the managing machine's clock 3 days slow: a 3-day-old report looked fresh and enforce
    passed. Klarna's Date, read moments before, now decides, and the skew is named."""
    onboard("mgr")
    onboard_runtime(hosts, cli, "host-a", "billing")
    probe_and_report(hosts, cli, "host-a")
    sandbox.configure(date_follows_clock=True)
    sandbox.advance_clock(3 * 86400)  # Klarna's clock (its Date) is now 3 days ahead of this machine's
    code, out = cli("enforce", "--profile", "mgr", "--at", "NOW")
    assert code == 3, out
    message = out["error"]["message"]
    assert "readiness cannot be judged: this machine's clock is 3 d behind Klarna's" in message
    assert "billing: its latest report is 3 d old" in message
    code, status = cli("status", "--profile", "mgr")
    assert status["enforcement_mode"] != "ENFORCED"


def test_a_shared_report_folder_where_others_planted_entries_first(hosts, onboard, cli, tmp_path):
    """FS-05: in a sticky, world-writable folder the first writer of NAME.json won, and the real
    probe could not write its report. Names are now random, created with O_EXCL, never through a
    link; the reader skips links, other entries and, in such a folder, other users' files."""
    import os

    onboard("mgr")
    onboard_runtime(hosts, cli, "host-a", "checkout")
    shared = tmp_path / "reports-shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    (shared / "checkout.json").mkdir()  # a planted entry that no rename can replace
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("{}")
    os.symlink(elsewhere, shared / "linked.json")
    hosts.use("host-a")
    for _ in range(2):  # the second run removes the first run's file
        code, report = cli("probe", "--report-dir", str(shared))
        assert code == 0 and report["verification_status"] == "VALID", report
    written = list(shared.glob("checkout.*.json"))
    assert len(written) == 1 and written[0].is_file() and (shared / "checkout.json").is_dir()
    assert json.loads(written[0].read_text())["signature"] == report["signature"]
    planted_by_other = None
    if os.geteuid() == 0:  # as root, a file another user owns can be made for real
        planted_by_other = shared / "zz-other-user.json"
        planted_by_other.write_text(written[0].read_text())
        os.chown(planted_by_other, 65534, 65534)
    hosts.use("manager")
    code, out = cli("runtime", "report", str(shared), "--profile", "mgr")
    outcome = {Path(r["file"]).name: r for r in out["reports"]}
    assert code == 1 and outcome[written[0].name]["recorded"], out
    assert outcome["checkout.json"]["outcome"] == "skipped: not a regular file"
    assert "symbolic link" in outcome["linked.json"]["outcome"] and elsewhere.read_text() == "{}"
    if planted_by_other is not None:
        assert "owned by uid 65534" in outcome[planted_by_other.name]["outcome"]
        code, out = cli("runtime", "report", str(planted_by_other), "--profile", "mgr", "--report-owner", "65534")
        assert out["reports"][0]["recorded"], out  # named on purpose: read, and its signature decides
    assert out["runtimes_summary"].startswith("1 of 1 runtimes VALID")
    # The writer follows no link to its folder, and refuses a folder anyone can empty.
    os.symlink(shared, tmp_path / "link-to-shared")
    hosts.use("host-a")
    code, out = cli("probe", "--report-dir", str(tmp_path / "link-to-shared"))
    assert code == 3 and "symbolic link" in out["error"]["message"]
    os.chmod(shared, 0o777)
    code, out = cli("probe", "--report-dir", str(shared))
    assert code == 3 and "Anyone can remove or replace files" in out["error"]["message"]


def test_a_runtime_with_a_passphrase_protected_key_signs_its_reports(hosts, onboard, cli, monkeypatch):
    """The report is signed with the key probe calls with: its passphrase comes the same way."""
    onboard("mgr")
    monkeypatch.setenv("KLARNA_MTLS_KEY_PASSPHRASE", "correct horse battery staple")
    onboard_runtime(hosts, cli, "host-a", "checkout")
    assert b"ENCRYPTED" in next(hosts.home("host-a").rglob("runtime-checkout-*/private-key.pem")).read_bytes()
    result = probe_and_report(hosts, cli, "host-a")
    assert result["code"] == 0 and result["report"]["signature"], result
    assert result["recorded"]["reports"][0]["outcome"].startswith("recorded: VALID")
    monkeypatch.delenv("KLARNA_MTLS_KEY_PASSPHRASE")
    hosts.use("host-a")
    code, out = cli("probe")
    assert code == 3 and "encrypted" in out["error"]["message"], out
