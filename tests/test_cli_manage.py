"""Headless lifecycle commands end to end against the sandbox over real mTLS: status, certs,
enforce/unenforce, check exit codes, doctor, exports (PEM, bundle, PKCS#12, k8s), support bundle,
profiles."""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
from datetime import timedelta

import pytest
from tests_support import session_for

pytestmark = pytest.mark.e2e


def test_status_and_certs_list(onboard, cli):
    onboard()
    code, status = cli("status", "--profile", "p")
    assert code == 0
    assert status["verification"] == "VALID" and status["slots_used"] == 1
    row = status["certificates"][0]
    assert row["current"] and row["installed_here"] and row["days_left"] >= 1090 and row["last_seen_valid"]
    code, listing = cli("certs", "list", "--profile", "p")
    assert code == 0 and [c["credential_id"] for c in listing["certificates"]] == [row["credential_id"]]


def test_status_all_profiles_concurrently(onboard, cli):
    onboard("a")
    onboard("b")
    code, out = cli("status", "--all")
    assert code == 0 and sorted(p["profile"] for p in out["profiles"]) == ["a", "b"]


def test_revoking_the_installed_certificate_is_refused(onboard, cli):
    result = onboard()
    code, out = cli("certs", "revoke", result["certificate_id"], "--profile", "p")
    assert code == 3 and "installed and in use here" in out["error"]["message"]


def test_enforce_and_unenforce_commands(onboard, cli, sandbox):
    onboard()
    code, out = cli("enforce", "--profile", "p", "--at", "NOW")
    assert code == 0 and out["enforcement_mode"] in ("REPORTING", "ENFORCED")
    code, out = cli("enforce", "--profile", "p", "--at", "2020-01-01T00:00:00Z")
    assert code == 3 and "past" in out["error"]["message"]
    code, out = cli("unenforce", "--profile", "p")
    assert code == 0 and out["enforcement_mode"] == "REPORTING"


def test_enforce_refused_when_the_installed_certificate_is_not_valid(onboard, sandbox, cli):
    result = onboard()
    session = session_for("p", sandbox)

    async def revoke_behind_our_back():
        async with session.client() as klarna:
            await klarna.revoke_certificate(result["certificate_id"])

    asyncio.run(revoke_behind_our_back())
    code, out = cli("enforce", "--profile", "p", "--at", "NOW")
    assert code == 3 and "No installed certificate is VALID" in out["error"]["message"]


@pytest.mark.parametrize(
    "lifetime_days,advance_days,expected",
    [
        (3 * 365, 0, 0),  # fresh
        (30, 0, 1),  # inside the warning window
        (10, 0, 2),  # inside the critical window
        (3 * 365, 3 * 365 + 2, 2),  # expired by the sandbox clock: Klarna says INVALID
    ],
)
def test_check_exit_codes(onboard, cli, sandbox, lifetime_days, advance_days, expected):
    sandbox.certificate_lifetime = timedelta(days=lifetime_days)
    onboard()
    sandbox.advance_clock(timedelta(days=advance_days).total_seconds())
    code, out = cli("check", "--profile", "p", "--warn-days", "60", "--critical-days", "14")
    assert code == expected, out
    assert {f["check"] for f in out["findings"]} == {"expiry", "verification"}


def test_doctor_reports_each_area_with_next_steps(onboard, cli, sandbox):
    from tests_support import name_initial_key

    onboard()
    code, out = cli("doctor", "--profile", "p")
    checks = {f["check"]: f for f in out["findings"]}
    assert code == 1, out  # warnings only: the tool's own API key is not named yet
    api_keys = [f["summary"] for f in out["findings"] if f["check"] == "api keys"]
    assert any("key this tool uses is unknown" in s for s in api_keys)
    name_initial_key(session_for("p", sandbox))  # as keys set-own would
    code, out = cli("doctor", "--profile", "p")
    checks = {f["check"]: f for f in out["findings"]}
    assert code == 1, out  # one warning: the tool still runs on the account's initial API key
    assert any("initial API key" in f["summary"] for f in out["findings"] if f["check"] == "api keys")
    for name in (
        "secret backend",
        "file modes",
        "key match",
        "expiry",
        "CN",
        "clock",
        "TLS",
        "verification",
        "enforcement",
        "slots",
    ):
        assert name in checks
    assert checks["TLS"]["summary"].startswith("Negotiated TLSv1.")


def test_doctor_spots_a_world_readable_key(onboard, cli):
    result = onboard()
    import os

    os.chmod(result["key_path"], 0o644)
    code, out = cli("doctor", "--profile", "p")
    modes = next(f for f in out["findings"] if f["check"] == "file modes")
    assert code == 2 and modes["severity"] == "critical" and "chmod 600" in modes["next_step"]
    code, out = cli("status", "--profile", "p")  # and nothing else uses that key file
    assert code == 3 and "chmod 600" in out["error"]["hint"]


