"""`doctor --cert FILE --key FILE`: troubleshoot any pair, e.g. one copied from a failing server.

Each check returns a Finding (``wizard.core.findings``) with what to do next: key match, CN, expiry, chain, whether
the certificate is one of the account's certificates, and a live verification call. Whether it is
the account's is decided by the tool's own records (fingerprint -> credential id) and the
documented listing's credential ids only; undocumented listing fields never decide it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from wizard.core import acceptance, crypto, rules
from wizard.core.diagnosis import diagnose
from wizard.core.errors import ApiError, CryptoError, InputError, TransportError, WizardError
from wizard.core.findings import Finding, Severity
from wizard.services.api_keys import key_refusal
from wizard.services.doctor import expiry_finding
from wizard.services.runtime_exchange import pair_from_files, verification_of

if TYPE_CHECKING:
    from wizard.services.session import Session


async def doctor_pair(
    session: Session, cert_path: Path, key_path: Path, *, key_passphrase: bytes | None = None
) -> list[Finding]:
    """``key_passphrase``: the named key's own passphrase; this run's session keeps its own."""
    if key_passphrase is not None:
        session = session.with_key_passphrase(key_passphrase)  # shares the journal's state
    try:
        cert = crypto.load_certificate(Path(cert_path).read_bytes())
    except (OSError, CryptoError) as error:
        return [
            Finding("certificate", Severity.ERROR, _message(error, cert_path), "Point --cert at the PEM Klarna issued.")
        ]
    findings = [_key_match(cert, Path(key_path), session.key_passphrase)]
    findings.append(_cn(cert, session))
    findings.append(expiry_finding(cert.not_valid_after_utc, session.clock(), session.profile))
    findings.append(_chain(cert, session))
    if findings[0].severity != Severity.OK:
        return findings  # the remote checks need a usable pair
    findings.append(await _listed(cert, session))
    findings.append(await _live(cert_path, key_path, session))
    return findings


def _message(error: Exception, path: Path) -> str:
    if isinstance(error, OSError):
        return f"Cannot read {path}: {error.strerror}."
    return error.message if isinstance(error, WizardError) else str(error)


def _key_match(cert: x509.Certificate, key_path: Path, passphrase: bytes | None) -> Finding:
    try:
        key = crypto.load_private_key_file(key_path, passphrase)
        crypto.verify_cert_matches_key(cert, key)
    except CryptoError as error:
        return Finding(
            "key match",
            Severity.CRITICAL,
            error.message,
            error.hint or "Copy the key that was made with this certificate's request.",
        )
    return Finding("key match", Severity.OK, "The certificate and the key belong together.")


def _cn(cert: x509.Certificate, session: Session) -> Finding:
    cn = crypto.certificate_cn(cert)
    expected = rules.default_cn(session.evidence.account_id) if session.evidence.account_id else None
    if expected is None or cn == expected:
        return Finding("CN", Severity.OK, f"CN is {cn}.")
    return Finding(
        "CN",
        Severity.WARNING,
        f"CN is {cn}; Klarna's rule for this account expects {expected}.",
        "A custom CN is allowed on some variants; if Klarna answers INVALID, issue a new certificate.",
    )


def _chain(cert: x509.Certificate, session: Session) -> Finding:
    """Issued by a CA (not self-signed), for this account, with the documented extensions; for the
    sandbox, signed by the sandbox CA."""
    problems = []
    if cert.issuer == cert.subject:
        problems.append("it is self-signed, not issued by Klarna")
    account = session.evidence.account_id
    uris = _san_uris(cert)
    if account and uris and account not in uris:
        problems.append(f"it was issued for {', '.join(uris)}, not {account}")
    if not _is_leaf(cert):
        problems.append("it is not a client (leaf) certificate")
    if not problems and session.environment == "sandbox" and session.ca_bundle:
        problems += _sandbox_signature(cert, session.ca_bundle)
    issuer = ", ".join(str(a.value) for a in cert.issuer)
    if problems:
        return Finding(
            "chain",
            Severity.CRITICAL,
            f"Issuer {issuer}: " + "; ".join(problems) + ".",
            "Use the certificate Klarna issued to this account's request (runtime issue).",
        )
    return Finding("chain", Severity.OK, f"Issued by {issuer}" + (f" for {uris[0]}." if uris else "."))


def _san_uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(u) for u in san.get_values_for_type(x509.UniformResourceIdentifier)]


def _is_leaf(cert: x509.Certificate) -> bool:
    try:
        return not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return True


def _sandbox_signature(cert: x509.Certificate, bundle: Path) -> list[str]:
    try:
        cas = x509.load_pem_x509_certificates(bundle.read_bytes())
    except (OSError, ValueError):
        return ["the sandbox CA bundle cannot be read"]
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
            return []
        except Exception:  # wrong key type, bad signature: not this CA
            continue
    return ["it was not signed by the sandbox CA"]


async def _listed(cert: x509.Certificate, session: Session) -> Finding:
    fingerprint = crypto.fingerprint_sha256(cert)
    known = [cid for cid, info in session.state.certificates.items() if info.fingerprint == fingerprint]
    if not known:
        return Finding(
            "account",
            Severity.WARNING,
            "This profile has no record of issuing this certificate.",
            "If it is yours, find its credential id with klarna-mtls certs list; otherwise issue "
            "one for that runtime (runtime request/issue/install).",
        )
    try:
        async with session.client() as klarna:
            listed = {c.credential_id for c in (await klarna.list_certificates()).value}
    except (ApiError, TransportError, CryptoError) as error:
        return Finding(
            "account", Severity.ERROR, f"Could not list the account's certificates: {error.message}", error.hint
        )
    holder = _holder(session, known[-1])
    if known[-1] in listed:
        return Finding("account", Severity.OK, f"It is {known[-1]} on the account's list{holder}.")
    return Finding(
        "account",
        Severity.CRITICAL,
        f"It was {known[-1]}{holder}, which is no longer on the account's list.",
        "Issue a new certificate for that runtime (runtime request/issue/install).",
    )


def _holder(session: Session, credential_id: str) -> str:
    for record in session.state.runtimes.values():
        if credential_id in record.certificate_ids:
            current = "current" if record.certificate_id == credential_id else "an old one"
            return f" ({current} of runtime {record.name})"
    return ""


async def _live(cert_path: Path, key_path: Path, session: Session) -> Finding:
    try:
        status = await verification_of(session, pair_from_files(cert_path, key_path), named_files=True)
    except ApiError as error:  # the call was made: Klarna answered it with an error, not a verdict on the pair
        refused = key_refusal(error)
        if refused:  # a 401 for the key (an mTLS refusal is read as REFUSED): an error of the run, as elsewhere
            return Finding(
                "verification",
                Severity.ERROR,
                f"A live call was made and Klarna refused the API key: {refused} The pair could not be judged.",
                error.hint or "Check the API key this profile uses, then run this again.",
            )
        return Finding(
            "verification", Severity.CRITICAL, f"A live call was made; Klarna answered: {error.message}", error.hint
        )
    except (CryptoError, InputError) as error:
        return Finding("verification", Severity.CRITICAL, f"No live call was made: {error.message}", error.hint)
    except WizardError as error:
        return Finding("verification", Severity.ERROR, f"No live call was made: {error.message}", error.hint)
    if acceptance.accepted(status):
        return Finding("verification", Severity.OK, f"Klarna answered {status} to a call with this pair.")
    if status in ("REFUSED", "UNREACHABLE"):
        summary = {
            "REFUSED": "Klarna refused the call (enforcement applies and this pair is not accepted).",
            "UNREACHABLE": "Klarna could not be reached.",
        }[status]
        return Finding("verification", Severity.CRITICAL, summary, "Check the network, then the findings above.")
    diagnosis = diagnose(status)
    return Finding(
        "verification", Severity.CRITICAL, f"{status}: {diagnosis.summary}", " ".join(diagnosis.next_steps[:1])
    )
