"""The dashboard without a network: what Klarna last said, kept in the journal, or else what the
journal's own records hold (certificates, expiry, enforcement); always with when it was last seen.

Nothing here decides safety: a cached view is for reading. Revocation and the other guarded
actions still ask Klarna first."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from wizard.core import crypto, rules
from wizard.core.errors import CryptoError, WizardError
from wizard.core.evidence import Evidence
from wizard.core.records import CertificateRecord, LastStatus
from wizard.klarna.models import CertificateInfo
from wizard.services.install import current_pair, current_paths, list_pairs, verify_private_files
from wizard.services.session import Session
from wizard.services.status import CertificateRow, ProfileStatus, certificate_row


@dataclass(frozen=True)
class CachedStatus:
    status: ProfileStatus
    seen_at: str | None  # when Klarna last answered (UTC, ISO); None when it never has
    source: str  # "last answer" (what Klarna said) or "records" (this tool's own journal)


def remember(session: Session, status: ProfileStatus) -> None:
    """Keep the status Klarna just gave, with the time, for the next offline start."""
    session.settings.last_status = LastStatus(at=rules.format_utc(session.clock()), status=status.to_dict())
    session.save()


def cached_status(session: Session) -> CachedStatus:
    """The last answer when the journal holds a readable one, else the journal's records. Either
    way a certificate this tool revoked shows REVOKED: the journal recorded the revoke, even when
    the last answer kept was seen before it."""
    saved = session.settings.last_status
    now = session.clock()
    if saved is not None:
        try:
            status = _status_from_dict(saved.status, now)
            return CachedStatus(_with_revokes(status, session.state.retired_ids()), saved.at, "last answer")
        except (TypeError, ValueError, KeyError, WizardError):
            pass  # a damaged copy: the records still say something
    return CachedStatus(_status_from_records(session, now), _last_contact(session), "records")


def _with_revokes(status: ProfileStatus, retired: frozenset[str]) -> ProfileStatus:
    """``status`` with the certificates this tool revoked marked REVOKED, and the slots recounted."""
    rows = [replace(r, status="REVOKED") if r.credential_id in retired else r for r in status.certificates]
    return replace(status, certificates=rows, slots_used=sum(1 for r in rows if r.status == "ACTIVE"))


def local_problem(session: Session) -> str | None:
    """What is wrong with the pair installed here, when onboarding installed one: the file that is
    missing, unreadable or unsafe, named (None when the files look usable). Local: no network, and
    never mistaken for Klarna being unreachable (a missing certificate makes calls go without one)."""
    if not session.evidence.install_probe_ok_at:
        return None  # nothing was installed here yet: nothing to be broken
    cert_path, key_path = current_paths(session.install_dir)
    for path, what in ((cert_path, "certificate"), (key_path, "private key")):
        if not path.is_file():
            return f"Installed {what} file missing: {path}"
    try:
        crypto.load_certificate(cert_path.read_bytes())
    except CryptoError as error:
        return f"Installed certificate file broken: {cert_path}: {error.message}"
    except OSError as error:
        return f"Installed certificate file unreadable: {cert_path}: {error.strerror}"
    try:
        verify_private_files(key_path)
    except WizardError as error:
        return f"Installed private key file unsafe: {error.message}"
    return None


def _status_from_dict(data: Any, now: datetime) -> ProfileStatus:
    if not isinstance(data, dict):
        raise TypeError("status")
    names = {f.name for f in fields(ProfileStatus)}
    values = {k: v for k, v in data.items() if k in names}
    values["certificates"] = [_row_from_dict(row, now) for row in data.get("certificates", [])]
    return ProfileStatus(**values)


def _row_from_dict(row: Any, now: datetime) -> CertificateRow:
    if not isinstance(row, dict):
        raise TypeError("certificate row")
    names = {f.name for f in fields(CertificateRow)}
    values = {k: v for k, v in row.items() if k in names}
    if values.get("expires_at"):  # days left counts from today, not from when it was seen
        values["days_left"] = (rules.parse_timestamp(values["expires_at"]) - now).days
    return CertificateRow(**values)


def _status_from_records(session: Session, now: datetime) -> ProfileStatus:
    ev = session.evidence
    records = dict(session.state.certificates)
    if ev.certificate_id:
        records.setdefault(ev.certificate_id, CertificateRecord(fingerprint=ev.fingerprint))
    pairs = list_pairs(session.install_dir)
    pems: dict[str | None, Path] = {p.fingerprint: p.cert_path for p in pairs}
    installed = {session.current_id(p) for p in pairs} - {None}
    try:
        current = current_pair(session.install_dir)
    except (CryptoError, OSError):  # a broken file is said by local_problem; the records still show
        current = None
    current_id = session.current_id(current)
    rows = []
    for credential_id, record in records.items():
        pem = _pem_for(credential_id, record.fingerprint, ev, pems)
        info = CertificateInfo.from_json({"credential_id": credential_id}, pem=pem)
        status = "REVOKED" if record.retired else info.status  # ACTIVE or EXPIRED by its dates
        rows.append(certificate_row(info, record, status, credential_id in installed, credential_id == current_id, now))
    history = [h for h in session.state.status_history if current and h.fingerprint == current.fingerprint]
    return ProfileStatus(
        profile=session.profile,
        environment=session.environment,
        account_id=ev.account_id,
        stage=session.model.stage.value,
        certificates=sorted(rows, key=lambda r: r.expires_at or ""),
        enforcement_mode=ev.enforcement_mode,
        enforced_from=session.settings.enforced_from_server or ev.enforced_from,
        slots_used=sum(1 for r in rows if r.status == "ACTIVE"),
        secret_backend=ev.secret_backend_name,
        verification=history[-1].status if history else None,
        installed=current is not None,
        current_id=current_id,
    )


def _pem_for(credential_id: str, fingerprint: str | None, ev: Evidence, pems: dict[str | None, Path]) -> str | None:
    if credential_id == ev.certificate_id and ev.certificate_pem:
        return str(ev.certificate_pem)
    path = pems.get(fingerprint)
    try:
        return path.read_text(encoding="ascii") if path else None
    except (OSError, UnicodeDecodeError):
        return None


def _last_contact(session: Session) -> str | None:
    """The latest time Klarna answered this tool, from the journal."""
    times = [h.at for h in session.state.status_history]
    times += [t for t in (session.evidence.api_call_ok_at,) if t]
    return max(times) if times else None
