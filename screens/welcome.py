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
from wizard.core.errors import InputError
from wizard.core.stages import WORKING_STAGES


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
                    yield MarkedRadioButton(env, value=(ev.environment or "test") == env, id=f"env-{env}")
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

    def chosen_environment(self) -> str:
        pressed = self.query_one("#environment", RadioSet).pressed_button
        return str(pressed.label) if pressed else "test"

    @on(Button.Pressed, "#start")
    @on(Input.Submitted, "#account-id")
    def action_start(self) -> None:
        environment = self.chosen_environment()
        account_id = self.query_one("#account-id", Input).value.strip()
        try:
            if environment == "sandbox" and not self.services.sandbox_available and not self.session.settings.base_url:
                raise InputError(
                    "The sandbox runs when you start klarna-mtls with --sandbox.",
                    hint="Quit and run: klarna-mtls --sandbox",
                )
            self.session.configure(
                environment,
                account_id,
                base_url=self.session.settings.base_url if environment == "sandbox" else None,
                ca_bundle=self.session.settings.ca_bundle if environment == "sandbox" else None,
                install_dir=self.session.settings.install_dir,
            )
        except InputError as error:
            self.app.show_error(error)
            return
        self.app.show_stage()
