"""Revoking a certificate without locking the partner out: the interlock's refusal for a UI to
show before offering (``revoke_refusal``), the revocation itself, judged first with the runtimes'
facts, and the typed confirmation live profiles need (``confirm_suffix_for``).

The rules are ``interlocks.ACTIONS[Action.REVOKE]``; this module gathers their facts."""

from __future__ import annotations

from dataclasses import replace

from wizard.core import crypto
from wizard.core.interlocks import GONE, Action, refusals, require
from wizard.services import local_profiles, runtime_gate
from wizard.services.session import Session
from wizard.services.status import ProfileStatus, gather_status


def revoke_refusal(status: ProfileStatus, credential_id: str) -> str | None:
    """Why revoking ``credential_id`` could lock the partner out (every reason), or None when it
    is safe. The rules are ``interlocks.ACTIONS[Action.REVOKE]``; a UI asks before offering."""
    found = [r for r in refusals(Action.REVOKE, status.situation(credential_id)) if r.check != "confirmed"]
    return " ".join(r.reason for r in found) or None


async def revoke(session: Session, credential_id: str, *, confirm_suffix: str | None = None) -> ProfileStatus:
    status = await gather_status(session)
    listed = next((c.status for c in status.certificates if c.credential_id == credential_id), None)
    if listed in GONE and session.state.flows.unused_certificates.pop(credential_id, None) is not None:
        session.save()  # a rotation's leftover Klarna has retired itself: nothing left to revoke or remember
    target = next((c for c in status.certificates if c.credential_id == credential_id), None)
    expected = target.confirm_suffix if target else None
    what = "credential id's last 8 characters" if target and not target.fingerprint else "fingerprint suffix"
    shown = f"the certificate's {what}" + (f" (they end …{expected[-2:]})" if expected else "")
    facts = runtime_gate.revoke_facts(session, credential_id) | local_profiles.revoke_facts(session, credential_id)
    facts |= session.confirmation(expected, confirm_suffix, shown)
    require(Action.REVOKE, replace(status.situation(credential_id), **facts))
    assert target is not None  # "target listed" holds
    async with session.client() as klarna:
        await klarna.revoke_certificate(credential_id)
    session.state.certificate(credential_id).retired = True
    session.state.flows.unused_certificates.pop(credential_id, None)  # a rotation's leftover, now retired
    session.save()
    session.audit.record("certificate_revoked", certificate_id=credential_id, fingerprint=target.fingerprint)
    return await gather_status(session)


def confirm_suffix_for(session: Session, credential_id: str) -> str | None:
    """What a live revocation is confirmed with: our recorded fingerprint's suffix, else the id's end."""
    fingerprint = session.state.fingerprint_of(credential_id)
    return crypto.fingerprint_suffix(fingerprint) if fingerprint else credential_id[-8:]
