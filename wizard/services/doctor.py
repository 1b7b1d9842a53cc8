"""The doctor: every check it runs, listed here (the files here, Klarna as seen now, API-key
hygiene), each finding with what to do next; and the cron check (``klarna-mtls check``), the
doctor's short form for monitoring. The vocabulary (Finding, Severity, ExitCode) is the core's
``findings``."""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from wizard.core import acceptance, crypto, rules
from wizard.core.checks import CLOCK_SKEW_TOLERANCE
from wizard.core.diagnosis import diagnose
from wizard.core.errors import (
    ApiError,
    CertificateRefused,
    CryptoError,
    InputError,
    InstalledPairRefused,
    LockedOut,
    TransportError,
)
from wizard.core.findings import ExitCode, Finding, Severity, worst
from wizard.klarna.tls import NegotiatedTls, environment_proxy, trusted_roots
from wizard.services import enforcement_timeline, onboarding, recovery, runtime_gate
from wizard.services.api_key_hygiene import hygiene_findings
from wizard.services.clients import refused_under_enforcement_steps, rotate_command
from wizard.services.install import InstalledPair, current_pair, verify_private_files
from wizard.services.repair import DAMAGE_CHECK, damage_finding, installed_pair_problems
from wizard.services.session import Session
from wizard.services.status import ProfileStatus

if TYPE_CHECKING:
    from cryptography import x509

EXPIRY_WARNING_DAYS = rules.RENEWAL_WINDOW.days  # plan a rotation once the renewal window opens
EXPIRY_CRITICAL_DAYS = 14  # two weeks left: rotate now
REPAIR_STEP = "Restore it: klarna-mtls repair"  # the next step of a missing or damaged installed file

DoctorCheck = Callable[[Session, ProfileStatus | None], Awaitable[list[Finding]]]


async def doctor_local(session: Session, status: ProfileStatus | None) -> list[Finding]:
    out = []
    ev = session.evidence
    backend = ev.secret_backend_name or "none chosen"
    out.append(
        Finding(
            "secret backend",
            Severity.OK if ev.secret_backend else Severity.WARNING,
            f"API key kept in: {backend}.",
            "" if ev.secret_backend else "Run the wizard's Credentials step.",
        )
    )
    out.append(_trust_finding(session))
    broken = _broken_install(session)
    if broken is not None:
        return [*out, broken]
    pair = current_pair(session.install_dir)
    if pair is None:
        out.append(
            Finding("install", Severity.CRITICAL, "No certificate is installed here.", "Run the wizard (Install step).")
        )
        return out
    out += _damage(session, pair)
    try:
        verify_private_files(pair)
        out.append(Finding("file modes", Severity.OK, "Key file 600 in a 700 folder."))
    except CryptoError as error:
        out.append(Finding("file modes", Severity.CRITICAL, error.message, error.hint))
    try:
        key = crypto.load_private_key_file(pair.key_path, session.key_passphrase)
        cert = crypto.load_certificate(pair.cert_path.read_bytes())
        crypto.verify_cert_matches_key(cert, key)
        out.append(Finding("key match", Severity.OK, "Installed certificate and key belong together."))
    except CryptoError as error:
        out.append(Finding("key match", Severity.CRITICAL, error.message, error.hint))
        return out
    out.append(expiry_finding(cert.not_valid_after_utc, session.clock(), session.profile))
    out.append(_cn_finding(session, cert))
    return out


def _cn_finding(session: Session, cert: x509.Certificate) -> Finding:
    ev = session.evidence
    expected_cn = ev.cn or (rules.default_cn(ev.account_id) if ev.account_id else None)
    cn = crypto.certificate_cn(cert)
    if cn != expected_cn and ev.account_id and rules.is_assigned_cn(cn, ev.account_id):
        return Finding("CN", Severity.OK, f"Certificate CN is {cn}, the form Klarna documents for a CN it assigns.")
    return Finding(
        "CN",
        Severity.OK if cn == expected_cn else Severity.WARNING,
        f"Certificate CN is {cn}.",
        "" if cn == expected_cn else f"Klarna's rule expects {expected_cn}.",
    )


