"""The app: a thin composition root mapping the journal's stage to its screen."""

from __future__ import annotations

import argparse
import asyncio
from typing import Callable

from textual.app import App
from textual.worker import Worker, WorkerState

from wizard.errors import StageBlocked, WizardError
from wizard.flow import Session
from wizard.model import Stage
from wizard.paths import Paths

from .assets import stylesheet
from .modals import ErrorModal
from .welcome import WelcomeScreen

# Stage screens are imported when first shown, after the first paint.
STAGE_SCREENS = {
    Stage.CREDENTIALS: "credentials:CredentialsScreen",
    Stage.KEY_AND_CSR: "key_csr:KeyCsrScreen",
    Stage.ISSUE: "issue:IssueScreen",
    Stage.INSTALL: "install:InstallScreen",
    Stage.VERIFY: "verify:VerifyScreen",
    Stage.ENFORCE: "enforce:EnforceScreen",
    Stage.DONE: "done:DoneScreen",
}


def stage_screen(stage: Stage):
    import importlib

    module, name = STAGE_SCREENS[stage].split(":")
    return getattr(importlib.import_module(f"screens.{module}"), name)
SANDBOX_ENFORCEMENT_DELAY = 10.0


class WizardApp(App):
    """klarna-mtls onboarding wizard."""

    TITLE = "klarna-mtls"
    CSS_PATH = [stylesheet("app.tcss")]
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        session: Session,
        *,
        sandbox=None,
        poll_interval: float = 2.0,
        autostart_polling: bool = True,
        enforce_watch_attempts: int = 200,
        store_choices: Callable | None = None,
        status_loader: Callable | None = None,
        doctor: Callable | None = None,
        keys_loader: Callable | None = None,
    ) -> None:
        super().__init__()
        self.session = session
        self.sandbox = sandbox
        self.poll_interval = poll_interval
        self.autostart_polling = autostart_polling
        self.enforce_watch_attempts = enforce_watch_attempts
        self._store_choices = store_choices
        self._status_loader = status_loader
        self._doctor = doctor
        self._keys_loader = keys_loader

    # ------------------------------------------------------------------ navigation
    def on_mount(self) -> None:
        self.session.keep_connections()  # every step and poll reuses one connection per certificate
        ev = self.session.evidence
        self.push_screen(WelcomeScreen(self.session, sandbox_available=self.sandbox is not None))
        if self.session.has_journal and ev.account_id and self.session.model.stage is not Stage.CREDENTIALS:
            if self.session.model.stage is Stage.DONE:
                self.show_dashboard()
            else:
                self.show_stage()
                self.notify(f"Resumed at {self.session.model.stage.label}.")
            self.unlock_from_store()  # after the stage screen: a passphrase prompt sits on top

    async def on_unmount(self) -> None:
        await self.session.close_connections()

    def unlock_from_store(self) -> None:
        """A resumed run loads the API key from the store the user chose (keyring calls block:
        a thread worker), and asks for an encrypted key's passphrase."""
        if self.session.evidence.key_encrypted and self.session.key_passphrase is None:
            from .modals import PassphraseModal

            self.push_screen(PassphraseModal(), self.use_key_passphrase)
        kind = self.session.evidence.secret_backend
        if self.session.unlocked or kind not in ("keyring", "sandbox", "env"):
            return

        def load() -> None:
            key = self.open_store(kind, None).get(self.session.profile)
            if key:
                self.session.unlock(key)
            else:
                self.call_from_thread(self.notify, "Enter your API key again on the Credentials step.", severity="warning")

        self.run_worker(load, thread=True, name="unlock", group="unlock", exit_on_error=False)

    def use_key_passphrase(self, passphrase: bytes | None) -> None:
        from wizard import crypto
        from wizard.errors import CryptoError

        if passphrase is None:
            self.notify("Without the key passphrase, calls that need the certificate will fail.", severity="warning")
            return
        try:
            crypto.load_private_key_file(self.session.key_path, passphrase)
        except CryptoError as error:
            self.show_error(error)
            return
        self.session.set_key_passphrase(passphrase)

    def show_dashboard(self) -> None:
        from .dashboard import DashboardScreen

        self.push_screen(DashboardScreen(self.session))

    def show_stage(self) -> None:
        stage = self.session.model.stage
        screen = stage_screen(stage)(self.session)
        if len(self.screen_stack) > 2:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def advance(self) -> None:
        try:
            self.session.advance()
        except (StageBlocked, WizardError) as error:
            self.show_error(error)
            return
        self.show_stage()

    def update_header(self) -> None:
        env = self.session.environment or "?"
        stage = self.session.model.stage
        progress = "done" if stage is Stage.DONE else f"{stage.number}/6"
        self.sub_title = f"{self.session.profile} · {env} · {progress}"

    # ------------------------------------------------------------------ errors
    def show_error(self, error: BaseException) -> None:
        self.push_screen(ErrorModal(error))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.report_worker_state(event)

    def report_worker_state(self, event: Worker.StateChanged) -> None:
        """The one place worker failures become an error modal; the app never exits on them."""
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.show_error(event.worker.error)
            if isinstance(self.screen, ErrorModal):
                return
            refresh = getattr(self.screen, "refresh_state", None)
            if refresh:
                refresh()

    # ------------------------------------------------------------------ services for screens
    @property
    def prefilled_api_key(self) -> str | None:
        return self.sandbox.api_key if self.sandbox is not None and not self.session.evidence.api_call_ok_at else None

    @property
    def sandbox_note(self) -> str:
        if self.sandbox is None:
            return ""
        return f"Sandbox: enforcement applies {self.sandbox.enforcement_delay:g} s after the chosen time (Klarna: up to 5 minutes)."

    async def store_choices(self):
        from wizard import secrets

        if self.session.environment == "sandbox":
            return [secrets.StoreChoice("sandbox", "Sandbox-only file", "Sandbox keys are throwaway.", True)]
        if self._store_choices is not None:
            return self._store_choices()
        probe = await asyncio.to_thread(secrets.probe_keyring)
        return secrets.store_choices(probe)

    def open_store(self, kind: str, passphrase: bytes | None):
        from wizard import secrets

        return secrets.open_store(kind, self.session.paths, passphrase=passphrase)

    async def load_status(self, session: Session):
        from wizard import lifecycle

        return await (self._status_loader or lifecycle.gather_status)(session)

    async def run_doctor(self, session: Session):
        from wizard import lifecycle

        return await (self._doctor or lifecycle.run_doctor)(session)

    async def load_keys(self, session: Session):
        from wizard import keys

        return await (self._keys_loader or keys.list_keys)(session)

    def display_base_url(self) -> str:
        return self.session.base_url if self.session.environment else "https://api-global.test.klarna.com"


def make_app(profile: str = "default", *, sandbox=None, paths: Paths | None = None, **options) -> WizardApp:
    """Factory used by run_tui and the tests: configures a sandbox profile when given one."""
    session = Session(paths or Paths.from_env(), profile)
    if sandbox is not None:
        session.configure(
            "sandbox", sandbox.account_id, base_url=sandbox.base_url, ca_bundle=sandbox.ca_bundle,
            install_dir=session.settings.get("install_dir"),
        )
    return WizardApp(session, sandbox=sandbox, **options)


def run_tui(args: argparse.Namespace) -> int:
    sandbox = None
    profile = args.profile
    if args.sandbox:
        from wizard.sandbox import start_sandbox

        sandbox = start_sandbox(Paths.from_env().sandbox_dir(), enforcement_delay=SANDBOX_ENFORCEMENT_DELAY)
        if profile == "default":
            profile = "sandbox"
    try:
        make_app(profile, sandbox=sandbox).run()
    finally:
        if sandbox is not None:
            sandbox.stop()
    return 0
