"""The app: a thin composition root mapping the journal's stage to its screen."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from screens.assets import stylesheet
from screens.modals import ErrorModal
from screens.welcome import WelcomeScreen
from wizard.core.env_vars import API_KEY_ENV, HOME_ENV, KEY_PASSPHRASE_ENV, STORE_PASSPHRASE_ENV
from wizard.core.errors import KeyLocked, SecretStoreError, StageBlocked, WizardError
from wizard.core.logs import register_secret
from wizard.core.paths import Paths
from wizard.core.secret_value import SecretValue
from wizard.core.stages import Stage
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
        self.store_passphrase: SecretValue[bytes] | None = None  # the encrypted file's, this run only

    # ------------------------------------------------------------------ navigation
    def on_mount(self) -> None:
        self.session.clients.keep_connections()  # every step and poll reuses one connection per certificate
        ev = self.session.evidence
        self.push_screen(WelcomeScreen(self.session, sandbox_available=self.sandbox is not None))
        if self.session.has_journal and ev.account_id and self.session.model.stage is not Stage.CREDENTIALS:
            # Unlock first, then show the stage: no call that needs the key or its passphrase
            # (the Verify auto-poll, the dashboard load) runs before they are known.
            self.unlock_then(self.show_resumed)

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

    # ------------------------------------------------------------------ unlocking
    def unlock_then(self, then: Callable[[], None]) -> None:
        """Ask what this run needs, in order: the private key's passphrase, then the API key."""
        self.ask_key_passphrase(lambda: self.load_api_key(then))

    def ask_key_passphrase(
        self, then: Callable[[], None] | None = None, problem: str = "", force: bool = False
    ) -> None:
        """The key passphrase modal (KLARNA_MTLS_KEY_PASSPHRASE is tried first); a wrong one is
        asked again. Cancelling goes on: calls that need the key ask again when they fail."""
        from screens.modals import PassphraseModal
        from wizard.core import crypto

        then = then or (lambda: None)
        if not force and (not self.session.evidence.key_encrypted or self.session.key_passphrase is not None):
            then()
            return
        path = self.session.key_path

        def check(passphrase: bytes) -> bytes:
            crypto.load_private_key_file(path, passphrase)
            return passphrase

        def answered(passphrase: object) -> None:  # the modal dismisses with what check() returned
            if not isinstance(passphrase, bytes):
                self.notify(
                    "Without the key passphrase, steps that use the certificate will ask again.", severity="warning"
                )
            else:
                register_secret(passphrase)  # never in a log line, even quoted by a library
                self.session.set_key_passphrase(passphrase)
            then()

        self.push_screen(
            PassphraseModal(
                "Private key passphrase",
                f"Your private key {display_path(path)} is encrypted. Enter its passphrase to use it in this run.",
                check,
                env_var=KEY_PASSPHRASE_ENV,
                problem=problem,
            ),
            answered,
        )

    def load_api_key(self, then: Callable[[], None]) -> None:
        """A resumed run loads the API key the one way the domain offers (``resolve_api_key``:
        KLARNA_API_KEY when set, else the store the user chose). The encrypted file asks for its
        passphrase; keyring calls block, so they run in a thread worker."""
        from wizard.secrets.resolve import resolve_api_key

        kind = self.session.evidence.secret_backend
        if self.session.unlocked or kind not in ("keyring", "sandbox", "env", "encrypted-file"):
            then()
        elif kind == "encrypted-file" and not os.environ.get(API_KEY_ENV):
            self.ask_store_passphrase(then)
        else:

            def load() -> None:
                try:
                    key, _ = resolve_api_key(self.session.profile, self.session.paths, kind)
                    self.session.unlock(key)
                except SecretStoreError as error:
                    advice = self.missing_key_advice(kind) if kind == "env" else error.message
                    self.call_from_thread(self.notify, advice, severity="warning", timeout=15)
                finally:
                    self.call_from_thread(then)

            self.run_worker(load, thread=True, name="unlock", group="unlock", exit_on_error=False)

    def ask_store_passphrase(self, then: Callable[[], None] | None = None, problem: str = "") -> None:
        from screens.modals import PassphraseModal
        from wizard.secrets.resolve import resolve_api_key

        then = then or (lambda: None)

        def check(passphrase: bytes):
            key, _ = resolve_api_key(
                self.session.profile, self.session.paths, "encrypted-file", passphrase=passphrase, use_env=False
            )
            return SecretValue(passphrase), SecretValue(key)

        def answered(result) -> None:
            if result is None:
                self.notify("Without the API key, steps that call Klarna cannot run.", severity="warning")
            else:
                self.store_passphrase, key = result
                register_secret(self.store_passphrase.reveal())
                self.session.unlock(key)
            then()

        self.push_screen(
            PassphraseModal(
                "Secrets file passphrase",
                "Your API key is kept in the encrypted secrets file "
                f"{display_path(self.session.paths.secrets_file())}. Enter its passphrase to load the key for this run.",
                check,
                env_var=STORE_PASSPHRASE_ENV,
                problem=problem,
                input_id="store-passphrase-modal",
            ),
            answered,
        )

    def missing_key_advice(self, kind: str) -> str:
        if kind == "env":
            return (
                f"KLARNA_API_KEY is not set. Quit (ctrl+q) and start again with "
                f"KLARNA_API_KEY=… klarna-mtls --profile {self.session.profile}."
            )
        return f"The {kind} store holds no API key for profile '{self.session.profile}'."

    def show_dashboard(self) -> None:
        from screens.dashboard import DashboardScreen

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

    # ------------------------------------------------------------------ crashes
    def _fatal_error(self) -> None:
        """Textual's own crash report prints every frame's local variables (an API key typed into
        a field, a passphrase): this one shows the traceback without locals, scrubbed of anything
        key-shaped or registered as secret, logs it, and says where the log is."""
        import sys

        from rich.text import Text

        error = sys.exc_info()[1] or self._exception
        self.bell()
        self._exit_renderables.append(Text(crash_report(error, self.session.paths)))
        self._close_messages_no_wait()

    def reopen(self, stage: Stage) -> None:
        """Back to an earlier stage. When that discards later evidence, the model says what and
        the person confirms first; on cancel nothing changes."""
        from screens.modals import ConfirmModal

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
        self.push_screen(
            ConfirmModal(f"Back to {stage.label}?", consequence, "Go back"),
            lambda yes: self._go_back(stage) if yes else None,
        )

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
        from screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen):
        """Every action of the screen, by name, then the way back, then Textual's own (its
        'Keys' panel is replaced by the help screen, which fits 80 columns)."""
        from screens.base import StageScreen
        from screens.help import screen_actions

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
        import logging

        expected = isinstance(error, WizardError)
        logging.getLogger("klarna_mtls.tui").warning(
            "%s: %s", type(error).__name__, error, exc_info=None if expected else error
        )
        self.push_screen(ErrorModal(error, display_path(self.session.paths.log_path())))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.report_worker_state(event)

    def report_worker_state(self, event: Worker.StateChanged) -> None:
        """The one place worker failures become an error modal; the app never exits on them."""
        if event.state is WorkerState.ERROR and isinstance(event.worker.error, KeyLocked):
            self.session.set_key_passphrase(None)  # ask, then the person presses the step again
            self.ask_key_passphrase(
                lambda: self.notify("Key unlocked: run the step again.") if self.session.key_passphrase else None,
                problem=event.worker.error.message,
                force=True,
            )
        elif event.state is WorkerState.ERROR and event.worker.error is not None:
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
        from wizard.secrets import keyring_store, resolve

        if self._store_choices is not None:  # injected (tests, a keyring-less rehearsal)
            return self._store_choices()
        if self.session.environment == "sandbox":
            return [resolve.StoreChoice("sandbox", "Sandbox-only file", "Sandbox keys are throwaway.", True)]
        probe = await asyncio.to_thread(keyring_store.probe_keyring)
        return resolve.store_choices(probe)

    async def ask_store_passphrase_for_keys(self) -> bytes | None:
        """The encrypted file's passphrase for keys created or rotated later (call from a worker):
        the one given earlier in this run, else KLARNA_MTLS_STORE_PASSPHRASE (None: the domain
        reads it), else asked and checked. None when cancelled."""
        from screens.modals import PassphraseModal
        from wizard.secrets.resolve import open_profile_store, prove_opens

        if self.store_passphrase:
            return self.store_passphrase.reveal()
        if os.environ.get(STORE_PASSPHRASE_ENV):
            return None  # open_profile_store reads it itself

        def check(passphrase: bytes) -> SecretValue[bytes]:
            store = open_profile_store("encrypted-file", self.session.paths, passphrase=passphrase)
            prove_opens(store)  # a wrong passphrase is said here, before any key is created
            return SecretValue(passphrase)

        answer = await self.push_screen_wait(
            PassphraseModal(
                "Secrets file passphrase",
                "The new key is kept in the encrypted secrets file "
                f"{display_path(self.session.paths.secrets_file())}. Enter its passphrase.",
                check,
                input_id="store-passphrase-modal",
            )
        )
        if not isinstance(answer, SecretValue):
            return None
        self.store_passphrase = answer
        register_secret(answer.reveal())
        return answer.reveal()

    def open_store(self, kind: str, passphrase: bytes | None = None):
        """The store ``kind``; the encrypted file opens with ``passphrase`` or the one given earlier
        in this run (raises SecretStoreError when neither is known)."""
        from wizard.secrets.resolve import open_store

        if not passphrase and self.store_passphrase:
            passphrase = self.store_passphrase.reveal()
        return open_store(kind, self.session.paths, passphrase=passphrase)

    async def load_status(self, session: Session):
        from wizard.services import offline
        from wizard.services.status import gather_status

        status = await (self._status_loader or gather_status)(session)
        await asyncio.to_thread(offline.remember, session, status)  # the next offline start shows it
        return status

    async def run_doctor(self, session: Session):
        from wizard.services.doctor import run_doctor

        return await (self._doctor or run_doctor)(session)

    async def load_keys(self, session: Session):
        from wizard.services import api_keys

        return await (self._keys_loader or api_keys.list_keys)(session)

    def display_base_url(self) -> str:
        return self.session.base_url if self.session.environment else "https://api-global.test.klarna.com"


