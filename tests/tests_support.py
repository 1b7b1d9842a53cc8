"""Small builders shared by unit tests, and the one way Pilot tests wait for the app."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from wizard.core import crypto


def self_signed(key, cn: str = "LYABCDEI", days: int = 1095) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return crypto.certificate_pem(cert).decode()


def signed_report(data: dict, key_path: Path, passphrase: bytes | None = None) -> dict:
    """A readiness report's JSON signed as ``klarna-mtls probe`` signs it on the runtime, with the
    private key at ``key_path``: a test that changes a report by hand re-signs it, so the change it
    makes is what is judged, not a broken signature."""
    from wizard.core.runtimes import ReadinessReport

    key = crypto.load_private_key_file(Path(key_path), passphrase)
    return ReadinessReport.from_dict(data).signed_with(key).to_dict()


def sandbox_profile_args(sandbox) -> list[str]:
    """The onboard flags that point a profile at ``sandbox`` (environment, account, URL, CA)."""
    return [
        "--environment", "sandbox",
        "--account-id", sandbox.account_id,
        "--base-url", sandbox.base_url,
        "--ca-bundle", str(sandbox.ca_bundle),
    ]  # fmt: skip


def session_for(profile: str, sandbox):
    """A Session on an onboarded sandbox profile, with its API key loaded for this test."""
    from wizard.core.paths import Paths
    from wizard.services.session import Session

    session = Session(Paths.from_env(), profile)
    session.unlock(sandbox.api_key)
    return session


def name_initial_key(session) -> str:
    """Tell the profile which API key it runs on (the sandbox's initial key), as a user would with
    --key-id: klarna-mtls never guesses it from a listing."""
    import asyncio

    from wizard.services import api_keys

    initial = next(r for r in asyncio.run(api_keys.list_keys(session)) if r.is_initial)
    asyncio.run(api_keys.record_tool_key(session, initial.credential_id))
    return initial.credential_id


async def settle(pilot, *, rounds: int = 3, failures_shown: bool = False) -> None:
    """Let the app finish what it started: ``rounds`` times a frame, then its workers (screens
    pushed on mount start theirs a tick later). With ``failures_shown`` a failed worker is not
    raised here: the app shows it as an error modal, and the test asserts on that."""
    from textual.worker import WorkerFailed

    for _ in range(rounds):
        await pilot.pause()
        with contextlib.suppress(WorkerFailed) if failures_shown else contextlib.nullcontext():
            await pilot.app.workers.wait_for_complete()
    await pilot.pause()
