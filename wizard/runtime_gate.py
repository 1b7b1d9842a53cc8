"""The enforcement gate's runtime check and `check`'s runtime warnings, over a Session.

Kept small on purpose: the lead moves ``require_ready`` into the central interlocks module."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from . import runtimes
from .errors import InputError, InterlockRefused

if TYPE_CHECKING:
    from .flow import Session
    from .lifecycle import Finding


def require_ready(session: Session, listed_ids: set[str], leave_out: Iterable[str] = (),
                  confirm: str | None = None) -> None:
    """The enforcement gate's runtime check. Raises InterlockRefused naming every declared runtime
    that is not ready, unless it is left out explicitly (typed for live profiles, audited)."""
    records = reload(session)
    left = sorted(set(leave_out))
    unknown = [name for name in left if name not in records]
    if unknown:
        raise InputError(f"No runtime named {', '.join(unknown)} in this profile.",
                         hint="klarna-mtls runtime list shows the declared runtimes.")
    counted = [r for name, r in records.items() if name not in left]
    reasons = runtimes.runtimes_not_ready(counted, session.clock(), listed_ids=listed_ids)
    if reasons:
        session.audit.record("enforcement_refused_runtimes", reasons=reasons)
        raise InterlockRefused(
            "Runtimes not ready for enforcement: " + "; ".join(reasons) + ".",
            hint="Enforcement would refuse their calls. Probe them until VALID, or leave them out "
                 "explicitly (enforce --leave-out NAME).")
    if left:
        _confirm_leave_out(session, left, confirm)
        session.audit.record("enforcement_runtimes_left_out", runtimes=left,
                             reasons=runtimes.runtimes_not_ready([records[n] for n in left], session.clock()))


def revoke_refusal(session: Session, credential_id: str) -> str | None:
    """Why revoking ``credential_id`` would cut a declared runtime off, or None: it is a runtime's
    current certificate, or an older one while the runtime has not reported VALID with its newer."""
    for record in reload(session).values():
        if credential_id not in record.certificate_ids:
            continue
        report = record.report
        if record.certificate_id != credential_id:
            if report and report.status == "VALID" and report.fingerprint == record.fingerprint:
                continue
            return (f"runtime {record.name} may still use it: it has not reported VALID with its newer "
                    f"certificate {record.certificate_id} yet. Install that one there, run probe, then "
                    "runtime report here.")
        return (f"it is the current certificate of runtime {record.name}. Give {record.name} its new pair first "
                f"(runtime request --new-key there, runtime issue here, runtime install there; or runtime add "
                f"{record.name} --certificate-id NEW once it uses another), or runtime remove {record.name} "
                "if it no longer calls Klarna.")
    return None


def refuse_revoking_in_use(session: Session, credential_id: str) -> None:
    """``revoke_refusal`` as an InterlockRefused, for a revoke path to call before it acts."""
    reason = revoke_refusal(session, credential_id)
    if reason:
        raise InterlockRefused(f"Refusing to revoke {credential_id}: {reason}")


def reload(session: Session) -> dict[str, runtimes.RuntimeRecord]:
    """The runtime records as saved: another process (``runtime report`` in a shell, a cron job)
    may have recorded reports since this session (e.g. a long-running TUI) loaded the journal."""
    if session.journal.exists():
        saved = session.journal.load()
        session.state.runtimes, session.state.runtimes_loaded = saved.runtimes, saved.runtimes_loaded
    return session.state.runtimes


def _confirm_leave_out(session: Session, left: list[str], confirm: str | None) -> None:
    expected = ",".join(left)
    typed = ",".join(sorted(part.strip() for part in (confirm or "").split(",") if part.strip()))
    if session.environment == "live" and typed != expected:
        raise InterlockRefused(
            f"Leaving runtimes out of the enforcement check on a live profile must be typed: {expected}.",
            hint=f"Their calls will be refused once enforcement applies. Confirm with --confirm-leave-out {expected}")


def check_findings(records: dict[str, runtimes.RuntimeRecord], now: datetime,
                   window: timedelta = runtimes.READINESS_WINDOW) -> list[Finding]:
    """For `check`: a warning per runtime whose certificate is in its renewal window or whose
    latest report is missing, stale or not VALID."""
    findings = []
    for record in sorted(records.values(), key=lambda r: r.name):
        if runtimes.in_renewal_window(record, now):
            findings.append(_finding(f"runtime {record.name}", "warning",
                                    f"Its certificate expires on {(record.not_after or '')[:10]}.",
                                    f"Rotate it: klarna-mtls runtime request --name {record.name} on that host, "
                                    "then runtime issue here and runtime install there."))
        reason = runtimes.not_ready_reason(record, now, window)
        if reason:
            findings.append(_finding(f"runtime {record.name}", "warning", reason[0].upper() + reason[1:] + ".",
                                    "Run klarna-mtls probe on it (cron), then runtime report here."))
    return findings


def _finding(check: str, severity: str, summary: str, next_step: str) -> Finding:
    from .lifecycle import Finding  # services: lifecycle imports this module

    return Finding(check, severity, summary, next_step)
