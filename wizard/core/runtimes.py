"""Runtimes: the named places that call Klarna with their own pair (this machine's install folder,
another host, a Kubernetes Secret), and what the enforcement gate knows about each.

A runtime record holds its name, the certificate ids issued to it (the last one is current), the
current certificate's fingerprint and expiry, and its latest readiness report (written by
``klarna-mtls probe`` on that runtime and recorded here by ``klarna-mtls runtime report``).
Records live in the profile's journal; nothing here is a secret. Pure data and pure functions
(core): the gate's check against a session lives in ``runtime_gate``, the exchanges that issue and
install in ``runtime_exchange``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from wizard.core import rules
from wizard.core.errors import InputError

READINESS_WINDOW = timedelta(hours=24)
FUTURE_TOLERANCE = timedelta(minutes=5)  # a report dated later than this is from a wrong clock
REPORT_KIND = "klarna-mtls/readiness-report"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_FINGERPRINT_RE = re.compile(r"^[0-9A-F]{64}$")
REPORT_STATUSES = ("VALID", "NOT_PRESENT", "INVALID", "UNKNOWN", "REJECTED", "REFUSED", "UNREACHABLE")


def verify_runtime_name(name: object) -> str:
    """A runtime name names files and certificate descriptions: letters, digits, '.', '_', '-'."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise InputError(
            f"'{str(name)[:40]}' is not a usable runtime name.",
            hint="Use up to 40 letters, digits, '.', '_' or '-', e.g. checkout-eu-1.",
        )
    return name


def normal_fingerprint(value: Any) -> str:
    """``AB:CD:…`` (64 hex digits, upper case, colon-separated) or InputError."""
    raw = value.replace(":", "").upper() if isinstance(value, str) else ""
    if not _FINGERPRINT_RE.match(raw):
        raise InputError("That is not a SHA-256 certificate fingerprint.")
    return ":".join(raw[i : i + 2] for i in range(0, 64, 2))


# ---------------------------------------------------------------- records
@dataclass(frozen=True)
class ReadinessReport:
    """One probe's result, as printed by ``klarna-mtls probe``. No secret."""

    runtime: str
    account_id: str | None
    fingerprint: str
    status: str
    at: str  # UTC, whole seconds, Z
    tool_version: str
    kind: str = REPORT_KIND

    @property
    def moment(self) -> datetime:
        return rules.parse_timestamp(self.at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "runtime": self.runtime,
            "account_id": self.account_id,
            "certificate_fingerprint": self.fingerprint,
            "verification_status": self.status,
            "at": self.at,
            "tool_version": self.tool_version,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ReadinessReport:
        """Parse a report from a file or the journal; InputError says what is wrong with it."""
        if not isinstance(data, dict) or data.get("kind") != REPORT_KIND:
            raise InputError("This is not a klarna-mtls readiness report.")
        status = data.get("verification_status")
        if status not in REPORT_STATUSES:
            raise InputError(f"The report's verification status {str(status)[:20]!r} is unknown.")
        account = data.get("account_id")
        if account is not None and not isinstance(account, str):
            raise InputError("The report's account id is not text.")
        at = data.get("at")
        if not isinstance(at, str):
            raise InputError("The report has no time.")
        rules.parse_timestamp(at)  # refuses a zone-less time
        version = data.get("tool_version")
        return cls(
            verify_runtime_name(data.get("runtime")),
            account,
            normal_fingerprint(data.get("certificate_fingerprint")),
            status,
            at,
            version if isinstance(version, str) else "?",
        )


@dataclass
class RuntimeRecord:
    """A named runtime of this profile's account."""

    name: str
    certificate_ids: list[str] = field(default_factory=list)  # oldest first; the last is current
    fingerprint: str | None = None  # of the current certificate
    not_after: str | None = None  # of the current certificate, UTC Z
    report: ReadinessReport | None = None
    added_at: str | None = None
    source: str = "issued"  # issued (request/issue/install) | declared (runtime add)

    @property
    def certificate_id(self) -> str | None:
        return self.certificate_ids[-1] if self.certificate_ids else None

    def adopt_certificate(self, credential_id: str, fingerprint: str, not_after: str | None) -> None:
        """Make ``credential_id`` the current certificate; the old report no longer counts."""
        if credential_id in self.certificate_ids:
            self.certificate_ids.remove(credential_id)
        self.certificate_ids.append(credential_id)
        self.fingerprint, self.not_after = fingerprint, not_after

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "certificate_ids": list(self.certificate_ids),
            "fingerprint": self.fingerprint,
            "not_after": self.not_after,
            "report": self.report.to_dict() if self.report else None,
            "added_at": self.added_at,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Any) -> RuntimeRecord:
        """From the journal; TypeError/ValueError on a damaged entry (the journal reports it)."""
        if not isinstance(data, dict):
            raise TypeError("a runtime entry is not an object")
        ids = data.get("certificate_ids", [])
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise TypeError("a runtime's certificate ids are not a list of text")
        for key in ("fingerprint", "not_after", "added_at"):
            if not isinstance(data.get(key), (str, type(None))):
                raise TypeError(f"a runtime's '{key}' is not text")
        try:
            report = ReadinessReport.from_dict(data["report"]) if data.get("report") else None
            name = verify_runtime_name(data.get("name"))
        except InputError as exc:
            raise ValueError(exc.message) from exc
        return cls(
            name,
            list(ids),
            data.get("fingerprint"),
            data.get("not_after"),
            report,
            data.get("added_at"),
            str(data.get("source") or "issued"),
        )


