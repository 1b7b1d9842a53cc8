"""The runtimes service's side of the gate, over a Session: it gathers the facts the interlocks
judge (which declared runtimes are not ready for enforcement, which still use a certificate about
to be revoked), handles leaving runtimes out on purpose (typed on live profiles, audited), and
gives the cron check (``doctor.cron_check``) its runtime warnings. The rules and their refusal
texts live in ``interlocks``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from wizard.core import acceptance, runtimes
from wizard.core.errors import InputError
from wizard.core.findings import Finding, Severity
from wizard.core.interlocks import (
    G_CONFIRMED_LEAVE_OUT,
    G_RUNTIMES,
    Action,
    ActionRefused,
    Situation,
    require,
    require_check,
)

if TYPE_CHECKING:
    from wizard.services.session import Session


def require_ready(
    session: Session,
    listed_ids: runtimes.Listing,
    leave_out: Iterable[str] = (),
    confirm: str | None = None,
    *,
    situation: Situation | None = None,
    klarna_now: datetime | None,
) -> None:
    """The enforcement gate with the declared runtimes' readiness as facts: ``interlocks.require``
    judges them with the rest of ``situation`` (the runtime check alone when None). Runtimes left
    out explicitly are not counted; leaving them out is typed for live profiles and audited.
    ``klarna_now`` is the Date of an answer Klarna gave just now (None: it carried none): readiness
    is judged by Klarna's clock, and not at all while this machine's is too far off it."""
    records = reload(session)
    left = sorted(set(leave_out))
    unknown = [name for name in left if name not in records]
    if unknown:
        raise InputError(
            f"No runtime named {', '.join(unknown)} in this profile.",
            hint="klarna-mtls runtime list shows the declared runtimes.",
        )
    counted = [r for name, r in records.items() if name not in left]
    reasons = _not_ready_by_klarna_clock(session, counted, listed_ids, klarna_now)
    facts = replace(
        situation or Situation(session.model.stage),
        runtimes_not_ready=tuple(reasons),
        **_leave_out_facts(session, left, confirm),
    )
    try:
        if situation is None:
            require_check(Action.ENFORCE, G_RUNTIMES.name, facts)
            require_check(Action.ENFORCE, G_CONFIRMED_LEAVE_OUT.name, facts)
        else:
            require(Action.ENFORCE, facts)
    except ActionRefused as refused:
        if any(r.check == G_RUNTIMES.name for r in refused.refusals):
            session.audit.record("enforcement_refused_runtimes", reasons=reasons)
        raise
    if left:
        session.audit.record(
            "enforcement_runtimes_left_out",
            runtimes=left,
            reasons=runtimes.runtimes_not_ready([records[n] for n in left], session.clock()),
        )


def _not_ready_by_klarna_clock(
    session: Session, counted: list[runtimes.RuntimeRecord], listed_ids: runtimes.Listing, klarna_now: datetime | None
) -> list[str]:
    if not counted:
        return []
    problem = runtimes.clock_problem(klarna_now, session.clock())
    reasons = [f"readiness cannot be judged: {problem}"] if problem else []
    if klarna_now is not None:
        reasons += runtimes.runtimes_not_ready(counted, klarna_now, listed_ids=listed_ids, by_klarna_clock=True)
    return reasons


def revoke_facts(session: Session, credential_id: str) -> dict[str, Any]:
    """The ``Situation`` fields for revoking ``credential_id``: the runtimes whose current
    certificate it is, and those holding it as an older one without a VALID report for the newer."""
    in_use: list[str] = []
    not_replaced: list[tuple[str, str]] = []
    for record in reload(session).values():
        if credential_id not in record.certificate_ids:
            continue
        if record.certificate_id == credential_id:
            in_use.append(record.name)
            continue
        report = record.report
        if not (report and acceptance.accepted(report.status) and report.fingerprint == record.fingerprint):
            not_replaced.append((record.name, record.certificate_id or "not recorded"))
    return {"target_in_use_by": tuple(in_use), "target_not_replaced_on": tuple(not_replaced)}


def reload(session: Session) -> dict[str, runtimes.RuntimeRecord]:
    """The runtime records as saved: another process (``runtime report`` in a shell, a cron job)
    may have recorded reports since this session (e.g. a long-running TUI) loaded the journal."""
    if session.journal.exists():
        saved = session.journal.load()
        session.state.runtimes, session.state.runtimes_loaded = saved.runtimes, saved.runtimes_loaded
    return session.state.runtimes


def _leave_out_facts(session: Session, left: list[str], confirm: str | None) -> dict[str, Any]:
    """The typed confirmation of leaving ``left`` out: the names, sorted, comma-separated."""
    expected = ",".join(left)
    typed = ",".join(sorted(part.strip() for part in (confirm or "").split(",") if part.strip()))
    facts = session.confirmation(expected, typed, f"the names of the runtimes left out ({expected})")
    return facts if left else facts | {"confirmation_required": False}


def check_findings(
    records: dict[str, runtimes.RuntimeRecord], now: datetime, window: timedelta = runtimes.READINESS_WINDOW
) -> list[Finding]:
    """For the cron check: a warning per runtime whose certificate is in its renewal window or whose
    latest report is missing, stale or not VALID."""
    findings = []
    for record in sorted(records.values(), key=lambda r: r.name):
        if runtimes.in_renewal_window(record, now):
            findings.append(
                Finding(
                    f"runtime {record.name}",
                    Severity.WARNING,
                    f"Its certificate expires on {(record.not_after or '')[:10]}.",
                    f"Rotate it: klarna-mtls runtime request --name {record.name} on that host, "
                    "then runtime issue here and runtime install there.",
                )
            )
        reason = runtimes.not_ready_reason(record, now, window)
        if reason:
            findings.append(
                Finding(
                    f"runtime {record.name}",
                    Severity.WARNING,
                    reason[0].upper() + reason[1:] + ".",
                    "Run klarna-mtls probe on it (cron), then runtime report here.",
                )
            )
    return findings


def listing_findings(records: dict[str, runtimes.RuntimeRecord], listed: runtimes.Listing) -> list[Finding]:
    """For the cron check with no enforcement on or scheduled: a warning per runtime whose current
    certificate the account's listing, read just now, does not hold or marks revoked or expired
    (with an enforcement, ``enforcement_timeline.outlook`` makes it critical)."""
    findings = []
    for record in sorted(records.values(), key=lambda r: r.name):
        reason = runtimes.listing_reason(record.certificate_id, listed) if record.certificate_id else None
        if reason:
            findings.append(
                Finding(
                    f"runtime {record.name}",
                    Severity.WARNING,
                    reason[0].upper() + reason[1:] + ": it is not ready for enforcement.",
                    f"Give it a new certificate: klarna-mtls runtime request --name {record.name} on that host, "
                    "then runtime issue here and runtime install there.",
                )
            )
    return findings
