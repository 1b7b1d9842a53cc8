"""The app: a thin composition root mapping the journal's stage to its screen, and the one place
errors become a modal. What the screens use is in ScreenServices, handed to each of them."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

from rich.text import Text
from textual import work
from textual.app import SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from screens.assets import stylesheet
from screens.base import StageScreen
from screens.exit_report import crash_report, exit_summary
from screens.help import HelpScreen, screen_actions
from screens.modals import ConfirmModal, ErrorModal, display_path
from screens.progress import WizardScreen
from screens.services import ChoicesLoader, RunningSandbox, ScreenServices, Timing
from screens.shell import Shell
from screens.unlock import ask_key_passphrase, unlock
from screens.welcome import WelcomeScreen
from wizard.core.errors import KeyLocked, WizardError
from wizard.core.paths import Paths
from wizard.core.stages import ORDER, WORKING_STAGES, Stage
from wizard.services.session import Session

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
STAGE_ORDER: tuple[Stage, ...] = ORDER[:WORKING_STAGES]  # the stages a person can go back to
SANDBOX_ENFORCEMENT_DELAY = 10.0


def stage_screen(stage: Stage) -> type[WizardScreen[None]]:
    module, name = STAGE_SCREENS[stage].split(":")
    screen: type[WizardScreen[None]] = getattr(importlib.import_module(f"screens.{module}"), name)
    return screen


class WizardApp(Shell):
    """klarna-mtls onboarding wizard."""

    TITLE = "klarna-mtls"
    CSS_PATH = [stylesheet("app.tcss")]
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [Binding("f1,question_mark", "help", "Help")]

    def __init__(self, services: ScreenServices) -> None:
        super().__init__()
        self.services = services
        self.session = services.session

    # ------------------------------------------------------------------ navigation
    def on_mount(self) -> None:
        self.session.clients.keep_connections()  # every step and poll reuses one connection per certificate
        self.push_screen(WelcomeScreen(self.services))
        ev = self.session.evidence
        if self.session.has_journal and ev.account_id and self.session.model.stage is not Stage.CREDENTIALS:
            self.resume()

    @work(group="unlock", exclusive=True, exit_on_error=False)
    async def resume(self) -> None:
        """Unlock first, then show the stage: no call that needs the key or its passphrase (the
        Verify auto-poll, the dashboard load) runs before they are known."""
        try:
            await unlock(self, self.services)
        except Exception:
            self.show_resumed()  # the person goes on; the error handler says what failed
            raise
        self.show_resumed()

    def show_resumed(self) -> None:
        if self.session.model.stage is Stage.DONE:
            self.show_dashboard()
        else:
            self.show_stage()
            self.notify_resumed()

    async def on_unmount(self) -> None:
        await self.session.clients.close_connections()

    def notify_resumed(self) -> None:
        """Where the journal resumes; when it was pulled back to an earlier stage, why (the same
        words the CLI prints), long enough to read."""
        pulled = self.session.model.pulled_back_note()
        if pulled:
            self.notify(f"Resumed {pulled}", title="Pulled back", severity="warning", timeout=30)
        else:
            self.notify(f"Resumed at {self.session.model.stage.label}.")

    def show_dashboard(self) -> None:
        from screens.dashboard import DashboardScreen  # brings httpx and cryptography: not for the first paint

        self.push_screen(DashboardScreen(self.services))

    def show_stage(self) -> None:
        screen = stage_screen(self.session.model.stage)(self.services)
        if len(self.screen_stack) > 2:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def advance(self) -> None:
        try:
            self.session.advance()
        except WizardError as error:  # StageBlocked among them
            self.show_error(error)
            return
        self.show_stage()

    def update_header(self) -> None:
        env = self.session.environment or "?"
        stage = self.session.model.stage
        progress = "done" if stage is Stage.DONE else f"{stage.number}/{WORKING_STAGES}"
        self.sub_title = f"{self.session.profile} · {env} · {progress}"

    def reopen(self, stage: Stage) -> None:
        """Back to an earlier stage. When that discards later evidence, the model says what and
        the person confirms first; on cancel nothing changes."""
        try:
            discarded = self.session.model.discarded_by_going_back(stage)
        except WizardError as error:
            self.show_error(error)
            return
        if discarded:
            self.confirm_going_back(stage, discarded)
        else:
            self.go_back(stage)

    @work(group="reopen", exclusive=True, exit_on_error=False)
    async def confirm_going_back(self, stage: Stage, discarded: list[str]) -> None:
        consequence = "\n".join(
            [f"Reopening {stage.label} forgets what later steps recorded:"]
            + [f"• {line}" for line in discarded]
            + ["Nothing changes at Klarna or in your files; Next redoes the later steps."]
        )
        if not await self.push_screen_wait(ConfirmModal(f"Back to {stage.label}?", consequence, "Go back")):
            return
        self.go_back(stage)

    def go_back(self, stage: Stage) -> None:
        try:
            self.session.go_back(stage)
        except WizardError as error:
            self.show_error(error)
            return
        self.show_stage()
        self.notify(f"Reopened {stage.label}.")

    # ------------------------------------------------------------------ help, palette, copy
    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen[Any]) -> Iterator[SystemCommand]:
        """Every action of the screen, by name, then the way back, then Textual's own (its
        'Keys' panel is replaced by the help screen, which fits 80 columns)."""
        for action in screen_actions(screen):
            if action.enabled:
                yield SystemCommand(action.description, f"Key: {action.key}", _runner(screen, action.action))
        if isinstance(screen, StageScreen):
            for stage in STAGE_ORDER[: STAGE_ORDER.index(screen.STAGE)]:
                yield SystemCommand(
                    f"Back to {stage.label}",
                    "Reopen an earlier step (asks before discarding what later steps recorded)",
                    _runner(self, f"reopen('{stage.value}')"),
                )
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
        """An error modal that names the log, and a log line that records what failed (with the
        traceback, scrubbed by the log's filter, when it was not one of ours)."""
        self.services.note_failure(error)  # a refused API key is said again in the exit summary
        expected = isinstance(error, WizardError)
        logging.getLogger("klarna_mtls.tui").warning(
            "%s: %s", type(error).__name__, error, exc_info=None if expected else error
        )
        self.push_screen(ErrorModal(error, display_path(self.session.paths.log_path())))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.report_worker_state(event)

    def report_worker_state(self, event: Worker.StateChanged) -> None:
        """The one place worker failures become an error modal; the app never exits on them."""
        error = event.worker.error
        if event.state is not WorkerState.ERROR or error is None:
            return
        if isinstance(error, KeyLocked):
            self.session.set_key_passphrase(None)  # ask, then the person presses the step again
            self.ask_key_passphrase_again(error.message)
            return
        self.show_error(error)
        if isinstance(self.screen, ErrorModal):
            return
        refresh = getattr(self.screen, "refresh_state", None)
        if refresh:
            refresh()

    @work(group="key-passphrase", exclusive=True, exit_on_error=False)
    async def ask_key_passphrase_again(self, problem: str) -> None:
        if await ask_key_passphrase(self, self.services, problem=problem, force=True):
            self.notify("Key unlocked: run the step again.")

    # ------------------------------------------------------------------ crashes
    def _fatal_error(self) -> None:
        """Textual's own crash report prints every frame's local variables (an API key typed into
        a field, a passphrase): this one shows the traceback without locals, scrubbed of anything
        key-shaped or registered as secret, logs it, and says where the log is."""
        error = sys.exc_info()[1] or self._exception
        self.bell()
        report = crash_report(error, self.session.paths)
        # Never hard-wrapped (Rich would cut the log path at the console's width, and a copied
        # path would hold a line break): the terminal wraps long lines softly instead.
        longest = max((len(line) for line in report.splitlines()), default=0)
        self.error_console.width = max(self.error_console.width, longest)
        self._exit_renderables.append(Text(report))
        self._close_messages_no_wait()


def _runner(node: Screen[Any] | WizardApp, action: str) -> Callable[[], None]:
    """A palette callback running ``action`` in ``node``'s namespace, as its key would."""

    def run() -> None:
        node.call_later(node.run_action, action)

    return run


def make_app(
    profile: str = "default",
    *,
    sandbox: RunningSandbox | None = None,
    paths: Paths | None = None,
    store_choices: ChoicesLoader | None = None,
    **timing: Any,
) -> WizardApp:
    """Factory used by run_tui and the tests: configures a sandbox profile when given one;
    ``timing`` sets Timing's fields (tests shorten the waits)."""
    session = Session(paths or Paths.from_env(), profile)
    if sandbox is not None:
        session.configure(
            "sandbox",
            sandbox.account_id,
            base_url=sandbox.base_url,
            ca_bundle=sandbox.ca_bundle,
            install_dir=session.settings.install_dir,
        )
    return WizardApp(ScreenServices(session, sandbox=sandbox, timing=Timing(**timing), choices_loader=store_choices))


def run_tui(args: argparse.Namespace) -> int:
    sandbox = None
    profile = args.profile
    if args.sandbox:
        from wizard.sandbox import start_sandbox

        sandbox = start_sandbox(Paths.from_env().sandbox_dir(), enforcement_delay=SANDBOX_ENFORCEMENT_DELAY)
        if profile == "default":
            profile = "sandbox"
    app = make_app(profile, sandbox=sandbox)
    try:
        app.run()
    finally:
        if sandbox is not None:
            sandbox.stop()
    if app.return_code:  # a crash: the report (no locals, no secrets) is already printed
        return 3
    print(exit_summary(app.session, key_refused=app.services.key_refused))
    if sandbox is not None:
        print("  Sandbox: it stopped with the wizard; this certificate was a rehearsal.")
    return 0
