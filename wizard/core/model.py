"""The onboarding model: stages in order, evidence recorded by callers, checks kept as data.

The model does no I/O. Workers observe the world (files, responses, headers, clocks) and record
what they saw as evidence through ``Onboarding.record_…`` (the only writers of evidence, see
tests/test_evidence_writer.py); each check is a pure function over that evidence. ``blockers()`` lists
failing checks for the UI; ``advance()`` raises ``StageBlocked`` and changes nothing while any
check fails."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from wizard.core import rules
from wizard.core._lazy import lazy_module
from wizard.core.errors import CryptoError, InputError, JournalError, StageBlocked

if TYPE_CHECKING:
    from cryptography import x509

    from wizard.core import crypto

else:
    crypto = lazy_module("wizard.core.crypto")  # only checks that read keys and certificates need it


class Stage(str, Enum):  # noqa: UP042 -- StrEnum would change str() and f-string output
    CREDENTIALS = "CREDENTIALS"
    KEY_AND_CSR = "KEY_AND_CSR"
    ISSUE = "ISSUE"
    INSTALL = "INSTALL"
    VERIFY = "VERIFY"
    ENFORCE = "ENFORCE"
    DONE = "DONE"

    @property
    def number(self) -> int:
        """1-based position among the six working stages (DONE is 6 too: all complete)."""
        return min(ORDER.index(self) + 1, len(ORDER) - 1)

    @property
    def label(self) -> str:
        """How people read the stage: 'Key and CSR', not KEY_AND_CSR."""
        return {"KEY_AND_CSR": "Key and CSR"}.get(self.value, self.value.capitalize())

    def next(self) -> Stage:
        return ORDER[min(ORDER.index(self) + 1, len(ORDER) - 1)]


ORDER: tuple[Stage, ...] = tuple(Stage)
WORKING_STAGES = len(ORDER) - 1
CLOCK_SKEW_TOLERANCE = 120.0  # seconds; TLS and enforced_from both care about the clock
VALID_IN_A_ROW = 3
VALID_WINDOW = timedelta(minutes=30)
SHORT_VALIDITY = timedelta(days=3 * 365 - 30)
SECRET_BACKENDS_ALLOWED = {"keyring", "encrypted-file", "env", "stdin", "sandbox"}


def _copied(value: Any) -> Any:
    return [dict(item) for item in value] if isinstance(value, list) else value


def _ev(stage: Stage, default: Any = None) -> Any:
    if isinstance(default, list):
        return field(default_factory=list, metadata={"stage": stage})
    return field(default=default, metadata={"stage": stage})


@dataclass
class Evidence:
    """What workers observed. JSON-safe, and never a secret: no API key, no private key."""

    environment: str | None = _ev(Stage.CREDENTIALS)  # live | test | sandbox
    account_id: str | None = _ev(Stage.CREDENTIALS)
    api_key_environment: str | None = _ev(Stage.CREDENTIALS)  # derived from the key, not the key
    api_key_masked: str | None = _ev(Stage.CREDENTIALS)
    secret_backend: str | None = _ev(Stage.CREDENTIALS)  # kind chosen by the user
    secret_backend_name: str | None = _ev(Stage.CREDENTIALS)  # e.g. "SecretService Keyring"
    api_call_ok_at: str | None = _ev(Stage.CREDENTIALS)
    clock_skew_seconds: float | None = _ev(Stage.CREDENTIALS)

    key_path: str | None = _ev(Stage.KEY_AND_CSR)
    key_curve: str | None = _ev(Stage.KEY_AND_CSR)
    key_public_id: str | None = _ev(Stage.KEY_AND_CSR)
    key_file_mode: int | None = _ev(Stage.KEY_AND_CSR)
    key_dir_mode: int | None = _ev(Stage.KEY_AND_CSR)
    key_encrypted: bool | None = _ev(Stage.KEY_AND_CSR)
    cn: str | None = _ev(Stage.KEY_AND_CSR)
    csr_pem: str | None = _ev(Stage.KEY_AND_CSR)

    certificate_id: str | None = _ev(Stage.ISSUE)
    certificate_pem: str | None = _ev(Stage.ISSUE)
    fingerprint: str | None = _ev(Stage.ISSUE)
    active_certificates: int | None = _ev(Stage.ISSUE)

    install_dir: str | None = _ev(Stage.INSTALL)
    cert_path: str | None = _ev(Stage.INSTALL)
    installed_key_path: str | None = _ev(Stage.INSTALL)
    installed_cert_mode: int | None = _ev(Stage.INSTALL)
    installed_key_mode: int | None = _ev(Stage.INSTALL)
    installed_dir_mode: int | None = _ev(Stage.INSTALL)
    install_probe_ok_at: str | None = _ev(Stage.INSTALL)
    install_probe_fingerprint: str | None = _ev(Stage.INSTALL)

    # Each: {"at": ISO time, "status": VALID|NOT_PRESENT|INVALID|REJECTED|…, "fingerprint": …}
    verifications: list[dict[str, Any]] = _ev(Stage.VERIFY, [])

    enforced_from: str | None = _ev(Stage.ENFORCE)  # NOW or UTC Z, as sent
    enforced_from_chosen_at: str | None = _ev(Stage.ENFORCE)
    enforcement_mode: str | None = _ev(Stage.ENFORCE)  # server answer: ENFORCED | REPORTING

    def to_dict(self) -> dict[str, Any]:
        # Field by field: asdict's deep copy was a fifth of a fleet `status`. The only container
        # is `verifications`, a list of flat dicts, copied one level down.
        return {f.name: _copied(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Evidence:
        """Evidence from its JSON form. Unknown keys are ignored; a known key holding the wrong
        type (a hand-edited journal) raises JournalError rather than crashing a check later."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise JournalError("The saved evidence is damaged: it is not a JSON object.", hint=RESET_HINT)
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                continue
            if not _evidence_type_ok(str(known[name].type), value):
                raise JournalError(
                    f"The saved evidence is damaged: '{name}' has the wrong type ({type(value).__name__}).",
                    hint=RESET_HINT,
                )
            values[name] = [dict(v) for v in value] if name == "verifications" else value
        return cls(**values)

    def clear_from(self, stage: Stage) -> None:
        """Forget evidence of ``stage`` and every later stage (e.g. after a new key)."""
        for f in fields(self):
            if ORDER.index(f.metadata["stage"]) >= ORDER.index(stage):
                setattr(self, f.name, [] if f.name == "verifications" else None)


