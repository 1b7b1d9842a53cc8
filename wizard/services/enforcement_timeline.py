"""Enforcement over time, for every command that meets it: the time facts the enforcement gate
judges (``timeline_facts``), the re-judging of an enforcement that is scheduled or on
(``schedule_of``, ``outlook_findings``, ``enforcement_notice``) for ``status``, ``check``, ``doctor``
and the runtime commands, and the journal's enforcement record checked against what Klarna says
now (``reconcile``, ``note_seen``): the journal is a cache, never the source of "ENFORCED".

The rules and their words are in ``core.timeline`` (the margin) and ``core.interlocks`` (the gate)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from wizard.core import rules, runtimes, timeline
from wizard.core._lazy import lazy_module
from wizard.core.errors import CryptoError, InputError, WizardError
from wizard.core.findings import Finding, Severity
from wizard.core.stages import Stage
from wizard.services.runtime_gate import reload
from wizard.services.session import Look, Session

if TYPE_CHECKING:  # cryptography loads when a command needs it (the CLI's parser never does)
    from wizard.core import crypto
    from wizard.klarna.models import EnforcementState
    from wizard.services import install
    from wizard.services.install import InstalledPair
else:
    crypto = lazy_module("wizard.core.crypto")
    install = lazy_module("wizard.services.install")

CHECK = "scheduled enforcement"
NEXT_STEP = (
    "Rotate what expires (klarna-mtls rotate; runtime request --new-key for a runtime), probe the runtimes "
    "(probe there, runtime report here), or move the enforcement (klarna-mtls enforce --at LATER, or unenforce)."
)


# ---------------------------------------------------------------- the gate's time facts
def timeline_facts(session: Session, look: Look, enforced_from: str, leave_out: Iterable[str] = ()) -> dict[str, Any]:
    """The ``Situation`` fields for enforcing from ``enforced_from`` (as ``rules.parse_enforced_from``
    returns it), observed with ``look``: this machine's time, Klarna's Date, when the enforcement
    starts, and when the installed and every counted runtime's certificate expire."""
    now = session.clock()
    left = set(leave_out)
    return {
        "now": now,
        "server_date": look.server_date,
        "effective_at": timeline.enforcement_start(enforced_from, now),
        "current_not_after": pair_not_after(look.pair),
        "runtime_not_after": tuple(
            (record.name, runtime_not_after(session, record))
            for record in sorted(reload(session).values(), key=lambda r: r.name)
            if record.name not in left
        ),
    }


def pair_not_after(pair: InstalledPair | None) -> datetime | None:
    """The expiry of the certificate actually presented (its X.509), None when unreadable."""
    if pair is None:
        return None
    try:
        return crypto.load_certificate(pair.cert_path.read_bytes()).not_valid_after_utc
    except (OSError, CryptoError):
        return None


def runtime_not_after(session: Session, record: runtimes.RuntimeRecord) -> datetime | None:
    """The expiry of a runtime's current certificate, from the profile's records (the runtime's
    record, else this profile's record of that certificate); None when neither knows it."""
    mine = session.state.certificates.get(record.certificate_id or "")
    text = record.not_after or (mine.not_after if mine else None)
    if text:
        try:
            return rules.parse_timestamp(text)
        except InputError:
            return None
    pem = mine.certificate_pem if mine else None
    try:
        return crypto.load_certificate(pem).not_valid_after_utc if pem else None
    except CryptoError:
        return None


# ---------------------------------------------------------------- a scheduled enforcement, re-judged
@dataclass(frozen=True)
class Schedule:
    """An enforcement that is on or will be: when it starts, and who says so."""

    start: datetime
    mode: str  # ENFORCED (applies now) or REPORTING (applies at start)
    source: str  # "Klarna", or the request this tool recorded when Klarna's answer does not say

    def describe(self, now: datetime) -> str:
        if self.mode == "ENFORCED":
            return "Enforcement is on (ENFORCED)"
        ahead = max(0.0, (self.start - now).total_seconds())
        return f"Enforcement applies at {timeline.when(self.start)} (in {timeline.span(ahead)}; {self.source})"


