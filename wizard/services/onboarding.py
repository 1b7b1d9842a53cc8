"""The I/O behind each onboarding stage, shared by the TUI and the headless commands.

Each function takes the profile's ``Session`` first (like ``certificate_rotation.rotate(session,
…)``), does the stage's I/O, records what it observed through the model's ``Onboarding`` methods
and saves the journal. Blocking work (crypto, files, keyring) runs in a thread so an event loop
never stalls. The stage waits (verification polling, the enforcement watch) are in
``onboarding_waits``."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shlex
import stat
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from wizard.core import rules, timeline
from wizard.core._lazy import lazy_module
from wizard.core.diagnosis import Diagnosis, diagnose
from wizard.core.errors import ApiError, CryptoError, HandshakeRejected, InputError, MtlsRequired
from wizard.core.fsutil import ensure_private_dir, file_mode, write_private
from wizard.core.interlocks import Action
from wizard.core.model import KeyRecord
from wizard.core.records import InFlight
from wizard.core.stages import Stage
from wizard.services.enforcement_timeline import (
    forget_enforcement,
    note_seen,
    pair_not_after,
    runtime_not_after,
    timeline_facts,
)
from wizard.services.runtime_gate import require_ready
from wizard.services.session import KEY_FILE, Session, acceptance_of
from wizard.services.slots import slot_facts

if TYPE_CHECKING:  # httpx and the install module load when a command needs them
    from wizard.core import crypto
    from wizard.core.crypto import PrivateKey
    from wizard.klarna.models import CertificateInfo, EnforcementState
    from wizard.secrets.base import SecretStore
else:
    crypto = lazy_module("wizard.core.crypto")  # loaded by the first stage that needs it

CSR_FILE = "csr.pem"


@dataclass(frozen=True)
class Observation:
    """One verification poll: what the header said, for which certificate."""

    status: str  # VALID | NOT_PRESENT | INVALID | REJECTED | UNKNOWN
    fingerprint: str | None
    at: datetime
    correlation_id: str | None = None

    @property
    def diagnosis(self) -> Diagnosis:
        return diagnose(self.status)


# ------------------------------------------------------------------ CREDENTIALS
async def check_credentials(session: Session, api_key: str, store: SecretStore) -> None:
    """Validate the key's shape, prove it with a live call, then keep it in ``store``."""
    from wizard.secrets.resolve import store_place  # the stores load when a key is checked, not at start

    rules.verify_api_key(api_key, session.environment)
    session.unlock(api_key)
    async with session.client() as klarna:
        answer = await klarna.ping()
    if store.persistent:
        await asyncio.to_thread(store.set, session.profile, api_key)
    ev = session.evidence
    if ev.api_key_masked and ev.api_key_masked != rules.mask_key(api_key):
        session.state.record_tool_key(None, "")  # another key: the recorded id described the old one
    session.model.record_api_key(api_key)
    session.model.record_credentials(
        backend=store.kind,
        backend_name=store.display_name,
        checked_at=session.clock(),
        clock_skew_seconds=answer.clock_skew_seconds,
        place=store_place(store),
    )
    session.save()
    session.audit.record(
        "credentials_checked",
        api_key=ev.api_key_masked,
        backend=store.kind,
        clock_skew_seconds=ev.clock_skew_seconds,
        correlation_id=answer.correlation_id,
    )


async def generate_key(
    session: Session, *, passphrase: bytes | None = None, overwrite: bool = False, cn: str | None = None
) -> None:
    """Make a P-256 key and a CN-only CSR. Refuses to replace an existing key unless asked."""
    session.require(Action.GENERATE_KEY)
    if session.key_path.exists() and not overwrite:
        raise InputError(
            f"A private key already exists at {session.key_path}.",
            title="Key already exists",
            hint="Keep it (use the existing key), or choose to replace it explicitly.",
        )
    account = session.evidence.account_id
    if not account:
        raise InputError("Set the account id first.")
    cn = cn or rules.default_cn(account)
    rules.verify_cn(cn)
    key, key_pem, csr_pem = await asyncio.to_thread(_make_key_and_csr, session, passphrase, cn)
    if overwrite:
        session.model.restart_from(Stage.KEY_AND_CSR)
        session.state.in_flight = None
    # Journaled before the file exists: a resumed run adopts only the key this tool wrote.
    session.settings.key_file_sha256 = key_digest(key_pem)
    session.save()
    await asyncio.to_thread(_write_key_files, session, key_pem, csr_pem)
    session.set_key_passphrase(passphrase)
    _record_key(session, key, csr_pem, cn, encrypted=passphrase is not None)
    session.audit.record("key_generated", public_key_id=crypto.public_key_id(key), cn=cn, encrypted=bool(passphrase))


