"""The account's 10 certificate slots as facts for the gate (``interlocks.G_SLOTS``): how many are
in use and what holds each (a runtime, this machine, or not known here), so a refusal to issue
names what could be revoked. The rule and its text live in ``interlocks``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wizard.core import rules

if TYPE_CHECKING:
    from wizard.klarna.models import CertificateInfo
    from wizard.services.session import Session


def slot_facts(session: Session, listing: list[CertificateInfo], *, server_refused: bool = False) -> dict[str, Any]:
    """The ``Situation`` fields for issuing into the account ``listing`` shows. Before sending, the
    listing's status (ours, not documented) counts; once Klarna refused for want of a slot, the
    account is full and every listed certificate this profile does not know as retired is shown as
    a possible holder."""
    retired = session.state.retired_ids()
    if server_refused:
        active = [c for c in listing if c.status not in ("REVOKED", "EXPIRED") and c.credential_id not in retired]
    else:
        active = [c for c in listing if c.status == "ACTIVE"]
    holders = {cid: r.name for r in session.state.runtimes.values() for cid in r.certificate_ids}
    lines = []
    for info in sorted(active, key=lambda c: c.expires_at or ""):
        local = session.state.certificates.get(info.credential_id)
        installed = local is not None and local.installed
        holder = holders.get(info.credential_id) or ("this machine" if installed else "not known here")
        lines.append(f"{info.credential_id} ({holder}, {info.description or 'no description'})")
    count = max(len(active), rules.MAX_ACTIVE_CERTIFICATES) if server_refused else len(active)
    return {"active_certificates": count, "slot_holders": tuple(lines)}
