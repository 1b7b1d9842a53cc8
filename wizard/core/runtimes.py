"""Runtimes: the named places that call Klarna with their own pair (this machine's install folder,
another host, a Kubernetes Secret), and what the enforcement gate knows about each.

A runtime record holds its name, the certificate ids issued to it (the last one is current), the
current certificate's fingerprint and expiry, and its latest readiness report (written by
``klarna-mtls probe`` on that runtime and recorded here by ``klarna-mtls runtime report``).
Records live in the profile's journal; nothing here is a secret. Pure data and pure functions
(core): the gate's check against a session lives in ``runtime_gate``, the exchanges that issue and
install in ``runtime_exchange``.

A report counts only as proof: the runtime signs it with the private key of the certificate it
reports on (ECDSA P-256, SHA-256, over ``ReadinessReport.signed_bytes``) and it carries what Klarna
answered (the verification status, Klarna's correlation id, the answer's ``Date``). Recording one
checks the signature against the certificate this profile issued to that runtime. Readiness is
judged by Klarna's clock: a runtime is ready while its current certificate is within its validity
and its VALID report is fresh by the ``Date`` of Klarna's answers, and no judgement is made while
this machine's clock is more than ``CLOCK_TOLERANCE`` off Klarna's."""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from wizard import __version__
from wizard.core import acceptance, rules
from wizard.core._lazy import lazy_module
from wizard.core.checks import CLOCK_SKEW_TOLERANCE
from wizard.core.errors import InputError

if TYPE_CHECKING:
    from wizard.core import crypto
else:
    crypto = lazy_module("wizard.core.crypto")  # only signing and checking reports need it

READINESS_WINDOW = timedelta(hours=24)
Listing = Mapping[str, str] | Set[str]  # the account's listing read just now: id -> status, or the ids
ENDED_STATUSES = ("REVOKED", "EXPIRED")  # a runtime's certificate listed so is not ready
FUTURE_TOLERANCE = timedelta(minutes=5)  # a report dated later than this is from a wrong clock
# How far this machine's clock may be from Klarna's ``Date`` before readiness is not judged at all:
# the model's tolerance for the onboarding clock check (120 s).
CLOCK_TOLERANCE = timedelta(seconds=CLOCK_SKEW_TOLERANCE)
REPORT_KIND = "klarna-mtls/readiness-report"
# Prefixed to the canonical JSON a runtime signs: a signature over a report is never valid for
# anything else that key might sign.
SIGNATURE_CONTEXT = b"klarna-mtls readiness report v2\n"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}\Z")
_FINGERPRINT_RE = re.compile(r"^[0-9A-F]{64}\Z")
REPORT_STATUSES = (
    "VALID",
    acceptance.ACCEPTED_UNDER_ENFORCEMENT,
    "NOT_PRESENT",
    "INVALID",
    "UNKNOWN",
    "REJECTED",
    "REFUSED",
    "UNREACHABLE",
)


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
    """One probe's result, as printed by ``klarna-mtls probe``: what Klarna answered to a call made
    with the runtime's pair, signed with that pair's private key. No secret."""

    runtime: str
    account_id: str | None
    fingerprint: str
    status: str
    at: str  # the runtime's clock when it asked: UTC, whole seconds, Z
    tool_version: str
    klarna_date: str | None = None  # the Date of Klarna's answer (UTC Z): Klarna's clock
    klarna_correlation_id: str | None = None
    nonce: str | None = None  # random: no two reports sign the same bytes
    signing_key_id: str | None = None  # the public key id of the key that signed
    signature: str | None = None  # base64 DER ECDSA P-256 / SHA-256 over ``signed_bytes()``
    kind: str = REPORT_KIND

    @property
    def moment(self) -> datetime:
        """When the report was made: by Klarna's clock when it carries Klarna's Date."""
        return rules.parse_timestamp(self.klarna_date or self.at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "runtime": self.runtime,
            "account_id": self.account_id,
            "certificate_fingerprint": self.fingerprint,
            "verification_status": self.status,
            "at": self.at,
            "tool_version": self.tool_version,
            "klarna_date": self.klarna_date,
            "klarna_correlation_id": self.klarna_correlation_id,
            "nonce": self.nonce,
            "signing_key_id": self.signing_key_id,
            "signature": self.signature,
        }

    def signed_bytes(self) -> bytes:
        """What the runtime signs: every field but the signature, as canonical JSON (sorted keys,
        no spaces, ASCII), after ``SIGNATURE_CONTEXT``."""
        fields = {k: v for k, v in self.to_dict().items() if k != "signature"}
        return SIGNATURE_CONTEXT + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("ascii")

    def signed_with(self, key: Any) -> ReadinessReport:
        """This report signed with ``key`` (the private key of the certificate it reports on)."""
        unsigned = replace(self, nonce=secrets.token_hex(16), signing_key_id=crypto.public_key_id(key), signature=None)
        signature = crypto.make_signature(key, unsigned.signed_bytes())
        return replace(unsigned, signature=base64.b64encode(signature).decode("ascii"))

    @classmethod
    def from_dict(cls, data: Any) -> ReadinessReport:
        """Parse a report from a file or the journal; InputError says what is wrong with it. The
        signature is checked where a report is recorded (``record_report``), not here."""
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
            _klarna_date(data.get("klarna_date")),
            _optional_text(data, "klarna_correlation_id"),
            _optional_text(data, "nonce"),
            _optional_text(data, "signing_key_id"),
            _optional_text(data, "signature"),
        )