def _broken_install(session: Session) -> Finding | None:
    """The installed pair against the profile's records, from the files alone: a missing or
    damaged file is critical, and the tool can restore it (never a reason to open the account)."""
    problems = installed_pair_problems(session)
    if not problems:
        return None
    return Finding("install", Severity.CRITICAL, " ".join(problems), f"{REPAIR_STEP} --profile {session.profile}")


def offers_repair(findings: list[Finding]) -> bool:
    """A finding answered by ``repair`` (a missing or damaged installed file, or the journal
    disagreeing with the files): front ends offer it."""
    return any(
        f.next_step.startswith(REPAIR_STEP) or f.check == DAMAGE_CHECK
        for f in findings
        if f.severity is not Severity.OK
    )


def _damage(session: Session, pair: InstalledPair) -> list[Finding]:
    """The journal and the installed files disagreeing on which certificate is installed here."""
    damage = session.pair_damage(pair)
    return [damage_finding(damage, session.profile)] if damage else []


def _trust_finding(session: Session) -> Finding:
    """Which CAs this profile trusts and which proxy carries its traffic (the environment may
    choose a proxy, never the trust)."""
    if session.settings.trust_ca:
        trust = f"the CA set you chose (onboard --trust-ca) {session.ca_bundle}"
    elif session.ca_bundle:
        trust = f"only the sandbox CA {session.ca_bundle}"
    else:
        trust = f"the bundled roots {trusted_roots()}"
    proxy = environment_proxy()
    if proxy:
        parts = urlsplit(proxy)
        proxy = f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"
    return Finding(
        "trust",
        Severity.OK,
        f"Servers are trusted through {trust} (SSL_CERT_FILE, SSL_CERT_DIR and "
        f"SSLKEYLOGFILE are ignored); proxy: {proxy or 'none'}.",
    )


async def doctor_remote(session: Session, status: ProfileStatus | None) -> list[Finding]:
    if status is None:
        return []
    out: list[Finding] = []
    skew = status.clock_skew_seconds
    if skew is not None:
        bad = abs(skew) > CLOCK_SKEW_TOLERANCE
        out.append(
            Finding(
                "clock",
                Severity.WARNING if bad else Severity.OK,
                f"Clock differs from Klarna's by {skew:+.0f} s.",
                "Fix this machine's clock (NTP)." if bad else "",
            )
        )
    negotiated = NegotiatedTls(status.tls_version, status.tls_cipher) if status.tls_version else "TLS"
    out.append(Finding("TLS", Severity.OK, f"Negotiated {negotiated} with Klarna; reachable."))
    verdict = status.verification or "UNKNOWN"
    diagnosis = diagnose(verdict)
    out.append(
        Finding(
            "verification",
            Severity.OK if acceptance.accepted(verdict) else Severity.CRITICAL,
            f"{verdict}: {diagnosis.summary}",
            " ".join(diagnosis.next_steps[:1]),
        )
    )
    out.append(_enforcement_finding(status))
    outlook = Severity(status.enforcement_outlook_severity or Severity.OK)
    outlook_next = enforcement_timeline.NEXT_STEP if outlook is Severity.CRITICAL else ""
    out += [Finding(enforcement_timeline.CHECK, outlook, line, outlook_next) for line in status.enforcement_outlook]
    out.append(_slots_finding(status))
    return out


def _slots_finding(status: ProfileStatus) -> Finding:
    """Slots in use, or unknown when the listing gives no state for some certificates (Klarna's
    documented listing gives none: not a fault, so it does not raise the exit code on its own)."""
    slots, limit = status.slots_used, rules.MAX_ACTIVE_CERTIFICATES
    if status.without_status:
        return Finding(
            "slots",
            Severity.WARNING if slots >= limit - 1 else Severity.OK,
            f"Certificate slots in use unknown: {status.without_status} of {len(status.certificates)} listed "
            f"certificates have no state in Klarna's listing ({slots} known active, of {limit}).",
            "Revoke certificates you no longer use; Klarna refuses an 11th active one (LIMIT_EXCEEDED).",
        )
    return Finding(
        "slots",
        Severity.WARNING if slots >= limit - 1 else Severity.OK,
        f"{slots} of {limit} certificate slots used.",
        "Revoke certificates you no longer use." if slots >= limit - 1 else "",
    )


