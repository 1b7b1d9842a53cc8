"""Issue 23 on an enforced account, through the CLI and the services against the sandbox over real
loopback mTLS, in both answer modes: a new certificate that Klarna needs minutes to accept
(``propagation_delay``, time moved by the sandbox clock, never waited for), no verification header
once enforced (``no_header_once_enforced``), and a refusal of the installed certificate told from a
wrong API key by its typed error (K1). Enforcement applies the moment it is asked for."""

from __future__ import annotations

import asyncio
import json

import pytest
from tests_support import sandbox_profile_args, session_for

from wizard.cli import main
from wizard.core.errors import ApiError, CertificateRefused
from wizard.sandbox import start_sandbox
from wizard.sandbox.options import ANSWER_MODES
from wizard.services import doctor
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
def sandbox(tmp_path, request):
    """conftest's sandbox with an answer mode and settings; enforcement applies at once."""
    answers, settings = getattr(request, "param", ("ours", {}))
    sb = start_sandbox(tmp_path / "sandbox", enforcement_delay=0, answers=answers, **settings)
    yield sb
    sb.stop()


@pytest.fixture
def run(capsys, monkeypatch, sandbox):
    """A CLI command with --json: (exit code, its JSON object, its progress lines on stderr)."""
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)

    def go(*argv: str):
        code = main([*argv, "--json"])
        captured = capsys.readouterr()
        lines = captured.out.strip().splitlines()
        return code, (json.loads(lines[-1]) if lines else None), captured.err

    return go


def onboard_enforced(sandbox, run, profile: str = "p") -> dict:
    code, out, _ = run(
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
def test_a_probe_with_a_wrong_api_key_is_a_key_error_not_a_refused_certificate(sandbox, run, monkeypatch):
    onboard_enforced(sandbox, run)
    session = session_for("p", sandbox)
    pair = current_pair(session.install_dir)
    assert pair is not None
    assert asyncio.run(verification_of(session, pair)) == "VALID"
    session.custody.hold(WRONG_KEY)  # Klarna's 401 UNAUTHORIZED: the key, whatever the certificate
    with pytest.raises(ApiError) as raised:
        asyncio.run(verification_of(session, pair))
    assert not isinstance(raised.value, CertificateRefused) and raised.value.status == 401


@in_both_modes(refusal_status=401)
def test_a_probe_of_a_certificate_revoked_elsewhere_is_refused_whatever_the_status(sandbox, run):
    onboarded = onboard_enforced(sandbox, run)
    revoke_installed_elsewhere(sandbox, onboarded["certificate_id"])
    session = session_for("p", sandbox)
    pair = current_pair(session.install_dir)
    assert pair is not None
    assert asyncio.run(verification_of(session, pair)) == "REFUSED"


@in_both_modes(refusal_status=401)
def test_the_doctor_says_the_installed_certificate_is_refused_not_that_klarna_is_unreachable(sandbox, run):
    onboarded = onboard_enforced(sandbox, run)
    revoke_installed_elsewhere(sandbox, onboarded["certificate_id"])
    findings = asyncio.run(doctor.run_doctor(session_for("p", sandbox)))
    assert not [f for f in findings if f.check == "reachability"], findings
    refused = next(f for f in findings if f.check == "verification")
    assert refused.severity.value == "critical"
    assert refused.summary.startswith("Klarna refuses the installed certificate")
    assert "rotate" in refused.next_step or "repair" in refused.next_step
    code, out, _ = run("doctor", "--profile", "p")
    assert code == 2, out  # critical: the installed certificate is refused; not a tool error (3)
