"""How a certificate rotation ends other than by finishing, without ever making things worse.

- A certificate Klarna answered that may not replace the one in use (``core.replacement``: the
  wrong key, CN or issuer, not valid now, expiring sooner or inside the renewal window) ends the
  rotation with the reason (``accept_or_end``): the current pair stays, nothing is retired, and
  the unused certificate is recorded so it can be revoked.
- ``abandon_rotation`` (``rotate --abandon``, the TUI's Abandon) ends an unfinished rotation
  where it stands: before the switch the current pair stays and the certificate issued for the
  rotation is recorded as unused; after the switch the old certificate is simply not retired.
- A file that cannot be written mid-rotation (a full disk) says exactly what had already
  changed (``what_changed``), never that nothing was.

The unused certificates are ``flows.unused_certificates`` (flow_records.UnusedCertificate):
``certs revoke`` forgets one once revoked."""

from __future__ import annotations

from dataclasses import dataclass

from wizard.core import rules
from wizard.core.errors import CryptoError, InputError, StorageError, WizardError
from wizard.core.flow_records import CertificateRotation, UnusedCertificate, required
from wizard.core.replacement import Replacement, judge
from wizard.services.install import current_pair
from wizard.services.session import Session


@dataclass(frozen=True)
class AbandonedRotation:
    """What ``abandon_rotation`` left: ``unused_certificate_id`` was issued for the rotation and
    never used (revoke it: ``certs revoke``); ``in_use_certificate_id`` is the one still in use."""

    step: str
    unused_certificate_id: str | None
    in_use_certificate_id: str | None
    message: str


def save_flow(session: Session, flow: CertificateRotation | None) -> None:
    session.state.flows.rotation = flow
    session.save()


def revoke_command(session: Session, credential_id: str) -> str:
    return f"klarna-mtls certs revoke --profile {session.profile} {credential_id}"


def accept_or_end(session: Session, flow: CertificateRotation) -> list[str]:
    """The notes when the rotation's certificate may replace the one in use now; otherwise the
    rotation ends (the unused certificate recorded, the flow cleared) and the reasons are raised."""
    replacement = Replacement(
        certificate_pem=required(flow.certificate_pem, "certificate_pem"),
        public_key_id=required(flow.public_key_id, "public_key_id"),
        cn=required(flow.cn, "cn"),
        account_id=session.evidence.account_id or "",
        current_pem=session.evidence.certificate_pem,
    )
    verdict = judge(replacement, session.clock())
    if verdict.accepted:
        return verdict.notes
    certificate_id = required(flow.certificate_id, "certificate_id")
    reason = " ".join(verdict.reasons)
    end_unused(session, flow, reason)
    raise CryptoError(
        f"The rotation ended without using Klarna's new certificate {certificate_id}: {reason} "
        "The current certificate stays in use and nothing was retired.",
        title="Rotation ended: certificate not used",
        hint=f"It is active at Klarna and takes a slot: revoke it ({revoke_command(session, certificate_id)}). "
        "klarna-mtls rotate then starts a new rotation.",
    )


def end_unused(session: Session, flow: CertificateRotation, reason: str) -> None:
    """Clear the flow; the certificate it was issued (if any) is recorded as unused."""
    if flow.certificate_id:
        session.state.flows.unused_certificates[flow.certificate_id] = UnusedCertificate(
            reason=reason, at=rules.format_utc(session.clock())
        )
    save_flow(session, None)
    session.audit.record("rotation_ended", step=flow.step, unused=flow.certificate_id, reason=reason)


async def abandon_rotation(session: Session) -> AbandonedRotation:
    """End the unfinished rotation where it stands, changing nothing in use (see the module's
    docstring). A certificate requested whose answer was never recorded is looked for first
    (by the rotation's public key), so it is recorded as unused too. Nothing to abandon: says so."""
    flow = session.state.flows.rotation
    in_use = session.evidence.certificate_id
    if flow is None or flow.step == "done":
        return AbandonedRotation("done", None, in_use, "No rotation is in progress; nothing was changed.")
    step = flow.step
    if step == "retire":
        old = flow.old_certificate_id
        save_flow(session, None)
        session.audit.record("rotation_abandoned", step=step, kept=old)
        kept = f"; {old} stays active (revoke it later: {revoke_command(session, old)})" if old else ""
        return AbandonedRotation(step, None, in_use, f"The new certificate {in_use} is in use{kept}.")
    if step == "switch" and _switched(session, flow):
        raise InputError(
            "The switch to the new certificate has already happened in the install folder.",
            hint="Run klarna-mtls rotate to finish recording it; abandon it afterwards if needed.",
        )
    if flow.certificate_id is None and flow.idempotency_key is not None:
        await _find_requested(session, flow)
    end_unused(session, flow, f"the rotation was abandoned at its '{step}' step")
    unused = flow.certificate_id
    what = "; no certificate had been issued for it."
    if unused:
        what = f"; the certificate issued for it, {unused}, was never used: {revoke_command(session, unused)}"
    return AbandonedRotation(
        step,
        unused,
        in_use,
        f"The rotation was abandoned at '{step}'. The current certificate {in_use} stays in use{what}",
    )


def _switched(session: Session, flow: CertificateRotation) -> bool:
    pair = current_pair(session.install_dir)
    return pair is not None and flow.label is not None and pair.label == flow.label


async def _find_requested(session: Session, flow: CertificateRotation) -> None:
    """The certificate requested for the flow's key, when the answer was lost: by public key."""
    from wizard.services import onboarding

    async with session.client() as klarna:
        listing = (await klarna.list_certificates()).value
    found = onboarding.find_by_key(listing, required(flow.public_key_id, "public_key_id"))
    if found is not None:
        flow.certificate_id = found.credential_id


def what_changed(session: Session, flow: CertificateRotation, error: StorageError) -> WizardError:
    """A file could not be written during the rotation's ``flow.step``: the same error, saying
    exactly what had already changed and that the rerun reconciles it."""
    certificate = flow.certificate_id
    if flow.step in ("key", "issue") and certificate is None:
        return error  # nothing was issued: the storage error's own words hold
    if flow.step == "retire":
        changed = (
            f"The new certificate {certificate} is in use; the old one, {flow.old_certificate_id}, may "
            "already be revoked at Klarna."
        )
        then = "Free some space, then run klarna-mtls rotate again: it checks and finishes the retirement."
    elif flow.step == "switch":
        changed = (
            f"Klarna issued {certificate} for this rotation and `current` in {session.install_dir} may "
            "already point to it; the journal did not record the switch."
        )
        then = "Free some space, then run klarna-mtls rotate again: it records the switch."
    else:
        changed = (
            f"Klarna issued a certificate for this rotation ({certificate or 'its id not yet recorded'}); "
            "it is not in use yet, and the current certificate stays in use."
        )
        then = (
            "Free some space, then run klarna-mtls rotate again: it reconciles that certificate "
            "(same request, found by its key) instead of issuing another."
        )
    return StorageError(f"{error.message} {changed}", title=error.title, hint=then)