def _enforcement_finding(status: ProfileStatus) -> Finding:
    """The enforcement mode as observed; unknown is a warning (destructive steps wait for it)."""
    mode = status.enforcement_mode or "UNKNOWN"
    if mode == "UNKNOWN":
        return Finding(
            "enforcement",
            Severity.WARNING,
            "Enforcement: UNKNOWN (Klarna's answer did not say).",
            "Revoking and enforcing are refused until the state can be read; try again later.",
        )
    note = f"Enforcement: {mode}" + (f" from {status.enforced_from}" if status.enforced_from else "") + "."
    return Finding(
        "enforcement", Severity.OK, note, "" if mode == "ENFORCED" else "Enforce once every runtime is VALID."
    )


def expiry_finding(
    not_after: datetime,
    now: datetime,
    profile: str,
    warn_days: int = EXPIRY_WARNING_DAYS,
    critical_days: int = EXPIRY_CRITICAL_DAYS,
) -> Finding:
    """The certificate's expiry: a warning within ``warn_days``, critical within ``critical_days``."""
    days = (not_after - now).days
    rotate = rotate_command(profile)
    if not_after <= now:
        return Finding(
            "expiry", Severity.CRITICAL, f"The certificate expired on {not_after:%Y-%m-%d}.", f"Rotate now: {rotate}"
        )
    if days <= critical_days:
        return Finding(
            "expiry",
            Severity.CRITICAL,
            f"The certificate expires in {days} days ({not_after:%Y-%m-%d}).",
            f"Rotate now: {rotate}",
        )
    if days <= warn_days:
        return Finding(
            "expiry",
            Severity.WARNING,
            f"The certificate expires in {days} days ({not_after:%Y-%m-%d}).",
            f"Plan a rotation: {rotate}",
        )
    return Finding("expiry", Severity.OK, f"The certificate is valid for {days} more days ({not_after:%Y-%m-%d}).")


async def cron_check(session: Session, warn_days: int, critical_days: int) -> tuple[ExitCode, list[Finding]]:
    """``klarna-mtls check``, for cron: expiry of the installed certificate, the declared runtimes'
    readiness and the installed pair's verification status."""
    if critical_days > warn_days:
        raise InputError("--critical-days must not exceed --warn-days.")
    broken = _broken_install(session)
    if broken is not None:
        return ExitCode.CRITICAL, [broken]
    pair = current_pair(session.install_dir)
    if pair is None:
        hint = f"Run klarna-mtls onboard --profile {session.profile}."
        return ExitCode.CRITICAL, [Finding("install", Severity.CRITICAL, "No certificate is installed here.", hint)]
    cert = crypto.load_certificate(pair.cert_path.read_bytes())
    findings = [
        *_damage(session, pair),
        expiry_finding(cert.not_valid_after_utc, session.clock(), session.profile, warn_days, critical_days),
    ]
    findings += runtime_gate.check_findings(session.state.runtimes, session.clock())
    try:
        observation: onboarding.Observation = await onboarding.observe(session)
    except ApiError as error:
        if error.status != 403 and not isinstance(error, CertificateRefused):
            raise
        # Under enforcement Klarna refuses a call whose certificate it no longer accepts: for a
        # monitor that is the critical finding itself, not a failure to check.
        findings.append(_refused(error, session.profile))
        return worst(findings), findings
    verdict = observation.status
    findings.append(
        Finding(
            "verification",
            Severity.OK if acceptance.accepted(verdict) else Severity.CRITICAL,
            UNDER_ENFORCEMENT
            if verdict == acceptance.ACCEPTED_UNDER_ENFORCEMENT
            else f"Klarna sees the installed certificate as {verdict}.",
            " ".join(diagnose(verdict).next_steps[:1]),
        )
    )
    findings += await _scheduled_enforcement(session)
    return worst(findings), findings


