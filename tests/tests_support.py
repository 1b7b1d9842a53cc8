"""Small builders shared by unit tests, and the one way Pilot tests wait for the app."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

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
    pushed on mount start theirs a tick later), except those waiting for the person's answer in a
    modal: the test's next key or click gives it. With ``failures_shown`` a failed worker is not
    raised here: the app shows it as an error modal, and the test asserts on that."""
    from textual.worker import WorkerFailed

    for _ in range(rounds):
        await pilot.pause()
        with contextlib.suppress(WorkerFailed) if failures_shown else contextlib.nullcontext():
            await workers_done(pilot.app)
    await pilot.pause()


async def workers_done(app) -> None:
    """Until every worker has finished or waits in ``push_screen_wait`` with its modal shown (the
    screens ask for confirmations that way); raises WorkerFailed for one that failed meanwhile, as
    ``wait_for_complete`` does. A confirmation's worker would make ``wait_for_complete`` wait for ever."""
    import asyncio

    from textual.worker import WorkerFailed, WorkerState

    watched = set()
    while busy := [w for w in app.workers if not w.is_finished and not waits_for_an_answer(w)]:
        watched.update(busy)
        tasks = {w._task for w in busy if w._task is not None}  # Textual keeps a worker's task private
        if not tasks:  # not started yet
            await asyncio.sleep(0.01)
            continue
        await asyncio.wait(tasks, timeout=0.05, return_when=asyncio.FIRST_COMPLETED)
    failed = next((w for w in watched if w.state is WorkerState.ERROR), None)
    if failed is not None:
        raise WorkerFailed(failed.error)


def waits_for_an_answer(worker) -> bool:
    """Whether ``worker`` is suspended in ``App.push_screen_wait`` with the modal pushed (past
    flushing the app's callbacks), following the chain of awaited coroutines."""
    from textual.app import App

    coro = worker._task.get_coro() if worker._task is not None else None
    while coro is not None and hasattr(coro, "cr_code"):
        if coro.cr_code is App.push_screen_wait.__code__:
            return not hasattr(coro.cr_await, "cr_code")
        coro = coro.cr_await
    return False
