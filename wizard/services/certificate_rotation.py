"""Rotating the certificate without a gap: new key → Klarna issues → install beside the current
pair → see the new one VALID → switch ``current`` to it, then, when asked, retire the old one
(after a grace period).

Every step is journaled (``state.flows.rotation``, a ``flow_records.CertificateRotation``) and run
by ``waits.run_steps``, so a rerun resumes where an interrupted one stopped, the retirement
included. ``rotation`` yields the progress events; ``rotate`` runs it to its end for callers that
only want the result. A rotation never makes things worse: the new certificate is judged before
it is installed and again before the switch (``rotation_endings.accept_or_end``), and a rotation
that cannot finish can be abandoned (``rotation_endings.abandon_rotation``). When Klarna refuses
the installed pair and enforcement is off, the rotation calls without it (``recovery``)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from wizard.core import acceptance, crypto, rules
from wizard.core.errors import (
    ApiError,
    HandshakeRejected,
    InputError,
    InterlockRefused,
    StorageError,
    WizardError,
)
from wizard.core.flow_records import CertificateRotation, RotationStep, required
from wizard.core.fsutil import write_private
from wizard.core.interlocks import Action, ActionRefused, Refusal, Situation, refusals
from wizard.core.model import RotatedPair
from wizard.services import onboarding, recovery
from wizard.services.install import activate, install_pair, list_pairs
from wizard.services.revocation import confirm_suffix_for, revoke, revoke_situation, used_elsewhere
from wizard.services.rotation_endings import (
    AbandonedRotation,
    abandon_rotation,
    accept_or_end,
    save_flow,
    what_changed,
)
from wizard.services.session import Session, acceptance_of
from wizard.services.slots import slot_facts
from wizard.services.status import gather_status
from wizard.services.waits import (
    NEW_CERTIFICATE_LIMIT,
    NEW_CERTIFICATE_LIMITS,
    Attempt,
    Done,
    Event,
    Events,
    Failed,
    PollLimits,
    Started,
    Step,
    StepAction,
    Waiting,
    follow,
    poll,
    run_steps,
)

__all__ = [
    "AbandonedRotation",
    "abandon_rotation",
    "rotate",
    "rotation",
    "schedule_retirement",
]  # abandon: rotation_endings

ROTATION_TASK = "Rotating the certificate"
GRACE_TASK = "Grace period before revoking the old certificate"
GRACE_REPORT_EVERY = 60.0  # seconds between the grace period's progress events
Pause = Callable[[float], Awaitable[None]]


@dataclass
class RotationProgress:
    step: str
    old_certificate_id: str | None
    new_certificate_id: str | None
    new_fingerprint: str | None
    statuses_seen: list[str] = field(default_factory=list)
    retired: bool = False  # the old certificate was revoked (or found already gone) by this rotation
    notes: list[str] = field(default_factory=list)  # said along the way (a call without certificate, a CN)
    verification: str | None = None  # how Klarna accepted the new pair (acceptance.accepted); None: not known


def accepted_as(session: Session, flow: CertificateRotation, seen: list[str]) -> str | None:
    """How Klarna accepted the new certificate before the switch: the last accepting status this
    run saw, or, resumed past the verify step, the journal's for that pair. Never assumed VALID:
    no header under enforcement stays ACCEPTED_UNDER_ENFORCEMENT, and nothing recorded is None."""
    recorded = [e.status for e in session.state.status_history if e.fingerprint == flow.fingerprint]
    found = [status for status in (*recorded, *seen) if acceptance.accepted(status)]
    return found[-1] if found else None


ROTATION_WORDS: dict[RotationStep, str] = {
    "key": "New private key and CSR",
    "issue": "Klarna issues the new certificate",
    "install": "Install it beside the current pair",
    "verify": "See Klarna accept the new certificate",  # VALID, or accepted under enforcement
    "switch": "Switch `current` to the new pair",
}
RETIRE_WORDS: dict[RotationStep, str] = {"retire": "Revoke the old certificate (after the grace period)"}


async def grace_pause(seconds: float) -> None:
    """One pause of the grace period (a module function: a test stands in for time here)."""
    await asyncio.sleep(seconds)


async def rotate(
    session: Session,
    *,
    retire_old: bool = False,
    grace: float = 0.0,
    verify_attempts: int | None = None,
    verify_interval: float = 2.0,
    verify_limit: float = NEW_CERTIFICATE_LIMIT,
    on_step: Callable[[str], None] | None = None,
    on_event: Callable[[Event], None] | None = None,
    hook_owed: bool = False,
) -> RotationProgress:
    """``rotation`` run to its end: ``on_event`` sees every event, ``on_step`` each step's name;
    raises when the new certificate is not seen VALID within ``verify_limit`` seconds (or
    ``verify_attempts`` checks). With ``retire_old`` the old certificate is revoked ``grace``
    seconds after the switch (a journaled step: a rerun finishes it). With ``hook_owed`` the
    rotation journals, before its switch, that a deploy hook is owed for it."""

    def show(event: Event) -> None:
        if on_event:
            on_event(event)
        if isinstance(event, Step) and on_step:
            on_step(event.step)

    limits = PollLimits.for_new_certificate(verify_interval, verify_limit)
    if verify_attempts is not None:
        limits = replace(limits, max_attempts=verify_attempts)
    events = rotation(session, limits=limits, retire_old=retire_old, grace=grace, hook_owed=hook_owed)
    last = await follow(events, show)
    if isinstance(last, Failed):
        raise last.error
    assert isinstance(last, Done) and isinstance(last.result, RotationProgress)
    return last.result


async def rotation(
    session: Session,
    *,
    limits: PollLimits = NEW_CERTIFICATE_LIMITS,
    retire_old: bool = False,
    grace: float = 0.0,
    hook_owed: bool = False,
) -> Events:
    """New key → issue → install beside → verify new VALID → switch current (→ retire the old),
    as progress events (a Step per step, the verify step's Attempts, the grace period's
    Started/Waiting, then Done(result=RotationProgress) or Failed). Every step is journaled in
    state.flows.rotation; a rerun resumes where it stopped. When Klarna refuses the installed
    pair, the rotation goes on without it if enforcement is off (``recovery.way_back``)."""
    session.require(Action.ROTATE, spends_slot=False)  # the issue step asks again with the slots
    _retirement_allowed(session, retire_old)
    notes: list[str] = []
    for attempt in range(2):
        try:
            run = _rotation_run(session, limits, retire_old, grace, hook_owed, notes)
            async with contextlib.aclosing(run) as events:
                async for event in events:
                    yield event
            return
        except WizardError as error:
            if attempt or not recovery.refused_pair(error):
                raise
            notes.append(await recovery.way_back(session, error))


async def _rotation_run(
    session: Session, limits: PollLimits, retire_old: bool, grace: float, hook_owed: bool, notes: list[str]
) -> Events:
    flow = await _rotation_flow(session, retire_old, grace, hook_owed)
    statuses: list[str] = []
    steps: dict[RotationStep, StepAction] = {
        "key": lambda: _rotation_key(session, flow),
        "issue": lambda: _rotation_issue(session, flow),
        "install": lambda: _rotation_install(session, flow),
        "verify": lambda: _rotation_verify(session, flow, limits),
        "switch": lambda: _rotation_switch_step(session, flow, grace, notes),
    }
    if flow.retire_old:
        steps["retire"] = lambda: _rotation_retire(session, flow)

    def finish(elapsed: float) -> Done:
        retired = flow.retire_old and flow.old_certificate_id not in (None, flow.certificate_id)
        accepted = accepted_as(session, flow, statuses)
        progress = RotationProgress(
            "done", flow.old_certificate_id, flow.certificate_id, flow.fingerprint, statuses, retired, notes, accepted
        )
        session.audit.record("rotation_done", old=progress.old_certificate_id, new=progress.new_certificate_id)
        said = f"; Klarna: {acceptance.in_words(accepted)}" if accepted else ""
        return Done(ROTATION_TASK, elapsed, accepted, f"Now in use: {progress.new_fingerprint}{said}", progress)

    words = {**ROTATION_WORDS, **RETIRE_WORDS}
    events = run_steps(ROTATION_TASK, flow, steps, words, "done", lambda: save_flow(session, flow), finish)
    try:
        async with contextlib.aclosing(events) as stream:
            async for event in stream:
                if isinstance(event, Attempt):
                    statuses.append(event.status)
                yield event
    except StorageError as error:  # a full disk: say what had already changed
        raise what_changed(session, flow, error) from None


async def _rotation_flow(session: Session, retire_old: bool, grace: float, hook_owed: bool) -> CertificateRotation:
    """The rotation to resume (asked now to retire the old certificate, it will; a deploy hook
    owed for it is journaled before its switch), or a new one once a free slot is confirmed."""
    flow = session.state.flows.rotation
    if flow is not None and flow.step != "done":
        if retire_old and not flow.retire_old and flow.step != "retire":
            flow.retire_old, flow.grace_seconds = True, f"{grace:g}"
            save_flow(session, flow)
        if hook_owed and not flow.deploy_hook_owed and flow.step not in ("retire", "done"):
            flow.deploy_hook_owed = True
            save_flow(session, flow)
        return flow
    async with session.client() as klarna:
        listing = (await klarna.list_certificates()).value
    session.require(Action.ROTATE, **slot_facts(session, listing))  # before a key is made
    previous = flow  # finished, or none
    flow = CertificateRotation(
        step="key",
        old_certificate_id=session.evidence.certificate_id,
        folder=str(session.paths.keys_dir(session.profile) / f"rotation-{uuid.uuid4().hex[:8]}"),
        retire_old=retire_old,
        grace_seconds=f"{grace:g}" if retire_old else None,
        # A hook still owed by the finished rotation this one replaces stays owed: its service
        # was never reloaded, and the next renew runs it with the new pair's paths.
        deploy_hook_owed=hook_owed or (previous is not None and previous.deploy_hook_owed),
    )
    save_flow(session, flow)
    return flow


def _retirement_allowed(session: Session, retire_old: bool) -> None:
    """A retirement whose old certificate a declared runtime or another local profile still
    presents would be refused at the end, the new pair in use and the flow left to a rerun or
    --abandon: refused before a key is made or a slot spent. Refusing (not rotating and quietly
    keeping the old one) leaves nothing half done and no exit 0 over an old certificate that was
    asked to go; past the switch, the retire step judges everything again itself. So is one while
    the records and the installed files disagree (the revoke interlock's "installed pair sound"):
    after the switch the new pair is sound again and the retire step could no longer see it."""
    flow = session.state.flows.rotation
    unfinished = flow if flow is not None and flow.step != "done" else None
    if unfinished is not None and unfinished.step == "retire":
        return
    if not (retire_old or (unfinished is not None and unfinished.retire_old)):
        return
    old = unfinished.old_certificate_id if unfinished is not None else session.evidence.certificate_id
    found = retirement_refusals(session, old, session.installed_damage())
    if found:
        instead = (
            "or end this rotation, which was asked to retire it, with klarna-mtls rotate --abandon"
            if unfinished is not None
            else "or rotate without --retire-old: the old certificate stays active, for certs revoke once unused"
        )
        raise InterlockRefused(
            f"Refusing to rotate and retire {old}: " + " ".join(r.reason for r in found),
            hint=f"{found[0].hint} Then rotate again; {instead}.",
        )


def retirement_refusals(session: Session, old: str | None, damage: str | None) -> list[Refusal]:
    """What keeps ``old`` from being retired after a rotation, judged before its switch (front ends
    ask it before they offer): ``damage``, the records and the installed files disagreeing as seen
    then, and a declared runtime or another local profile still presenting ``old``."""
    damaged = Situation(stage=session.model.stage, target=old, current_damage=damage)
    found = [r for r in refusals(Action.REVOKE, damaged) if r.check == "installed pair sound"]
    return found + (used_elsewhere(session, old) if old else [])


async def _retire(session: Session, credential_id: str) -> None:
    """Revoke the replaced certificate through the interlock; one already revoked or expired
    (elsewhere, or by an earlier run) leaves nothing to do. A refusal leaves the step to the
    rerun, which tries again, or to ``rotate --abandon``, which keeps the old certificate."""
    found = refusals(Action.REVOKE, revoke_situation(session, await gather_status(session), credential_id))
    if found and all(r.check == "target active" for r in found):
        session.audit.record("retire_skipped", certificate_id=credential_id, reason=found[0].reason)
        return
    try:
        await revoke(session, credential_id, confirm_suffix=confirm_suffix_for(session, credential_id))
    except ActionRefused as refused:
        raise InterlockRefused(
            f"The new certificate is in use, but the old one, {credential_id}, was not revoked: {refused.message}",
            hint=f"{refused.hint} Then run klarna-mtls rotate to finish retiring it, or klarna-mtls rotate "
            "--abandon to keep it active.",
        ) from None


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
        save_flow(session, flow)  # journaled before the file exists
        await asyncio.to_thread(write_private, key_path, key_pem)
    account = session.evidence.account_id
    if not account:  # as generate_key: an onboarded profile always has one
        raise InputError("Set the account id first.")
    cn = session.evidence.cn or rules.default_cn(account)  # the CSR asks for the profile's CN
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
            session.require(Action.ROTATE, **slot_facts(session, listing))
        flow.idempotency_key = str(uuid.uuid4())
        save_flow(session, flow)  # journaled before sending
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
    accept_or_end(session, flow)  # a certificate that may not replace the current one ends it here


async def _rotation_install(session: Session, flow: CertificateRotation) -> None:
    accept_or_end(session, flow)  # again: a rotation saved by an earlier version is judged too
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
    accept_or_end(session, flow)  # a rotation resumed here is judged before it waits
    pair = next(p for p in list_pairs(session.install_dir) if p.label == flow.label)
    certificate_id = required(flow.certificate_id, "certificate_id")

    async def observe() -> str:
        try:
            async with session.client(pair=pair) as klarna:
                status = await acceptance_of(klarna, (await klarna.list_certificates()).verification.value)
        except HandshakeRejected:
            status = "REJECTED"
        except ApiError as error:
            if not recovery.refused_pair(error):
                raise
            status = "INVALID"  # an enforced account refusing the new pair: not accepted (yet), not ours to recover
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

    task = "Checking Klarna accepts the new certificate (VALID)"
    return poll(task, observe, acceptance.accepted, limits, paused)


async def _rotation_switch_step(session: Session, flow: CertificateRotation, grace: float, notes: list[str]) -> None:
    notes.extend(accept_or_end(session, flow))  # judged again now: time passed while verifying
    _rotation_switch(session, flow)
    if flow.retire_old:
        wait = float(flow.grace_seconds or grace or 0)
        flow.retire_at = (session.clock() + timedelta(seconds=wait)).isoformat()


def schedule_retirement(session: Session, old_id: str, grace: float) -> None:
    """Journal the retirement of ``old_id``, replaced by the rotation just finished, ``grace``
    seconds from now, as that rotation's retire step: ``rotate`` then waits what is left and
    revokes it, and a run killed meanwhile is finished by the next ``rotate`` or ``renew``
    (``rotate --abandon`` keeps it). For a retirement that waited on something outside the
    rotation (an exported copy, a deploy hook)."""
    flow = session.state.flows.rotation
    if flow is None or flow.step != "done" or flow.old_certificate_id != old_id:
        raise InterlockRefused(
            f"{old_id} is not the certificate the last rotation replaced; it was not revoked.",
            hint=f"Revoke it yourself once its users have switched: klarna-mtls certs revoke --profile "
            f"{session.profile} {old_id}",
        )
    flow.step, flow.retire_old, flow.grace_seconds = "retire", True, f"{grace:g}"
    flow.deploy_hook_owed = False  # the hook it waited for ran: one journal write with the retirement
    flow.retire_at = (session.clock() + timedelta(seconds=grace)).isoformat()
    save_flow(session, flow)
    session.audit.record("retirement_scheduled", certificate_id=old_id, at=flow.retire_at)


def _rotation_retire(session: Session, flow: CertificateRotation) -> Events:
    """Revoke the old certificate once the grace period journaled at the switch is over (a rerun
    waits only what is left of it): Started and Waiting events meanwhile."""

    async def events() -> Events:
        old = flow.old_certificate_id
        if old and old != flow.certificate_id:
            due = rules.parse_timestamp(required(flow.retire_at, "retire_at"))
            left = max(0, math.ceil((due - session.clock()).total_seconds()))
            if left:
                yield Started(GRACE_TASK, left)
            waited = 0.0
            while waited < left:
                pause = min(left - waited, GRACE_REPORT_EVERY)
                await grace_pause(pause)
                waited += pause
                if waited < left:
                    yield Waiting(GRACE_TASK, waited, left)
            await _retire(session, old)
        yield Done(GRACE_TASK, 0.0)

    return events()


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