def _refused(error: ApiError, profile: str) -> Finding:
    """Critical either way (the calls fail), but only Klarna's mTLS code says it is the certificate:
    under enforcement, where rotate is locked too, so the steps are the lock-out's."""
    if isinstance(error, CertificateRefused):
        summary = f"Klarna refused the installed certificate: {error.message}"
        hint = refused_under_enforcement_steps(profile)
    else:
        summary = (
            f"Klarna answered 403 with no mTLS error code ({error.message}): the installed certificate may be "
            "refused, or Klarna's DDoS protection is refusing this machine."
        )
        hint = f"klarna-mtls doctor --profile {shlex.quote(profile)} tells which, and what to do."
    return Finding("verification", Severity.CRITICAL, summary, hint)


async def _scheduled_enforcement(session: Session) -> list[Finding]:
    """An enforcement on or scheduled, re-judged now against what is recorded (the journal's own
    record of it re-checked on the way) and the listing read with it; a state that cannot be read
    is a warning. With none on or scheduled, a runtime the listing shows revoked is a warning."""
    try:
        look = await session.look()
    except (ApiError, TransportError) as error:
        return [Finding(enforcement_timeline.CHECK, Severity.WARNING, f"Could not be read: {error.message}")]
    now = session.clock()
    enforcement_timeline.recheck(session, look.enforcement, now)
    session.save()  # writes only when something observed changed
    listed = look.listed_statuses
    outlook = enforcement_timeline.outlook(session, look.enforcement, now, look.server_date, listed)
    return outlook or runtime_gate.listing_findings(runtime_gate.reload(session), listed)  # none on or scheduled


UNDER_ENFORCEMENT = (
    "Klarna accepts the installed certificate: a call made with it was accepted under enforcement "
    "(ENFORCED, and Klarna sent no verification header)."
)


def refused_finding(profile: str) -> Finding:
    return Finding(
        "verification",
        Severity.CRITICAL,
        "Klarna refuses the installed certificate: mTLS is enforced and Klarna does not accept this "
        "certificate now (revoked, expired, another account's, or issued less than 5 minutes ago). Klarna "
        "is reachable and the API key is not the problem; calls made with this pair fail.",
        refused_under_enforcement_steps(profile),
    )


def way_back_step(profile: str) -> str:
    return (
        f"Replace the refused certificate while enforcement is off: {rotate_command(profile)} "
        "(it calls without a certificate until the new one is installed)."
    )


DOCTOR_CHECKS: tuple[DoctorCheck, ...] = (doctor_local, doctor_remote, hygiene_findings)


async def run_doctor(session: Session) -> list[Finding]:
    status = None
    findings: list[Finding] = []
    try:  # as `status` reads it: when Klarna refuses the installed pair, the way back decides what is left
        found = await recovery.status_recovering(session)
        status = found.value
        if found.note:
            findings.append(Finding("way back", Severity.WARNING, found.note, way_back_step(session.profile)))
    except CryptoError as error:  # e.g. a key file others can read: we refuse to use it
        findings.append(Finding("remote checks", Severity.CRITICAL, f"Skipped: {error.message}", error.hint))
    except (CertificateRefused, LockedOut):  # Klarna answered: reachable, but it does not accept our pair
        findings.append(refused_finding(session.profile))
    except InstalledPairRefused as error:  # refused, and whether mTLS is enforced could not be read
        findings.append(Finding("verification", Severity.CRITICAL, error.message, error.hint))
    except (TransportError, ApiError) as error:
        findings.append(Finding("reachability", Severity.ERROR, str(error), error.hint))
    for check in DOCTOR_CHECKS:
        findings.extend(await check(session, status))
    return findings
