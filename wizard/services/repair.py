"""Restoring the installed pair from what the tool keeps, instead of issuing anew (or opening the
account): the certificate exactly as Klarna returned it (the journal), the private key in the keys
folder, the versioned install folder, and, when the pair in use cannot be rebuilt, the previous
pair still installed beside it.

Nothing is written before it is checked: the certificate must be the one recorded at issue (its
SHA-256 fingerprint) and belong to the key (which, for the pair in use, must be the key recorded
with it). A broken or foreign file is moved aside, never deleted; the pair is written atomically
and ``current`` flipped atomically; then one call proves it (VALID, or accepted while ENFORCED).
A local problem is never answered with "remove enforcement"."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from wizard.core import acceptance, crypto, rules
from wizard.core.errors import ApiError, CryptoError, HandshakeRejected, InputError, KeyLocked, TransportError
from wizard.core.findings import Finding, Severity
from wizard.core.interlocks import Action
from wizard.core.model import RotatedPair
from wizard.services.clients import rotate_command
from wizard.services.install import (
    CERT_FILE,
    CURRENT,
    KEY_FILE,
    PREVIOUS,
    InstalledPair,
    activate,
    current_pair,
    install_pair,
    label_for,
    list_pairs,
)
from wizard.services.pair_files import current_problems, pair_mismatch
from wizard.services.session import Session, acceptance_of
from wizard.services.status import gather_status

if TYPE_CHECKING:
    from cryptography import x509


@dataclass(frozen=True)
class Expected:
    """The pair in use according to the profile's records."""

    certificate_id: str
    fingerprint: str
    label: str


@dataclass
class RepairReport:
    profile: str
    problems: list[str]  # what was wrong before
    actions: list[str] = field(default_factory=list)  # what was done, in order
    moved_aside: list[str] = field(default_factory=list)
    certificate_id: str | None = None
    fingerprint: str | None = None
    verification: str | None = None  # what Klarna said to the restored pair
    enforcement: str | None = None
    proved: bool = False  # VALID, or accepted while ENFORCED
    proof_note: str = ""

    def outcome(self) -> str:
        """One sentence: what the installed pair is now, and what Klarna said to it."""
        suffix = f"…{self.fingerprint[-11:]}" if self.fingerprint else ""
        if not self.problems:
            return f"nothing to repair: the installed pair is certificate {self.certificate_id} ({suffix})."
        if self.proved:
            seen = self.verification if self.verification == "VALID" else f"accepted while {self.enforcement}"
            return f"repaired: certificate {self.certificate_id} ({suffix}) is installed again; Klarna: {seen}."
        if self.verification is None:
            return f"restored certificate {self.certificate_id}, not proved: {self.proof_note}"
        return (
            f"restored certificate {self.certificate_id}, but Klarna answers {self.verification}"
            f"{': ' + self.proof_note if self.proof_note else ''}. klarna-mtls doctor --profile {self.profile} "
            "explains the cause."
        )

    def lines(self) -> list[str]:
        """What was found, what was done (in order), then the outcome: the report a person reads."""
        return [*(f"found: {p}" for p in self.problems), *self.actions, self.outcome()]


# ---------------------------------------------------------------- what is wrong
def expected_pair(session: Session) -> Expected | None:
    """The pair the records say is installed and in use; None when none was installed."""
    ev = session.evidence
    record = session.state.certificates.get(ev.certificate_id or "")
    if not ev.certificate_id or not (ev.cert_path or (record and record.installed)):
        return None
    fingerprint = (record.fingerprint if record else None) or ev.fingerprint
    if not fingerprint:
        return None
    # The folder its fingerprint names, as every install names it: a record's label can be moved
    # or swapped (LO-07), and restoring by it would write over another certificate's folder.
    return Expected(ev.certificate_id, fingerprint, label_for(fingerprint))


def installed_pair_problems(session: Session) -> list[str]:
    """What is wrong with the installed pair against the profile's records (files only, no
    network); empty when it is sound or nothing was installed. An encrypted key whose passphrase
    was not given is not judged."""
    expected = expected_pair(session)
    if expected is None:
        return []
    link = session.install_dir / CURRENT
    target = os.readlink(link) if link.is_symlink() else None
    problems = current_problems(session.install_dir, target if target in _switching_label(session) else expected.label)
    if problems:
        return problems
    pair = current_pair(session.install_dir)
    if pair is None:
        return [f"{session.install_dir / CURRENT / CERT_FILE} is missing."]
    if pair.label == expected.label and pair.fingerprint != expected.fingerprint:
        return [
            f"{pair.cert_path} holds the certificate …{crypto.fingerprint_suffix(pair.fingerprint)}, not the one "
            f"recorded at issue (…{crypto.fingerprint_suffix(expected.fingerprint)})."
        ]
    try:
        mismatch = pair_mismatch(pair, session.key_passphrase)
    except KeyLocked:
        return []
    return [mismatch] if mismatch else []