def _make_key_and_csr(session: Session, passphrase: bytes | None, cn: str) -> tuple[PrivateKey, bytes, bytes]:
    key = crypto.make_private_key()
    return key, crypto.make_private_key_pem(key, passphrase), crypto.make_csr_pem(key, cn)


def _write_key_files(session: Session, key_pem: bytes, csr_pem: bytes) -> None:
    folder = ensure_private_dir(session.key_path.parent)
    write_private(folder / KEY_FILE, key_pem)
    write_private(folder / CSR_FILE, csr_pem)


async def use_existing_key(session: Session, *, passphrase: bytes | None = None, cn: str | None = None) -> None:
    """Adopt the key already on disk (e.g. after a crash) and (re)build its CSR: only a key
    this tool wrote for this profile, in a private file owned by this user."""
    session.require(Action.GENERATE_KEY)
    key = await asyncio.to_thread(_load_own_key, session, passphrase)
    account = session.evidence.account_id
    if not account:
        raise InputError("Set the account id first.")
    cn = cn or session.evidence.cn or rules.default_cn(account)
    csr_pem = await asyncio.to_thread(crypto.make_csr_pem, key, cn)
    await asyncio.to_thread(write_private, session.key_path.parent / CSR_FILE, csr_pem)
    session.set_key_passphrase(passphrase)
    _record_key(session, key, csr_pem, cn, encrypted=passphrase is not None)


def _load_own_key(session: Session, passphrase: bytes | None) -> PrivateKey:
    return load_own_key(session.key_path, passphrase, session.settings.key_file_sha256, session.evidence.key_public_id)


def _record_key(session: Session, key: PrivateKey, csr_pem: bytes, cn: str, *, encrypted: bool) -> None:
    session.model.record_key(
        KeyRecord(
            path=str(session.key_path),
            curve=key.curve.name,
            public_id=crypto.public_key_id(key),
            file_mode=file_mode(session.key_path),
            dir_mode=file_mode(session.key_path.parent),
            encrypted=encrypted,
            cn=cn,
            csr_pem=csr_pem.decode(),
        )
    )
    session.save()


# ------------------------------------------------------------------ ISSUE
async def issue_certificate(session: Session, description: str | None = None) -> None:
    """Create the certificate once: the idempotency key is journaled before sending, and
    an unknown outcome is reconciled against the server's list by our public key."""
    session.require(Action.ISSUE, spends_slot=False)  # the stage first; the slots once listed
    ev = session.evidence
    if not ev.csr_pem or not ev.key_public_id:
        raise InputError("Generate the key and CSR first.")
    description = description or f"klarna-mtls {session.profile}"
    rules.verify_description(description)
    flight = session.state.in_flight
    if not (flight and flight.operation == "create_certificate" and flight.public_key_id == ev.key_public_id):
        async with session.client() as klarna:
            listing = await klarna.list_certificates()
        mine = find_by_key(listing.value, ev.key_public_id)
        if mine is None:
            session.require(Action.ISSUE, **slot_facts(session, listing.value))
        flight = InFlight(
            operation="create_certificate",
            idempotency_key=str(uuid.uuid4()),
            public_key_id=ev.key_public_id,
            sent_at=rules.format_utc(session.clock()),
        )
        if mine is not None:  # already issued (e.g. by an earlier run): adopt it
            _record_certificate(session, mine, listing.value)
            return
        session.state.in_flight = flight
        session.save()  # recorded before sending, so a crash can reconcile
        session.audit.record("create_certificate_sent", idempotency_key=flight.idempotency_key)
    try:
        async with session.client() as klarna:
            answer = await klarna.create_certificate_reconciled(
                ev.csr_pem, description, flight.idempotency_key, ev.key_public_id
            )
            listing = await klarna.list_certificates()
    except ApiError as exc:
        if 400 <= exc.status < 500 and exc.status not in (408, 429):
            session.state.in_flight = None  # a definite refusal: nothing was created
            session.save()
        raise
    _record_certificate(session, answer.value, listing.value)


