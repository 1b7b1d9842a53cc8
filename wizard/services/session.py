"""One profile's session: its journal state, its secrets in custody and its clients, and the gate.

A ``Session`` holds one profile's journal state (the model and its evidence, the settings), its
audit log, the secrets in custody for this run (``custody``: the API key and key passphrase, in
memory only) and its ``clients`` (the factory of KlarnaClients with this profile's host, trust and
certificate). It configures the profile, moves between stages and answers the gate (``situation``,
``require``, ``look``). The work behind each stage is in wizard/services/onboarding.py, the other services
(status, revocation, rotation, API keys, runtimes) are module functions taking a session the same way."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard.core import acceptance, rules
from wizard.core.environments import typed_confirmation_required
from wizard.core.errors import ApiError, InputError
from wizard.core.evidence import Evidence
from wizard.core.interlocks import Action, Situation, require
from wizard.core.journal import AuditLog, Journal, ProfileState, note_seen_valid
from wizard.core.model import Onboarding
from wizard.core.paths import Paths
from wizard.core.records import Settings
from wizard.core.secret_value import SecretValue
from wizard.core.stages import Stage
from wizard.secrets.custody import KeyCustody
from wizard.services.clients import ClientFactory, checked_trust_ca, verify_host_settings

if TYPE_CHECKING:  # httpx and the install module load when a command needs them
    from wizard.klarna.client import KlarnaClient
    from wizard.klarna.models import CertificateInfo, EnforcementState
    from wizard.services.install import InstalledPair

KEY_FILE = "private-key.pem"


@dataclass(frozen=True)
class Look:
    """The account as seen just now through the installed pair: its certificates, what the
    verification header said, the enforcement state, and which recorded credential is current."""

    certificates: list[CertificateInfo]  # as listed
    verification: str | None  # None when no pair is installed here
    enforcement: EnforcementState
    pair: InstalledPair | None  # the pair in the install folder's `current`
    current_id: str | None  # from the profile's records, never from the listing
    current_damage: str | None = None  # the records and the installed files disagree (journal.pair_identity)
    tls_version: str | None = None
    clock_skew_seconds: float | None = None
    server_date: datetime | None = None  # the listing answer's Date: Klarna's clock just now
    tls_cipher: str | None = None  # the negotiated suite, e.g. TLS_AES_256_GCM_SHA384

    @property
    def listed_ids(self) -> frozenset[str]:
        return frozenset(c.credential_id for c in self.certificates)

    @property
    def listed_statuses(self) -> dict[str, str]:
        """Each listed credential id with the status the listing gives ([ours]: "UNKNOWN" when none)."""
        return {c.credential_id: c.status for c in self.certificates}


class Session:
    """One profile, opened from its journal. Not thread-safe: one worker at a time."""

    def __init__(self, paths: Paths, profile: str, *, clock: Callable[[], datetime] = rules.utc_now):
        self.paths = paths
        self.profile = profile
        self.clock = clock
        self.journal = Journal(paths, profile)
        self.state: ProfileState = self.journal.load()
        verify_host_settings(self.state.settings, self.state.model.evidence.environment, self.journal.path)
        self.state.model.clock = clock
        self.audit = AuditLog.for_profile(paths, profile)
        self.custody = KeyCustody()  # the API key and key passphrase, in memory for this run only
        self.clients = ClientFactory(
            self.custody,
            settings=lambda: self.state.settings,
            environment=lambda: self.state.model.evidence.environment,
            install_dir=lambda: self.install_dir,
            settings_file=self.journal.path,
            installed_label=lambda: self.installed_label,
            profile=profile,
        )
        # True for a reader that could not take the profile lock: it must not write the journal.
        self.read_only = False

    def __repr__(self) -> str:  # never the key
        return f"Session(profile={self.profile!r}, stage={self.model.stage.value})"

    # ------------------------------------------------------------------ basics
    @property
    def model(self) -> Onboarding:
        return self.state.model

    @property
    def evidence(self) -> Evidence:
        return self.state.model.evidence

    @property
    def settings(self) -> Settings:
        return self.state.settings

    @property
    def environment(self) -> str | None:
        return self.evidence.environment

    @property
    def has_journal(self) -> bool:
        return self.journal.exists()

    def save(self) -> None:
        if not self.read_only:
            self.journal.save(self.state)

    def advance(self) -> Stage:
        """Move to the next stage if the model allows it; raises StageBlocked otherwise."""
        before = self.model.stage
        stage = self.model.advance()
        self.save()
        self.audit.record("advance", from_stage=before.value, to_stage=stage.value)
        return stage

    def go_back(self, stage: Stage) -> list[str]:
        """Reopen an earlier stage (the model says what that discards). A certificate already
        issued stays in the certificate records: the tool's own records decide safety later."""
        ev, before = self.evidence, self.model.stage
        if ev.certificate_id:
            record = self.state.certificate(ev.certificate_id)
            record.fingerprint = record.fingerprint or ev.fingerprint
        discarded = self.model.go_back(stage)
        self.save()
        self.audit.record("go_back", from_stage=before.value, to_stage=stage.value, discarded=len(discarded))
        return discarded

    # The secrets in custody (see wizard/secrets/custody.py); these delegates serve many callers.
    def unlock(self, api_key: str | SecretValue[str], key_passphrase: bytes | SecretValue[bytes] | None = None) -> None:
        """Hold the API key (and key passphrase) in memory for this run only."""
        self.custody.hold(api_key, key_passphrase)

    def set_key_passphrase(self, passphrase: bytes | SecretValue[bytes] | None) -> None:
        """Hold the private key's passphrase in memory for this run only."""
        self.custody.set_passphrase(passphrase)

    def with_key_passphrase(self, passphrase: bytes | SecretValue[bytes]) -> Session:
        """This session for a pair with its own key passphrase: journal state, API key and kept
        connections are shared; only the copy holds ``passphrase``."""
        other = copy.copy(self)
        other.custody = self.custody.with_passphrase(passphrase)
        other.clients = self.clients.with_custody(other.custody)
        return other

    @property
    def unlocked(self) -> bool:
        return self.custody.unlocked

    @property
    def key_passphrase(self) -> bytes | None:
        return self.custody.passphrase

    @property
    def running_key_recorded(self) -> bool | None:
        """Whether the key loaded for this run is the one recorded at the Credentials step (and
        kept through key rotation), compared by its masked form; None when no key is loaded."""
        return self.custody.matches(self.evidence.api_key_masked)

    # ------------------------------------------------------------------ profile
    def configure(
        self,
        environment: str,
        account_id: str,
        *,
        base_url: str | None = None,
        ca_bundle: str | Path | None = None,
        install_dir: str | Path | None = None,
        allow_remote_sandbox: bool = False,
    ) -> None:
        """Record the profile's environment and account; refuses what Klarna would refuse."""
        if environment not in rules.ENVIRONMENTS:
            raise InputError(f"Unknown environment '{environment}'.", hint="Use live, test or sandbox.")
        account = rules.parse_account_id(account_id)
        if rules.KEY_ENVIRONMENT[environment] != account.environment:
            raise InputError(
                f"The account id is a {account.environment} account but you chose {environment}.",
                hint="Pick the environment the account belongs to.",
            )
        if environment != "sandbox" and (base_url or ca_bundle):
            # Server verification for Klarna always uses the system trust store.
            raise InputError(
                "A custom base URL or CA bundle is only allowed for the sandbox.",
                hint="Live and test always talk to Klarna's hosts with system trust.",
            )
        if environment == "sandbox" and not (base_url and ca_bundle):
            raise InputError(
                "The sandbox needs its base URL and CA bundle.",
                hint="Start it with `klarna-mtls sandbox serve --json` and pass both, or use --sandbox.",
            )
        if base_url:
            rules.verify_base_url(environment, base_url, allow_remote=allow_remote_sandbox)
        changed = (self.evidence.environment, self.evidence.account_id) != (environment, str(account))
        if changed and self.evidence.account_id is not None:
            self.model.restart_from(Stage.CREDENTIALS)
            self.state.record_tool_key(None, "")  # that key id belonged to the other account
        self.model.record_profile(environment, str(account))
        self.settings.base_url = base_url.rstrip("/") if base_url else None
        self.settings.ca_bundle = str(ca_bundle) if ca_bundle else None
        self.settings.allow_remote_sandbox = bool(allow_remote_sandbox)
        self.settings.install_dir = str(install_dir or self.paths.default_install_dir(self.profile))
        self.save()
        self.audit.record("configure", environment=environment, account_id=str(account))

    @property
    def base_url(self) -> str:
        return self.clients.base_url

    @property
    def ca_bundle(self) -> Path | None:
        """The CAs this profile trusts (see ClientFactory.ca_bundle)."""
        return self.clients.ca_bundle

    def set_trust_ca(self, path: str | Path | None) -> None:
        """Live/test only: trust this CA file instead of the bundled roots (e.g. a company's
        TLS-inspecting proxy); None goes back to the bundled roots. `doctor` shows the choice."""
        from wizard.klarna.tls import make_ssl_context

        if self.environment not in ("live", "test"):
            raise InputError(
                "A trusted CA set is chosen for live or test profiles only.",
                hint="The sandbox trusts its own --ca-bundle.",
            )
        if path is None:
            self.settings.trust_ca = None
        else:
            chosen = Path(path).expanduser().absolute()
            checked_trust_ca(chosen)  # and again on every run (ClientFactory.trusted_ca_bundle)
            make_ssl_context(ca_bundle=chosen)  # refuses a file that holds no readable CA
            self.settings.trust_ca = str(chosen)
        self.save()
        self.audit.record("trust_ca", path=self.settings.trust_ca or "bundled roots")

    @property
    def install_dir(self) -> Path:
        return Path(self.settings.install_dir or self.paths.default_install_dir(self.profile))

    def kept_folders(self) -> tuple[Path, ...]:
        """The folders no output the user names (``--out``) may land in (fsutil.write_output's
        ``keep_out``): this profile's install folder (its pairs and ``current``) and every folder
        the tool keeps (journals, audit logs, the log, keys, the encrypted store, default installs)."""
        paths = self.paths
        return (self.install_dir, paths.state_dir, paths.data_dir, paths.config_dir, paths.install_root)

    @property
    def installed_label(self) -> str | None:
        """The install folder's label of the pair the records say is in use here (None when none
        was installed): a missing `current` is then a broken install, not a new machine. The
        folder is named from the fingerprint recorded at issue (``install.label_for``, as every
        install names it), not from the label a record claims: that can be moved (LO-07)."""
        from wizard.services.install import label_for

        record = self.state.certificates.get(self.evidence.certificate_id or "")
        if record is None or not record.installed:
            return None
        return label_for(record.fingerprint) if record.fingerprint else record.label

    @property
    def key_path(self) -> Path:
        """Where this profile's private key lives (written by onboarding.generate_key)."""
        return self.paths.keys_dir(self.profile) / KEY_FILE

    def client(
        self,
        *,
        with_certificate: bool | None = None,
        pair: InstalledPair | None = None,
        api_key: str | None = None,
        files_checked: bool = False,
    ) -> contextlib.AbstractAsyncContextManager[KlarnaClient]:
        """A KlarnaClient for this profile (see ClientFactory.client)."""
        return self.clients.client(
            with_certificate=with_certificate, pair=pair, api_key=api_key, files_checked=files_checked
        )

    # ------------------------------------------------------------------ the gate
    def situation(self, look: Look | None = None, **facts: Any) -> Situation:
        """What ``interlocks.require`` judges: the stage, the evidence and, from ``look``, the
        account as observed just now, plus the records (current credential, retired ones)."""
        if look is None:
            return Situation(stage=self.model.stage, model=self.model, **facts)
        retired = self.state.retired_ids()
        statuses = {
            c.credential_id: ("REVOKED" if c.credential_id in retired and c.status == "UNKNOWN" else c.status)
            for c in look.certificates
        }
        mode = look.enforcement.mode.value
        return Situation(
            stage=self.model.stage,
            model=self.model,
            installed=look.pair is not None,
            current_id=look.current_id,
            current_damage=look.current_damage,
            listed_ids=look.listed_ids,
            statuses=statuses,
            verification_now=look.verification,
            enforcement=mode,
            enforcement_scheduled=look.enforcement.scheduled,
            **facts,
        )

    def confirmation(self, expected: str | None, typed: str | None, what: str) -> dict[str, Any]:
        """The ``Situation`` fields of a typed confirmation: whether this profile's environment asks
        for one (``environments`` table), what must be typed, what was, and how to name it."""
        return {
            "confirmation_required": typed_confirmation_required(self.environment),
            "confirmation_expected": expected,
            "confirmation_typed": typed,
            "confirmation_what": what,
        }

    def require(self, action: Action, look: Look | None = None, **facts: Any) -> None:
        require(action, self.situation(look, **facts))

    def current_id(self, pair: InstalledPair | None) -> str | None:
        return self.state.id_for_pair(pair.label, pair.fingerprint) if pair is not None else None

    def pair_damage(self, pair: InstalledPair | None) -> str | None:
        """How the records and ``pair``'s files disagree (None: they agree, or nothing is installed)."""
        return self.state.pair_identity(pair.label, pair.fingerprint)[1] if pair is not None else None

    def installed_damage(self) -> str | None:
        """``pair_damage`` of the pair in ``current``, read from the files now (no network)."""
        from wizard.core.errors import CryptoError
        from wizard.services.install import current_pair

        try:
            return self.pair_damage(current_pair(self.install_dir))
        except (CryptoError, OSError):
            return None  # a broken file is named by the checks that read it (pair_files)

    def record_valid(self, credential_id: str | None, at: datetime) -> None:
        """Remember that our recorded certificate ``credential_id`` was seen VALID at ``at``."""
        if credential_id is not None:  # to the day: a reading repeated the same day changes nothing
            note_seen_valid(self.state.certificate(credential_id), at)

    async def look(self) -> Look:
        """List the certificates with the installed pair and read enforcement: observed now."""
        from wizard.services.pair_files import current_pair_checked

        pair = current_pair_checked(
            self.install_dir, self.installed_label, self.profile
        )  # a broken pair is named, file by file
        async with self.client() as klarna:
            listing = await klarna.list_certificates()
            enforcement = await _enforcement_or_unknown(klarna)
        return Look(
            listing.value,
            acceptance.verdict(listing.verification.value, enforcement.mode.value) if pair else None,
            enforcement,
            pair,
            self.current_id(pair),
            self.pair_damage(pair),
            listing.tls_version,
            listing.clock_skew_seconds,
            listing.server_date,
            listing.tls_cipher,
        )


async def acceptance_of(klarna: KlarnaClient, header: str) -> str:
    """What a 2xx answer to a call ``klarna`` made with our certificate says of it
    (``acceptance.verdict``); the enforcement mode is read, with the same client, only when the
    answer carried no verification header."""
    if header != acceptance.NO_HEADER:
        return header
    return acceptance.verdict(header, (await _enforcement_or_unknown(klarna)).mode.value)


async def _enforcement_or_unknown(klarna: KlarnaClient) -> EnforcementState:
    """The enforcement state; an endpoint that is missing or refuses to say reads UNKNOWN (which the
    interlocks treat as "maybe on"), while an authentication failure still fails the call."""
    from wizard.klarna.models import EnforcementState

    try:
        return (await klarna.get_enforcement()).value
    except ApiError as error:
        if error.status in (401, 403, 429) or error.status >= 500:
            raise
        return EnforcementState.unknown()
