"""Living with certificates after onboarding: status, rotation without a gap, revocation that
cannot lock the partner out, enforcement changes, the doctor and the cron check.

UI-agnostic: functions take a flow.Session and return dataclasses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard import __version__
from wizard.core import crypto, rules
from wizard.core.diagnosis import diagnose
from wizard.core.errors import ApiError, CryptoError, HandshakeRejected, InputError, InterlockRefused, WizardError
from wizard.core.flow_records import CertificateRotation, RotationStep, required
from wizard.core.fsutil import atomic_write, ensure_output_dir, write_private
from wizard.core.interlocks import Action, Situation, refusals, require
from wizard.core.model import RotatedPair
from wizard.core.records import CertificateRecord
from wizard.core.stages import Stage
from wizard.services import onboarding, runtime_gate
from wizard.services.install import activate, current_pair, install_pair, list_pairs, verify_private_files
from wizard.services.session import Session
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

if TYPE_CHECKING:
    from wizard.klarna.api import CertificateInfo

EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_ERROR = 0, 1, 2, 3

SEVERITY_EXIT = {"ok": EXIT_OK, "warning": EXIT_WARNING, "critical": EXIT_CRITICAL, "error": EXIT_ERROR}


# ---------------------------------------------------------------- status
@dataclass(frozen=True)
class CertificateRow:
    credential_id: str
    cn: str | None
    fingerprint: str | None
    fingerprint_suffix: str
    created_at: str | None
    expires_at: str | None
    days_left: int | None
    status: str
    installed_here: bool
    current: bool
    last_seen_valid: str | None
    lifetime_elapsed: float | None  # 0..1 of the validity period already used
    in_renewal_window: bool

    @property
    def confirm_suffix(self) -> str:
        """What a live revocation is confirmed with: the fingerprint's suffix (ours first), or the
        credential id's last 8 characters when no fingerprint is known."""
        return self.fingerprint_suffix if self.fingerprint else self.credential_id[-8:]