def records_to_dict(records: dict[str, RuntimeRecord]) -> dict[str, Any]:
    return {name: record.to_dict() for name, record in sorted(records.items())}


def records_from_dict(data: Any) -> dict[str, RuntimeRecord]:
    if not isinstance(data, dict):
        raise TypeError("'runtimes' has the wrong type")
    records = {name: RuntimeRecord.from_dict(entry) for name, entry in data.items()}
    if any(name != record.name for name, record in records.items()):
        raise ValueError("a runtime is filed under another name")
    return records


# ---------------------------------------------------------------- readiness (the gate)
def runtimes_not_ready(
    records: Iterable[RuntimeRecord],
    now: datetime,
    window: timedelta = READINESS_WINDOW,
    *,
    listed_ids: set[str] | None = None,
) -> list[str]:
    """One reason per runtime that is not ready for enforcement, naming it; [] when all are.

    Ready means: its latest report is VALID, for its current certificate, and fresh (no older
    than ``window``, not dated in the future). ``listed_ids``, when given, are the credential ids
    the account's listing holds: a runtime whose certificate is not among them is not ready."""
    reasons = []
    for record in sorted(records, key=lambda r: r.name):
        reason = not_ready_reason(record, now, window, listed_ids)
        if reason:
            reasons.append(f"{record.name}: {reason}")
    return reasons


def not_ready_reason(
    record: RuntimeRecord, now: datetime, window: timedelta = READINESS_WINDOW, listed_ids: set[str] | None = None
) -> str | None:
    """Why ``record`` is not ready, or None."""
    report = record.report
    if record.certificate_id is None or record.fingerprint is None:
        return "no certificate recorded for it"
    if listed_ids is not None and record.certificate_id not in listed_ids:
        return f"its certificate {record.certificate_id} is not on the account's list"
    if report is None:
        return "no readiness report yet (run klarna-mtls probe there, then runtime report here)"
    if report.fingerprint != record.fingerprint:
        return (
            f"its latest report is for certificate …{_suffix(report.fingerprint)}, "
            f"not its current …{_suffix(record.fingerprint)}"
        )
    if report.status != "VALID":
        return f"its latest report says {report.status}"
    moment = report.moment
    if moment > now + FUTURE_TOLERANCE:
        return f"its latest report is dated in the future ({report.at}); check that host's clock"
    if now - moment > window:
        return f"its latest report is {_age(now - moment)} old (limit {_age(window)})"
    return None