def _record_certificate(session: Session, info: CertificateInfo, listing: list[CertificateInfo]) -> None:
    from wizard.services.account_ca import account_ca_issuer

    pem = info.certificate_pem or ""
    cert = crypto.load_certificate(pem)  # none in the answer: "The certificate is empty."
    fingerprint = crypto.fingerprint_sha256(cert)
    active = sum(1 for c in listing if c.status == "ACTIVE")
    issuer = account_ca_issuer(session, pem, info.credential_id, listing)
    session.model.record_certificate(info.credential_id, pem, fingerprint, active, issuer)
    session.state.in_flight = None
    record = session.state.certificate(info.credential_id)
    record.fingerprint, record.issued_here = fingerprint, True
    record.not_after = rules.format_utc(cert.not_valid_after_utc)
    session.save()
    session.audit.record("certificate_issued", certificate_id=info.credential_id, fingerprint=fingerprint)


# ------------------------------------------------------------------ INSTALL
async def install(session: Session, install_dir: str | Path | None = None) -> None:
    """Install the pair beside any previous one, flip `current`, then prove it over mTLS."""
    from wizard.services.install import activate, install_pair

    session.require(Action.INSTALL)
    ev = session.evidence
    if not ev.certificate_pem or not ev.fingerprint or not ev.certificate_id:
        raise InputError("Issue the certificate first.")
    if install_dir:
        session.settings.install_dir = str(Path(install_dir).expanduser().absolute())
    folder = session.install_dir
    key_pem = await asyncio.to_thread(session.key_path.read_bytes)
    label = ev.fingerprint.replace(":", "")[:16].lower()
    pair = await asyncio.to_thread(
        install_pair,
        folder,
        ev.certificate_pem.encode(),
        key_pem,
        label=label,
        key_passphrase=session.key_passphrase,
    )
    await asyncio.to_thread(activate, folder, label)
    current = folder / "current"
    session.model.record_install(
        str(folder), str(current / pair.cert_path.name), str(current / pair.key_path.name), pair.modes()
    )
    record = session.state.certificate(ev.certificate_id)
    record.installed, record.label = True, label
    session.save()
    session.audit.record("installed", folder=str(folder), fingerprint=ev.fingerprint)
    await prove_install(session)


async def prove_install(session: Session) -> Observation:
    """A real mTLS request with exactly the installed files."""
    observation = await observe(session)
    if observation.status == "REJECTED":
        raise HandshakeRejected(
            "Klarna refused the installed certificate during the TLS handshake.",
            hint=observation.diagnosis.next_steps[0],
        )
    session.model.record_install_probe(observation.at, observation.fingerprint)
    session.save()
    return observation


# ------------------------------------------------------------------ VERIFY
async def observe(session: Session) -> Observation:
    """One call with the installed files; returns what the verification header says."""
    from wizard.services.install import current_pair

    pair = current_pair(session.install_dir)
    fingerprint = pair.fingerprint if pair else None
    now = session.clock()
    try:
        async with session.client(with_certificate=True) as klarna:
            answer = await klarna.list_certificates()
            status = await acceptance_of(klarna, answer.verification.value)
    except HandshakeRejected:
        return _observed(session, Observation("REJECTED", fingerprint, now))
    return _observed(session, Observation(status, fingerprint, now, answer.correlation_id))


def _observed(session: Session, observation: Observation) -> Observation:
    session.state.record_status(observation.status, observation.fingerprint, "verify")
    if observation.status == "VALID":
        session.record_valid(session.state.id_for_pair(None, observation.fingerprint), observation.at)
    session.save()  # writes only when something observed changed
    return observation


async def verify_once(session: Session) -> Observation:
    """One Verify-stage poll, recorded as model evidence."""
    session.require(Action.POLL_VERIFICATION)
    observation = await observe(session)
    session.model.record_verification(observation.status, observation.fingerprint, observation.at)
    session.save()
    return observation


# ------------------------------------------------------------------ ENFORCE
async def enforce(
    session: Session, enforced_from: str, *, leave_out: tuple[str, ...] = (), confirm_leave_out: str | None = None
) -> str:
    """Schedule enforcement (NOW or a time <= 3 months ahead); returns the server's mode.
    Every path (onboarding in either front end, the dashboard, ``klarna-mtls enforce``) comes
    here, and the gate looks first: an installed certificate of ours VALID right now and still
    valid when the enforcement has surely applied, this machine's clock agreeing with Klarna's
    Date, and every declared runtime ready (and its certificate lasting) unless left out on
    purpose (facts in wizard/services/runtime_gate.py and enforcement_timeline.py, the rules in
    wizard/core/interlocks.py)."""
    value = rules.parse_enforced_from(enforced_from, now=session.clock())
    look = await session.look()
    facts = timeline_facts(session, look, value, leave_out)
    situation = session.situation(look, **facts)
    require_ready(
        session,
        look.listed_statuses,
        leave_out,
        confirm_leave_out,
        situation=situation,
        klarna_now=look.server_date,
    )
    if look.verification == "VALID":
        session.record_valid(look.current_id, session.clock())
    session.model.record_enforcement_request(value, session.clock())
    async with session.client() as klarna:
        answer = await klarna.set_enforcement(value)
    mode: str = answer.value.mode.value
    session.model.record_enforcement_mode(mode)
    session.settings.enforced_from_server = answer.value.enforced_from
    note_seen(session, answer.value, session.clock())
    session.save()
    session.audit.record("enforcement_set", enforced_from=value, mode=mode)
    return mode