RESET_HINT = "Move the journal file aside to start this profile again; your keys are untouched."


def _evidence_type_ok(annotation: str, value: Any) -> bool:
    """Type test for one Evidence field; annotations are strings (``from __future__``)."""
    if value is None:
        return not annotation.startswith("list[")
    if annotation.startswith("list["):
        return isinstance(value, list) and all(
            isinstance(v, dict)
            and all(isinstance(v.get(k), (str, type(None))) for k in ("at", "status", "fingerprint"))
            for v in value
        )
    if annotation.startswith("str"):
        return isinstance(value, str)
    if annotation.startswith("bool"):
        return isinstance(value, bool)
    if annotation.startswith("int"):
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation.startswith("float"):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return True


@dataclass(frozen=True)
class CheckResult:
    stage: Stage
    name: str
    ok: bool
    reason: str  # human words: why it failed, or what it confirmed
    warning: bool = False


CheckFn = Callable[[Evidence, datetime], "str | None"]


@dataclass(frozen=True)
class Check:
    name: str
    passed: str  # what the check confirms, in plain words
    fn: CheckFn  # returns None when it passes, else the reason it fails
    warning_only: bool = False


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
        return "Choose where the API key is kept (OS keyring, encrypted file, or per run)."
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
    if cn != ev.cn and not (ev.account_id and rules.is_assigned_cn(cn, ev.account_id)):  # Klarna's own pick
        return f"The certificate's CN is '{cn}' but we asked for '{ev.cn}'."
    return None


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


