"""Credentials: paste the API key (masked), choose where it is kept, prove it with a live call."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static

from wizard import rules
from wizard.errors import InputError
from wizard.model import Stage

from .base import StageScreen


class CredentialsScreen(StageScreen):
    STAGE = Stage.CREDENTIALS
    HEADING = "1. API credentials"
    PRIMARY = "#test-key"

    def compose_body(self) -> ComposeResult:
        yield Label("API key (hidden as you type)")
        yield Input(password=True, placeholder="klarna_test_api_…", id="api-key")
        yield Static("", id="key-error", classes="error-text")
        yield Label("Where should klarna-mtls keep the key?")
        yield RadioSet(id="store")
        yield Static("", id="store-note")
        yield Input(password=True, placeholder="passphrase for the encrypted file", id="store-passphrase")
        with Horizontal(classes="actions"):
            yield Button("Test key with Klarna", id="test-key", variant="success")
        yield Static("", id="facts")

    def on_mount(self) -> None:
        self.query_one("#store-passphrase").display = False
        prefill = self.app.prefilled_api_key
        if prefill:
            self.query_one("#api-key", Input).value = prefill
        super().on_mount()
        if not prefill and self.blocked:
            self.query_one("#api-key", Input).focus()  # type the key, then Enter tests it
        self.load_store_choices()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in ("api-key", "store-passphrase"):
            self.test_key()

    def load_store_choices(self) -> None:
        async def probe() -> None:
            choices = await self.app.store_choices()
            radio = self.query_one("#store", RadioSet)
            await radio.remove_children()
            available = [c.kind for c in choices if c.available]
            self.store_kind = available[0] if available else None
            for choice in choices:
                button = RadioButton(choice.label, value=choice.kind == self.store_kind,
                                     id=f"store-{choice.kind}", disabled=not choice.available)
                await radio.mount(button)
            unavailable = [c.explanation for c in choices if not c.available]
            self.query_one("#store-note", Static).update(
                ("⚠ " + " ".join(unavailable) + " Pick one of the explicit choices instead.") if unavailable else ""
            )

        self.run_worker(probe(), name="probe-store", group="probe", exclusive=True, exit_on_error=False)

    store_kind: str | None = None

    def chosen_store(self) -> str | None:
        return self.store_kind

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        self.store_kind = (event.pressed.id or "").removeprefix("store-") or None
        self.query_one("#store-passphrase").display = self.store_kind == "encrypted-file"

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "api-key":
            message = ""
            if event.value and rules.api_key_environment(event.value.strip()) is None:
                message = "That does not look like a Klarna API key (klarna_test_api_… / klarna_live_api_…)."
            self.query_one("#key-error", Static).update(message)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "test-key":
            self.test_key()

    def test_key(self) -> None:
        key = self.query_one("#api-key", Input).value.strip()
        kind = self.chosen_store()
        try:
            rules.verify_api_key(key, self.session.environment)
            if kind is None:
                raise InputError("Choose where the key is kept.")
        except InputError as error:
            self.app.show_error(error)
            return
        passphrase = self.query_one("#store-passphrase", Input).value.encode() or None
        store = self.app.open_store(kind, passphrase)
        self.run_step(lambda: self.session.check_credentials(key, store), "check-credentials")

    def show_facts(self) -> None:
        ev = self.session.evidence
        if ev.api_call_ok_at:
            self.query_one("#facts", Static).update(
                f"Key {ev.api_key_masked} works · kept in {ev.secret_backend_name}\n"
                f"Server clock skew: {ev.clock_skew_seconds:+.1f} s"
            )