def schedule_of(session: Session, observed: EnforcementState, now: datetime) -> Schedule | None:
    """The enforcement that is on or scheduled, from Klarna's answer just read; when that answer
    does not say whether a time is set (Klarna documents only the mode), the time this tool asked
    for counts while it has not passed: a warning may rest on it, never a permission."""
    mode = observed.mode.value
    if mode == "ENFORCED":
        return Schedule(now, mode, "Klarna")
    if mode != "REPORTING" or observed.scheduled is False:
        return None
    if observed.enforced_from:
        return Schedule(rules.parse_timestamp(observed.enforced_from), mode, "Klarna")
    requested = _requested_start(session)
    if requested is None or timeline.must_last_until(requested) < now:
        return None  # it would have applied by now (with the clock tolerance): not scheduled
    return Schedule(requested, mode, "as this tool requested; Klarna's answer does not say")


def _requested_start(session: Session) -> datetime | None:
    ev = session.evidence
    if not ev.enforced_from:
        return None
    try:
        chosen_at = rules.parse_timestamp(ev.enforced_from_chosen_at) if ev.enforced_from_chosen_at else None
        return timeline.enforcement_start(ev.enforced_from, chosen_at or session.clock())
    except InputError:
        return None


def outlook(
    session: Session,
    observed: EnforcementState,
    now: datetime,
    server_date: datetime | None,
    listed: runtimes.Listing | None = None,
) -> list[Finding]:
    """The enforcement on or scheduled, re-judged (``outlook_findings``); [] when there is none."""
    schedule = schedule_of(session, observed, now)
    return [] if schedule is None else outlook_findings(session, schedule, now, server_date, listed)


def outlook_findings(
    session: Session,
    schedule: Schedule,
    now: datetime,
    server_date: datetime | None,
    listed: runtimes.Listing | None = None,
) -> list[Finding]:
    """Re-apply the enforcement rule to what is recorded now: each counted certificate that will
    have expired, and each declared runtime not ready (by ``listed``, the account's listing read
    just now, too: its certificate revoked or gone), when ``schedule`` applies is critical."""
    what = schedule.describe(now)
    skew = timeline.skew_reason(server_date, now) if server_date is not None else None
    if skew:
        return [
            Finding(CHECK, Severity.WARNING, f"{what}, but it cannot be judged: {skew}", "Fix this machine's clock.")
        ]
    reasons = []
    pair = install.current_pair(session.install_dir)
    if pair is not None:
        label = f"the certificate installed here (…{pair.fingerprint.replace(':', '')[-8:]})"
        reasons.append(timeline.lasting_reason(label, pair_not_after(pair), now, schedule.start))
    for record in sorted(reload(session).values(), key=lambda r: r.name):
        label = f"the current certificate of runtime {record.name}"
        reasons.append(timeline.lasting_reason(label, runtime_not_after(session, record), now, schedule.start))
        why = runtimes.not_ready_reason(record, now, listed_ids=listed)
        reasons.append(f"runtime {record.name} is not ready: {why}." if why else None)
    problems = [r for r in reasons if r]
    if not problems:
        return [
            Finding(CHECK, Severity.OK, f"{what}: every counted certificate outlasts it and every runtime is ready.")
        ]
    return [Finding(CHECK, Severity.CRITICAL, f"{what}: {_capital(p)}", NEXT_STEP) for p in problems]