def _klarna_date(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError("The report's Klarna date is not text.")
    rules.parse_timestamp(value)
    return value


def _optional_text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise InputError(f"The report's '{key}' is not text.")
    return value


def verify_signed(report: ReadinessReport, certificate_pem: str | None) -> None:
    """None when ``report`` is signed by the key of ``certificate_pem`` (the certificate this
    profile issued with the report's fingerprint); else InputError naming why not."""
    who = f"The report from {report.runtime}"
    proof = "Only a report that probe wrote on that runtime, with the pair this profile issued to it, counts."
    if report.signature is None:
        raise InputError(
            f"{who} is not signed (written by klarna-mtls {report.tool_version[:20]}, before reports were signed).",
            hint=f"Run klarna-mtls probe there again with klarna-mtls {__version__} or later: "
            "it signs each report with the runtime's own private key.",
        )
    cert = crypto.load_certificate(certificate_pem) if certificate_pem else None
    if cert is None or crypto.fingerprint_sha256(cert) != report.fingerprint:
        raise InputError(
            f"{who} is for certificate …{_suffix(report.fingerprint)}, of which this profile keeps no copy "
            "to check its signature with.",
            hint="Issue that runtime's certificate from this profile (runtime request, issue, install).",
        )
    if report.signing_key_id != crypto.public_key_id(cert.public_key()):
        raise InputError(
            f"{who} is signed by another key than that of its certificate …{_suffix(report.fingerprint)}.",
            hint=proof,
        )
    try:
        signature = base64.b64decode(report.signature, validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if not crypto.valid_signature(cert, signature, report.signed_bytes()):
        raise InputError(f"{who} has a bad signature: it was changed after it was signed, or damaged.", hint=proof)


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
    listed_ids: Listing | None = None,
    by_klarna_clock: bool = False,
) -> list[str]:
    """One reason per runtime that is not ready for enforcement, naming it; [] when all are.

    Ready means: its current certificate is within its validity at ``now``, and its latest report
    is VALID, for that certificate, and fresh (no older than ``window``, not dated in the future).
    ``listed_ids``, when given, is the account's listing read just now (``listing_reason``): a
    runtime whose certificate it does not hold, or marks REVOKED or EXPIRED, is not ready. ``by_klarna_clock``: ``now`` is the Date of
    an answer Klarna gave just now, and each report's age is measured from the Date it carries
    (the gate); otherwise from its own time, by this machine's clock (a view)."""
    reasons = []
    for record in sorted(records, key=lambda r: r.name):
        reason = not_ready_reason(record, now, window, listed_ids, by_klarna_clock=by_klarna_clock)
        if reason:
            reasons.append(f"{record.name}: {reason}")
    return reasons


def not_ready_reason(
    record: RuntimeRecord,
    now: datetime,
    window: timedelta = READINESS_WINDOW,
    listed_ids: Listing | None = None,
    *,
    by_klarna_clock: bool = False,
) -> str | None:
    """Why ``record`` is not ready, or None (see ``runtimes_not_ready``)."""
    report = record.report
    if record.certificate_id is None or record.fingerprint is None:
        return "no certificate recorded for it"
    if listed_ids is not None and record.certificate_id not in listed_ids:
        return f"its certificate {record.certificate_id} is not on the account's list"
    if record.not_after is None:
        return "its certificate's expiry is not recorded (declare it again: runtime add NAME --certificate-id ID)"
    if rules.parse_timestamp(record.not_after) <= now:
        return f"its certificate expired at {record.not_after}"
    if listed_ids is not None and (listed := listing_reason(record.certificate_id, listed_ids)):
        return listed  # marked revoked (or expired) there: our own records cannot tell
    if report is None:
        return "no readiness report yet (run klarna-mtls probe there, then runtime report here)"
    if report.fingerprint != record.fingerprint:
        return (
            f"its latest report is for certificate …{_suffix(report.fingerprint)}, "
            f"not its current …{_suffix(record.fingerprint)}"
        )
    if not acceptance.accepted(report.status):  # VALID, or accepted under enforcement (no header)
        return f"its latest report says {report.status}"
    return _stale_reason(report, now, window, by_klarna_clock)


def listing_reason(certificate_id: str, listed: Listing) -> str | None:
    """Not on the account's listing, or marked ended there: the status is [ours], so it may refuse,
    never allow (docs-only listings carry none: the signed report under 24 h old is the limit)."""
    if certificate_id not in listed:
        return f"its certificate {certificate_id} is not on the account's list"
    status = listed.get(certificate_id) if isinstance(listed, Mapping) else None
    if status in ENDED_STATUSES:
        return f"the account's list marks its certificate {certificate_id} {status}"
    return None


def _stale_reason(report: ReadinessReport, now: datetime, window: timedelta, by_klarna_clock: bool) -> str | None:
    if by_klarna_clock and report.klarna_date is None:
        return "its latest report carries no Date from Klarna (written by an older klarna-mtls); run probe there again"
    moment = report.moment
    if moment > now + FUTURE_TOLERANCE:
        return f"its latest report is dated in the future ({report.klarna_date or report.at}); check that host's clock"
    if now - moment > window:
        return f"its latest report is {_age(now - moment)} old (limit {_age(window)})"
    return None


def clock_problem(klarna_now: datetime | None, local_now: datetime) -> str | None:
    """Why readiness cannot be judged now, or None: Klarna's clock was not read (its answer had no
    Date), or this machine's clock is more than ``CLOCK_TOLERANCE`` off it."""
    if klarna_now is None:
        return "Klarna's answer carried no Date, so the reports' age cannot be judged by Klarna's clock"
    skew = klarna_now - local_now
    if abs(skew) <= CLOCK_TOLERANCE:
        return None
    direction = "behind" if skew > timedelta(0) else "ahead of"
    return (
        f"this machine's clock is {_age(abs(skew))} {direction} Klarna's ({skew.total_seconds():+.0f} s; "
        f"Klarna's Date {rules.format_utc(klarna_now)}), more than the {CLOCK_TOLERANCE.total_seconds():.0f} s "
        "allowed; set the clock (NTP) and try again"
    )


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


def record_report(
    state: IssuedCertificates,
    report: ReadinessReport,
    account_id: str | None,
    issued_pem: Callable[[str], str | None],
) -> str:
    """Record ``report`` on its runtime; returns what happened. InputError when it is refused:
    another account, an undeclared runtime, a certificate that is not that runtime's, or a
    signature that is missing or not that certificate's key's (``verify_signed``). ``issued_pem``
    gives the PEM of the certificate this profile issued with a fingerprint (None: no copy kept)."""
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
    verify_signed(report, issued_pem(report.fingerprint))
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


def rows(records: dict[str, RuntimeRecord], now: datetime, listed: Listing | None = None) -> list[RuntimeRow]:
    out = []
    for record in sorted(records.values(), key=lambda r: r.name):
        reason = not_ready_reason(record, now, READINESS_WINDOW, listed)
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


def summary(records: dict[str, RuntimeRecord], now: datetime, listed: Listing | None = None) -> str:
    """'3 of 4 runtimes VALID, last seen 2026-11-29T08:00:00Z' (VALID: ready for enforcement)."""
    table = rows(records, now, listed)
    if not table:
        return "no runtimes declared"
    times = [r.reported_at for r in table if r.reported_at]
    seen = max(times, key=rules.parse_timestamp) if times else None
    ready = sum(1 for r in table if r.ready)
    return f"{ready} of {len(table)} runtimes VALID, last seen {seen or 'never'}"


def in_renewal_window(record: RuntimeRecord, now: datetime) -> bool:
    return record.not_after is not None and rules.parse_timestamp(record.not_after) - now <= rules.RENEWAL_WINDOW
