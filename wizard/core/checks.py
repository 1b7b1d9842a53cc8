"""The rule book: for each stage, the checks that must pass before the profile moves on.

A check is a pure function over recorded evidence and the time now; it returns None when it passes,
else the reason it fails in words a person acts on. No I/O: certificates and CSRs are read from
the PEM text the evidence holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from wizard.core import rules
from wizard.core._lazy import lazy_module
from wizard.core.errors import CryptoError, InputError
from wizard.core.evidence import Evidence
from wizard.core.stages import Stage

if TYPE_CHECKING:
    from cryptography import x509

    from wizard.core import crypto

else:
    crypto = lazy_module("wizard.core.crypto")  # only checks that read keys and certificates need it


CLOCK_SKEW_TOLERANCE = 120.0  # seconds; TLS and enforced_from both care about the clock
VALID_IN_A_ROW = 3
VALID_WINDOW = timedelta(minutes=30)
SHORT_VALIDITY = timedelta(days=3 * 365 - 30)
SECRET_BACKENDS_ALLOWED = {"keyring", "encrypted-file", "env", "stdin", "sandbox", "vault"}


@dataclass(frozen=True)
class CheckResult:
    stage: Stage
    name: str
    ok: bool
    reason: str  # human words: why it failed, or what it confirmed
    warning: bool = False
    noted: bool = False  # passed with a Note: the reason says what was accepted, worth showing


class Note(str):
    """What a check returns when it passes with something worth saying (e.g. the CN Klarna
    assigned): shown in place of the check's passed sentence."""

    __slots__ = ()


CheckFn = Callable[[Evidence, datetime], "str | None"]


@dataclass(frozen=True)
class Check:
    name: str
    passed: str  # what the check confirms, in plain words
    fn: CheckFn  # returns None (or a Note) when it passes, else the reason it fails
    warning_only: bool = False

    def result(self, stage: Stage, ev: Evidence, now: datetime) -> CheckResult:
        verdict = self.fn(ev, now)
        noted = isinstance(verdict, Note)
        return CheckResult(stage, self.name, verdict is None or noted, verdict or self.passed, self.warning_only, noted)


def _iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return rules.parse_timestamp(text)
    except InputError:
        return None


# ---------------------------------------------------------------- CREDENTIALS
def _account_id(ev: Evidence, now: datetime) -> str | None:
    if not ev.account_id:
        return "Enter your Klarna account id."
    try:
        account = rules.parse_account_id(ev.account_id)
    except InputError as exc:
        return exc.message
    if ev.environment not in rules.ENVIRONMENTS:
        return "Choose the environment: live, test or sandbox."
    if rules.KEY_ENVIRONMENT[ev.environment] != account.environment:
        return f"The account id is a {account.environment} account but the profile is {ev.environment}."
    return None


def _api_key(ev: Evidence, now: datetime) -> str | None:
    if not ev.api_key_environment:
        return "Enter an API key shaped like klarna_test_api_… or klarna_live_api_…."
    if ev.environment and rules.KEY_ENVIRONMENT.get(ev.environment) != ev.api_key_environment:
        return f"The API key is a {ev.api_key_environment} key but the profile is {ev.environment}."
    return None


def _secret_store(ev: Evidence, now: datetime) -> str | None:
    if ev.secret_backend not in SECRET_BACKENDS_ALLOWED:
        return "Choose where the API key is kept (OS keyring, encrypted file, Vault, or per run)."
    if ev.secret_backend == "vault" and not ev.secret_place:
        return "Name the Vault place that keeps the API key (vault:MOUNT/PATH)."
    return None


def _api_call(ev: Evidence, now: datetime) -> str | None:
    return None if ev.api_call_ok_at else "Test the API key with a live call to Klarna."


def _clock(ev: Evidence, now: datetime) -> str | None:
    if ev.clock_skew_seconds is None:
        return "The server's clock has not been compared with ours yet (test the API key)."
    if abs(ev.clock_skew_seconds) > CLOCK_SKEW_TOLERANCE:
        return (
            f"This machine's clock is {abs(ev.clock_skew_seconds):.0f} s off the server's; "
            "fix the clock (NTP) before continuing."
        )
    return None


# ---------------------------------------------------------------- KEY_AND_CSR
def _key_type(ev: Evidence, now: datetime) -> str | None:
    if not ev.key_path or not ev.key_public_id:
        return "Generate a private key."
    if ev.key_curve != "secp256r1":
        return f"The private key is {ev.key_curve or 'not EC'}; Klarna requires EC P-256."
    return None


def _key_file_modes(ev: Evidence, now: datetime) -> str | None:
    if ev.key_file_mode is None or ev.key_dir_mode is None:
        return "The private key file's permissions have not been checked."
    if ev.key_file_mode != 0o600 or ev.key_dir_mode != 0o700:
        return (
            f"The key file is {ev.key_file_mode:o} in a {ev.key_dir_mode:o} folder; it must be 600 "
            "in a 700 folder (chmod 600 the file, chmod 700 the folder)."
        )
    return None


