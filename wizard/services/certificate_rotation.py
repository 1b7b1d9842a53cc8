"""Rotating the certificate without a gap: new key → Klarna issues → install beside the current
pair → see the new one VALID → switch ``current`` to it, optionally revoking the old one after.

Every step is journaled (``state.flows.rotation``, a ``flow_records.CertificateRotation``) and run
by ``waits.run_steps``, so a rerun resumes where an interrupted one stopped. ``rotation`` yields
the progress events; ``rotate`` runs it to its end for callers that only want the result."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wizard.core import crypto, rules
from wizard.core.errors import HandshakeRejected, InputError, InterlockRefused, WizardError
from wizard.core.flow_records import CertificateRotation, RotationStep, required
from wizard.core.fsutil import write_private
from wizard.core.interlocks import Action, refusals
from wizard.core.model import RotatedPair
from wizard.services import onboarding
from wizard.services.install import activate, install_pair, list_pairs
from wizard.services.revocation import confirm_suffix_for, revoke
from wizard.services.session import Session
from wizard.services.status import gather_status
from wizard.services.waits import (
    DEFAULT_LIMITS,
    Attempt,
    Done,
    Event,
    Events,
    Failed,
    PollLimits,
    Step,
    StepAction,
    follow,
    poll,
    run_steps,
)

ROTATION_TASK = "Rotating the certificate"


@dataclass
class RotationProgress:
    step: str
    old_certificate_id: str | None
    new_certificate_id: str | None
    new_fingerprint: str | None
    statuses_seen: list[str] = field(default_factory=list)


ROTATION_WORDS: dict[RotationStep, str] = {
    "key": "New private key and CSR",
    "issue": "Klarna issues the new certificate",
    "install": "Install it beside the current pair",
    "verify": "See the new certificate VALID",
    "switch": "Switch `current` to the new pair",
}


async def rotate(
    session: Session,
    *,
    retire_old: bool = False,
    verify_attempts: int = 150,
    verify_interval: float = 2.0,
    on_step: Callable[[str], None] | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> RotationProgress:
    """``rotation`` run to its end: ``on_event`` sees every event, ``on_step`` each step's name;
    raises when the new certificate is not seen VALID. With ``retire_old`` the old certificate
    is revoked after."""

    def show(event: Event) -> None:
        if on_event:
            on_event(event)
        if isinstance(event, Step) and on_step:
            on_step(event.step)

    limits = PollLimits(interval=verify_interval, max_attempts=verify_attempts)
    last = await follow(rotation(session, limits=limits), show)
    if isinstance(last, Failed):
        raise last.error
    assert isinstance(last, Done) and isinstance(last.result, RotationProgress)
    progress = last.result
    if retire_old and progress.old_certificate_id and progress.old_certificate_id != progress.new_certificate_id:
        await _retire(session, progress.old_certificate_id)
    return progress


async def rotation(session: Session, *, limits: PollLimits = DEFAULT_LIMITS) -> Events:
    """New key → issue → install beside → verify new VALID → switch current, as progress events
    (a Step per step, the verify step's Attempts, then Done(result=RotationProgress) or Failed).
    Every step is journaled in state.flows.rotation; a rerun resumes where it stopped."""
    session.require(Action.ROTATE)
    flow = await _rotation_flow(session)
    statuses: list[str] = []
    steps: dict[RotationStep, StepAction] = {
        "key": lambda: _rotation_key(session, flow),
        "issue": lambda: _rotation_issue(session, flow),
        "install": lambda: _rotation_install(session, flow),
        "verify": lambda: _rotation_verify(session, flow, limits),
        "switch": lambda: _rotation_switch_step(session, flow),
    }

    def finish(elapsed: float) -> Done:
        progress = RotationProgress("done", flow.old_certificate_id, flow.certificate_id, flow.fingerprint, statuses)
        session.audit.record("rotation_done", old=progress.old_certificate_id, new=progress.new_certificate_id)
        return Done(ROTATION_TASK, elapsed, "VALID", f"Now in use: {progress.new_fingerprint}", progress)

    events = run_steps(ROTATION_TASK, flow, steps, ROTATION_WORDS, "done", lambda: _save_flow(session, flow), finish)
    async with contextlib.aclosing(events) as stream:
        async for event in stream:
            if isinstance(event, Attempt):
                statuses.append(event.status)
            yield event


async def _rotation_flow(session: Session) -> CertificateRotation:
    """The rotation to resume, or a new one once a free slot is confirmed."""
    flow = session.state.flows.rotation
    if flow is not None and flow.step != "done":
        return flow
    status = await gather_status(session)
    active = [c for c in status.certificates if c.status == "ACTIVE"]
    if len(active) >= rules.MAX_ACTIVE_CERTIFICATES:
        spare = [c.credential_id for c in active if not c.installed_here]
        raise InterlockRefused(
            "No free certificate slot for the new certificate.",
            hint=f"Retire one you no longer use: {', '.join(spare[:3]) or 'none is spare'}.",
        )
    flow = CertificateRotation(
        step="key",
        old_certificate_id=session.evidence.certificate_id,
        folder=str(session.paths.keys_dir(session.profile) / f"rotation-{uuid.uuid4().hex[:8]}"),
    )
    _save_flow(session, flow)
    return flow


async def _retire(session: Session, credential_id: str) -> None:
    """Revoke the replaced certificate through the interlock; one already revoked or expired
    (elsewhere, or by an earlier run) leaves nothing to do."""
    found = refusals(Action.REVOKE, (await gather_status(session)).situation(credential_id))
    if found and all(r.check == "target active" for r in found):
        session.audit.record("retire_skipped", certificate_id=credential_id, reason=found[0].reason)
        return
    await revoke(session, credential_id, confirm_suffix=confirm_suffix_for(session, credential_id))


def _save_flow(session: Session, flow: CertificateRotation) -> None:
    session.state.flows.rotation = flow
    session.save()


async def _rotation_key(session: Session, flow: CertificateRotation) -> None:
    folder = Path(flow.folder)
    key_path = folder / "private-key.pem"
    passphrase = session.key_passphrase
    if os.path.lexists(key_path):  # resumed after the key was written: only the key we wrote
        key = await asyncio.to_thread(
            onboarding.load_own_key, key_path, passphrase, flow.key_sha256, flow.public_key_id
        )
    else:
        key = crypto.make_private_key()
        key_pem = crypto.make_private_key_pem(key, passphrase)
        flow.key_sha256 = onboarding.key_digest(key_pem)
        _save_flow(session, flow)  # journaled before the file exists
        await asyncio.to_thread(write_private, key_path, key_pem)
    account = session.evidence.account_id
    if not account:  # as generate_key: an onboarded profile always has one
        raise InputError("Set the account id first.")
    cn = session.evidence.cn or rules.default_cn(account)
    csr_pem = crypto.make_csr_pem(key, cn)
    write_private(folder / "csr.pem", csr_pem)
    flow.key_path, flow.public_key_id, flow.csr_pem, flow.cn = (
        str(key_path),
        crypto.public_key_id(key),
        csr_pem.decode(),
        cn,
    )


async def _rotation_issue(session: Session, flow: CertificateRotation) -> None:
    public_key_id = required(flow.public_key_id, "public_key_id")
    if flow.idempotency_key is None:
        async with session.client() as klarna:
            listing = (await klarna.list_certificates()).value
        mine = onboarding.find_by_key(listing, public_key_id)
        if mine is None:
            onboarding.refuse_when_full(listing)
        flow.idempotency_key = str(uuid.uuid4())
        _save_flow(session, flow)  # journaled before sending
    async with session.client() as klarna:
        answer = await klarna.create_certificate_reconciled(
            required(flow.csr_pem, "csr_pem"),
            f"klarna-mtls {session.profile} rotation",
            flow.idempotency_key,
            public_key_id,
        )
    info = answer.value
    flow.certificate_id, flow.certificate_pem, flow.fingerprint = (
        info.credential_id,
        info.certificate_pem,
        info.fingerprint,
    )
    record = session.state.certificate(info.credential_id)
    record.fingerprint, record.issued_here = info.fingerprint, True
    if info.not_after is not None:
        record.not_after = rules.format_utc(info.not_after)
    session.audit.record(
        "certificate_issued", certificate_id=info.credential_id, fingerprint=info.fingerprint, reason="rotation"
    )


async def _rotation_install(session: Session, flow: CertificateRotation) -> None:
    key_pem = Path(required(flow.key_path, "key_path")).read_bytes()
    label = required(flow.fingerprint, "fingerprint").replace(":", "")[:16].lower()
    await asyncio.to_thread(
        install_pair,
        session.install_dir,
        required(flow.certificate_pem, "certificate_pem").encode(),
        key_pem,
        label=label,
        key_passphrase=session.key_passphrase,
    )
    flow.label = label


def _rotation_verify(session: Session, flow: CertificateRotation, limits: PollLimits) -> Events:
    """The NEW pair must be seen VALID before anything switches to it: the one polling loop,
    observing with the new pair (a first INVALID is Klarna still settling, not a verdict)."""
    pair = next(p for p in list_pairs(session.install_dir) if p.label == flow.label)
    certificate_id = required(flow.certificate_id, "certificate_id")

    async def observe() -> str:
        try:
            async with session.client(pair=pair) as klarna:
                status = (await klarna.list_certificates()).verification.value
        except HandshakeRejected:
            status = "REJECTED"
        session.state.record_status(status, pair.fingerprint, "rotation")
        if status == "VALID":
            session.record_valid(certificate_id, session.clock())
        return status

    def paused(status: str) -> WizardError:
        return WizardError(
            f"The new certificate was not seen VALID (last: {status}); nothing was switched.",
            title="Rotation paused",
            hint="Run rotate again to resume; the current certificate stays in use.",
        )

    return poll("Checking Klarna sees the new certificate VALID", observe, lambda s: s == "VALID", limits, paused)


async def _rotation_switch_step(session: Session, flow: CertificateRotation) -> None:
    _rotation_switch(session, flow)


def _rotation_switch(session: Session, flow: CertificateRotation) -> None:
    label, key_path = required(flow.label, "label"), required(flow.key_path, "key_path")
    certificate_id = required(flow.certificate_id, "certificate_id")
    pair = activate(session.install_dir, label)
    key = crypto.load_private_key_file(Path(key_path), session.key_passphrase)
    old_id = session.evidence.certificate_id
    session.model.adopt_rotated_pair(
        RotatedPair(
            key_path=key_path,
            key_public_id=crypto.public_key_id(key),
            csr_pem=required(flow.csr_pem, "csr_pem"),
            cn=required(flow.cn, "cn"),
            certificate_id=certificate_id,
            certificate_pem=required(flow.certificate_pem, "certificate_pem"),
            fingerprint=required(flow.fingerprint, "fingerprint"),
            modes=pair.modes(),
            installed_fingerprint=pair.fingerprint,
        )
    )
    record = session.state.certificate(certificate_id)
    record.installed, record.label = True, label
    if old_id:
        session.state.certificate(old_id).current = False
    session.audit.record("current_switched", old=old_id, new=certificate_id)
