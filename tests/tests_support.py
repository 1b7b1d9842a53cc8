"""Helpers shared by the tests and the benchmarks (no test module imports another): small builders
of certificates and pairs, sandbox profiles and sessions, and the one way Pilot tests wait for the
app and walk the wizard."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from wizard.core import crypto, rules
from wizard.core.errors import WizardError
from wizard.core.stages import Stage


def self_signed_certificate(
    key, cn: str = "LYABCDEI", *, days: int = 1095, now: datetime | None = None, ca: bool = False
) -> x509.Certificate:
    """A certificate for ``key`` signed by ``key`` itself, valid from a day before ``now`` (the
    real time unless given) for ``days`` after it; with ``ca`` it is marked a CA certificate."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = now or datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return builder.sign(key, hashes.SHA256())


def self_signed(key, cn: str = "LYABCDEI", days: int = 1095) -> str:
    """The PEM of self_signed_certificate()."""
    return crypto.certificate_pem(self_signed_certificate(key, cn, days=days)).decode()


def write_self_signed_pair(folder: Path, cn: str = "LYABCDEI", passphrase: bytes | None = None) -> tuple[Path, Path]:
    """A fresh key and its one-day self-signed certificate written to ``folder`` as c.pem and k.pem
    (the key encrypted with ``passphrase`` when given): a pair no CA of ours signed."""
    key = crypto.make_private_key()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "c.pem").write_bytes(crypto.certificate_pem(self_signed_certificate(key, cn, days=1)))
    (folder / "k.pem").write_bytes(crypto.make_private_key_pem(key, passphrase))
    return folder / "c.pem", folder / "k.pem"


def only_wizard_errors(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or None when it raised one of the project's own errors with a
    message; any other exception escapes and fails the fuzz test."""
    try:
        return fn(*args, **kwargs)
    except WizardError as exc:
        assert exc.message.strip(), f"{type(exc).__name__} with an empty message"
        assert str(exc).strip()
        return None


def issue_pair(sb, folder: Path, name: str = "pair", api_key: str | None = None, account_id: str | None = None):
    """Have the sandbox ``sb`` sign a fresh key's CSR; (its CertificateInfo, certificate path, key
    path), the pair written to ``folder`` as <name>.crt and <name>.key."""
    key = crypto.make_private_key()
    cn = rules.default_cn(account_id or sb.account_id)
    info = asyncio.run(create_certificate(sb, crypto.make_csr_pem(key, cn).decode(), api_key)).value
    (folder / f"{name}.crt").write_text(info.certificate_pem)
    (folder / f"{name}.key").write_bytes(crypto.make_private_key_pem(key))
    return info, folder / f"{name}.crt", folder / f"{name}.key"


async def create_certificate(sb, csr_pem: str, api_key: str | None = None):
    """One create-certificate call to the sandbox ``sb`` (its API key unless another is given)."""
    from wizard.klarna.client import KlarnaClient
    from wizard.klarna.tls import make_http_client

    async with make_http_client(ca_bundle=sb.ca_bundle) as http:
        return await KlarnaClient(http, sb.base_url, api_key or sb.api_key).create_certificate(
            csr_pem, "t", str(uuid.uuid4())
        )


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
    keys set-own: klarna-mtls never guesses it from a listing."""
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


SIZE = (100, 40)  # the terminal the Pilot journeys run in


async def settle_journey(pilot) -> None:
    """settle() as the journeys use it: one round, and a failed worker is left to the error modal
    the app shows (the test asserts on that)."""
    await settle(pilot, rounds=1, failures_shown=True)


async def click(app, pilot, selector: str) -> None:
    app.screen.query_one(selector).scroll_visible(animate=False)  # like a person scrolling to it
    await pilot.pause()
    await pilot.click(selector)
    await settle_journey(pilot)


async def walk_to(app, pilot, stage: Stage) -> None:
    """Drive the wizard with keys and clicks until ``stage`` is the current one."""
    from screens.modals import ConfirmModal, ErrorModal

    await settle_journey(pilot)
    if app.screen.__class__.__name__ == "WelcomeScreen":
        await pilot.press("ctrl+n")
        await settle_journey(pilot)
    steps = {
        Stage.CREDENTIALS: "#test-key",
        Stage.KEY_AND_CSR: "#generate",
        Stage.ISSUE: "#submit",
        Stage.INSTALL: "#install",
    }
    while app.session.model.stage is not stage:
        current = app.session.model.stage
        if current in steps:
            await click(app, pilot, steps[current])
        elif current is Stage.VERIFY:
            for _ in range(100):
                if not app.session.model.blockers(Stage.VERIFY):
                    break
                await asyncio.sleep(0.05)
            await settle_journey(pilot)
        elif current is Stage.ENFORCE:
            await click(app, pilot, "#enforce")
            assert isinstance(app.screen, ConfirmModal)
            await click(app, pilot, "#confirm")
        assert not isinstance(app.screen, ErrorModal), app.screen.body_text
        await pilot.press("ctrl+n")
        await settle_journey(pilot)
        assert app.session.model.stage is not current, app.session.model.blockers(current)


def onboard_with_store(sandbox, profile: str, store: str, *extra: str) -> None:
    """Onboard ``profile`` headlessly on ``sandbox`` with its API key kept in ``store`` (keyring,
    encrypted-file: KLARNA_MTLS_STORE_PASSPHRASE set by the caller), as a partner's server would;
    KLARNA_API_KEY must be set for this run. ``extra``: more onboard flags (e.g. --enforce-at NOW)."""
    from wizard.cli import main

    argv = ["onboard", "--profile", profile, "--non-interactive", "--json", "--secret-store", store]
    argv += [*sandbox_profile_args(sandbox), "--poll-interval", "0.05", "--enforce-wait", "20", *extra]
    assert main(argv) == 0