def display_path(path) -> str:
    """A path as a person can retype it: under $KLARNA_MTLS_HOME or ~ when it is there."""
    import os
    from pathlib import Path

    path = Path(path)
    for prefix, root in ((f"${HOME_ENV}", os.environ.get(HOME_ENV)), ("~", str(Path.home()))):
        if root and path.is_relative_to(root):
            return f"{prefix}/{path.relative_to(root)}"
    return str(path)


def crash_report(error: BaseException | None, paths: Paths) -> str:
    """What a person sees after a crash, and what the log gets: no locals, no secrets."""
    import contextlib
    import logging
    import traceback

    from wizard.core.logs import scrub

    log_path = paths.log_path()

    from wizard.core.logs import setup_logging

    with contextlib.suppress(Exception):  # a crash report must not fail on an unwritable log
        setup_logging(paths)  # idempotent: the report reaches the log even from a test harness
    name = type(error).__name__ if error is not None else "error"
    details = "".join(traceback.format_exception(error)) if error is not None else ""
    logging.getLogger("klarna_mtls.tui").error("the TUI stopped on an unexpected %s\n%s", name, details)
    return scrub(
        f"klarna-mtls stopped on an unexpected {name}. Your progress is saved: run it again to resume.\n"
        f"Please report it with the log {log_path} (secrets are never written there).\n\n{details}"
    )