def _load_csr(ev: Evidence) -> x509.CertificateSigningRequest | None:
    if not ev.csr_pem:
        return None
    try:
        return crypto.load_csr(ev.csr_pem.encode())
    except CryptoError:
        return None


def _csr_rules(ev: Evidence, now: datetime) -> str | None:
    csr = _load_csr(ev)
    if csr is None:
        return "Create a certificate signing request (CSR)." if not ev.csr_pem else "The CSR is malformed."
    expected = ev.cn
    if expected is None and ev.account_id:
        try:
            expected = rules.default_cn(ev.account_id)
        except InputError:
            expected = None
    if expected is not None:
        try:
            rules.verify_cn(expected)
        except InputError as exc:
            return exc.message
    problems = crypto.csr_problems(csr, expected)
    return " ".join(problems) if problems else None


def _csr_matches_key(ev: Evidence, now: datetime) -> str | None:
    csr = _load_csr(ev)
    if csr is None or not ev.key_public_id:
        return "The CSR cannot be compared with the key yet."
    if crypto.public_key_id(csr.public_key()) != ev.key_public_id:
        return "The CSR was made for a different key; create the CSR again."
    return None


# ---------------------------------------------------------------- ISSUE
def _load_cert(ev: Evidence) -> x509.Certificate | None:
    if not ev.certificate_pem:
        return None
    try:
        return crypto.load_certificate(ev.certificate_pem)
    except CryptoError:
        return None


def _cert_id(ev: Evidence, now: datetime) -> str | None:
    return None if ev.certificate_id else "Ask Klarna to issue the certificate."


def _cert_parses(ev: Evidence, now: datetime) -> str | None:
    if not ev.certificate_pem:
        return "No certificate has been received yet."
    return None if _load_cert(ev) is not None else "The certificate Klarna returned cannot be read."


def _cert_key(ev: Evidence, now: datetime) -> str | None:
    cert = _load_cert(ev)
    if cert is None:
        return "No readable certificate to compare with the key."
    if crypto.public_key_id(cert.public_key()) != ev.key_public_id:
        return "The certificate is for a different key than ours."
    return None


def _cert_cn(ev: Evidence, now: datetime) -> str | None:
    cert = _load_cert(ev)
    if cert is None:
        return "No readable certificate to check the CN."
    cn = crypto.certificate_cn(cert)
    if cn == ev.cn:
        return None
    mismatch = f"The certificate's CN is '{cn}' but we asked for '{ev.cn}'."
    if not (ev.account_id and rules.is_assigned_cn(cn, ev.account_id)):
        return mismatch
    return _assigned_cn(ev, cert, cn, mismatch)


def _assigned_cn(ev: Evidence, cert: x509.Certificate, cn: str | None, mismatch: str) -> str:
    """A CN in the form Klarna assigns when it does not take the CSR's (``<suffix>-<16 hex>``) is
    accepted, with a Note, only on a certificate for our key issued by this account's CA (and
    naming no other account); any other mismatch blocks."""
    issuer = cert.issuer.rfc4514_string()
    if crypto.public_key_id(cert.public_key()) != ev.key_public_id:
        return f"{mismatch} It has the form Klarna assigns, but the certificate is not for our key."
    if not ev.account_ca_issuer:
        return (
            f"{mismatch} It has the form Klarna assigns, but its issuer ({issuer}) could not be "
            "established as this account's CA, so it is not used."
        )
    if issuer != ev.account_ca_issuer:
        return (
            f"{mismatch} It has the form Klarna assigns, but its issuer ({issuer}) is not this "
            f"account's CA ({ev.account_ca_issuer})."
        )
    others = [name for name in _named_accounts(cert) if name != ev.account_id]
    if others:
        return f"{mismatch} It has the form Klarna assigns, but it names another account ({others[0]})."
    return Note(
        f"Klarna assigned the CN '{cn}' (its documented default: the account suffix, a dash and 16 hex "
        f"digits) instead of '{ev.cn}'; accepted: the certificate is for our key and was issued by this "
        f"account's CA ({issuer})."
    )


def _named_accounts(cert: x509.Certificate) -> list[str]:
    """The Klarna account ids a certificate names in its URI SANs (Klarna's carry the account's)."""
    from cryptography import x509

    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    return [uri for uri in uris if uri.startswith("krn:partner:global:account:")]


def _cert_valid_now(ev: Evidence, now: datetime) -> str | None:
    cert = _load_cert(ev)
    if cert is None:
        return "No readable certificate to check its validity."
    try:
        crypto.verify_cert_valid_at(cert, now)
    except CryptoError as exc:
        return str(exc)
    return None


def _cert_lifetime(ev: Evidence, now: datetime) -> str | None:
    cert = _load_cert(ev)
    if cert is None:
        return None  # nothing to warn about yet; the blocking checks say what is missing
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    if lifetime < SHORT_VALIDITY:
        return f"The certificate is valid for only {lifetime.days} days; Klarna issues 3 years."
    return None


