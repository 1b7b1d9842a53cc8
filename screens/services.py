"""What the screens use besides navigation, handed to each screen: the profile's Session, the domain
calls behind their data (Klarna's status, the doctor, the API keys, the secret stores), the
encrypted file's passphrase for this run, how long they wait, and the facts they display. The app
holds no data of its own; tests replace the calls here, not on the app."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from wizard.core.logs import register_secret
from wizard.core.secret_value import SecretValue
from wizard.services import waits
from wizard.services.session import Session

if TYPE_CHECKING:
    from wizard.core.findings import Finding
    from wizard.secrets.base import SecretStore
    from wizard.secrets.resolve import StoreChoice
    from wizard.services.api_keys import KeyRow
    from wizard.services.renewal import CronAdvice
    from wizard.services.repair import RepairReport
    from wizard.services.status import ProfileStatus

StatusLoader = Callable[[Session], Awaitable["ProfileStatus"]]
FindingsLoader = Callable[[Session], Awaitable["list[Finding]"]]
KeysLoader = Callable[[Session], Awaitable["list[KeyRow]"]]
ChoicesLoader = Callable[[], "list[StoreChoice]"]
PairChecker = Callable[[Session], "str | None"]
CronAdvisor = Callable[[Session], "CronAdvice"]
Repairer = Callable[[Session, Callable[[str], None]], Awaitable["RepairReport"]]


@dataclass
class Timing:
    """How often the screens poll Klarna and how long they wait before giving up. Mutable: a
    benchmark changes the interval of a running app."""

    poll_interval: float = 2.0
    poll_limit: float = 300.0  # Klarna's verification states settle within 5 minutes
    # a rotation's new certificate: an enforced account may refuse it for up to 5 minutes
    rotation_limit: float = waits.NEW_CERTIFICATE_LIMIT
    enforce_limit: float = 420.0  # enforcement applies up to 5 minutes after its time
    step_limit: float = waits.STEP_LIMIT  # a single step (test key, issue, install) gives up after this
    autostart_polling: bool = True  # the Verify screen starts polling when it opens


class RunningSandbox(Protocol):
    """The in-process sandbox (``wizard.sandbox.Sandbox``), as far as the TUI uses it."""

    @property
    def api_key(self) -> str: ...
    @property
    def account_id(self) -> str: ...
    @property
    def base_url(self) -> str: ...
    @property
    def ca_bundle(self) -> Path: ...
    @property
    def enforcement_delay(self) -> float: ...


class ScreenServices:
    """The data and actions every screen may use. The loaders, the pair checker, the repairer and
    the cron advisor are the test seams (None: the domain's own call, imported when first used: they bring httpx, cryptography
    and keyring)."""

    def __init__(
        self,
        session: Session,
        *,
        sandbox: RunningSandbox | None = None,
        timing: Timing | None = None,
        status_loader: StatusLoader | None = None,
        findings_loader: FindingsLoader | None = None,
        keys_loader: KeysLoader | None = None,
        choices_loader: ChoicesLoader | None = None,
        pair_checker: PairChecker | None = None,
        repairer: Repairer | None = None,
        cron_advisor: CronAdvisor | None = None,
    ) -> None:
        self.session = session
        self.sandbox = sandbox
        self.timing = timing or Timing()
        self.status_loader = status_loader
        self.findings_loader = findings_loader
        self.keys_loader = keys_loader
        self.choices_loader = choices_loader
        self.pair_checker = pair_checker
        self.repairer = repairer
        self.cron_advisor = cron_advisor  # the crontab lines name this machine's paths: fixed in snapshots
        self.store_passphrase: SecretValue[bytes] | None = None  # the encrypted file's, this run only
        self.key_refused: str | None = None  # Klarna's reason, when it refused the tool's API key in this run
        self.status_notes: list[str] = []  # what the last status said beside it (the way back, a stage corrected)

    # ------------------------------------------------------------------ what the screens display
    @property
    def sandbox_available(self) -> bool:
        return self.sandbox is not None

    @property
    def prefilled_api_key(self) -> str | None:
        """The sandbox's own key, until a key has been proved: a rehearsal needs no portal."""
        if self.sandbox is None or self.session.evidence.api_call_ok_at:
            return None
        return self.sandbox.api_key

    @property
    def sandbox_note(self) -> str:
        if self.sandbox is None:
            return ""
        return f"Sandbox: enforcement applies {self.sandbox.enforcement_delay:g} s after the chosen time (Klarna: up to 5 minutes)."

    def display_base_url(self) -> str:
        return self.session.base_url if self.session.environment else "https://api-global.test.klarna.com"

    # ------------------------------------------------------------------ the domain calls
    async def store_choices(self) -> list[StoreChoice]:
        from wizard.secrets.keyring_store import probe_keyring  # keyring: not needed for the first paint
        from wizard.secrets.resolve import StoreChoice, store_choices

        if self.choices_loader is not None:  # injected (tests, a keyring-less rehearsal)
            return self.choices_loader()
        probe = await asyncio.to_thread(probe_keyring)
        if self.session.environment == "sandbox":  # the stores a live run uses can be rehearsed too
            rehearsed = [c for c in store_choices(probe) if c.kind in ("keyring", "encrypted-file") and c.available]
            return [StoreChoice("sandbox", "Sandbox-only file", "Sandbox keys are throwaway.", True), *rehearsed]
        return store_choices(probe)

    async def load_status(self) -> ProfileStatus:
        """Klarna's view of the profile now, kept in the journal for the next offline start."""
        from wizard.services import offline
        from wizard.services.recovery import status_recovering

        if self.status_loader is not None:
            status, way_back = await self.status_loader(self.session), None
        else:  # as `klarna-mtls status`: without the certificate, saying so, when Klarna refuses it unenforced
            found = await status_recovering(self.session)
            status, way_back = found.value, found.note
        self.status_notes = [note for note in (way_back, status.stage_note) if note]
        self.key_refused = None  # Klarna answered this key
        await asyncio.to_thread(offline.remember, self.session, status)
        return status

    def note_failure(self, error: BaseException) -> None:
        """Remember when Klarna refused the API key itself (401), for the exit summary: the tool
        cannot work on this profile until it has a working key."""
        from wizard.services.api_keys import key_refusal

        self.key_refused = key_refusal(error) or self.key_refused

    async def local_problem(self) -> str | None:
        """What is wrong with the files installed here (missing, broken, unsafe), or None."""
        from wizard.services import offline

        return await asyncio.to_thread(self.pair_checker or offline.local_problem, self.session)

    async def run_doctor(self) -> list[Finding]:
        from wizard.services.doctor import run_doctor

        return await (self.findings_loader or run_doctor)(self.session)

    async def repair_needed(self) -> bool:
        """Whether ``repair`` has something to restore (a missing or damaged installed file; an
        unsafe file mode is not its business)."""
        from wizard.services.repair import installed_pair_problems

        return bool(await asyncio.to_thread(installed_pair_problems, self.session))

    def cron_advice(self) -> CronAdvice:
        """The crontab lines that keep this profile healthy (``renewal.cron_advice``, their one home)."""
        from wizard.services.renewal import cron_advice

        return (self.cron_advisor or cron_advice)(self.session)

    async def repair(self, on_step: Callable[[str], None]) -> RepairReport:
        """``klarna-mtls repair``'s call: the installed pair restored from what the tool keeps."""
        from wizard.services.repair import repair

        return await (self.repairer or repair)(self.session, on_step)

    async def load_keys(self) -> list[KeyRow]:
        from wizard.services import api_keys

        return await (self.keys_loader or api_keys.list_keys)(self.session)

    # ------------------------------------------------------------------ the secret stores
    def open_store(self, kind: str, passphrase: bytes | None = None) -> SecretStore:
        """The store ``kind``; the encrypted file opens with ``passphrase`` or the one given earlier
        in this run (raises SecretStoreError when neither is known)."""
        from wizard.secrets.resolve import open_store

        if not passphrase and self.store_passphrase:
            passphrase = self.store_passphrase.reveal()
        return open_store(kind, self.session.paths, passphrase=passphrase)

    def remember_store_passphrase(self, passphrase: SecretValue[bytes]) -> None:
        """The encrypted file's passphrase, for keys created or rotated later in this run."""
        register_secret(passphrase.reveal())  # never in a log line, even quoted by a library
        self.store_passphrase = passphrase