def exit_summary(session: Session) -> str:
    """What stays in the terminal after quitting, like certbot's and gh's last lines."""
    ev = session.evidence
    if not ev.certificate_id:
        return f"klarna-mtls: profile '{session.profile}' stopped at {session.model.stage.label}; run klarna-mtls again to resume."
    lines = [
        f"klarna-mtls: profile '{session.profile}' ({ev.environment}) · stage {session.model.stage.label}",
        f"  Certificate: {ev.certificate_id}",
        f"  SHA-256: {ev.fingerprint}",
    ]
    if ev.cert_path:
        lines += [
            f"  Certificate file: {ev.cert_path}",
            f"  Private key file: {ev.installed_key_path}" + (" (encrypted)" if ev.key_encrypted else ""),
        ]
    expiry = _expiry_line(ev.certificate_pem)
    if expiry:
        lines.append(expiry)
    if ev.enforcement_mode:
        lines.append(f"  Enforcement: {ev.enforcement_mode} from {ev.enforced_from}")
    if ev.secret_backend_name:
        lines.append(f"  API key kept in: {ev.secret_backend_name}")
    lines += [
        "  Monitor from cron, e.g. daily:",
        f"    17 6 * * * klarna-mtls check --profile {session.profile} --warn-days 60 --critical-days 14",
        f"  Log: {session.paths.log_path()}",
    ]
    return "\n".join(lines)


def _expiry_line(certificate_pem: str | None) -> str:
    from wizard.core import crypto, rules
    from wizard.core.errors import CryptoError

    if not certificate_pem:
        return ""
    try:
        expires = crypto.load_certificate(certificate_pem).not_valid_after_utc
    except CryptoError:
        return ""
    renew = expires - rules.RENEWAL_WINDOW
    return f"  Expires: {expires:%Y-%m-%d}; start the renewal (klarna-mtls rotate) by {renew:%Y-%m-%d}."


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
            "sandbox",
            sandbox.account_id,
            base_url=sandbox.base_url,
            ca_bundle=sandbox.ca_bundle,
            install_dir=session.settings.install_dir,
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
    app = make_app(profile, sandbox=sandbox)
    try:
        app.run()
    finally:
        if sandbox is not None:
            sandbox.stop()
    if app.return_code:  # a crash: the report (no locals, no secrets) is already printed
        return 3
    print(exit_summary(app.session))
    if sandbox is not None:
        print("  Sandbox: it stopped with the wizard; this certificate was a rehearsal.")
    return 0
