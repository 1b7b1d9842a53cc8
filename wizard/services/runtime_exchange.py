"""A new runtime whose private key never moves: its request, issue and install, and the probe call.

On the runtime's host ``make_request`` makes the P-256 key and a CN-only CSR there and returns a
request (name, account, CSR; no secret). On the managing machine, which holds the API key (and,
once enforcement applies, a valid pair of its own), ``issue_for_request`` lints the CSR, counts
slots, issues the certificate and returns a response (the certificate; no secret). Back on the
host, ``install_response`` checks the certificate against the key made there, installs it
atomically, proves it with a real mTLS call, and believes the response's certificate id only as far
as Klarna confirms it names that certificate. ``probe_answer`` makes one call with a runtime's pair
and says what Klarna answered (wizard/services/runtime_reports.py turns it into a signed report).
Requests and responses are JSON files a person can read."""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard import __version__
from wizard.core import acceptance, crypto, rules
from wizard.core.errors import (
    ApiError,
    CertificateRefused,
    CryptoError,
    HandshakeRejected,
    InputError,
    TransportError,
    WizardError,
)
from wizard.core.flow_records import RuntimeIssue, RuntimeRequest
from wizard.core.fsutil import ensure_private_dir, file_mode, write_output, write_private
from wizard.core.interlocks import Action
from wizard.core.runtimes import RuntimeRecord, verify_runtime_name
from wizard.services import onboarding
from wizard.services.install import InstalledPair, activate, install_pair, label_for
from wizard.services.onboarding import Observation, find_by_key
from wizard.services.session import acceptance_of
from wizard.services.slots import slot_facts
from wizard.services.waits import NEW_CERTIFICATE_LIMITS, Event, PollLimits, follow, poll

if TYPE_CHECKING:
    from wizard.klarna.models import CertificateInfo
    from wizard.services.session import Session

REQUEST_KIND = "klarna-mtls/runtime-request"
RESPONSE_KIND = "klarna-mtls/runtime-response"
MAX_EXCHANGE_BYTES = 256 * 1024


