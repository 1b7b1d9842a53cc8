"""Revoking a certificate without locking the partner out: the interlock's refusal for a UI to
show before offering (``revoke_refusal``), the revocation itself, and the typed confirmation live
profiles need (``confirm_suffix_for``). The offer, the revocation and a rotation's retirement judge
the same facts (``revoke_situation``): the status observed now, the declared runtimes' and the other
local profiles' uses of the certificate, so nothing is offered that the revocation then refuses.

The rules are ``interlocks.ACTIONS[Action.REVOKE]``; this module gathers their facts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from wizard.core import crypto
from wizard.core.interlocks import GONE, USED_ELSEWHERE, Action, Refusal, Situation, refusals, require
from wizard.services import local_profiles, runtime_gate
from wizard.services.session import Session
from wizard.services.status import ProfileStatus, gather_status


def revoke_facts(session: Session, credential_id: str) -> dict[str, Any]:
    """What the status does not carry (files only, no network): the declared runtimes and the
    other local profiles of the account still presenting ``credential_id``."""
    return runtime_gate.revoke_facts(session, credential_id) | local_profiles.revoke_facts(session, credential_id)


def revoke_situation(session: Session, status: ProfileStatus, credential_id: str, **facts: Any) -> Situation:
    """Every fact the revoke interlock judges ``credential_id`` on, ``status`` being observed now."""
    return replace(status.situation(credential_id), **revoke_facts(session, credential_id), **facts)


def revoke_refusal(session: Session, status: ProfileStatus, credential_id: str) -> str | None:
    """Why revoking ``credential_id`` could lock the partner out (every reason), or None when it
    is safe; a UI asks before offering (reads other profiles' files: call it off the event loop)."""
    found = refusals(Action.REVOKE, revoke_situation(session, status, credential_id))
    return " ".join(r.reason for r in found if r.check != "confirmed") or None


def used_elsewhere(session: Session, credential_id: str) -> list[Refusal]:
    """The revoke interlock's refusals a rotation here does not change (``USED_ELSEWHERE``): a
    declared runtime or another local profile still presenting ``credential_id``."""
    situation = Situation(stage=session.model.stage, target=credential_id, **revoke_facts(session, credential_id))
    return [r for r in refusals(Action.REVOKE, situation) if r.check in USED_ELSEWHERE]


async def revoke(session: Session, credential_id: str, *, confirm_suffix: str | None = None) -> ProfileStatus:
    status = await gather_status(session)
    listed = next((c.status for c in status.certificates if c.credential_id == credential_id), None)
    if listed in GONE and session.state.flows.unused_certificates.pop(credential_id, None) is not None:
        session.save()  # a rotation's leftover Klarna has retired itself: nothing left to revoke or remember
    target = next((c for c in status.certificates if c.credential_id == credential_id), None)
    expected = target.confirm_suffix if target else None
    what = "credential id's last 8 characters" if target and not target.fingerprint else "fingerprint suffix"
    shown = f"the certificate's {what}" + (f" (they end …{expected[-2:]})" if expected else "")
    confirmation = session.confirmation(expected, confirm_suffix, shown)
    require(Action.REVOKE, revoke_situation(session, status, credential_id, **confirmation))
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