def _suffix(fingerprint: str | None) -> str:
    return (fingerprint or "").replace(":", "")[-8:]


def _age(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return (
        f"{hours / 24:.0f} d"
        if hours >= 48
        else f"{hours:.0f} h"
        if hours >= 1
        else f"{delta.total_seconds() / 60:.0f} min"
    )


# ---------------------------------------------------------------- recording reports
class IssuedCertificates(Protocol):
    """What recording a report reads of a profile (the journal's ProfileState is one)."""

    runtimes: dict[str, RuntimeRecord]

    def fingerprint_of(self, credential_id: str | None) -> str | None: ...


def record_report(state: IssuedCertificates, report: ReadinessReport, account_id: str | None) -> str:
    """Record ``report`` on its runtime; returns what happened. InputError when it is refused:
    another account, an undeclared runtime, or a certificate that is not that runtime's."""
    if not account_id or report.account_id != account_id:
        raise InputError(f"The report from {report.runtime} is for account {report.account_id}, not {account_id}.")
    record = state.runtimes.get(report.runtime)
    if record is None:
        raise InputError(
            f"No runtime named {report.runtime} is declared in this profile.",
            hint="Onboard it with runtime request/issue/install, or declare it with runtime add.",
        )
    known = {state.fingerprint_of(cid) for cid in record.certificate_ids}
    if report.fingerprint not in known | {record.fingerprint}:
        raise InputError(
            f"The report from {report.runtime} is for certificate …{_suffix(report.fingerprint)}, "
            "which this profile never issued to that runtime.",
            hint="Check the runtime is using the pair issued to it (klarna-mtls doctor --cert --key).",
        )
    if record.report is not None and _keeps_recorded(record, record.report, report):
        return "older than the recorded report; kept the recorded one"
    record.report = report
    return f"recorded: {report.status} at {report.at}"


def _keeps_recorded(record: RuntimeRecord, recorded: ReadinessReport, new: ReadinessReport) -> bool:
    """Reports carry whole seconds: on a tie, the one for the current certificate wins."""
    if recorded.moment != new.moment:
        return recorded.moment > new.moment
    return recorded.fingerprint == record.fingerprint or new.fingerprint != record.fingerprint


# ---------------------------------------------------------------- views
@dataclass(frozen=True)
class RuntimeRow:
    name: str
    certificate_id: str | None
    fingerprint_suffix: str
    not_after: str | None
    status: str | None  # the latest report's verification status
    reported_at: str | None
    ready: bool
    reason: str | None


def rows(records: dict[str, RuntimeRecord], now: datetime, window: timedelta = READINESS_WINDOW) -> list[RuntimeRow]:
    out = []
    for record in sorted(records.values(), key=lambda r: r.name):
        reason = not_ready_reason(record, now, window, None)
        report = record.report
        out.append(
            RuntimeRow(
                record.name,
                record.certificate_id,
                _suffix(record.fingerprint),
                record.not_after,
                report.status if report else None,
                report.at if report else None,
                reason is None,
                reason,
            )
        )
    return out


def summary(records: dict[str, RuntimeRecord], now: datetime, window: timedelta = READINESS_WINDOW) -> str:
    """'3 of 4 runtimes VALID, last seen 2026-11-29T08:00:00Z' (VALID: ready for enforcement)."""
    table = rows(records, now, window)
    if not table:
        return "no runtimes declared"
    times = [r.reported_at for r in table if r.reported_at]
    seen = max(times, key=rules.parse_timestamp) if times else None
    ready = sum(1 for r in table if r.ready)
    return f"{ready} of {len(table)} runtimes VALID, last seen {seen or 'never'}"


def in_renewal_window(record: RuntimeRecord, now: datetime) -> bool:
    return record.not_after is not None and rules.parse_timestamp(record.not_after) - now <= rules.RENEWAL_WINDOW
