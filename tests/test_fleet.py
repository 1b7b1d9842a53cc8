"""Fleet-scale behaviour: readers do not write, one TLS context per (trust, certificate) pair, one
connection reused across steps and profiles, bounded concurrency, and `check --all` for cron."""

from __future__ import annotations

import asyncio
import shutil
import threading
from datetime import timedelta

import pytest
from tests_support import session_for

from wizard.klarna import tls
from wizard.sandbox import server as sandbox_server

pytestmark = pytest.mark.e2e


def journal_of(isolated_home, profile: str):
    return isolated_home / "state" / "profiles" / profile / "journal.json"


def fingerprint(path):
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_ino, path.read_bytes()


def copy_profile(isolated_home, source: str, names) -> None:
    """More profiles of the same account and installed pair (as the scale benchmark does)."""
    state = isolated_home / "state" / "profiles"
    for name in names:
        shutil.copytree(state / source, state / name)


@pytest.fixture
def handshakes(monkeypatch):
    """Counts TLS connections the sandbox accepts."""
    count = {"n": 0}
    lock = threading.Lock()
    original = sandbox_server.SandboxServer.finish_request

    def counting(self, request, client_address):
        with lock:
            count["n"] += 1
        return original(self, request, client_address)

    monkeypatch.setattr(sandbox_server.SandboxServer, "finish_request", counting)
    return count


# ---------------------------------------------------------------- readers do not write
def test_status_check_and_certs_list_leave_an_unchanged_journal_untouched(onboard, cli, isolated_home):
    onboard()
    journal = journal_of(isolated_home, "p")
    assert cli("status", "--profile", "p")[0] == 0  # the first reading may record what it saw
    before = fingerprint(journal)
    for argv in (
        ("status", "--profile", "p"),
        ("check", "--profile", "p"),
        ("certs", "list", "--profile", "p"),
        ("status", "--all"),
        ("check", "--all"),
    ):
        code, _ = cli(*argv)
        assert code == 0, argv
        assert fingerprint(journal) == before, f"{argv} rewrote a journal although nothing changed"


def test_status_writes_when_what_it_observed_changed(onboard, cli, sandbox, isolated_home):
    onboard()
    journal = journal_of(isolated_home, "p")
    cli("status", "--profile", "p")
    before = journal.read_bytes()
    sandbox.advance_clock(timedelta(days=3 * 365 + 2).total_seconds())  # expired: Klarna says INVALID
    code, status = cli("status", "--profile", "p")
    assert code == 2 and status["verification"] == "INVALID"
    assert journal.read_bytes() != before
    from wizard.core.journal import Journal
    from wizard.core.paths import Paths

    history = Journal(Paths.from_env(), "p").load().status_history
    assert history[-1].status == "INVALID"
    assert history[-2].status == "VALID"


def test_a_reader_does_not_overwrite_a_concurrent_writers_journal(onboard, sandbox):
    """The race the hardening review names: a `status` overlapping a `rotate` must not put back
    its stale copy when it observed nothing new."""
    from wizard.core.flow_records import CertificateRotation
    from wizard.core.journal import Journal
    from wizard.core.paths import Paths
    from wizard.services import status

    onboard()
    reader = session_for("p", sandbox)
    asyncio.run(status.gather_status(reader))  # records its first reading
    writer = session_for("p", sandbox)
    writer.state.flows.rotation = CertificateRotation(step="issue", folder="rotation-x")
    writer.save()
    asyncio.run(status.gather_status(reader))  # the same answers: nothing to write
    assert Journal(Paths.from_env(), "p").load().flows.rotation == writer.state.flows.rotation


# ---------------------------------------------------------------- reuse
def test_one_tls_context_per_trust_and_certificate(onboard, sandbox, isolated_home):
    import os

    from wizard.services.install import current_pair

    onboard()
    pair = current_pair(_install_dir(isolated_home, "p"))
    options = dict(ca_bundle=sandbox.ca_bundle, client_cert=pair.cert_path, client_key=pair.key_path)
    first = tls.shared_ssl_context(**options)
    assert tls.shared_ssl_context(**options) is first
    assert tls.shared_ssl_context(ca_bundle=sandbox.ca_bundle) is not first  # no certificate: another pair
    stat = pair.cert_path.stat()
    os.utime(pair.cert_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # the file changed
    assert tls.shared_ssl_context(**options) is not first


def test_status_all_shares_one_connection_across_profiles_with_the_same_pair(onboard, cli, isolated_home, handshakes):
    onboard("p0")
    copy_profile(isolated_home, "p0", ["p1", "p2", "p3"])
    handshakes["n"] = 0
    code, out = cli("status", "--all", "--concurrency", "1")
    assert code == 0 and len(out["profiles"]) == 4
    assert handshakes["n"] == 1, "each profile opened its own connection"


def test_onboarding_reuses_one_connection_per_certificate(onboard, handshakes):
    onboard()
    # Without a certificate (credentials, issue) and with the installed one (install proof,
    # verification polls): one connection each, not one per step or poll.
    assert handshakes["n"] <= 2


def test_status_all_bounds_how_many_profiles_run_at_once(onboard, cli, isolated_home, monkeypatch):
    from wizard.services import status

    onboard("p0")
    copy_profile(isolated_home, "p0", [f"p{i}" for i in range(1, 7)])
    real = status.gather_status
    running, peak = {"n": 0}, {"n": 0}

    async def watched(session):
        running["n"] += 1
        peak["n"] = max(peak["n"], running["n"])
        try:
            await asyncio.sleep(0)  # let every waiting profile try to start
            return await real(session)
        finally:
            running["n"] -= 1

    monkeypatch.setattr(status, "gather_status", watched)
    code, out = cli("status", "--all", "--concurrency", "2")
    assert code == 0 and len(out["profiles"]) == 7
    assert peak["n"] == 2


# ---------------------------------------------------------------- check --all
def test_check_all_prints_one_summary_line_and_the_worst_exit_code(onboard, cli, isolated_home, capsys):
    from wizard.cli import main

    onboard("a")
    onboard("b")
    assert main(["check", "--all"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == ["check --all: 2 profiles · 2 ok"]
    b_install = _install_dir(isolated_home, "b")
    (b_install / "current").unlink()  # b has no installed certificate any more: critical
    assert main(["check", "--all"]) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == ["check --all: 2 profiles · 1 ok · 1 critical (b)"]
    code, out = cli("check", "--all")
    assert code == 2 and out["exit_code"] == 2
    assert {row["profile"]: row["exit_code"] for row in out["profiles"]} == {"a": 0, "b": 2}


def _install_dir(isolated_home, profile: str):
    import json
    from pathlib import Path

    return Path(json.loads(journal_of(isolated_home, profile).read_text())["settings"]["install_dir"])