DAMAGE_CHECK = "records"  # the finding's name: repair answers it (doctor.offers_repair)


def damage_finding(damage: str, profile: str) -> Finding:
    """The records and the installed files disagreeing (``ProfileState.pair_identity``), said the
    same way by status, doctor, check and the dashboard: critical, as destructive steps stop on it
    (the interlocks' "installed pair sound") until repair sets the journal straight."""
    return Finding(
        DAMAGE_CHECK,
        Severity.CRITICAL,
        f"{damage} Revoking, enforcing and disabling API keys are refused until repair sets it straight.",
        f"Set the journal straight from the installed files: klarna-mtls repair --profile {profile}",
    )


def _labels_from_files(session: Session) -> list[str]:
    """Re-derive the journal's install labels from the files: a folder belongs to the record whose
    fingerprint (recorded at issue) its certificate has, so a label another record claims is taken
    from it (LO-07). Returns what was set straight, saved; files are the restore's business."""
    known = {cid: rec for cid, rec in session.state.certificates.items() if not rec.id_unconfirmed}
    owners = {rec.fingerprint: cid for cid, rec in known.items() if rec.fingerprint}
    fixed: list[str] = []
    for pair in list_pairs(session.install_dir):
        owner = owners.get(pair.fingerprint)
        if owner is None:
            continue
        for cid, rec in known.items():
            if rec.label == pair.label and cid != owner:
                rec.label = None
                fixed.append(f"folder {pair.label} holds {owner}'s certificate, not {cid}'s")
        if known[owner].label != pair.label and not _holds_own(session, known[owner].label, pair.fingerprint):
            known[owner].label = pair.label
            fixed.append(f"{owner} is installed in folder {pair.label}")
    if fixed:
        session.save()
        session.audit.record("journal_labels_repaired", changes=fixed)
    return fixed


def _holds_own(session: Session, label: str | None, fingerprint: str) -> bool:
    """Whether the folder ``label`` holds the certificate with ``fingerprint``."""
    return label is not None and any(
        p.label == label and p.fingerprint == fingerprint for p in list_pairs(session.install_dir)
    )


def _switching_label(session: Session) -> list[str]:
    """A rotation stopped between flipping ``current`` and recording it: its pair is not broken."""
    flow = session.state.flows.rotation
    return [flow.label] if flow is not None and flow.step == "switch" and flow.label else []


# ---------------------------------------------------------------- repair
async def repair(session: Session, on_step: Callable[[str], None] | None = None) -> RepairReport:
    """Restore the installed pair from what the tool keeps, prove it with a call, say what was done."""
    say = on_step or (lambda _line: None)
    session.require(Action.REPAIR)
    expected = expected_pair(session)
    if expected is None:
        raise InputError(
            "This profile has no installed pair in its records, so there is nothing to restore.",
            hint=f"Finish onboarding: klarna-mtls onboard --profile {session.profile}",
        )
    relabelled = _labels_from_files(session)
    report = RepairReport(session.profile, [*relabelled, *installed_pair_problems(session)])
    report.actions += [f"set the journal straight from the installed files ({line})" for line in relabelled]
    if not report.problems:
        report.certificate_id, report.fingerprint = expected.certificate_id, expected.fingerprint
        return report
    for problem in report.problems:
        say(f"found: {problem}")
    restored = _restore_recorded(session, expected, report)
    if not restored:
        await _restore_previous(session, expected, report)
    for action in report.actions:
        say(action)
    await _prove(session, report)
    session.audit.record(
        "repaired", certificate_id=report.certificate_id, moved_aside=report.moved_aside, proved=report.proved
    )
    return report


