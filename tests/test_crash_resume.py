"""SIGKILL the headless onboarding at every stage boundary and in the middle of every file write
(real processes, real signals); the rerun completes with the same key, no duplicate certificate,
and no half-written file as `current`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import record_figure
from tests_support import sandbox_profile_args

from wizard.core import crypto
from wizard.core.paths import Paths
from wizard.services.install import current_pair

pytestmark = pytest.mark.e2e

# Runs the CLI with a kill switch: die by SIGKILL at the Nth stage advance, or half-way through
# the Nth atomic file write (temp file written, not yet renamed).
RUNNER = textwrap.dedent("""
    import os, signal, sys
    mode, n = os.environ["KILL_MODE"], int(os.environ["KILL_AT"])
    import wizard.core.fsutil as fsutil, wizard.services.session as flow
    seen = {"count": 0}
    def tick():
        seen["count"] += 1
        if n == 0:
            print("W", file=sys.stderr, flush=True)  # counting run: report each write
        elif seen["count"] == n:
            os.kill(os.getpid(), signal.SIGKILL)
    if mode == "write":
        real_replace = os.replace
        def replace(src, dst):
            if str(src).endswith(".tmp"):
                tick()
            return real_replace(src, dst)
        os.replace = replace
    elif mode == "stage":
        real_advance = flow.Session.advance
        def advance(self):
            stage = real_advance(self)
            tick()
            return stage
        flow.Session.advance = advance
    from wizard.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def onboard_process(sandbox, env, mode="none", at=0):
    args = [
        "onboard",
        "--profile",
        "crash",
        "--non-interactive",
        "--json",
        *sandbox_profile_args(sandbox),
        "--enforce-at",
        "never",
        "--poll-interval",
        "0.05",
    ]
    return subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "KILL_MODE": mode, "KILL_AT": str(at)},
    )


def count_writes(sandbox, env) -> int:
    """How many atomic writes a clean run makes (on a separate profile home)."""
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            RUNNER,
            "onboard",
            "--profile",
            "count",
            "--non-interactive",
            "--json",
            *sandbox_profile_args(sandbox),
            "--enforce-at",
            "never",
            "--poll-interval",
            "0.05",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "KILL_MODE": "write", "KILL_AT": "0"},
    )
    assert probe.returncode == 0, probe.stderr
    return probe.stderr.count("W\n")


def server_certificates(sandbox):
    import asyncio

    from wizard.klarna.client import KlarnaClient
    from wizard.klarna.tls import make_http_client

    async def listing():
        async with make_http_client(ca_bundle=sandbox.ca_bundle) as http:
            return (await KlarnaClient(http, sandbox.base_url, sandbox.api_key).list_certificates()).value

    return [c for c in asyncio.run(listing()) if c.status == "ACTIVE"]


def key_id(paths):
    key_path = paths.keys_dir("crash") / "private-key.pem"
    return crypto.public_key_id(crypto.load_private_key_file(key_path)) if key_path.exists() else None


def kill_then_resume(tmp_path, make_sandbox, mode, at):
    home = tmp_path / f"{mode}-{at}"
    sandbox = make_sandbox(tmp_path / f"sb-{mode}-{at}")
    env = {**os.environ, "KLARNA_MTLS_HOME": str(home), "KLARNA_API_KEY": sandbox.api_key}
    killed = onboard_process(sandbox, env, mode, at)
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-500:])
    paths = Paths(home / "config", home / "state", home / "data", home / "certs")
    key_before = key_id(paths)
    done = onboard_process(sandbox, env)
    assert done.returncode == 0, done.stderr[-800:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["verification_status"] == "VALID"
    if key_before is not None:
        assert key_id(paths) == key_before  # the same key, never a silent regeneration
    assert len(server_certificates(sandbox)) == 1  # no duplicate certificate
    pair = current_pair(paths.default_install_dir("crash"))
    cert = crypto.load_certificate(pair.cert_path.read_bytes())
    crypto.verify_cert_matches_key(cert, crypto.load_private_key_file(pair.key_path))


@pytest.fixture
def make_sandbox():
    from wizard.sandbox import start_sandbox

    started = []

    def make(folder):
        started.append(start_sandbox(folder, enforcement_delay=300))
        return started[-1]

    yield make
    for sb in started:
        sb.stop()


@pytest.mark.parametrize("boundary", range(1, 6))
def test_kill_at_each_stage_boundary(tmp_path, make_sandbox, boundary):
    try:
        kill_then_resume(tmp_path, make_sandbox, "stage", boundary)
    except BaseException:
        record_figure("kill points survived", 0, 1)
        raise
    record_figure("kill points survived", 1, 1)


def test_kill_in_the_middle_of_every_file_write(tmp_path, make_sandbox):
    sandbox = make_sandbox(tmp_path / "sb-count")
    writes = count_writes(
        sandbox, {**os.environ, "KLARNA_MTLS_HOME": str(tmp_path / "count"), "KLARNA_API_KEY": sandbox.api_key}
    )
    assert writes >= 10
    survived = 0
    for at in range(1, writes + 1):
        kill_then_resume(tmp_path, make_sandbox, "write", at)
        survived += 1
    record_figure("kill points survived", survived, writes)