async def enforcement_notice(session: Session, runtime: str | None = None) -> str | None:
    """For the runtime commands (``runtime request``/``issue``/``add``): a warning when an enforcement
    is on or scheduled for this account, naming when and what it will refuse; None otherwise.
    Never fails the command: a notice that cannot be established says so."""
    try:
        look = await session.look()
    except WizardError as error:
        return f"warning: whether enforcement is scheduled could not be read ({error.message})."
    now = session.clock()
    schedule = schedule_of(session, look.enforcement, now)
    if schedule is None:
        return None
    record = reload(session).get(runtime or "")
    if record is None:
        return (
            f"warning: {schedule.describe(now)}. A runtime without a certificate Klarna sees VALID is "
            "refused from then on: finish runtime issue/install and probe it before then."
        )
    why = runtimes.not_ready_reason(record, now)
    expiry = timeline.lasting_reason("its certificate", runtime_not_after(session, record), now, schedule.start)
    problems = " ".join(_capital(p) for p in (f"it is not ready: {why}." if why else None, expiry) if p)
    if not problems:
        return None
    return f"warning: {schedule.describe(now)}; runtime {runtime} will be refused then. {problems}"


# ---------------------------------------------------------------- the journal's record, re-checked
async def observe_and_recheck(session: Session) -> tuple[EnforcementState, str | None]:
    """Read Klarna's enforcement now and re-check the journal's record against it (saved): what
    ``onboard`` acts on and prints. Returns the state and what changed in the journal, if anything."""
    look = await session.look()
    note = recheck(session, look.enforcement, session.clock())
    session.save()
    return look.enforcement, note


def recheck(session: Session, observed: EnforcementState, now: datetime) -> str | None:
    """Klarna's enforcement as just observed: note when it was seen, and reopen the Enforce stage
    when it contradicts the journal (``reconcile``). The caller saves. Returns what changed."""
    note_seen(session, observed, now)
    return reconcile(session, observed, now)


def note_seen(session: Session, observed: EnforcementState, now: datetime) -> None:
    """Remember what Klarna last said of enforcement and when: on a change, else once a day (so a
    reader that sees the same answer again leaves the journal untouched)."""
    settings = session.settings
    seen = observed.mode.value + (f" from {observed.enforced_from}" if observed.enforced_from else "")
    at = timeline.when(now)
    if settings.enforcement_seen != seen or (settings.enforcement_seen_at or "")[:10] != at[:10]:
        settings.enforcement_seen, settings.enforcement_seen_at = seen, at


def reconcile(session: Session, observed: EnforcementState, now: datetime) -> str | None:
    """Check the journal's enforcement record (the ENFORCE stage's evidence) against what Klarna
    said just now. When Klarna contradicts it (not enabled, REPORTING again after ENFORCED, a time
    removed, or still REPORTING well after the time this tool asked for), the ENFORCE stage is
    reopened: DONE and ENFORCED are never printed or acted on from a stale record. Returns what
    changed, or None."""
    ev = session.evidence
    if session.model.stage not in (Stage.ENFORCE, Stage.DONE) or not ev.enforcement_mode:
        return None
    mode = observed.mode.value
    if mode == "ENFORCED":
        if ev.enforcement_mode != mode:
            session.model.record_enforcement_mode(mode)
        return None
    applied_before = ev.enforcement_mode == "ENFORCED"  # once applied, REPORTING again means removed
    if mode == "UNKNOWN" or (mode == "REPORTING" and not applied_before and schedule_of(session, observed, now)):
        return None  # on its way, or not known: nothing proves the record wrong
    said = f"{ev.enforcement_mode} from {ev.enforced_from}"
    forget_enforcement(session)
    session.audit.record("enforcement_record_reopened", recorded=said, observed=mode)
    return f"Klarna now says {mode} (the journal recorded {said}): the Enforce stage is open again."


def forget_enforcement(session: Session) -> None:
    """Klarna no longer enforces: reopen the Enforce stage and clear what this tool recorded of it."""
    if session.model.stage in (Stage.ENFORCE, Stage.DONE):
        session.model.restart_from(Stage.ENFORCE)
    session.settings.enforced_from_server = None
    session.settings.enforcement_proved_at = None


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