def _restore_recorded(session: Session, expected: Expected, report: RepairReport) -> bool:
    """Rebuild the recorded pair from the journal, the install folder and the keys folder;
    False when no checked certificate or key is left to rebuild it from."""
    found = _recorded_certificate(session, expected)
    if found is None:
        report.actions.append(f"no copy of certificate {expected.certificate_id} matches its recorded fingerprint")
        return False
    cert_pem, cert_source = found
    key_found = _recorded_key(session, expected, crypto.load_certificate(cert_pem))
    if key_found is None:
        report.actions.append(f"no private key kept here belongs to certificate {expected.certificate_id}")
        return False
    key_pem, key_source = key_found
    install_dir = session.install_dir
    _move_aside_broken(session, expected.label, cert_pem, key_pem, report)
    install_pair(install_dir, cert_pem, key_pem, label=expected.label, key_passphrase=session.key_passphrase)
    report.actions.append(
        f"re-installed {install_dir / expected.label} (certificate from {cert_source}, key from {key_source})"
    )
    current = current_pair(install_dir)
    if current is None or current.label != expected.label:
        activate(install_dir, expected.label)
        report.actions.append(f"pointed {install_dir / CURRENT} at {expected.label}")
    report.certificate_id, report.fingerprint = expected.certificate_id, expected.fingerprint
    session.state.certificate(expected.certificate_id).installed = True
    session.save()
    return True


def _recorded_certificate(session: Session, expected: Expected) -> tuple[bytes, str] | None:
    """The recorded certificate's PEM and where it came from: the first copy whose leaf is the
    fingerprint recorded at issue."""
    ev, flow = session.evidence, session.state.flows.rotation
    record = session.state.certificates.get(expected.certificate_id)
    candidates: list[tuple[str, Callable[[], bytes | None]]] = [
        ("the install folder", lambda: (session.install_dir / expected.label / CERT_FILE).read_bytes()),
        ("the journal (as Klarna returned it)", lambda: _text(ev.certificate_pem)),
        ("the rotation's journal", lambda: _text(flow.certificate_pem if flow else None)),
        ("the certificate's record", lambda: _text(record.certificate_pem if record else None)),
    ]
    for source, read in candidates:
        try:
            data = read()
            if data and crypto.fingerprint_sha256(crypto.load_certificate(data)) == expected.fingerprint:
                return data, source
        except (OSError, CryptoError):
            continue
    return None


def _recorded_key(session: Session, expected: Expected, cert: x509.Certificate) -> tuple[bytes, str] | None:
    """The private key of ``cert``: the installed copy, else the key the tool made (keys folder,
    or the rotation's folder), each loaded with the profile's passphrase and matched to the
    certificate. KeyLocked propagates: without the passphrase nothing can be established."""
    ev, flow = session.evidence, session.state.flows.rotation
    candidates = [(session.install_dir / expected.label / KEY_FILE, "the install folder")]
    candidates += [(Path(p), "the keys folder") for p in (ev.key_path, flow.key_path if flow else None) if p]
    for path, source in candidates:
        try:
            data = path.read_bytes()
            key = crypto.load_private_key(data, session.key_passphrase, source=path)
        except KeyLocked:
            raise
        except (OSError, CryptoError):
            continue
        if crypto.valid_cert_matches_key(cert, key):
            return data, f"{source} ({path})"
    return None


def _text(value: str | None) -> bytes | None:
    return value.encode() if value else None


def _move_aside_broken(session: Session, label: str, cert_pem: bytes, key_pem: bytes, report: RepairReport) -> None:
    """Rename what stands where the pair goes and is not the checked pair: a damaged or foreign
    file, a ``current`` that is not a link. Never deleted: ``<name>.broken-<UTC time>``."""
    install_dir, stamp = session.install_dir, rules.format_utc(session.clock()).replace(":", "")
    folder = install_dir / label
    targets: list[tuple[Path, bytes | None]] = (
        [(install_dir / CURRENT, None)] if _not_a_link(install_dir / CURRENT) else []
    )
    if os.path.lexists(folder) and not folder.is_dir():
        targets.append((folder, None))
    elif folder.is_dir():
        targets += [(folder / CERT_FILE, cert_pem), (folder / KEY_FILE, key_pem)]
    for path, wanted in targets:
        if os.path.lexists(path) and (wanted is None or _read_or_none(path) != wanted):
            aside = _free_name(path.with_name(f"{path.name}.broken-{stamp}"))
            os.rename(path, aside)
            report.moved_aside.append(str(aside))
            report.actions.append(f"moved {path} aside to {aside.name} (kept, not deleted)")


def _not_a_link(path: Path) -> bool:
    return os.path.lexists(path) and not path.is_symlink()


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