@dataclass(frozen=True)
class KeyRecord:
    """What the Key and CSR stage observed of the key it wrote or adopted (never the key)."""

    path: str
    curve: str
    public_id: str
    file_mode: int
    dir_mode: int
    encrypted: bool
    cn: str
    csr_pem: str


@dataclass(frozen=True)
class RotatedPair:
    """The pair a rotation switched to: its key and CSR, its certificate, and its installed files."""

    key_path: str
    key_public_id: str
    csr_pem: str
    cn: str
    certificate_id: str
    certificate_pem: str
    fingerprint: str
    modes: tuple[int, int, int]  # installed (certificate, key, folder) permission bits
    installed_fingerprint: str  # read from the installed certificate file


# Checks that hold only for a while (a VALID streak, a validity window): a journal read later is
# not pulled back for them; the actions that need them observe the world again instead.
WINDOWED_CHECKS = frozenset({"verified", "certificate_valid_now"})


class Onboarding:
    """Stage plus evidence, gated by CHECKS. Serves the TUI and the headless commands alike.

    ``stage`` is read-only: only ``advance``, ``restart_from`` and ``go_back`` move it, and ``resumed`` builds a
    model from a journal after re-checking it."""

    def __init__(
        self,
        stage: Stage = Stage.CREDENTIALS,
        evidence: Evidence | None = None,
        clock: Callable[[], datetime] = rules.utc_now,
    ) -> None:
        self._stage = stage
        self.evidence = evidence or Evidence()
        self.clock = clock
        self.pulled_back: tuple[Stage, list[str]] | None = None  # (stage the journal claimed, why)

    @property
    def stage(self) -> Stage:
        return self._stage

    @classmethod
    def resumed(cls, stage: Stage, evidence: Evidence, clock: Callable[[], datetime] = rules.utc_now) -> Onboarding:
        """A model for a journal's claimed ``stage``, re-checked rather than trusted: it is pulled
        back to the first earlier stage whose (lasting) checks fail, and says so in ``pulled_back``."""
        model = cls(Stage.CREDENTIALS, evidence, clock)
        for earlier in ORDER[: ORDER.index(stage)]:
            failing = model.unsettled(earlier)
            if failing:
                model._stage = earlier
                model.pulled_back = (stage, failing)
                return model
        model._stage = stage
        return model

    def pulled_back_note(self) -> str | None:
        """Where a loaded journal resumes and why not where it claimed, in the words both front
        ends show ("at Install, not Enforce: …"); None when it was not pulled back."""
        if self.pulled_back is None:
            return None
        claimed, why = self.pulled_back
        return f"at {self.stage.label}, not {claimed.label}: {' '.join(why)}"

    def unsettled(self, stage: Stage) -> list[str]:
        """Reasons the lasting (not time-windowed) blocking checks of ``stage`` fail."""
        return [r.reason for r in self.blockers(stage) if r.name not in WINDOWED_CHECKS]

    def unsettled_before(self, stage: Stage) -> list[str]:
        """Reasons from every stage before ``stage`` (the evidence an action rests on)."""
        return [reason for s in ORDER[: ORDER.index(stage)] for reason in self.unsettled(s)]

    def results(self, stage: Stage | None = None) -> list[CheckResult]:
        stage = stage or self.stage
        now = self.clock()
        out = []
        for check in CHECKS[stage]:
            failure = check.fn(self.evidence, now)
            out.append(CheckResult(stage, check.name, failure is None, failure or check.passed, check.warning_only))
        return out

    def blockers(self, stage: Stage | None = None) -> list[CheckResult]:
        return [r for r in self.results(stage) if not r.ok and not r.warning]

    def warnings(self, stage: Stage | None = None) -> list[CheckResult]:
        return [r for r in self.results(stage) if not r.ok and r.warning]

    @property
    def can_advance(self) -> bool:
        return self.stage is not Stage.DONE and not self.blockers()

    def advance(self) -> Stage:
        if self.stage is Stage.DONE:
            raise StageBlocked(["Onboarding is already complete."])
        failing = self.blockers()
        if failing:
            raise StageBlocked([r.reason for r in failing])
        self._stage = self._stage.next()
        return self._stage

    def restart_from(self, stage: Stage) -> None:
        """Go back to ``stage`` and forget its evidence and everything after it."""
        self.evidence.clear_from(stage)
        self._stage = stage

    def discarded_by_going_back(self, stage: Stage) -> list[str]:
        """What reopening ``stage`` would forget, in plain words: the evidence later stages
        recorded. Empty when nothing is lost. Files on disk and Klarna's side never change."""
        _require_earlier(stage, self.stage)
        later = ORDER[ORDER.index(stage) + 1 :]
        return [text for s in later if (text := _DISCARDS[s](self.evidence))]

    def go_back(self, stage: Stage) -> list[str]:
        """Reopen the earlier ``stage``: keep its own evidence (shown, and changeable there),
        forget every later stage's. Returns what was discarded, as ``discarded_by_going_back``."""
        discarded = self.discarded_by_going_back(stage)
        self.evidence.clear_from(stage.next())
        self._stage = stage
        return discarded

    # ------------------------------------------------------------ recording evidence
    # The only writers of evidence: callers observe, then record here what they saw.
    def record_profile(self, environment: str, account_id: str) -> None:
        """The environment and account the profile onboards (checked by the caller)."""
        self.evidence.environment = environment
        self.evidence.account_id = account_id

    def record_api_key(self, api_key: str) -> None:
        """The key in use, by its masked form and environment only: the key itself is not kept."""
        self.evidence.api_key_masked = rules.mask_key(api_key)
        self.evidence.api_key_environment = rules.api_key_environment(api_key)

    def record_credentials(
        self, *, backend: str, backend_name: str, checked_at: datetime, clock_skew_seconds: float | None
    ) -> None:
        """A call with the key succeeded at ``checked_at``; the key is kept in ``backend``. An
        answer that did not say the server's time counts as no skew."""
        ev = self.evidence
        ev.secret_backend, ev.secret_backend_name = backend, backend_name
        ev.api_call_ok_at = rules.format_utc(checked_at)
        ev.clock_skew_seconds = clock_skew_seconds if clock_skew_seconds is not None else 0.0

    def record_key(self, key: KeyRecord) -> None:
        """The private key and CSR written (or adopted) for this profile."""
        ev = self.evidence
        ev.key_path, ev.key_curve, ev.key_public_id = key.path, key.curve, key.public_id
        ev.key_file_mode, ev.key_dir_mode, ev.key_encrypted = key.file_mode, key.dir_mode, key.encrypted
        ev.cn, ev.csr_pem = key.cn, key.csr_pem

    def record_certificate(self, certificate_id: str, certificate_pem: str, fingerprint: str, active: int) -> None:
        """The certificate issued for the key, and how many certificates the account has active."""
        ev = self.evidence
        ev.certificate_id, ev.certificate_pem, ev.fingerprint = certificate_id, certificate_pem, fingerprint
        ev.active_certificates = active

    def record_install(self, folder: str, cert_path: str, key_path: str, modes: tuple[int, int, int]) -> None:
        """The pair installed in ``folder``; ``modes``: (certificate, key, folder) permission bits."""
        ev = self.evidence
        ev.install_dir, ev.cert_path, ev.installed_key_path = folder, cert_path, key_path
        ev.installed_cert_mode, ev.installed_key_mode, ev.installed_dir_mode = modes

    def record_install_probe(self, at: datetime, fingerprint: str | None) -> None:
        """An mTLS call with exactly the installed files was accepted at ``at``."""
        self.evidence.install_probe_ok_at = rules.format_utc(at)
        self.evidence.install_probe_fingerprint = fingerprint

    def adopt_rotated_pair(self, pair: RotatedPair) -> None:
        """A rotation switched to a new pair: the evidence follows the pair in use, so status,
        doctor and check describe it. The key's curve, file modes and the probe time are kept."""
        ev = self.evidence
        ev.key_path, ev.key_public_id, ev.csr_pem, ev.cn = pair.key_path, pair.key_public_id, pair.csr_pem, pair.cn
        ev.certificate_id, ev.certificate_pem, ev.fingerprint = (
            pair.certificate_id,
            pair.certificate_pem,
            pair.fingerprint,
        )
        ev.installed_cert_mode, ev.installed_key_mode, ev.installed_dir_mode = pair.modes
        ev.install_probe_fingerprint = pair.installed_fingerprint

    def record_verification(self, status: str, fingerprint: str | None, at: datetime | None = None) -> None:
        self.evidence.verifications.append(
            {"at": rules.format_utc(at or self.clock()), "status": status, "fingerprint": fingerprint}
        )
        del self.evidence.verifications[:-50]  # bounded: the check needs only the recent streak

    def record_enforcement_request(self, enforced_from: str, chosen_at: datetime) -> None:
        """Enforcement is about to be asked for from ``enforced_from`` (NOW or a UTC time, as sent)."""
        self.evidence.enforced_from = enforced_from
        self.evidence.enforced_from_chosen_at = rules.format_utc(chosen_at)

    def record_enforcement_mode(self, mode: str) -> None:
        """The enforcement mode the server answered (ENFORCED | REPORTING)."""
        self.evidence.enforcement_mode = mode