# ---------------------------------------------------------------- exchange files
def write_exchange(path: Path, payload: dict[str, Any], keep_out: Iterable[Path]) -> Path:
    """Write a request or response where the user asked (never into ``keep_out``, the tool's own
    folders, nor through a link). They hold no secret: mode 0644."""
    data = (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode()
    return write_output(Path(path).expanduser(), data, 0o644, keep_out=keep_out)


def read_exchange(path: Path, kind: str) -> dict[str, Any]:
    """Read a JSON exchange file of ``kind``; InputError says what is wrong."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_EXCHANGE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror}.") from exc
    return parse_exchange(data, path, kind)


def parse_exchange(data: bytes, path: Path | str, kind: str) -> dict[str, Any]:
    """The JSON exchange of ``kind`` read from ``path`` (a file, or a ``vault:`` place; at most
    MAX_EXCHANGE_BYTES + 1 bytes)."""
    if len(data) > MAX_EXCHANGE_BYTES:
        raise InputError(f"{path} is too large to be a klarna-mtls exchange file.")
    try:
        payload = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON.") from exc
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        raise InputError(f"{path} is not a {kind.split('/')[-1].replace('-', ' ')} file.")
    return payload


def _text_field(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise InputError(f"The file has no '{key}'.")
    return value


def _same_account(payload: dict[str, Any], session: Session) -> str:
    """The profile's account id, when ``payload`` is for that account; else an error."""
    theirs, ours = payload.get("account_id"), session.evidence.account_id
    if not ours or theirs != ours:
        raise InputError(
            f"The file is for account {theirs}, but profile '{session.profile}' is for {ours}.",
            hint="Use the profile of the same Klarna account (--profile).",
        )
    return ours


# ---------------------------------------------------------------- on the runtime's host
async def make_request(session: Session, name: str, *, new_key: bool = False) -> dict[str, Any]:
    """Make (or, when re-run, reuse) this host's key and CSR for runtime ``name``."""
    verify_runtime_name(name)
    account = session.evidence.account_id
    if not account:
        raise InputError("This profile has no account yet.", hint="Give --environment and --account-id.")
    flow = session.state.flows.runtime_request
    if flow is None or flow.name != name or new_key or not Path(flow.key_path).exists():
        flow = await asyncio.to_thread(_new_key_and_csr, session, name, rules.default_cn(account))
        session.state.flows.runtime_request = flow
        session.settings.runtime_name = name
        session.save()
        session.audit.record("runtime_key_generated", runtime=name, public_key_id=flow.public_key_id)
    return {
        "kind": REQUEST_KIND,
        "version": 1,
        "name": name,
        "account_id": account,
        "environment": session.environment,
        "csr": flow.csr_pem,
        "public_key_id": flow.public_key_id,
        "tool_version": __version__,
    }


def _new_key_and_csr(session: Session, name: str, cn: str) -> RuntimeRequest:
    folder = ensure_private_dir(session.paths.keys_dir(session.profile) / f"runtime-{name}-{uuid.uuid4().hex[:8]}")
    key = crypto.make_private_key()
    write_private(folder / "private-key.pem", crypto.make_private_key_pem(key, session.key_passphrase))
    csr_pem = crypto.make_csr_pem(key, cn)
    write_private(folder / "csr.pem", csr_pem)
    return RuntimeRequest(
        name=name,
        key_path=str(folder / "private-key.pem"),
        public_key_id=crypto.public_key_id(key),
        csr_pem=csr_pem.decode(),
        cn=cn,
        encrypted=session.key_passphrase is not None,
    )


@dataclass(frozen=True)
class InstallResult:
    """What ``install_response`` did: the proof call's observation, and the certificate's id as
    Klarna confirmed it (None while unconfirmed: interlocks then treat the id as unknown)."""

    observation: Observation
    certificate_id: str | None
    id_note: str  # how the id is known, or why it is not
    id_contradicted: bool = False  # Klarna named another certificate for the file's id


async def install_response(
    session: Session,
    response: dict[str, Any],
    *,
    limits: PollLimits = NEW_CERTIFICATE_LIMITS,
    on_event: Callable[[Event], None] | None = None,
) -> InstallResult:
    """Install the certificate of ``response`` with the key made here, prove it over mTLS (checking
    again within ``limits`` while Klarna does not accept it yet; ``on_event`` sees the progress),
    then believe the file's ``certificate_id`` only as far as Klarna confirms it names this
    certificate."""
    _same_account(response, session)
    flow = session.state.flows.runtime_request
    name = _text_field(response, "name")
    if flow is None or flow.name != name:
        raise InputError(
            f"This host made no request for runtime {name}.",
            hint="Run klarna-mtls runtime request --name NAME on the host that will use it.",
        )
    given_id = _text_field(response, "certificate_id")
    cert = crypto.load_certificate(_text_field(response, "certificate"))
    key_path = Path(flow.key_path)
    key = await asyncio.to_thread(crypto.load_private_key_file, key_path, session.key_passphrase)
    try:
        crypto.verify_cert_matches_key(cert, key)
    except CryptoError as exc:
        raise CryptoError(
            f"The certificate in the response does not belong to the key made here for {name}.",
            hint="Use the response to this host's latest request, or make a new request.",
        ) from exc
    fingerprint = crypto.fingerprint_sha256(cert)
    label = label_for(fingerprint)
    await asyncio.to_thread(
        install_pair,
        session.install_dir,
        crypto.certificate_pem(cert),
        key_path.read_bytes(),
        label=label,
        key_passphrase=session.key_passphrase,
    )
    await asyncio.to_thread(activate, session.install_dir, label)
    _record_installed(session, given_id, fingerprint, label, name, confirmed=False)
    session.settings.runtime_name = name
    session.save()
    session.audit.record("runtime_installed", runtime=name, certificate_id=given_id, fingerprint=fingerprint)
    observation = await _prove(session, fingerprint, limits, on_event)
    if not acceptance.accepted(observation.status):
        return InstallResult(observation, None, "unconfirmed: the installed pair is not VALID yet")
    return await _confirm_id(session, observation, given_id, fingerprint, label, name)


PROOF_TASK = "Checking Klarna accepts the installed certificate"


async def _prove(
    session: Session, fingerprint: str, limits: PollLimits, on_event: Callable[[Event], None] | None
) -> Observation:
    """The proof call, repeated until VALID within ``limits``: on an enforced account Klarna may
    refuse a certificate issued moments ago, or read it INVALID, for up to 5 minutes. Returns the
    last observation (the caller says what a pair not VALID means); a refused handshake raises."""
    seen: list[Observation] = []

    async def observe() -> str:
        try:
            seen.append(await onboarding.observe(session))
        except CertificateRefused:  # not accepted (yet): a reason to look again, as INVALID
            seen.append(Observation("INVALID", fingerprint, session.clock()))
        return seen[-1].status

    def not_yet(status: str) -> WizardError:
        return WizardError(f"The installed certificate was not seen VALID (last: {status}).")

    await follow(poll(PROOF_TASK, observe, acceptance.accepted, limits, not_yet), on_event or (lambda _: None))
    if seen[-1].status == "REJECTED":
        raise HandshakeRejected(
            "Klarna refused the installed certificate during the TLS handshake.",
            hint=seen[-1].diagnosis.next_steps[0],
        )
    return seen[-1]


def _record_installed(
    session: Session, credential_id: str, fingerprint: str, label: str, name: str, *, confirmed: bool
) -> None:
    """Record the installed pair under ``credential_id``; an id that already names another
    certificate in this profile's records is left alone (nothing of it is overwritten)."""
    existing = session.state.certificates.get(credential_id)
    if existing is not None and existing.fingerprint not in (None, fingerprint):
        return
    record = session.state.certificate(credential_id)
    record.fingerprint, record.installed, record.label, record.runtime = fingerprint, True, label, name
    record.id_unconfirmed = not confirmed


async def _confirm_id(
    session: Session, observation: Observation, given_id: str, fingerprint: str, label: str, name: str
) -> InstallResult:
    """Ask Klarna which credential id is the installed certificate's; record only what it confirms."""
    klarna_id, note, contradicted = await _klarna_id_for(session, given_id, fingerprint)
    provisional = session.state.certificates.get(given_id)
    if contradicted and provisional is not None and provisional.id_unconfirmed:
        del session.state.certificates[given_id]  # the file's id is wrong: nothing rests on it
    if klarna_id is not None:
        _record_installed(session, klarna_id, fingerprint, label, name, confirmed=True)
        if observation.status == acceptance.VALID:  # "last seen VALID" is the header's word only
            session.record_valid(klarna_id, observation.at)
    session.save()
    session.audit.record("runtime_certificate_id", runtime=name, given=given_id, confirmed=klarna_id, note=note)
    return InstallResult(observation, klarna_id, note, contradicted)


async def _klarna_id_for(session: Session, given_id: str, fingerprint: str) -> tuple[str | None, str, bool]:
    """(the credential id Klarna ties to the certificate with ``fingerprint``, or None; how it is
    known or why not; whether Klarna's answers contradict ``given_id``).

    Klarna's documented answers carry only ids: a listing entry or a GET of ``given_id`` ties an id
    to a certificate only when it carries the certificate or its fingerprint (our sandbox's do)."""
    async with session.client() as klarna:
        listing = (await klarna.list_certificates()).value
        entry = next((c for c in listing if c.credential_id == given_id), None)
        if entry is not None and _ties(entry, fingerprint) is None:
            with contextlib.suppress(ApiError):  # the listing's word stands
                entry = (await klarna.get_certificate(given_id)).value
    tied = [c.credential_id for c in listing if _ties(c, fingerprint)]
    if entry is not None and _ties(entry, fingerprint):
        return given_id, f"{given_id}: confirmed by Klarna", False
    if len(tied) == 1:
        return tied[0], f"Klarna lists this certificate as {tied[0]}, not {given_id} as the response file says", True
    if entry is None:
        return None, f"{given_id} is not on the account's list", True
    if _ties(entry, fingerprint) is False:
        return None, f"Klarna lists {given_id} for another certificate", True
    return None, f"unconfirmed: Klarna's answers say nothing that ties {given_id} to this certificate", False


def _ties(info: CertificateInfo, fingerprint: str) -> bool | None:
    """Whether Klarna's entry names the certificate with ``fingerprint``; None when it cannot say."""
    return None if info.fingerprint is None else info.fingerprint == fingerprint


# ---------------------------------------------------------------- on the managing machine
def lint_request(session: Session, request: dict[str, Any]) -> tuple[str, str, str]:
    """(name, CSR PEM, public key id) of a request that meets Klarna's rules, else an error."""
    account = _same_account(request, session)
    name = verify_runtime_name(request.get("name"))  # refuses anything but a plain name
    csr_pem = _text_field(request, "csr")
    csr = crypto.load_csr(csr_pem.encode())
    problems = crypto.csr_problems(csr, rules.default_cn(account))
    if problems:
        raise CryptoError(
            f"The request from {name} does not meet Klarna's rules: " + " ".join(problems),
            hint="Make a new request on that host with klarna-mtls runtime request.",
        )
    return name, csr_pem, crypto.public_key_id(csr.public_key())


async def issue_for_request(session: Session, request: dict[str, Any]) -> dict[str, Any]:
    """Issue the certificate for a runtime's request once (journaled idempotency key), record the
    runtime, and return the response for its host. A request already issued (the same public key
    is active on the account) gets its certificate again instead of a second one."""
    name, csr_pem, public_key_id = lint_request(session, request)
    session.require(Action.ISSUE_RUNTIME, spends_slot=False)  # the slots once listed, before sending
    info = await _existing_or_new(session, name, csr_pem, public_key_id)
    cert = crypto.load_certificate(info.certificate_pem or "")
    fingerprint = crypto.fingerprint_sha256(cert)
    holder = _holder_of(session, info.credential_id)
    if holder not in (None, name):
        raise InputError(
            f"That key's certificate {info.credential_id} already belongs to runtime {holder}.",
            hint="Make a new request on the new runtime's host (runtime request --new-key).",
        )
    _record_issued(session, name, info, public_key_id)
    session.state.flows.runtime_issues.pop(public_key_id, None)
    session.save()
    return {
        "kind": RESPONSE_KIND,
        "version": 1,
        "name": name,
        "account_id": session.evidence.account_id,
        "certificate_id": info.credential_id,
        "certificate": crypto.certificate_pem(cert).decode(),
        "fingerprint": fingerprint,
        "tool_version": __version__,
    }


async def _existing_or_new(session: Session, name: str, csr_pem: str, public_key_id: str) -> CertificateInfo:
    pending = session.state.flows.runtime_issues
    if public_key_id not in pending:
        async with session.client() as klarna:
            listing = (await klarna.list_certificates()).value
        mine = _issued_before(session, listing, public_key_id) or find_by_key(listing, public_key_id)
        if mine is not None:
            return mine
        session.require(Action.ISSUE_RUNTIME, **slot_facts(session, listing))
        pending[public_key_id] = RuntimeIssue(name, str(uuid.uuid4()))
        session.save()  # journaled before sending: a rerun reuses it and reconciles
    try:
        async with session.client() as klarna:
            answer = await klarna.create_certificate_reconciled(
                csr_pem, f"klarna-mtls runtime {name}", pending[public_key_id].idempotency_key, public_key_id
            )
    except ApiError as exc:
        if exc.status != 409:
            raise
        pending.pop(public_key_id, None)  # a definite refusal: nothing was created
        session.save()
        async with session.client() as klarna:
            listing = (await klarna.list_certificates()).value
        session.require(Action.ISSUE_RUNTIME, **slot_facts(session, listing, server_refused=True))
        raise
    return answer.value


def _issued_before(session: Session, listing: list[CertificateInfo], public_key_id: str) -> CertificateInfo | None:
    """The certificate this profile already issued for that public key, by its own records, while
    the account still lists it (a rerun must not spend a second slot)."""
    from wizard.klarna.models import CertificateInfo

    listed = {c.credential_id for c in listing}
    for cid, record in session.state.certificates.items():
        if record.public_key_id == public_key_id and cid in listed and not record.retired and record.certificate_pem:
            return CertificateInfo.from_json({"credential_id": cid}, pem=record.certificate_pem)
    return None


def _holder_of(session: Session, credential_id: str) -> str | None:
    return next((r.name for r in session.state.runtimes.values() if credential_id in r.certificate_ids), None)


def _record_issued(session: Session, name: str, info: CertificateInfo, public_key_id: str) -> None:
    """Record the runtime's new current certificate, and what lets a rerun find it again."""
    cert = crypto.load_certificate(info.certificate_pem or "")
    certificate_pem = crypto.certificate_pem(cert).decode()
    credential_id, fingerprint = info.credential_id, crypto.fingerprint_sha256(cert)
    not_after = rules.format_utc(cert.not_valid_after_utc)
    record = session.state.runtimes.setdefault(name, RuntimeRecord(name, added_at=rules.format_utc(session.clock())))
    record.adopt_certificate(credential_id, fingerprint, not_after)
    mine = session.state.certificate(credential_id)
    mine.fingerprint, mine.issued_here, mine.runtime = fingerprint, True, name
    mine.public_key_id, mine.certificate_pem = public_key_id, certificate_pem
    session.audit.record(
        "runtime_certificate_issued", runtime=name, certificate_id=credential_id, fingerprint=fingerprint
    )


def declare(session: Session, name: str, credential_id: str | None = None) -> RuntimeRecord:
    """Declare a runtime that uses a certificate this profile already knows (e.g. this machine's
    pair, or one exported as a Kubernetes Secret). Only the tool's own records are trusted."""
    verify_runtime_name(name)
    credential_id = credential_id or session.evidence.certificate_id
    fingerprint = session.state.fingerprint_of(credential_id)
    if not credential_id or not fingerprint:
        raise InputError(
            f"This profile has no record of certificate {credential_id or '(none installed)'}.",
            hint="Declare a certificate issued by this profile, or onboard the runtime with "
            "runtime request/issue/install.",
        )
    not_after = session.state.certificates[credential_id].not_after
    if credential_id == session.evidence.certificate_id and session.evidence.certificate_pem:
        not_after = rules.format_utc(crypto.load_certificate(session.evidence.certificate_pem).not_valid_after_utc)
    record = session.state.runtimes.get(name) or RuntimeRecord(
        name, added_at=rules.format_utc(session.clock()), source="declared"
    )
    record.adopt_certificate(credential_id, fingerprint, not_after)
    session.state.runtimes[name] = record
    session.save()
    session.audit.record("runtime_declared", runtime=name, certificate_id=credential_id, fingerprint=fingerprint)
    return record


# ---------------------------------------------------------------- readiness probe (any runtime)
def pair_from_files(cert_path: Path, key_path: Path) -> InstalledPair:
    """An arbitrary pair on disk, e.g. one copied from a failing server or a mounted Secret."""
    try:
        cert = crypto.load_certificate(Path(cert_path).read_bytes())
    except OSError as exc:
        raise InputError(f"Cannot read the certificate at {cert_path}: {exc.strerror}.") from exc
    key_path = Path(key_path).expanduser().absolute()
    return InstalledPair("named", key_path.parent, Path(cert_path), key_path, crypto.fingerprint_sha256(cert))


def verify_named_key_file(key_path: Path) -> None:
    """For a key file named on the command line: no group or other access to the key itself, and
    a folder others cannot replace it in. A sticky folder (a Kubernetes Secret mount, /tmp) is
    accepted: others cannot rename or delete a file they do not own there."""
    try:
        key_mode, folder_stat = file_mode(key_path), key_path.parent.stat()
    except OSError as exc:
        raise InputError(f"Cannot check {key_path}: {exc.strerror}.") from exc
    if key_mode & 0o077:
        raise CryptoError(
            f"The private key {key_path} is readable by others (mode {key_mode:03o}).",
            title="Unsafe key file",
            hint=f"Run: chmod 600 {key_path} (in Kubernetes: defaultMode: 0400 on the Secret volume).",
        )
    if folder_stat.st_mode & 0o022 and not folder_stat.st_mode & stat.S_ISVTX:
        raise CryptoError(
            f"Others can replace files in {key_path.parent} (mode {stat.S_IMODE(folder_stat.st_mode):03o}).",
            title="Unsafe key folder",
            hint=f"Run: chmod 700 {key_path.parent}",
        )


@dataclass(frozen=True)
class ProbeAnswer:
    """What Klarna answered to one call made with a pair: the verification status (or REJECTED,
    REFUSED, UNREACHABLE when there was no answer to read it from), the answer's Date and Klarna's
    correlation id when there was one."""

    status: str
    klarna_date: datetime | None = None
    klarna_correlation_id: str | None = None


async def verification_of(session: Session, pair: InstalledPair, *, named_files: bool = False) -> str:
    """VALID, NOT_PRESENT, INVALID, UNKNOWN, REJECTED (handshake), REFUSED (Klarna's mTLS refusal of
    the pair, ``CertificateRefused``, 401 or 403) or UNREACHABLE; any other error (the API key) is raised.
    ``named_files``: the pair was named on the command line (checked by verify_named_key_file)."""
    return (await probe_answer(session, pair, named_files=named_files)).status


async def probe_answer(session: Session, pair: InstalledPair, *, named_files: bool = False) -> ProbeAnswer:
    """One call with ``pair``: what Klarna answered (see ``verification_of``)."""
    if named_files:
        verify_named_key_file(pair.key_path)
    try:
        async with session.client(pair=pair, files_checked=named_files) as klarna:
            answer = await klarna.list_certificates()
            status = await acceptance_of(klarna, answer.verification.value)
    except HandshakeRejected:
        return ProbeAnswer("REJECTED")
    except CertificateRefused as exc:  # Klarna's mTLS refusal of this pair; a key's 401 is raised as it is
        return ProbeAnswer("REFUSED", klarna_correlation_id=exc.klarna_correlation_id)
    except TransportError:
        return ProbeAnswer("UNREACHABLE")
    return ProbeAnswer(status, answer.server_date, answer.klarna_correlation_id)