# ---------------------------------------------------------------- the previous pair
async def _restore_previous(session: Session, expected: Expected, report: RepairReport) -> None:
    """The pair in use cannot be rebuilt: switch back to the previous pair, if it is one of this
    profile's certificates, not retired, sound, and proved with a call before ``current`` moves."""
    pair, certificate_id = _previous_candidate(session, expected)
    verification = await _observe_with(session, pair)
    if not acceptance.accepted(verification):
        raise CryptoError(
            f"The pair in use cannot be rebuilt, and Klarna does not accept the previous pair "
            f"({certificate_id}: {verification or 'refused'}).",
            title="Nothing to restore",
            hint=_reissue_hint(session),
        )
    _move_aside_broken(session, pair.label, pair.cert_path.read_bytes(), pair.key_path.read_bytes(), report)
    activate(session.install_dir, pair.label)
    _adopt_previous(session, pair, certificate_id, expected.certificate_id)
    report.actions.append(
        f"switched {session.install_dir / CURRENT} back to the previous pair {pair.label} "
        f"({certificate_id}), seen {verification or 'accepted'} first"
    )
    report.certificate_id, report.fingerprint = certificate_id, pair.fingerprint


def _previous_candidate(session: Session, expected: Expected) -> tuple[InstalledPair, str]:
    link = session.install_dir / PREVIOUS
    label = os.readlink(link) if link.is_symlink() else None
    pair = next((p for p in list_pairs(session.install_dir) if p.label == label), None)
    certificate_id = session.current_id(pair) if pair is not None else None
    record = session.state.certificates.get(certificate_id or "")
    usable = pair is not None and record is not None and not record.retired and label != expected.label
    if not usable or pair is None or certificate_id is None or pair_mismatch(pair, session.key_passphrase):
        raise CryptoError(
            f"Certificate {expected.certificate_id} cannot be restored: no copy of it and its key "
            "that passes the checks is kept here, and no usable previous pair is installed.",
            title="Nothing to restore",
            hint=_reissue_hint(session),
        )
    return pair, certificate_id


def _adopt_previous(session: Session, pair: InstalledPair, certificate_id: str, lost_id: str) -> None:
    """The records follow the pair now in use, as after a rotation's switch."""
    cert = crypto.load_certificate(pair.cert_path.read_bytes())
    key = crypto.load_private_key_file(pair.key_path, session.key_passphrase)
    cn = crypto.certificate_cn(cert) or session.evidence.cn or ""
    session.model.adopt_rotated_pair(
        RotatedPair(
            key_path=str(pair.key_path),
            key_public_id=crypto.public_key_id(key),
            csr_pem=crypto.make_csr_pem(key, cn).decode(),  # the original CSR is not kept; same key and CN
            cn=cn,
            certificate_id=certificate_id,
            certificate_pem=crypto.certificate_pem(cert).decode(),
            fingerprint=pair.fingerprint,
            modes=pair.modes(),
            installed_fingerprint=pair.fingerprint,
        )
    )
    session.state.certificate(certificate_id).current = True
    session.state.certificate(lost_id).current = False
    session.save()
    session.audit.record("current_switched", old=lost_id, new=certificate_id, reason="repair")


def _reissue_hint(session: Session) -> str:
    return (
        f"Issue a new pair: {rotate_command(session.profile)}. While the account enforces "
        "mTLS that call needs a working certificate: run it where this profile's pair still works, "
        "or give this machine a runtime certificate (klarna-mtls runtime request)."
    )


# ---------------------------------------------------------------- proof
async def _observe_with(session: Session, pair: InstalledPair) -> str | None:
    """What one call made with ``pair`` says of it (``acceptance_of``, the enforcement mode read as
    everywhere else); None when refused."""
    try:
        async with session.client(pair=pair) as klarna:
            return await acceptance_of(klarna, (await klarna.list_certificates()).verification.value)
    except (HandshakeRejected, ApiError):
        return None


async def _prove(session: Session, report: RepairReport) -> None:
    try:
        status = await gather_status(session)
    except HandshakeRejected as error:
        report.verification, report.proof_note = "REJECTED", error.message
        return
    except ApiError as error:
        report.verification, report.proof_note = f"refused ({error.status})", error.message
        return
    except TransportError as error:
        report.proof_note = f"Klarna could not be reached to prove it: {error.message}"
        return
    report.verification, report.enforcement = status.verification, status.enforcement_mode
    report.proved = acceptance.accepted(status.verification)  # VALID, or accepted under enforcement