# ---------------------------------------------------------------- going back
def _require_earlier(stage: Stage, current: Stage) -> None:
    if stage is Stage.DONE or ORDER.index(stage) >= ORDER.index(current):
        raise InputError(
            f"{stage.label} is not an earlier step than {current.label}.",
            hint="Only a step already passed can be reopened.",
        )


def _discard_key(ev: Evidence) -> str | None:
    if not (ev.key_path or ev.csr_pem):
        return None
    return "Key and CSR: which private key and CSR this journey uses (the key file stays on disk)."


def _discard_issue(ev: Evidence) -> str | None:
    if not ev.certificate_id:
        return None
    return (
        f"Issue: certificate {ev.certificate_id} as this journey's certificate (it stays active "
        "at Klarna, and this tool keeps its record)."
    )


def _discard_install(ev: Evidence) -> str | None:
    if not (ev.cert_path or ev.install_probe_ok_at):
        return None
    return "Install: the install record and its mTLS proof (the installed files stay in place)."


def _discard_verify(ev: Evidence) -> str | None:
    count = len(ev.verifications)
    if not count:
        return None
    return f"Verify: {count} verification result{'s' if count != 1 else ''}."


def _discard_enforce(ev: Evidence) -> str | None:
    if not (ev.enforced_from or ev.enforcement_mode):
        return None
    said = f"{ev.enforcement_mode or 'a request'} from {ev.enforced_from or '?'}"
    return f"Enforce: the record of enforcement ({said}); Klarna keeps enforcing until you remove it."


_DISCARDS: dict[Stage, Callable[[Evidence], str | None]] = {
    Stage.CREDENTIALS: lambda ev: None,  # the first stage: never later than another
    Stage.KEY_AND_CSR: _discard_key,
    Stage.ISSUE: _discard_issue,
    Stage.INSTALL: _discard_install,
    Stage.VERIFY: _discard_verify,
    Stage.ENFORCE: _discard_enforce,
    Stage.DONE: lambda ev: None,
}
