"""The work behind each onboarding stage, shared by the TUI and the headless commands.

A ``Session`` holds one profile's journal state, its audit log, the secrets in custody for this run
(``custody``: the API key and key passphrase, in memory only) and its ``clients`` (the factory of
KlarnaClients with this profile's host, trust and certificate).
Each stage method does the I/O, records what it observed as evidence in the model, and saves the
journal. Blocking work (crypto, files, keyring) runs in a thread so an event loop never stalls."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import os
import shlex
import stat
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import rules
from ._lazy import lazy_module
from .clients import ClientFactory
from .custody import KeyCustody
from .diagnosis import Diagnosis, diagnose
from .errors import (
    ApiError,
    CryptoError,
    HandshakeRejected,
    InputError,
    InterlockRefused,
)
from .fsutil import ensure_private_dir, file_mode, write_private
from .interlocks import Action, Situation, require
from .journal import AuditLog, Journal, ProfileState, note_seen_valid
from .model import Evidence, KeyRecord, Onboarding, Stage
from .paths import Paths
from .secret_value import SecretValue

if TYPE_CHECKING:  # httpx and the install module load when a command needs them
    from . import crypto
    from .api import CertificateInfo, EnforcementState, KlarnaClient
    from .crypto import PrivateKey
    from .install import InstalledPair
    from .secrets import SecretStore
else:
    crypto = lazy_module("wizard.crypto")  # loaded by the first stage that needs it

KEY_FILE = "private-key.pem"
KEY_DIGEST = "key_file_sha256"  # settings: sha256 of the key file this tool wrote
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


@dataclass(frozen=True)
class Look:
    """The account as seen just now through the installed pair: its certificates, what the
    verification header said, the enforcement state, and which recorded credential is current."""

    certificates: list[CertificateInfo]  # as listed
    verification: str | None  # None when no pair is installed here
    enforcement: EnforcementState
    pair: InstalledPair | None  # the pair in the install folder's `current`
    current_id: str | None  # from the profile's records, never from the listing
    tls_version: str | None = None
    clock_skew_seconds: float | None = None

    @property
    def listed_ids(self) -> frozenset[str]:
        return frozenset(c.credential_id for c in self.certificates)


class Session:
    """One profile, opened from its journal. Not thread-safe: one worker at a time."""

    def __init__(self, paths: Paths, profile: str, *, clock: Callable[[], datetime] = rules.utc_now):
        self.paths = paths
        self.profile = profile
        self.clock = clock
        self.journal = Journal(paths, profile)
        self.state: ProfileState = self.journal.load()
        self.state.model.clock = clock
        self.audit = AuditLog.for_profile(paths, profile)
        self.custody = KeyCustody()  # the API key and key passphrase, in memory for this run only
        self.clients = ClientFactory(
            self.custody,
            settings=lambda: self.state.settings,
            environment=lambda: self.state.model.evidence.environment,
            install_dir=lambda: self.install_dir,
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
    def settings(self) -> dict[str, Any]:
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
            self.state.certificates.setdefault(ev.certificate_id, {}).setdefault("fingerprint", ev.fingerprint)
        discarded = self.model.go_back(stage)
        self.save()
        self.audit.record("go_back", from_stage=before.value, to_stage=stage.value, discarded=len(discarded))
        return discarded

    # The secrets in custody (see wizard/custody.py); these delegates serve many callers.
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
        self.settings["base_url"] = base_url.rstrip("/") if base_url else None
        self.settings["ca_bundle"] = str(ca_bundle) if ca_bundle else None
        if allow_remote_sandbox:
            self.settings["allow_remote_sandbox"] = True
        else:
            self.settings.pop("allow_remote_sandbox", None)
        self.settings["install_dir"] = str(install_dir or self.paths.default_install_dir(self.profile))
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
        from .api import make_ssl_context

        if self.environment not in ("live", "test"):
            raise InputError(
                "A trusted CA set is chosen for live or test profiles only.",
                hint="The sandbox trusts its own --ca-bundle.",
            )
        if path is None:
            self.settings.pop("trust_ca", None)
        else:
            chosen = Path(path).expanduser().absolute()
            make_ssl_context(ca_bundle=chosen)  # refuses a file that holds no readable CA
            self.settings["trust_ca"] = str(chosen)
        self.save()
        self.audit.record("trust_ca", path=self.settings.get("trust_ca") or "bundled roots")

    @property
    def install_dir(self) -> Path:
        return Path(self.settings.get("install_dir") or self.paths.default_install_dir(self.profile))

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
            listed_ids=look.listed_ids,
            statuses=statuses,
            verification_now=look.verification,
            enforcement=mode,
            enforcement_scheduled=look.enforcement.scheduled,
            **facts,
        )

    def require(self, action: Action, look: Look | None = None, **facts: Any) -> None:
        require(action, self.situation(look, **facts))

    def current_id(self, pair: InstalledPair | None) -> str | None:
        return self.state.id_for_pair(pair.label, pair.fingerprint) if pair is not None else None

    async def look(self) -> Look:
        """List the certificates with the installed pair and read enforcement: observed now."""
        from .install import current_pair

        pair = current_pair(self.install_dir)
        async with self.client() as klarna:
            listing = await klarna.list_certificates()
            enforcement = await _enforcement_or_unknown(klarna)
        return Look(
            listing.value,
            listing.verification.value if pair else None,
            enforcement,
            pair,
            self.current_id(pair),
            listing.tls_version,
            listing.clock_skew_seconds,
        )

    # ------------------------------------------------------------------ CREDENTIALS
    async def check_credentials(self, api_key: str, store: SecretStore) -> None:
        """Validate the key's shape, prove it with a live call, then keep it in ``store``."""
        rules.verify_api_key(api_key, self.environment)
        self.unlock(api_key)
        async with self.client() as klarna:
            answer = await klarna.ping()
        if store.persistent:
            await asyncio.to_thread(store.set, self.profile, api_key)
        ev = self.evidence
        if ev.api_key_masked and ev.api_key_masked != rules.mask_key(api_key):
            self.state.record_tool_key(None, "")  # another key: the recorded id described the old one
        self.model.record_api_key(api_key)
        self.model.record_credentials(
            backend=store.kind,
            backend_name=store.display_name,
            checked_at=self.clock(),
            clock_skew_seconds=answer.clock_skew_seconds,
        )
        self.save()
        self.audit.record(
            "credentials_checked",
            api_key=ev.api_key_masked,
            backend=store.kind,
            clock_skew_seconds=ev.clock_skew_seconds,
            correlation_id=answer.correlation_id,
        )

    # ------------------------------------------------------------------ KEY_AND_CSR
    @property
    def key_path(self) -> Path:
        return self.paths.keys_dir(self.profile) / KEY_FILE

    async def generate_key(
        self, *, passphrase: bytes | None = None, overwrite: bool = False, cn: str | None = None
    ) -> None:
        """Make a P-256 key and a CN-only CSR. Refuses to replace an existing key unless asked."""
        self.require(Action.GENERATE_KEY)
        if self.key_path.exists() and not overwrite:
            raise InputError(
                f"A private key already exists at {self.key_path}.",
                title="Key already exists",
                hint="Keep it (use the existing key), or choose to replace it explicitly.",
            )
        account = self.evidence.account_id
        if not account:
            raise InputError("Set the account id first.")
        cn = cn or rules.default_cn(account)
        rules.verify_cn(cn)
        key, key_pem, csr_pem = await asyncio.to_thread(self._make_key_and_csr, passphrase, cn)
        if overwrite:
            self.model.restart_from(Stage.KEY_AND_CSR)
            self.state.in_flight = None
        # Journaled before the file exists: a resumed run adopts only the key this tool wrote.
        self.settings[KEY_DIGEST] = key_digest(key_pem)
        self.save()
        await asyncio.to_thread(self._write_key_files, key_pem, csr_pem)
        self.set_key_passphrase(passphrase)
        self._record_key(key, csr_pem, cn, encrypted=passphrase is not None)
        self.audit.record("key_generated", public_key_id=crypto.public_key_id(key), cn=cn, encrypted=bool(passphrase))

    def _make_key_and_csr(self, passphrase: bytes | None, cn: str) -> tuple[PrivateKey, bytes, bytes]:
        key = crypto.make_private_key()
        return key, crypto.make_private_key_pem(key, passphrase), crypto.make_csr_pem(key, cn)

    def _write_key_files(self, key_pem: bytes, csr_pem: bytes) -> None:
        folder = ensure_private_dir(self.key_path.parent)
        write_private(folder / KEY_FILE, key_pem)
        write_private(folder / CSR_FILE, csr_pem)

    async def use_existing_key(self, *, passphrase: bytes | None = None, cn: str | None = None) -> None:
        """Adopt the key already on disk (e.g. after a crash) and (re)build its CSR: only a key
        this tool wrote for this profile, in a private file owned by this user."""
        self.require(Action.GENERATE_KEY)
        key = await asyncio.to_thread(self._load_own_key, passphrase)
        account = self.evidence.account_id
        if not account:
            raise InputError("Set the account id first.")
        cn = cn or self.evidence.cn or rules.default_cn(account)
        csr_pem = await asyncio.to_thread(crypto.make_csr_pem, key, cn)
        await asyncio.to_thread(write_private, self.key_path.parent / CSR_FILE, csr_pem)
        self.set_key_passphrase(passphrase)
        self._record_key(key, csr_pem, cn, encrypted=passphrase is not None)

    def _load_own_key(self, passphrase: bytes | None) -> PrivateKey:
        return load_own_key(self.key_path, passphrase, self.settings.get(KEY_DIGEST), self.evidence.key_public_id)

    def _record_key(self, key: PrivateKey, csr_pem: bytes, cn: str, *, encrypted: bool) -> None:
        self.model.record_key(
            KeyRecord(
                path=str(self.key_path),
                curve=key.curve.name,
                public_id=crypto.public_key_id(key),
                file_mode=file_mode(self.key_path),
                dir_mode=file_mode(self.key_path.parent),
                encrypted=encrypted,
                cn=cn,
                csr_pem=csr_pem.decode(),
            )
        )
        self.save()

    def load_key(self) -> PrivateKey:
        return crypto.load_private_key_file(self.key_path, self.key_passphrase)

    # ------------------------------------------------------------------ ISSUE
    async def issue_certificate(self, description: str | None = None) -> None:
        """Create the certificate once: the idempotency key is journaled before sending, and
        an unknown outcome is reconciled against the server's list by our public key."""
        self.require(Action.ISSUE)
        ev = self.evidence
        if not ev.csr_pem or not ev.key_public_id:
            raise InputError("Generate the key and CSR first.")
        description = description or f"klarna-mtls {self.profile}"
        rules.verify_description(description)
        flight = self.state.in_flight
        if not (
            flight
            and flight.get("operation") == "create_certificate"
            and flight.get("public_key_id") == ev.key_public_id
        ):
            async with self.client() as klarna:
                listing = await klarna.list_certificates()
            mine = find_by_key(listing.value, ev.key_public_id)
            if mine is None:
                refuse_when_full(listing.value)
            flight = {
                "operation": "create_certificate",
                "idempotency_key": str(uuid.uuid4()),
                "public_key_id": ev.key_public_id,
                "sent_at": rules.format_utc(self.clock()),
            }
            if mine is not None:  # already issued (e.g. by an earlier run): adopt it
                self._record_certificate(mine, listing.value)
                return
            self.state.in_flight = flight
            self.save()  # recorded before sending, so a crash can reconcile
            self.audit.record("create_certificate_sent", idempotency_key=flight["idempotency_key"])
        try:
            async with self.client() as klarna:
                answer = await klarna.create_certificate_reconciled(
                    ev.csr_pem, description, flight["idempotency_key"], ev.key_public_id
                )
                listing = await klarna.list_certificates()
        except ApiError as exc:
            if 400 <= exc.status < 500 and exc.status not in (408, 429):
                self.state.in_flight = None  # a definite refusal: nothing was created
                self.save()
            raise
        self._record_certificate(answer.value, listing.value)

    def _record_certificate(self, info: CertificateInfo, listing: list[CertificateInfo]) -> None:
        pem = info.certificate_pem or ""
        cert = crypto.load_certificate(pem)  # none in the answer: "The certificate is empty."
        fingerprint = crypto.fingerprint_sha256(cert)
        active = sum(1 for c in listing if c.status == "ACTIVE")
        self.model.record_certificate(info.credential_id, pem, fingerprint, active)
        self.state.in_flight = None
        self.state.certificate(info.credential_id).update(
            {
                "fingerprint": fingerprint,
                "issued_here": True,
                "not_after": rules.format_utc(cert.not_valid_after_utc),
            }
        )
        self.save()
        self.audit.record("certificate_issued", certificate_id=info.credential_id, fingerprint=fingerprint)

    # ------------------------------------------------------------------ INSTALL
    async def install(self, install_dir: str | Path | None = None) -> None:
        """Install the pair beside any previous one, flip `current`, then prove it over mTLS."""
        from .install import activate, install_pair

        self.require(Action.INSTALL)
        ev = self.evidence
        if not ev.certificate_pem or not ev.fingerprint or not ev.certificate_id:
            raise InputError("Issue the certificate first.")
        if install_dir:
            self.settings["install_dir"] = str(Path(install_dir).expanduser().absolute())
        folder = self.install_dir
        key_pem = await asyncio.to_thread(self.key_path.read_bytes)
        label = ev.fingerprint.replace(":", "")[:16].lower()
        pair = await asyncio.to_thread(
            install_pair,
            folder,
            ev.certificate_pem.encode(),
            key_pem,
            label=label,
            key_passphrase=self.key_passphrase,
        )
        await asyncio.to_thread(activate, folder, label)
        current = folder / "current"
        self.model.record_install(
            str(folder), str(current / pair.cert_path.name), str(current / pair.key_path.name), pair.modes()
        )
        self.state.certificate(ev.certificate_id).update({"installed": True, "label": label})
        self.save()
        self.audit.record("installed", folder=str(folder), fingerprint=ev.fingerprint)
        await self.prove_install()

    async def prove_install(self) -> Observation:
        """A real mTLS request with exactly the installed files."""
        observation = await self.observe()
        if observation.status == "REJECTED":
            raise HandshakeRejected(
                "Klarna refused the installed certificate during the TLS handshake.",
                hint=observation.diagnosis.next_steps[0],
            )
        self.model.record_install_probe(observation.at, observation.fingerprint)
        self.save()
        return observation

    # ------------------------------------------------------------------ VERIFY
    async def observe(self) -> Observation:
        """One call with the installed files; returns what the verification header says."""
        from .install import current_pair

        pair = current_pair(self.install_dir)
        fingerprint = pair.fingerprint if pair else None
        now = self.clock()
        try:
            async with self.client(with_certificate=True) as klarna:
                answer = await klarna.list_certificates()
        except HandshakeRejected:
            return self._observed(Observation("REJECTED", fingerprint, now))
        return self._observed(Observation(answer.verification.value, fingerprint, now, answer.correlation_id))

    def _observed(self, observation: Observation) -> Observation:
        self.state.record_status(observation.status, observation.fingerprint, "verify")
        if observation.status == "VALID":
            self.record_valid(self.state.id_for_pair(None, observation.fingerprint), observation.at)
        self.save()  # writes only when something observed changed
        return observation

    def record_valid(self, credential_id: str | None, at: datetime) -> None:
        """Remember that our recorded certificate ``credential_id`` was seen VALID at ``at``."""
        if credential_id is not None:  # to the day: a reading repeated the same day changes nothing
            note_seen_valid(self.state.certificate(credential_id), at)

    async def verify_once(self) -> Observation:
        """One Verify-stage poll, recorded as model evidence."""
        self.require(Action.POLL_VERIFICATION)
        observation = await self.observe()
        self.model.record_verification(observation.status, observation.fingerprint, observation.at)
        self.save()
        return observation

    # ------------------------------------------------------------------ ENFORCE
    async def enforce(
        self, enforced_from: str, *, leave_out: tuple[str, ...] = (), confirm_leave_out: str | None = None
    ) -> str:
        """Schedule enforcement (NOW or a time <= 3 months ahead); returns the server's mode.
        Every path (onboarding in either front end, the dashboard, ``klarna-mtls enforce``) comes
        here, and the gate looks first: an installed certificate of ours must be VALID right now,
        and every declared runtime ready unless left out on purpose (facts and the override in
        wizard/runtime_gate.py, the rules in wizard/interlocks.py)."""
        from .runtime_gate import require_ready

        value = rules.parse_enforced_from(enforced_from, now=self.clock())
        look = await self.look()
        require_ready(self, set(look.listed_ids), leave_out, confirm_leave_out, situation=self.situation(look))
        if look.verification == "VALID":
            self.record_valid(look.current_id, self.clock())
        self.model.record_enforcement_request(value, self.clock())
        async with self.client() as klarna:
            answer = await klarna.set_enforcement(value)
        mode: str = answer.value.mode.value
        self.model.record_enforcement_mode(mode)
        self.settings["enforced_from_server"] = answer.value.enforced_from
        self.save()
        self.audit.record("enforcement_set", enforced_from=value, mode=mode)
        return mode

    async def read_enforcement(self) -> EnforcementState:
        async with self.client() as klarna:
            answer = await klarna.get_enforcement()
        known = answer.value.mode is not rules.EnforcementMode.UNKNOWN
        if self.model.stage is Stage.ENFORCE and self.evidence.enforced_from and known:
            self.model.record_enforcement_mode(answer.value.mode.value)
            self.save()
        return answer.value

    async def prove_enforced(self) -> bool:
        """True when a request without a client certificate is refused."""
        try:
            async with self.client(with_certificate=False) as klarna:
                await klarna.ping()
        except ApiError as exc:
            refused = exc.status in (401, 403)
            if refused:
                self.settings["enforcement_proved_at"] = rules.format_utc(self.clock())
                self.save()
            return refused
        return False

    async def remove_enforcement(self) -> EnforcementState:
        self.require(Action.UNENFORCE)
        async with self.client() as klarna:
            answer = await klarna.remove_enforcement()
        self.audit.record("enforcement_removed", mode=answer.value.mode.value)
        return answer.value


async def _enforcement_or_unknown(klarna: KlarnaClient) -> EnforcementState:
    """The enforcement state; an endpoint that is missing or refuses to say reads UNKNOWN (which the
    interlocks treat as "maybe on"), while an authentication failure still fails the call."""
    from .api import EnforcementState

    try:
        return (await klarna.get_enforcement()).value
    except ApiError as error:
        if error.status in (401, 403, 429) or error.status >= 500:
            raise
        return EnforcementState.unknown()


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


def refuse_when_full(certificates: Iterable[CertificateInfo]) -> None:
    active = [c for c in certificates if c.status == "ACTIVE"]
    if len(active) >= rules.MAX_ACTIVE_CERTIFICATES:
        oldest = sorted(active, key=lambda c: c.expires_at or "")[:3]
        names = ", ".join(c.credential_id for c in oldest)
        raise InterlockRefused(
            f"All {rules.MAX_ACTIVE_CERTIFICATES} certificate slots are in use.",
            hint=f"Revoke one you no longer need (oldest: {names}) before issuing another.",
        )
