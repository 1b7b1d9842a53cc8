"""Welcome / profile: environment and account id; says where a saved journey left off."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.validation import Function
from textual.widgets import Button, Footer, Header, Input, Label, RadioSet, Static

from screens.base import WizardScreen
from screens.toggles import MarkedRadioButton
from wizard.core import rules
from wizard.core.errors import InputError, WizardError
from wizard.core.stages import WORKING_STAGES

SANDBOX_NOT_RUNNING_LABEL = "sandbox (start klarna-mtls --sandbox)"


def _valid_account(text: str) -> bool:
    try:
        rules.parse_account_id(text)
    except InputError:
        return False
    return True


class WelcomeScreen(WizardScreen[None]):
    """First screen: pick the environment and account; resume a saved journey."""

    BINDINGS = [Binding("ctrl+n", "start", "Continue", priority=True)]

    def compose(self) -> ComposeResult:
        ev = self.session.evidence
        yield Header()
        with VerticalScroll(id="body"):
            yield Static("Set up mTLS for your Klarna account", classes="heading")
            if self.session.has_journal and ev.account_id and self.session.model.stage.number > 1:
                stage = self.session.model.stage
                yield Static(
                    f"You left off at {stage.label} ({stage.number}/{WORKING_STAGES}). Continue to resume there.",
                    id="resume-note",
                )
            yield Label("Environment")
            with RadioSet(id="environment"):
                for env in rules.ENVIRONMENTS:
                    label = SANDBOX_NOT_RUNNING_LABEL if env == "sandbox" and not self.sandbox_reachable else env
                    yield MarkedRadioButton(label, value=(ev.environment or "test") == env, id=f"env-{env}")
            yield Label("Account id")
            yield Input(
                value=ev.account_id or "",
                placeholder="krn:partner:global:account:test:LYABCDEI",
                id="account-id",
                validators=[Function(_valid_account, "Not a Klarna account id (krn:partner:global:account:…).")],
            )
            yield Static("", id="account-error", classes="error-text")
            yield Static(
                "Your account id (krn:partner:global:account:…) and API key are in the Klarna Portal, "
                "API credentials section.",
                id="portal-hint",
                classes="muted",
            )
            with Horizontal(classes="nav"):
                yield Button("Continue ▶", id="start", variant="primary")

    def on_mount(self) -> None:
        self.call_after_refresh(self.mount, Footer())  # key hints after the first paint
        self.app.update_header()
        if self.session.evidence.account_id:
            self.query_one("#start", Button).focus()  # prefilled: Enter continues
        else:
            self.query_one("#account-id", Input).focus()  # type or paste it, then Enter continues

    def on_input_changed(self, event: Input.Changed) -> None:
        result = event.validation_result
        message = "" if result is None or result.is_valid or not event.value else result.failure_descriptions[0]
        self.query_one("#account-error", Static).update(message)

    @property
    def sandbox_reachable(self) -> bool:
        """A sandbox runs in this process (--sandbox), or the profile names one (sandbox serve)."""
        return self.services.sandbox_available or bool(self.session.settings.base_url)

    def chosen_environment(self) -> str:
        pressed = self.query_one("#environment", RadioSet).pressed_button
        return (pressed.id or "").removeprefix("env-") if pressed else "test"

    @on(Button.Pressed, "#start")
    @on(Input.Submitted, "#account-id")
    def action_start(self) -> None:
        environment = self.chosen_environment()
        account_id = self.query_one("#account-id", Input).value.strip()
        try:
            if environment == "sandbox" and not self.sandbox_reachable:
                raise WizardError(
                    "The sandbox is a local imitation of Klarna that runs inside klarna-mtls only when it "
                    "starts with --sandbox; this run has none, so there is nothing to connect to. Nothing was "
                    "saved for this profile.",
                    title="The sandbox is not running",
                    hint="Quit (ctrl+q) and run: klarna-mtls --sandbox. To rehearse without an OS keyring, choose "
                    "'Encrypted file' on its Credentials step.",
                )
            self.session.configure(
                environment,
                account_id,
                base_url=self.session.settings.base_url if environment == "sandbox" else None,
                ca_bundle=self.session.settings.ca_bundle if environment == "sandbox" else None,
                install_dir=self.session.settings.install_dir,
            )
        except WizardError as error:
            self.app.show_error(error)
            return
        self.app.show_stage()
