"""The onboarding model: the stage a profile is at, gated by the checks, and evidence recorded by callers.

The model does no I/O. Workers observe the world (files, responses, headers, clocks) and record
what they saw as evidence through ``Onboarding.record_…`` (the only writers of evidence, see
tests/test_evidence_writer.py); each check (wizard/core/checks.py) is a pure function over that
evidence. ``blockers()`` lists failing checks for the UI; ``advance()`` raises ``StageBlocked`` and
changes nothing while any check fails. The stages are in wizard/core/stages.py, the evidence in
wizard/core/evidence.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from wizard.core import rules
from wizard.core.checks import CHECKS, WINDOWED_CHECKS, CheckResult
from wizard.core.errors import InputError, StageBlocked
from wizard.core.evidence import Evidence
from wizard.core.stages import ORDER, Stage


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
        return [check.result(stage, self.evidence, now) for check in CHECKS[stage]]

    def blockers(self, stage: Stage | None = None) -> list[CheckResult]:
        return [r for r in self.results(stage) if not r.ok and not r.warning]

    def warnings(self, stage: Stage | None = None) -> list[CheckResult]:
        return [r for r in self.results(stage) if not r.ok and r.warning]

    def advance(self) -> Stage:
        if self.stage is Stage.DONE:
            raise StageBlocked(["Onboarding is already complete."])
        failing = self.blockers()
        if failing:
            raise StageBlocked([r.reason for r in failing])
        self._stage = self._stage.next()
        return self._stage

    def restart_from(self, stage: Stage) -> None:
        """Go back to ``stage`` (the current one or an earlier one: a later stage is reached only by
        passing the checks, ``advance``) and forget its evidence and everything after it."""
        if ORDER.index(stage) > ORDER.index(self.stage):
            raise InputError(
                f"{stage.label} is a later step than {self.stage.label}: it is reached by passing the checks.",
                hint="Only the current step or one already passed can be restarted.",
            )
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
        self,
        *,
        backend: str,
        backend_name: str,
        checked_at: datetime,
        clock_skew_seconds: float | None,
        place: str | None = None,
    ) -> None:
        """A call with the key succeeded at ``checked_at``; the key is kept in ``backend`` (at
        ``place``, for a Vault store). An answer that did not say the server's time counts as no skew."""
        ev = self.evidence
        ev.secret_backend, ev.secret_backend_name, ev.secret_place = backend, backend_name, place
        ev.api_call_ok_at = rules.format_utc(checked_at)
        ev.clock_skew_seconds = clock_skew_seconds if clock_skew_seconds is not None else 0.0

    def record_key(self, key: KeyRecord) -> None:
        """The private key and CSR written (or adopted) for this profile."""
        ev = self.evidence
        ev.key_path, ev.key_curve, ev.key_public_id = key.path, key.curve, key.public_id
        ev.key_file_mode, ev.key_dir_mode, ev.key_encrypted = key.file_mode, key.dir_mode, key.encrypted
        ev.cn, ev.csr_pem = key.cn, key.csr_pem

    def record_certificate(
        self, certificate_id: str, certificate_pem: str, fingerprint: str, active: int, account_ca_issuer: str | None
    ) -> None:
        """The certificate issued for the key, how many certificates the account has active, and
        the issuer of the account's CA as far as it could be established (None: not established)."""
        ev = self.evidence
        ev.certificate_id, ev.certificate_pem, ev.fingerprint = certificate_id, certificate_pem, fingerprint
        ev.active_certificates, ev.account_ca_issuer = active, account_ca_issuer

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