def _slots(ev: Evidence, now: datetime) -> str | None:
    if ev.active_certificates is None:
        return "The number of active certificates has not been checked."
    if ev.active_certificates > rules.MAX_ACTIVE_CERTIFICATES:
        return f"{ev.active_certificates} active certificates; Klarna allows at most 10."
    return None


# ---------------------------------------------------------------- INSTALL
def _install_modes(ev: Evidence, now: datetime) -> str | None:
    if not ev.cert_path or not ev.installed_key_path:
        return "Install the certificate and key into a folder."
    if ev.installed_key_mode != 0o600 or ev.installed_dir_mode != 0o700:
        return "The installed key must be mode 600 in a 700 folder."
    if ev.installed_cert_mode is None or ev.installed_cert_mode & 0o022:
        return "The installed certificate must not be writable by others."
    return None


def _install_probe(ev: Evidence, now: datetime) -> str | None:
    if not ev.install_probe_ok_at:
        return "Prove the install with a real mTLS call using the installed files."
    if ev.install_probe_fingerprint != ev.fingerprint:
        return "The mTLS proof used a different certificate than the one issued; prove it again."
    return None


# ---------------------------------------------------------------- VERIFY
def _verified(ev: Evidence, now: datetime) -> str | None:
    recent = [v for v in ev.verifications if (_iso(v.get("at")) or now) >= now - VALID_WINDOW]
    streak = 0
    for record in reversed(recent):
        if record.get("status") == "VALID" and record.get("fingerprint") == ev.fingerprint:
            streak += 1
        else:
            break
    if streak >= VALID_IN_A_ROW:
        return None
    return f"VALID seen {streak} of {VALID_IN_A_ROW} times in a row for the installed certificate."


# ---------------------------------------------------------------- ENFORCE
def _enforced_from(ev: Evidence, now: datetime) -> str | None:
    if not ev.enforced_from:
        return "Choose when enforcement starts: NOW or a date and time."
    chosen_at = _iso(ev.enforced_from_chosen_at) or now
    try:
        rules.parse_enforced_from(ev.enforced_from, now=chosen_at)
    except InputError as exc:
        return exc.message
    return None


def _enforcement_answer(ev: Evidence, now: datetime) -> str | None:
    if ev.enforcement_mode not in (rules.EnforcementMode.ENFORCED, rules.EnforcementMode.REPORTING):
        return "Klarna has not confirmed the enforcement yet."
    return None


# The whole rule book, in one table.
CHECKS: dict[Stage, tuple[Check, ...]] = {
    Stage.CREDENTIALS: (
        Check("account_id", "Account id is well-formed and matches the environment.", _account_id),
        Check("api_key", "API key is well-formed and of the same environment.", _api_key),
        Check("secret_store", "API key is held by the secret store you chose.", _secret_store),
        Check("api_call", "An authenticated call to Klarna succeeded.", _api_call),
        Check("clock", "This machine's clock agrees with the server's.", _clock),
    ),
    Stage.KEY_AND_CSR: (
        Check("key_type", "Private key is EC P-256.", _key_type),
        Check("key_file_modes", "Key file is 600 in a 700 folder.", _key_file_modes),
        Check("csr_rules", "CSR has exactly one CN, no extensions or attributes, valid signature.", _csr_rules),
        Check("csr_matches_key", "CSR public key is our key's public key.", _csr_matches_key),
    ),
    Stage.ISSUE: (
        Check("certificate_id", "Certificate id recorded.", _cert_id),
        Check("certificate_parses", "Certificate parses.", _cert_parses),
        Check("certificate_key", "Certificate public key is our key.", _cert_key),
        Check("certificate_cn", "Certificate CN is the one requested.", _cert_cn),
        Check("certificate_valid_now", "Certificate is valid now.", _cert_valid_now),
        Check("certificate_lifetime", "Certificate is valid for about 3 years.", _cert_lifetime, warning_only=True),
        Check("slots", "At most 10 active certificates.", _slots),
    ),
    Stage.INSTALL: (
        Check("install_modes", "Installed files have safe permissions.", _install_modes),
        Check("install_probe", "A real mTLS call with the installed files succeeded.", _install_probe),
    ),
    Stage.VERIFY: (
        Check("verified", f"VALID seen {VALID_IN_A_ROW} times in a row for the installed certificate.", _verified),
    ),
    Stage.ENFORCE: (
        Check("enforced_from", "Enforcement time follows Klarna's rules.", _enforced_from),
        Check("enforcement_answer", "Klarna answered ENFORCED or REPORTING.", _enforcement_answer),
    ),
    Stage.DONE: (),
}

# Checks that hold only for a while (a VALID streak, a validity window): a journal read later is
# not pulled back for them; the actions that need them observe the world again instead.
WINDOWED_CHECKS = frozenset({"verified", "certificate_valid_now"})
