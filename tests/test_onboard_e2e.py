"""Headless onboarding end to end against the sandbox over real loopback mTLS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from tests_support import sandbox_profile_args

from wizard.cli import main
from wizard.core.paths import Paths
from wizard.core.stages import Stage
from wizard.services import onboarding
from wizard.services.session import Session

pytestmark = pytest.mark.e2e


def onboard_args(sb, profile="p", enforce_at="never"):
    return [
        "onboard",
        "--profile",
        profile,
        "--non-interactive",
        "--json",
        *sandbox_profile_args(sb),
        "--enforce-at",
        enforce_at,
        "--poll-interval",
        "0.05",
        "--enforce-wait",
        "20",
    ]


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_onboard_to_valid(sandbox, monkeypatch, capsys):
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    assert main(onboard_args(sandbox)) == 0
    result = last_json(capsys.readouterr().out)
    assert result["stage"] == Stage.ENFORCE.value  # verified; enforcement not requested
    assert result["verification_status"] == "VALID"
    assert result["certificate_id"].startswith("krn:")
    assert os.path.isfile(result["cert_path"]) and os.path.isfile(result["key_path"])
    assert oct(os.stat(result["key_path"]).st_mode & 0o777) == "0o600"


async def _status_without_and_with_cert(profile):
    from wizard.core.errors import ApiError

    session = Session(Paths.from_env(), profile)
    session.unlock(os.environ["KLARNA_API_KEY"])
    async with session.client(with_certificate=True) as klarna:
        with_cert = (await klarna.list_certificates()).verification.value
    try:
        async with session.client(with_certificate=False) as klarna:
            await klarna.list_certificates()
        without = "accepted"
    except ApiError as exc:
        without = exc.status
    return with_cert, without, session


async def test_onboard_to_enforced_then_unenforce(sandbox, monkeypatch, capsys):
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    import asyncio

    code = await asyncio.to_thread(main, onboard_args(sandbox, enforce_at="NOW"))
    assert code == 0
    result = last_json(capsys.readouterr().out)
    assert result["stage"] == "DONE"
    assert result["enforcement"]["mode"] in ("ENFORCED", "REPORTING")

    with_cert, without, session = await _status_without_and_with_cert("p")
    assert with_cert == "VALID"
    assert without == 403  # refused without a client certificate once enforced

    await onboarding.remove_enforcement(session)
    _, without_after, _ = await _status_without_and_with_cert("p")
    assert without_after == "accepted"


def test_rerun_after_done_issues_no_duplicate(sandbox, monkeypatch, capsys):
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    assert main(onboard_args(sandbox)) == 0
    first = last_json(capsys.readouterr().out)
    assert main(onboard_args(sandbox)) == 0
    second = last_json(capsys.readouterr().out)
    assert first["certificate_id"] == second["certificate_id"]
    assert len(_server_certificates(sandbox)) == 1


def _server_certificates(sb):
    import asyncio

    from wizard.klarna.client import KlarnaClient
    from wizard.klarna.tls import make_http_client

    async def listing():
        async with make_http_client(ca_bundle=sb.ca_bundle) as http:
            return (await KlarnaClient(http, sb.base_url, sb.api_key).list_certificates()).value

    return asyncio.run(listing())


def test_lost_create_response_is_reconciled_not_duplicated(sandbox, monkeypatch, capsys):
    from wizard.sandbox.server import Fault

    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    sandbox.inject(Fault(kind="drop_after_commit", operation="create_certificate", count=1))
    code = main(onboard_args(sandbox))
    out = capsys.readouterr().out
    if code != 0:  # the outcome was unknown: a rerun must adopt the certificate, not make another
        assert main(onboard_args(sandbox)) == 0
        out = capsys.readouterr().out
    assert last_json(out)["verification_status"] == "VALID"
    assert len(_server_certificates(sandbox)) == 1


def test_api_key_never_taken_as_argument():
    with pytest.raises(SystemExit):
        main(["onboard", "--api-key", "klarna_test_api_x"])


def test_sandbox_serve_then_onboard_to_enforced_as_processes(tmp_path):
    """The issue's done-when: `sandbox serve` plus `onboard --enforce-at NOW` as real processes."""
    env = {**os.environ, "KLARNA_MTLS_HOME": str(tmp_path / "home")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wizard.cli",
            "sandbox",
            "serve",
            "--port",
            "0",
            "--json",
            "--state-dir",
            str(tmp_path / "sb"),
            "--enforcement-delay",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        info = json.loads(server.stdout.readline())
        run_env = {**env, "KLARNA_API_KEY": info["api_key"]}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "wizard.cli",
                "onboard",
                "--profile",
                "proc",
                "--non-interactive",
                "--json",
                "--environment",
                "sandbox",
                "--account-id",
                info["account_id"],
                "--base-url",
                info["base_url"],
                "--ca-bundle",
                info["ca_bundle"],
                "--enforce-at",
                "NOW",
                "--poll-interval",
                "0.05",
                "--enforce-wait",
                "30",
            ],
            capture_output=True,
            text=True,
            env=run_env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        result = last_json(done.stdout)
        assert result["stage"] == "DONE"
        assert result["enforcement"]["mode"] == "ENFORCED"
        assert info["api_key"] not in done.stdout + done.stderr
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=10)
