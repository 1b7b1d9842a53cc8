"""The app: a thin composition root mapping the journal's stage to its screen."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
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
    BINDINGS = [Binding("f1,question_mark", "help", "Help")]

    def __init__(
        self,
        session: Session,
        *,
        sandbox=None,
        poll_interval: float = 2.0,
        autostart_polling: bool = True,
        poll_limit: float = 300.0,
        enforce_limit: float = 420.0,
        step_limit: float = 60.0,
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
        self.poll_limit = poll_limit  # Klarna's verification states settle within 5 minutes
        self.enforce_limit = enforce_limit  # enforcement applies up to 5 minutes after its time
        self.step_limit = step_limit  # a single step (test key, issue, install) gives up after this
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
                self.notify_resumed()
            self.unlock_from_store()  # after the stage screen: a passphrase prompt sits on top

    async def on_unmount(self) -> None:
        await self.session.close_connections()

    def notify_resumed(self) -> None:
        """Where the journal resumes; when it was pulled back to an earlier stage, why (the same
        words the CLI prints), long enough to read."""
        pulled = self.session.model.pulled_back_note()
        if pulled:
            self.notify(f"Resumed {pulled}", title="Pulled back", severity="warning", timeout=30)
        else:
            self.notify(f"Resumed at {self.session.model.stage.label}.")

    def unlock_from_store(self) -> None:
        """A resumed run loads the API key the one way the domain offers (``resolve_api_key``,
        in a thread: keyring calls block), and asks for an encrypted key's passphrase."""
        if self.session.evidence.key_encrypted and self.session.key_passphrase is None:
            from .modals import PassphraseModal

            self.push_screen(PassphraseModal(), self.use_key_passphrase)
        if not self.session.unlocked:
            self.load_api_key()

    @work(group="unlock", exclusive=True, exit_on_error=False)
    async def load_api_key(self) -> None:
        from wizard import secrets
        from wizard.errors import SecretStoreError

        kind = self.session.evidence.secret_backend
        asks = kind == "encrypted-file" and not os.environ.get(secrets.ENV_VAR)
        passphrase = await self.store_passphrase() if asks else None
        try:
            key, _ = await asyncio.to_thread(
                secrets.resolve_api_key, self.session.profile, self.session.paths, kind, passphrase=passphrase)
        except SecretStoreError as error:
            self.notify(f"{error.message} Enter your API key again on the Credentials step.", severity="warning")
            return
        self.session.unlock(key)

    async def store_passphrase(self) -> bytes | None:
        """The encrypted file's passphrase: KLARNA_MTLS_STORE_PASSPHRASE, else asked (in a worker)."""
        from wizard import secrets

        if os.environ.get(secrets.STORE_PASSPHRASE_ENV):
            return None  # resolve_api_key and open_profile_store read it themselves
        from .modals import PassphraseModal

        return await self.push_screen_wait(PassphraseModal(
            "Secret store passphrase", "Your API key is kept in the encrypted file. Enter its passphrase."))

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

    def reopen(self, stage: Stage) -> None:
        """Back to an earlier stage. When that discards later evidence, the model says what and
        the person confirms first; on cancel nothing changes."""
        from .modals import ConfirmModal

        try:
            discarded = self.session.model.discarded_by_going_back(stage)
        except WizardError as error:
            self.show_error(error)
            return
        if not discarded:
            self._go_back(stage)
            return
        consequence = "\n".join(
            [f"Reopening {stage.label} forgets what later steps recorded:"]
            + [f"• {line}" for line in discarded]
            + ["Nothing changes at Klarna or in your files; Next redoes the later steps."]
        )
        self.push_screen(ConfirmModal(f"Back to {stage.label}?", consequence, "Go back"),
                         lambda yes: self._go_back(stage) if yes else None)

    def _go_back(self, stage: Stage) -> None:
        try:
            self.session.go_back(stage)
        except WizardError as error:
            self.show_error(error)
            return
        self.show_stage()
        self.notify(f"Reopened {stage.label}.")

    # ------------------------------------------------------------------ help, palette, copy
    def action_help(self) -> None:
        from .help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen):
        """Every action of the screen, by name, then the way back, then Textual's own (its
        'Keys' panel is replaced by the help screen, which fits 80 columns)."""
        from .base import StageScreen
        from .help import screen_actions

        for action in screen_actions(screen):
            if action.enabled:
                yield SystemCommand(action.description, f"Key: {action.key}", _runner(screen, action.action))
        if isinstance(screen, StageScreen):
            for stage in STAGE_ORDER[: STAGE_ORDER.index(screen.STAGE)]:
                yield SystemCommand(f"Back to {stage.label}", "Reopen an earlier step (asks before "
                                    "discarding what later steps recorded)", _runner(self, f"reopen('{stage.value}')"))
        yield SystemCommand("Help", "Every key on this screen (F1 or ?)", self.action_help)
        yield from (c for c in super().get_system_commands(screen) if c.title != "Keys")

    def action_reopen(self, stage: str) -> None:
        self.reopen(Stage(stage))

    def copy(self, label: str, text: str) -> None:
        """Copy through the terminal (OSC 52), and say what was copied."""
        self.copy_to_clipboard(text)
        self.notify(f"Copied {label}. (If nothing arrives, your terminal does not allow OSC 52.)")

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
        from wizard import lifecycle, offline

        status = await (self._status_loader or lifecycle.gather_status)(session)
        await asyncio.to_thread(offline.remember, session, status)  # the next offline start shows it
        return status

    async def run_doctor(self, session: Session):
        from wizard.doctor import run_doctor

        return await (self._doctor or run_doctor)(session)

    async def load_keys(self, session: Session):
        from wizard import keys

        return await (self._keys_loader or keys.list_keys)(session)

    def display_base_url(self) -> str:
        return self.session.base_url if self.session.environment else "https://api-global.test.klarna.com"


STAGE_ORDER: list[Stage] = [s for s in Stage if s is not Stage.DONE]


def _runner(node, action: str):
    """A palette callback running ``action`` in ``node``'s namespace, as its key would."""

    def run() -> None:
        node.call_later(node.run_action, action)

    return run


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
