"""A profile's certificates as seen now: the account's listing through the installed pair, joined
with this profile's own records ("installed here", "current", "last seen VALID"), for the status
views of both front ends and for the interlocks' facts (``ProfileStatus.situation``).

UI-agnostic: functions take a Session and return dataclasses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from wizard.core import crypto, rules
from wizard.core.findings import Finding
from wizard.core.interlocks import Situation
from wizard.core.records import CertificateRecord
from wizard.core.stages import Stage
from wizard.services import enforcement_timeline
from wizard.services.install import list_pairs
from wizard.services.session import Session

if TYPE_CHECKING:
    from wizard.klarna.models import CertificateInfo


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
    tls_cipher: str | None = None  # the negotiated suite (TLS 1.2 only with AEAD suites)
    clock_skew_seconds: float | None = None
    installed: bool | None = None  # a pair is in the install folder's `current`
    current_id: str | None = None  # its credential id, from the profile's records
    current_damage: str | None = None  # the records and the installed files disagree
    enforcement_scheduled: bool | None = None  # None: the answer did not say
    observed_at: str | None = None  # when Klarna answered what this status shows (UTC)
    # A scheduled (or applied) enforcement re-judged now: what it will refuse and when, with the
    # severity of it all ("critical": something counted will be refused; None: nothing scheduled).
    enforcement_outlook: list[str] = field(default_factory=list)
    enforcement_outlook_severity: str | None = None
    stage_note: str | None = None  # the journal's stage corrected by what Klarna said now

    @property
    def without_status(self) -> int:
        """Listed certificates whose state the listing does not give (Klarna's documented listing
        carries no status): the slots in use are then unknown, not ``slots_used``."""
        return sum(1 for c in self.certificates if c.status == "UNKNOWN")

    def slots_words(self) -> str:
        """The slots in use, or unknown when the listing gives some certificates no state (the
        front ends say it the same way)."""
        limit = rules.MAX_ACTIVE_CERTIFICATES
        if self.without_status:
            return f"slots unknown ({self.without_status} listed without a state; {self.slots_used}/{limit} known)"
        return f"slots {self.slots_used}/{limit}"

    @property
    def listed_statuses(self) -> dict[str, str]:
        """The listing read with this status: each id with the status it gives ([ours], "UNKNOWN"
        when none), as ``runtimes.rows`` takes it (it may make a runtime not ready, never ready)."""
        return {c.credential_id: c.status for c in self.certificates}

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
            current_damage=self.current_damage,
            listed_ids=frozenset(c.credential_id for c in self.certificates),
            statuses=self.listed_statuses,
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
    stage_note = enforcement_timeline.recheck(session, look.enforcement, now)
    session.save()  # writes only when something observed changed
    outlook = enforcement_timeline.outlook(session, look.enforcement, now, look.server_date, look.listed_statuses)
    installed = {session.current_id(p) for p in list_pairs(session.install_dir)} - {None}
    situation = session.situation(look)
    rows = [
        certificate_row(
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
        tls_cipher=look.tls_cipher,
        clock_skew_seconds=look.clock_skew_seconds,
        installed=look.pair is not None,
        current_id=look.current_id,
        current_damage=look.current_damage,
        enforcement_scheduled=enforcement.scheduled,
        observed_at=rules.format_utc(now),
        enforcement_outlook=[f.summary for f in outlook],
        enforcement_outlook_severity=worst_severity(outlook),
        stage_note=stage_note,
    )


def worst_severity(findings: list[Finding]) -> str | None:
    return max(findings, key=lambda f: f.severity.exit_code).severity.value if findings else None


def certificate_row(
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
