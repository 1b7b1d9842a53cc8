"""Credentials: paste the API key (masked), choose where it is kept, prove it with a live call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, RadioSet, Static

from screens.base import STEP_TASKS, StageScreen
from screens.plain_text import plain
from screens.progress import WORK_GROUP
from screens.services import ScreenServices
from screens.toggles import MarkedCheckbox, MarkedRadioButton
from screens.tool_key import ask_tool_key
from wizard.core import rules
from wizard.core.errors import InputError, WizardError
from wizard.core.secret_value import SecretValue
from wizard.core.stages import Stage
from wizard.secrets.resolve import PERSISTENT_KINDS
from wizard.services import api_key_rotation, onboarding

if TYPE_CHECKING:
    from wizard.secrets.base import SecretStore
    from wizard.secrets.resolve import StoreChoice

OWN_KEY_NOTE = (
    "It creates a key described for it with the key above, keeps it in the chosen store and runs on it, "
    "so it knows which key never to disable; the key above stays active for your other systems."
)
OWN_KEY_TASK = "Giving klarna-mtls its own API key"
PORTAL_HINT = (
    "Find the key and your account id in the Klarna Portal, API credentials section (Klarna docs: "
    "“Manage your API credentials”). A new key is shown there once."
)


class CredentialsScreen(StageScreen):
    STAGE = Stage.CREDENTIALS
    HEADING = "1. API credentials"
    PRIMARY = "#api-key"  # focused first (StageScreen): focusing the button first scrolled the key away
    WORK_BUTTONS = ("#test-key",)
    DEFAULT_CSS = """
    #store-box { height: auto; }
    """

    def __init__(self, services: ScreenServices) -> None:
        super().__init__(services)
        self.store_kind: str | None = None  # the store chosen in the list; None until one is

    def compose_body(self) -> ComposeResult:
        yield Label("API key (hidden as you type)")
        yield Input(password=True, placeholder="klarna_test_api_…", id="api-key")
        yield Static("", id="key-error", classes="error-text")
        yield Static(PORTAL_HINT, id="portal-hint", classes="muted")
        yield Label("Where should klarna-mtls keep the key?")
        with Vertical(id="store-box"):
            yield Static("Checking which secret stores work here…", id="store-probe", classes="muted")
        yield Static("", id="store-note")
        yield MarkedCheckbox("Give klarna-mtls its own API key (recommended)", value=True, id="own-key")
        yield Static(OWN_KEY_NOTE, id="own-key-note", classes="muted")
        yield Input(
            password=True, placeholder="passphrase for the encrypted file (Enter tests the key)", id="store-passphrase"
        )
        yield Input(placeholder="vault:MOUNT/PATH (Enter tests the key)", id="store-place")
        with Horizontal(classes="actions"):
            yield Button("Test key with Klarna", id="test-key", variant="success")
        yield Static("", id="facts")

    def on_mount(self) -> None:
        # Textual calls on_mount along the MRO: StageScreen.on_mount runs on its own, so it is not
        # called again here (it would move focus away from the key field).
        self.query_one("#store-passphrase").display = False
        self.query_one("#store-place").display = False
        self.query_one("#store-place", Input).value = f"vault:secret/klarna-mtls/{self.session.profile}"
        prefill = self.services.prefilled_api_key
        if prefill:
            self.query_one("#api-key", Input).value = prefill
        self.load_store_choices()
        self.call_after_refresh(self.focus_first)  # after StageScreen.on_mount has focused the key field

    def focus_first(self) -> None:
        """The key field when it is empty (paste, then Enter tests it); a filled one (the
        sandbox's key) leaves the focus on the button that tests it."""
        if self.query_one("#api-key", Input).value and self.blocked:
            self.query_one("#test-key").focus()

    @work(group="probe", exclusive=True, exit_on_error=False)
    async def load_store_choices(self) -> None:
        self.show_store_choices(await self.services.store_choices())

    def show_store_choices(self, choices: list[StoreChoice]) -> None:
        """Compose the RadioSet with its buttons (a set mounted empty and filled later has no
        pressed button, and lights two). Standard input is not offered: the TUI owns the terminal."""
        choices = [c for c in choices if c.kind != "stdin"]
        available = [c.kind for c in choices if c.available]
        self.store_kind = available[0] if available else None
        buttons = [
            MarkedRadioButton(c.label, value=c.kind == self.store_kind, id=f"store-{c.kind}", disabled=not c.available)
            for c in choices
        ]
        box = self.query_one("#store-box")
        box.remove_children()
        box.mount(RadioSet(*buttons, id="store"))
        unavailable = [c.explanation for c in choices if not c.available]
        self.query_one("#store-note", Static).update(plain("⚠ " + " ".join(unavailable)) if unavailable else "")
        self.show_store_passphrase()

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        self.store_kind = (event.pressed.id or "").removeprefix("store-") or None
        self.show_store_passphrase()

    def show_store_passphrase(self) -> None:
        """The passphrase box follows the chosen store, whichever way it was chosen; so does the
        offer of an own key (only a store that keeps keys can keep it)."""
        self.query_one("#store-passphrase").display = self.store_kind == "encrypted-file"
        keeps = self.store_kind in PERSISTENT_KINDS
        self.query_one("#own-key").display = self.query_one("#own-key-note").display = keeps
        self.query_one("#store-place").display = self.store_kind == "vault"
        self.refresh_state()

    def refresh_state(self) -> None:
        super().refresh_state()
        if not self.blocked:
            return
        # The model's blockers describe missing evidence; a filled field is not missing: say
        # what is left to do instead ("✗ Enter an API key" beside a typed key confused people).
        typed = bool(self.query_one("#api-key", Input).value.strip())
        hidden = {
            "api_key": typed and not self.session.evidence.api_key_environment,
            "secret_store": self.store_kind is not None,
        }
        lines = [f"✗ {b.reason}" for b in self.session.model.blockers(self.STAGE) if not hidden.get(b.name)]
        if typed:
            lines.insert(0, "✗ Test the key with Klarna (Enter).")
        lines += [f"! {w.reason}" for w in self.session.model.warnings(self.STAGE)]
        self.query_one("#blockers", Static).update(plain("To continue:\n" + "\n".join(dict.fromkeys(lines))))

    @on(Input.Changed, "#api-key")
    def check_key_shape(self, event: Input.Changed) -> None:
        self.refresh_state()
        message = ""
        if event.value and rules.api_key_environment(event.value.strip()) is None:
            message = "That does not look like a Klarna API key (klarna_test_api_… / klarna_live_api_…)."
        self.query_one("#key-error", Static).update(message)

    @on(Button.Pressed, "#test-key")
    @on(Input.Submitted, "#api-key")
    @on(Input.Submitted, "#store-passphrase")
    @on(Input.Submitted, "#store-place")
    def test_key(self) -> None:
        key = self.query_one("#api-key", Input).value.strip()
        try:
            rules.verify_api_key(key, self.session.environment)
            store = self.open_chosen_store()
        except WizardError as error:
            self.app.show_error(error)
            return
        passphrase = self.query_one("#store-passphrase", Input).value.encode() or None
        own_key = store.persistent and self.query_one("#own-key", MarkedCheckbox).value
        self.check_and_name_key(key, store, passphrase, own_key)

    @work(group=WORK_GROUP, exclusive=True, exit_on_error=False)
    async def check_and_name_key(self, key: str, store: SecretStore, passphrase: bytes | None, own_key: bool) -> None:
        """Prove the key and keep it; then the tool takes its own key (as ``onboard --own-key``)
        or, when it does not, asks which listed key it was given: either way it learns which key
        it runs on, and the API keys screen refuses to disable that one."""
        async with self.working():
            await self.timed(STEP_TASKS["check-credentials"], onboarding.check_credentials(self.session, key, store))
            if store.kind == "encrypted-file" and passphrase:
                self.services.remember_store_passphrase(SecretValue(passphrase))  # keys created later go there too
            if own_key:
                await self.timed(
                    OWN_KEY_TASK, api_key_rotation.take_own_key(self.session, store, on_event=self.show_event)
                )
        self.refresh_state()
        if not own_key and self.session.state.tool_key_id is None:
            await ask_tool_key(self.app, self.services)
            self.refresh_state()

    def open_chosen_store(self) -> SecretStore:
        kind = self.store_kind
        if kind is None:
            raise InputError(
                "Choose where the key is kept.", hint="Use Tab to reach the list, arrows and Enter to pick."
            )
        if kind == "vault":  # the place names the store; Vault is reached when the key is kept there
            return self.services.open_store(self.query_one("#store-place", Input).value.strip())
        passphrase = self.query_one("#store-passphrase", Input).value.encode() or None
        if kind == "encrypted-file" and not passphrase:
            self.query_one("#store-passphrase").focus()
            raise InputError(
                "Type a passphrase for the encrypted file.",
                hint="You type it again each run (or set KLARNA_MTLS_STORE_PASSPHRASE for headless runs).",
            )
        return self.services.open_store(kind, passphrase)

    def show_facts(self) -> None:
        ev = self.session.evidence
        if ev.api_call_ok_at:
            self.query_one("#facts", Static).update(
                plain(
                    f"Key {ev.api_key_masked} works · kept in {ev.secret_backend_name}\n"
                    f"Server clock skew: {ev.clock_skew_seconds:+.1f} s"
                )
            )
