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
    from wizard.services.status import ProfileStatus

StatusLoader = Callable[[Session], Awaitable["ProfileStatus"]]
FindingsLoader = Callable[[Session], Awaitable["list[Finding]"]]
KeysLoader = Callable[[Session], Awaitable["list[KeyRow]"]]
ChoicesLoader = Callable[[], "list[StoreChoice]"]
PairChecker = Callable[[Session], "str | None"]


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
    """The data and actions every screen may use. The loaders and the pair checker are the test
    seams (None: the domain's own call, imported when first used: they bring httpx, cryptography
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
    ) -> None:
        self.session = session
        self.sandbox = sandbox
        self.timing = timing or Timing()
        self.status_loader = status_loader
        self.findings_loader = findings_loader
        self.keys_loader = keys_loader
        self.choices_loader = choices_loader
        self.pair_checker = pair_checker
        self.store_passphrase: SecretValue[bytes] | None = None  # the encrypted file's, this run only
        self.key_refused: str | None = None  # Klarna's reason, when it refused the tool's API key in this run

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
        from wizard.services.status import gather_status

        status = await (self.status_loader or gather_status)(self.session)
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