@dataclass(frozen=True)
class ProfileStatus:
    profile: str
    environment: str | None
    account_id: str | None
    stage: str
    certificates: list[CertificateRow]
    enforcement_mode: str | None
    enforced_from: str | None
    slots_used: int
    secret_backend: str | None
    verification: str | None  # what the installed pair sees right now
    tls_version: str | None = None
    clock_skew_seconds: float | None = None
    installed: bool | None = None  # a pair is in the install folder's `current`
    current_id: str | None = None  # its credential id, from the profile's records
    enforcement_scheduled: bool | None = None  # None: the answer did not say

    @property
    def current(self) -> CertificateRow | None:
        return next((c for c in self.certificates if c.current), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def situation(self, target: str | None = None) -> Situation:
        """The facts the interlocks judge, as this status observed them."""
        return Situation(
            stage=Stage(self.stage),
            installed=self.installed,
            current_id=self.current_id,
            listed_ids=frozenset(c.credential_id for c in self.certificates),
            statuses={c.credential_id: c.status for c in self.certificates},
            verification_now=self.verification,
            enforcement=self.enforcement_mode,
            enforcement_scheduled=self.enforcement_scheduled,
            target=target,
        )


async def gather_status(session: Session) -> ProfileStatus:
    """The account as seen now through the installed pair. "Installed here", "current" and "last
    seen VALID" come from the profile's records; the listing's own fields only refine the display."""
    look = await session.look()
    now = session.clock()
    if look.pair is not None:
        session.state.record_status(look.verification or "UNKNOWN", look.pair.fingerprint, "status")
        if look.verification == "VALID":
            session.record_valid(look.current_id, now)
        session.save()  # writes only when something observed changed
    installed = {session.current_id(p) for p in list_pairs(session.install_dir)} - {None}
    situation = session.situation(look)
    rows = [
        _row(
            info,
            session.state.certificates.get(info.credential_id) or CertificateRecord(),
            situation.statuses[info.credential_id],
            info.credential_id in installed,
            info.credential_id == look.current_id,
            now,
        )
        for info in look.certificates
    ]
    enforcement = look.enforcement
    return ProfileStatus(
        profile=session.profile,
        environment=session.environment,
        account_id=session.evidence.account_id,
        stage=session.model.stage.value,
        certificates=sorted(rows, key=lambda r: r.expires_at or ""),
        enforcement_mode=enforcement.mode.value,
        enforced_from=enforcement.enforced_from,
        slots_used=sum(1 for r in rows if r.status == "ACTIVE"),
        secret_backend=session.evidence.secret_backend_name,
        verification=look.verification,
        tls_version=look.tls_version,
        clock_skew_seconds=look.clock_skew_seconds,
        installed=look.pair is not None,
        current_id=look.current_id,
        enforcement_scheduled=enforcement.scheduled,
    )


def _row(
    info: CertificateInfo, local: CertificateRecord, status: str, installed_here: bool, current: bool, now: datetime
) -> CertificateRow:
    """One certificate for display. Expiry comes from the listed PEM, else from our own record of
    the certificate Klarna returned to us; the fingerprint likewise (ours first)."""
    days_left = elapsed = None
    renewal = False
    expires_at = info.expires_at or local.not_after
    if info.not_after is not None and info.certificate_pem:
        cert = crypto.load_certificate(info.certificate_pem)
        total = (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()
        elapsed = min(1.0, max(0.0, (now - cert.not_valid_before_utc).total_seconds() / total)) if total > 0 else 1.0
        days_left = (cert.not_valid_after_utc - now).days
        renewal = cert.not_valid_after_utc - now <= rules.RENEWAL_WINDOW
    elif expires_at:
        moment = rules.parse_timestamp(expires_at)
        days_left = (moment - now).days
        renewal = moment - now <= rules.RENEWAL_WINDOW
    fingerprint = local.fingerprint or info.fingerprint
    return CertificateRow(
        credential_id=info.credential_id,
        cn=info.cn,
        fingerprint=fingerprint,
        fingerprint_suffix=crypto.fingerprint_suffix(fingerprint or ""),
        created_at=info.created_at,
        expires_at=expires_at,
        days_left=days_left,
        status=status,
        installed_here=installed_here,
        current=current,
        last_seen_valid=local.last_seen_valid,
        lifetime_elapsed=elapsed,
        in_renewal_window=renewal,
    )


# ---------------------------------------------------------------- revocation interlock
def revoke_refusal(status: ProfileStatus, credential_id: str) -> str | None:
    """Why revoking ``credential_id`` could lock the partner out (every reason), or None when it
    is safe. The rules are ``interlocks.ACTIONS[Action.REVOKE]``; a UI asks before offering."""
    found = refusals(Action.REVOKE, status.situation(credential_id))
    return " ".join(r.reason for r in found) or None


async def revoke(session: Session, credential_id: str, *, confirm_suffix: str | None = None) -> ProfileStatus:
    status = await gather_status(session)
    require(
        Action.REVOKE, replace(status.situation(credential_id), **runtime_gate.revoke_facts(session, credential_id))
    )
    target = next(c for c in status.certificates if c.credential_id == credential_id)
    if session.environment == "live" and not (confirm_suffix and confirm_suffix == target.confirm_suffix):
        shown = target.confirm_suffix[-2:]
        what = "fingerprint suffix" if target.fingerprint else "credential id's last 8 characters"
        raise InterlockRefused(
            f"Revoking on a live profile needs the certificate's {what} typed to confirm.",
            hint=f"Confirm with those 8 characters (they end …{shown}).",
        )
    async with session.client() as klarna:
        await klarna.revoke_certificate(credential_id)
    session.state.certificate(credential_id).retired = True
    session.save()
    session.audit.record("certificate_revoked", certificate_id=credential_id, fingerprint=target.fingerprint)
    return await gather_status(session)


# ---------------------------------------------------------------- enforcement
async def schedule_enforcement(
    session: Session, enforced_from: str, *, leave_out: tuple[str, ...] = (), confirm_leave_out: str | None = None
) -> str:
    """Enforce from ``enforced_from``; ``onboarding.enforce`` holds the interlock for every path,
    declared runtimes included (``leave_out`` names those not counted, on purpose)."""
    return await onboarding.enforce(session, enforced_from, leave_out=leave_out, confirm_leave_out=confirm_leave_out)


# ---------------------------------------------------------------- rotation
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


def confirm_suffix_for(session: Session, credential_id: str) -> str | None:
    """What a live revocation is confirmed with: our recorded fingerprint's suffix, else the id's end."""
    fingerprint = session.state.fingerprint_of(credential_id)
    return crypto.fingerprint_suffix(fingerprint) if fingerprint else credential_id[-8:]


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


# ---------------------------------------------------------------- doctor and check
@dataclass(frozen=True)
class Finding:
    check: str
    severity: str  # ok | warning | critical | error
    summary: str
    next_step: str = ""


DoctorCheck = Callable[[Session, "ProfileStatus | None"], Awaitable[list[Finding]]]


async def doctor_local(session: Session, status: ProfileStatus | None) -> list[Finding]:
    out = []
    ev = session.evidence
    backend = ev.secret_backend_name or "none chosen"
    out.append(
        Finding(
            "secret backend",
            "ok" if ev.secret_backend else "warning",
            f"API key kept in: {backend}.",
            "" if ev.secret_backend else "Run the wizard's Credentials step.",
        )
    )
    out.append(_trust_finding(session))
    pair = current_pair(session.install_dir)
    if pair is None:
        out.append(
            Finding("install", "critical", "No certificate is installed here.", "Run the wizard (Install step).")
        )
        return out
    try:
        verify_private_files(pair)
        out.append(Finding("file modes", "ok", "Key file 600 in a 700 folder."))
    except CryptoError as error:
        out.append(Finding("file modes", "critical", error.message, error.hint))
    try:
        key = crypto.load_private_key_file(pair.key_path, session.key_passphrase)
        cert = crypto.load_certificate(pair.cert_path.read_bytes())
        crypto.verify_cert_matches_key(cert, key)
        out.append(Finding("key match", "ok", "Installed certificate and key belong together."))
    except CryptoError as error:
        out.append(Finding("key match", "critical", error.message, error.hint))
        return out
    out.append(_expiry_finding(cert.not_valid_after_utc, session.clock(), 60, 14))
    expected_cn = ev.cn or (rules.default_cn(ev.account_id) if ev.account_id else None)
    cn = crypto.certificate_cn(cert)
    out.append(
        Finding(
            "CN",
            "ok" if cn == expected_cn else "warning",
            f"Certificate CN is {cn}.",
            "" if cn == expected_cn else f"Klarna's rule expects {expected_cn}.",
        )
    )
    return out


def _trust_finding(session: Session) -> Finding:
    """Which CAs this profile trusts and which proxy carries its traffic (the environment may
    choose a proxy, never the trust)."""
    from urllib.parse import urlsplit

    from wizard.klarna.api import environment_proxy, trusted_roots

    if session.settings.trust_ca:
        trust = f"the CA set you chose (onboard --trust-ca) {session.ca_bundle}"
    elif session.ca_bundle:
        trust = f"only the sandbox CA {session.ca_bundle}"
    else:
        trust = f"the bundled roots {trusted_roots()}"
    proxy = environment_proxy()
    if proxy:
        parts = urlsplit(proxy)
        proxy = f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"
    return Finding(
        "trust",
        "ok",
        f"Servers are trusted through {trust} (SSL_CERT_FILE, SSL_CERT_DIR and "
        f"SSLKEYLOGFILE are ignored); proxy: {proxy or 'none'}.",
    )


async def doctor_remote(session: Session, status: ProfileStatus | None) -> list[Finding]:
    if status is None:
        return []
    out: list[Finding] = []
    skew = status.clock_skew_seconds
    if skew is not None:
        bad = abs(skew) > 120
        out.append(
            Finding(
                "clock",
                "warning" if bad else "ok",
                f"Clock differs from Klarna's by {skew:+.0f} s.",
                "Fix this machine's clock (NTP)." if bad else "",
            )
        )
    out.append(Finding("TLS", "ok", f"Negotiated {status.tls_version or 'TLS'} with Klarna; reachable."))
    verdict = status.verification or "UNKNOWN"
    diagnosis = diagnose(verdict)
    out.append(
        Finding(
            "verification",
            "ok" if verdict == "VALID" else "critical",
            f"{verdict}: {diagnosis.summary}",
            " ".join(diagnosis.next_steps[:1]),
        )
    )
    out.append(_enforcement_finding(status))
    slots = status.slots_used
    out.append(
        Finding(
            "slots",
            "warning" if slots >= rules.MAX_ACTIVE_CERTIFICATES - 1 else "ok",
            f"{slots} of {rules.MAX_ACTIVE_CERTIFICATES} certificate slots used.",
            "Revoke certificates you no longer use." if slots >= rules.MAX_ACTIVE_CERTIFICATES - 1 else "",
        )
    )
    return out


def _enforcement_finding(status: ProfileStatus) -> Finding:
    """The enforcement mode as observed; unknown is a warning (destructive steps wait for it)."""
    mode = status.enforcement_mode or "UNKNOWN"
    if mode == "UNKNOWN":
        return Finding(
            "enforcement",
            "warning",
            "Enforcement: UNKNOWN (Klarna's answer did not say).",
            "Revoking and enforcing are refused until the state can be read; try again later.",
        )
    note = f"Enforcement: {mode}" + (f" from {status.enforced_from}" if status.enforced_from else "") + "."
    return Finding("enforcement", "ok", note, "" if mode == "ENFORCED" else "Enforce once every runtime is VALID.")


def _expiry_finding(not_after: datetime, now: datetime, warn_days: int, critical_days: int) -> Finding:
    days = (not_after - now).days
    if not_after <= now:
        return Finding(
            "expiry", "critical", f"The certificate expired on {not_after:%Y-%m-%d}.", "Rotate now: klarna-mtls rotate"
        )
    if days <= critical_days:
        return Finding(
            "expiry",
            "critical",
            f"The certificate expires in {days} days ({not_after:%Y-%m-%d}).",
            "Rotate now: klarna-mtls rotate",
        )
    if days <= warn_days:
        return Finding(
            "expiry",
            "warning",
            f"The certificate expires in {days} days ({not_after:%Y-%m-%d}).",
            "Plan a rotation: klarna-mtls rotate",
        )
    return Finding("expiry", "ok", f"The certificate is valid for {days} more days ({not_after:%Y-%m-%d}).")


async def check(session: Session, warn_days: int, critical_days: int) -> tuple[int, list[Finding]]:
    """For cron: expiry of the installed certificate and its verification status."""
    if critical_days > warn_days:
        raise InputError("--critical-days must not exceed --warn-days.")
    pair = current_pair(session.install_dir)
    if pair is None:
        findings = [Finding("install", "critical", "No certificate is installed here.", "Run klarna-mtls onboard.")]
        return EXIT_CRITICAL, findings
    cert = crypto.load_certificate(pair.cert_path.read_bytes())
    findings = [_expiry_finding(cert.not_valid_after_utc, session.clock(), warn_days, critical_days)]
    findings += runtime_gate.check_findings(session.state.runtimes, session.clock())
    try:
        observation: onboarding.Observation = await onboarding.observe(session)
    except ApiError as error:
        if error.status != 403:
            raise
        # Under enforcement Klarna refuses a call whose certificate it no longer accepts: for a
        # monitor that is the critical finding itself, not a failure to check.
        findings.append(
            Finding(
                "verification",
                "critical",
                f"Klarna refused the installed certificate: {error.message}",
                "Rotate now: klarna-mtls rotate (klarna-mtls doctor explains the cause).",
            )
        )
        return worst(findings), findings
    verdict = observation.status
    findings.append(
        Finding(
            "verification",
            "ok" if verdict == "VALID" else "critical",
            f"Klarna sees the installed certificate as {verdict}.",
            " ".join(diagnose(verdict).next_steps[:1]),
        )
    )
    return worst(findings), findings


def worst(findings: list[Finding]) -> int:
    return max((SEVERITY_EXIT[f.severity] for f in findings), default=EXIT_OK)


# ---------------------------------------------------------------- support bundle
def support_bundle(session: Session) -> dict[str, Any]:
    """What Klarna support or a colleague needs; never a secret."""
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    pair = current_pair(session.install_dir)
    certificate = None
    if pair is not None:
        cert = crypto.load_certificate(pair.cert_path.read_bytes())
        certificate = {
            "fingerprint": pair.fingerprint,
            "cn": crypto.certificate_cn(cert),
            "not_after": rules.format_utc(cert.not_valid_after_utc),
            "label": pair.label,
        }
    ev = session.evidence
    return {
        "profile": session.profile,
        "environment": ev.environment,
        "account_id": ev.account_id,
        "stage": session.model.stage.value,
        "api_key": ev.api_key_masked,
        "secret_backend": ev.secret_backend_name,
        "installed_certificate": certificate,
        "certificates": {
            cid: {k: v for k, v in info.to_dict().items() if k != "label"}
            for cid, info in session.state.certificates.items()
        },
        "enforcement": {"mode": ev.enforcement_mode, "enforced_from": ev.enforced_from},
        "status_history": [entry.to_dict() for entry in session.state.status_history[-50:]],
        "versions": {
            "klarna-mtls": __version__,
            "python": platform.python_version(),
            "cryptography": version("cryptography"),
            "httpx": version("httpx"),
            "textual": version("textual"),
            "keyring": version("keyring"),
        },
        "paths": {
            "install_dir": str(session.install_dir),
            "journal": str(session.journal.path),
            "audit_log": str(session.audit.path),
        },
    }


def write_support_bundle(session: Session, out: Path) -> Path:
    import json

    ensure_output_dir(out.parent)  # the user's folder (maybe /tmp) keeps its mode; the file is 0600
    atomic_write(out, json.dumps(support_bundle(session), indent=2, sort_keys=True).encode(), 0o600)
    return out