def enforcement_warnings(session: Session) -> list[str]:
    """What the enforcement just requested allows but should be acted on: each counted certificate
    that will be inside its renewal window when the enforcement starts (from the journal's request)."""
    ev = session.evidence
    if not ev.enforced_from:
        return []
    from wizard.services.install import current_pair

    start = timeline.enforcement_start(ev.enforced_from, session.clock())
    installed = pair_not_after(current_pair(session.install_dir))
    notes = [timeline.renewal_note("The certificate installed here", installed, start)]
    notes += [
        timeline.renewal_note(f"The certificate of runtime {r.name}", runtime_not_after(session, r), start)
        for r in session.state.runtimes.values()
    ]
    return [n for n in notes if n]


async def read_enforcement(session: Session) -> EnforcementState:
    """Klarna's enforcement now; the journal's record is re-checked against it (and saved)."""
    async with session.client() as klarna:
        answer = await klarna.get_enforcement()
    known = answer.value.mode is not rules.EnforcementMode.UNKNOWN
    if session.model.stage is Stage.ENFORCE and session.evidence.enforced_from and known:
        session.model.record_enforcement_mode(answer.value.mode.value)
    note_seen(session, answer.value, session.clock())
    session.save()
    return answer.value


async def prove_enforced(session: Session) -> bool:
    """True when a request without a client certificate is refused as mTLS requires (Klarna's
    refusal code, whatever its status): a wrong or disabled API key's 401 proves nothing."""
    try:
        async with session.client(with_certificate=False) as klarna:
            await klarna.ping()
    except ApiError as exc:
        refused = isinstance(exc, MtlsRequired)
        if refused:
            session.settings.enforcement_proved_at = rules.format_utc(session.clock())
            session.save()
        return refused
    return False


async def remove_enforcement(session: Session) -> EnforcementState:
    """Remove enforcement; the journal's record of it goes too, and the Enforce stage reopens, so
    nothing later reports ENFORCED from it (``onboard --enforce-at`` enforces again)."""
    session.require(Action.UNENFORCE)
    async with session.client() as klarna:
        answer = await klarna.remove_enforcement()
    forget_enforcement(session)
    note_seen(session, answer.value, session.clock())
    session.save()
    session.audit.record("enforcement_removed", mode=answer.value.mode.value)
    return answer.value


def load_own_key(path: Path, passphrase: bytes | None, digest: str | None, public_key_id: str | None) -> PrivateKey:
    """The private key at ``path`` only if this tool wrote it: a plain file of this user, 0600 in
    a safe folder, whose sha256 is the ``digest`` journaled before it was written (or, for a
    journal from before digests were kept, whose public key is the ``public_key_id`` recorded)."""
    ensure_private_dir(path.parent)
    try:
        info = os.lstat(path)
    except OSError:
        raise _foreign_key(path, "cannot be read") from None
    if not stat.S_ISREG(info.st_mode):
        raise _foreign_key(path, "is not a regular file")
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise _foreign_key(path, "is owned by another user or readable by others")
    data = path.read_bytes()
    key = crypto.load_private_key(data, passphrase)
    if digest and hashlib.sha256(data).hexdigest() == digest:
        return key
    if not digest and public_key_id and crypto.public_key_id(key) == public_key_id:
        return key
    raise _foreign_key(path, "was not written by klarna-mtls for this profile")


def key_digest(key_pem: bytes) -> str:
    return hashlib.sha256(key_pem).hexdigest()


def _foreign_key(path: Path, why: str) -> CryptoError:
    quoted = shlex.quote(str(path))
    return CryptoError(
        f"The private key file {path} {why}; it will not be used.",
        title="Unknown key file",
        hint=f"Move it away (mv {quoted} {quoted}.unknown) and run again to generate a new key.",
    )


def find_by_key(certificates: Iterable[CertificateInfo], public_key_id: str) -> CertificateInfo | None:
    for info in certificates:
        if info.public_key_id == public_key_id and info.status == "ACTIVE":
            return info
    return None