def test_exports(onboard, cli, tmp_path, monkeypatch):
    from cryptography.hazmat.primitives.serialization import pkcs12

    onboard()
    code, out = cli("export", "--profile", "p", "--format", "pem", "--out", str(tmp_path / "pem"))
    assert code == 0 and len(out["files"]) == 2
    code, out = cli("export", "--profile", "p", "--format", "bundle", "--out", str(tmp_path / "b.pem"))
    bundle = (tmp_path / "b.pem").read_text()
    assert "BEGIN CERTIFICATE" in bundle and "PRIVATE KEY" in bundle
    monkeypatch.setenv("KLARNA_MTLS_EXPORT_PASSWORD", "export-pw")
    code, out = cli("export", "--profile", "p", "--format", "p12", "--out", str(tmp_path / "c.p12"))
    key, cert, _ = pkcs12.load_key_and_certificates((tmp_path / "c.p12").read_bytes(), b"export-pw")
    assert cert is not None and key is not None
    assert oct((tmp_path / "c.p12").stat().st_mode & 0o777) == "0o600"
    code, out = cli(
        "export", "--profile", "p", "--format", "k8s", "--out", str(tmp_path / "s.yaml"), "--namespace", "pay"
    )
    manifest = (tmp_path / "s.yaml").read_text()
    try:
        import yaml  # optional: parse it properly where PyYAML happens to be installed

        doc = yaml.safe_load(manifest)
    except ImportError:
        doc = {
            line.split(": ")[0]: line.split(": ", 1)[1]
            for line in manifest.splitlines()
            if ": " in line and not line.startswith(" ")
        }
        doc["data"] = {
            line.strip().split(": ")[0]: line.strip().split(": ")[1]
            for line in manifest.splitlines()
            if line.startswith("  tls.")
        }
    assert doc["kind"] == "Secret" and doc["type"] == "kubernetes.io/tls"
    assert base64.b64decode(doc["data"]["tls.crt"]).startswith(b"-----BEGIN CERTIFICATE")


def test_support_bundle_has_no_secret(onboard, cli, sandbox, tmp_path):
    onboard()
    code, out = cli("support-bundle", "--profile", "p", "--out", str(tmp_path / "bundle.json"))
    text = (tmp_path / "bundle.json").read_text()
    assert code == 0 and out["installed_certificate"]["fingerprint"]
    assert sandbox.api_key not in text and "PRIVATE KEY" not in text
    assert out["versions"]["klarna-mtls"]


def test_profiles_list(onboard, cli):
    onboard("one")
    code, out = cli("profiles", "list")
    assert code == 0 and [p["profile"] for p in out["profiles"]] == ["one"]


def test_rotate_command_retires_the_old_certificate(onboard, cli):
    old = onboard(enforce_at="NOW")
    code, out = cli("rotate", "--profile", "p", "--retire-old", "--poll-interval", "0.05")
    assert code == 0 and out["new_certificate_id"] != old["certificate_id"] and out["statuses_seen"][-1] == "VALID"
    code, status = cli("status", "--profile", "p")
    states = {c["credential_id"]: c["status"] for c in status["certificates"]}
    assert code == 0 and status["verification"] == "VALID" and status["slots_used"] == 1
    assert states == {old["certificate_id"]: "REVOKED", out["new_certificate_id"]: "ACTIVE"}


def test_certs_revoke_command_retires_a_spare_certificate(onboard, cli, sandbox, tmp_path):
    from tests_support import issue_pair

    onboard()
    spare, *_ = issue_pair(sandbox, tmp_path, "spare")
    code, out = cli("certs", "revoke", spare.credential_id, "--profile", "p")
    states = {c["credential_id"]: c["status"] for c in out["certificates"]}
    assert code == 0 and states[spare.credential_id] == "REVOKED" and out["verification"] == "VALID"
    code, out = cli("certs", "revoke", spare.credential_id, "--profile", "p")  # twice: named, refused
    assert code == 3 and "already REVOKED" in out["error"]["message"]


def test_rotate_refused_without_a_free_slot_names_candidates(onboard, cli, sandbox, tmp_path):
    from tests_support import issue_pair

    onboard()
    spares = [issue_pair(sandbox, tmp_path, f"x{i}")[0].credential_id for i in range(9)]
    code, out = cli("rotate", "--profile", "p", "--poll-interval", "0.05")
    assert code == 3 and "All 10 certificate slots are in use" in out["error"]["message"]
    assert all(cid in out["error"]["message"] for cid in spares)  # each slot's holder is named


def test_export_p12_without_a_password_is_refused(onboard, cli, tmp_path, monkeypatch):
    import io

    onboard()
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, out = cli("export", "--profile", "p", "--format", "p12", "--out", str(tmp_path / "c.p12"))
    assert code == 3 and "password" in out["error"]["message"] and not (tmp_path / "c.p12").exists()


def test_check_is_critical_not_error_for_an_expired_certificate_under_enforcement(onboard, cli, sandbox):
    sandbox.certificate_lifetime = timedelta(days=30)
    onboard(enforce_at="NOW")
    sandbox.advance_clock(timedelta(days=31).total_seconds())
    code, out = cli("check", "--profile", "p", "--warn-days", "60", "--critical-days", "14")
    verification = next(f for f in out["findings"] if f["check"] == "verification")
    assert code == 2 and verification["severity"] == "critical" and "refused" in verification["summary"], out


@pytest.mark.parametrize("tool", ["openssl", "keytool"])
def test_exported_p12_reads_in_external_tools(onboard, cli, tmp_path, monkeypatch, tool):
    if not shutil.which(tool):
        pytest.skip(f"{tool} is not installed on this machine")
    onboard()
    monkeypatch.setenv("KLARNA_MTLS_EXPORT_PASSWORD", "export-pw")
    p12 = tmp_path / "c.p12"
    assert cli("export", "--profile", "p", "--format", "p12", "--out", str(p12))[0] == 0
    if tool == "openssl":
        shown = subprocess.run(
            ["openssl", "pkcs12", "-in", str(p12), "-passin", "pass:export-pw", "-nokeys"],
            capture_output=True,
            text=True,
        )
        assert shown.returncode == 0 and "BEGIN CERTIFICATE" in shown.stdout, shown.stderr
    else:
        listed = subprocess.run(
            ["keytool", "-list", "-storetype", "PKCS12", "-keystore", str(p12), "-storepass", "export-pw"],
            capture_output=True,
            text=True,
        )
        assert listed.returncode == 0 and "PrivateKeyEntry" in listed.stdout, listed.stderr
