"""Modal screens with typed results: an error that says what to do, confirmations, the enforcement
time and a passphrase checked before the modal closes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Generic, TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from screens.plain_text import plain
from wizard.core.errors import ApiError, InputError, WizardError, storage_error
from wizard.core.rules import parse_enforced_from, redact

T = TypeVar("T")


def display_path(path: str | Path) -> str:
    """A path as a person can retype it: under $KLARNA_MTLS_HOME or ~ when it is there."""
    path = Path(path)
    for prefix, root in (("$KLARNA_MTLS_HOME", os.environ.get("KLARNA_MTLS_HOME")), ("~", str(Path.home()))):
        if root and path.is_relative_to(root):
            return f"{prefix}/{path.relative_to(root)}"
    return str(path)


# At 80x24 a long consequence must not push the buttons off the screen: the box scrolls instead
# (the focused button is scrolled into view).
FIT_CSS = """
.modal-box { max-height: 100%; overflow-y: auto; }
"""


class ErrorModal(ModalScreen[None]):
    """Shows what happened and what to do next. Never a traceback."""

    DEFAULT_CSS = FIT_CSS

    BINDINGS = [Binding("escape,enter", "dismiss", "Close")]

    def __init__(self, error: BaseException, log_path: object = None) -> None:
        super().__init__()
        self.log_path = log_path
        if isinstance(error, OSError):  # a file problem: name the path and the reason
            named = error.filename or (str(error) if error.errno is None and str(error) else "a file")
            error = storage_error(named, error, "use")
        if isinstance(error, WizardError):
            self.title_text = error.title
            self.body_text = redact(error.message)
            extra = [redact(error.hint)] if error.hint else []
            ids = error.ids() if isinstance(error, ApiError) else ""
            self.hint_text = "\n".join(extra + ([redact(ids)] if ids else []))
        else:
            self.title_text = "Unexpected problem"
            self.body_text = f"An unexpected {type(error).__name__} occurred; nothing was lost."
            self.hint_text = "Try the step again. Your progress is saved."

    def compose(self) -> ComposeResult:
        with Vertical(id="error-box", classes="modal-box"):
            yield Static(plain(self.title_text), id="error-title", classes="modal-title")
            yield Static(plain(self.body_text), id="error-message")
            if self.hint_text:
                yield Static(plain(self.hint_text), id="error-hint")
            if self.log_path:
                yield Static(plain(f"Log: {self.log_path}"), id="error-log", classes="muted")
            yield Button("Close", id="close", variant="error")

    @on(Button.Pressed, "#close")
    def close_error(self) -> None:
        self.dismiss(None)


class ConfirmModal(ModalScreen[bool]):
    """States the consequence of a destructive action and asks for a yes or no."""

    DEFAULT_CSS = FIT_CSS

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, consequence: str, confirm_label: str = "Confirm") -> None:
        super().__init__()
        self.title_text = title
        self.consequence = consequence
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="modal-box"):
            yield Static(plain(self.title_text), classes="modal-title")
            yield Static(plain(self.consequence), id="consequence")  # quotes ids and descriptions
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm_label, id="confirm", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


class TypedConfirmModal(ModalScreen[str | None]):
    """Live profiles: the user types the fingerprint suffix to confirm a destructive action."""

    DEFAULT_CSS = FIT_CSS

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        consequence: str,
        expected: str,
        what: str = "the fingerprint suffix shown in the table",
        confirm_label: str = "Confirm",
    ) -> None:
        super().__init__()
        self.title_text, self.consequence, self.expected = title, consequence, expected
        self.what, self.confirm_label = what, confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="modal-box"):
            yield Static(plain(self.title_text), classes="modal-title")
            yield Static(plain(self.consequence))
            yield Static(plain(f"Type {self.what} to confirm:"))
            yield Input(id="typed")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm_label, id="confirm", variant="error", disabled=True)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#confirm", Button).disabled = not self.matches(event.value)

    def matches(self, typed: str) -> bool:
        return typed.strip().upper() == self.expected.upper()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.matches(event.value):  # Enter confirms once the typed text matches
            self.dismiss(self.expected)

    @on(Button.Pressed, "#confirm")
    def confirm(self) -> None:
        self.dismiss(self.expected)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class EnforceModal(ModalScreen[str | None]):
    """Choose NOW or a time, validated live by Klarna's rules, and see the consequence."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.clock = clock

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="modal-box"):
            yield Static("Enforce mTLS", classes="modal-title")
            yield Static("Every call without a valid client certificate will be refused from this time on.")
            yield Input(value="NOW", id="when-input")
            yield Static("", id="when")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Enforce", id="confirm", variant="warning")

    def on_input_changed(self, event: Input.Changed) -> None:
        try:
            value = parse_enforced_from(event.value, now=self.clock())
            self.query_one("#when", Static).update(plain(f"Enforcement from {value} (UTC)."))
            self.query_one("#confirm", Button).disabled = False
        except InputError as error:
            self.query_one("#when", Static).update(plain(f"✗ {error.message}"))
            self.query_one("#confirm", Button).disabled = True

    @on(Button.Pressed, "#confirm")
    def confirm(self) -> None:
        self.dismiss(self.query_one("#when-input", Input).value.strip())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not self.query_one("#confirm", Button).disabled:  # Enter enforces a valid time, as the button
            self.dismiss(event.value.strip())

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class PassphraseModal(ModalScreen[T | None], Generic[T]):
    """Asks for a passphrase and checks it before closing: a wrong one says so and asks again.
    ``check(passphrase)`` returns what the modal dismisses with, or raises a WizardError.
    ``env_var``, when set in the environment, is tried first. Nothing is stored; Cancel dismisses
    with None."""

    DEFAULT_CSS = FIT_CSS
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        explanation: str,
        check: Callable[[bytes], T],
        *,
        env_var: str = "",
        problem: str = "",
        input_id: str = "key-passphrase",
    ) -> None:
        super().__init__()
        self.title_text, self.explanation, self.check = title, explanation, check
        self.env_var, self.problem, self.input_id = env_var, problem, input_id
        self.source = ""  # the environment variable the passphrase came from, if any

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="modal-box"):
            yield Static(plain(self.title_text), classes="modal-title")
            yield Static(plain(self.explanation))
            yield Input(password=True, id=self.input_id, placeholder="passphrase (Enter to unlock)")
            yield Static(plain(self.problem), id="passphrase-problem", classes="error-text")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Unlock", id="confirm", variant="success")

    def on_mount(self) -> None:
        self.query_one(f"#{self.input_id}").focus()
        from_env = os.environ.get(self.env_var, "") if self.env_var else ""
        if from_env and not self.problem:
            self.try_passphrase(from_env.encode(), source=self.env_var)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.try_passphrase(event.value.encode())

    @on(Button.Pressed, "#confirm")
    def unlock(self) -> None:
        self.try_passphrase(self.query_one(f"#{self.input_id}", Input).value.encode())

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def try_passphrase(self, passphrase: bytes, source: str = "") -> None:
        if not passphrase:
            self.say("Type the passphrase, or Cancel.")
            return
        self.say("Checking…")
        self.query_one("#confirm", Button).disabled = True
        self.source = source
        self.check_passphrase(passphrase)

    @work(group="passphrase", exclusive=True, exit_on_error=False)
    async def check_passphrase(self, passphrase: bytes) -> None:
        """In a thread (scrypt and key decryption are slow); any failure means: try again."""
        try:
            result = await asyncio.to_thread(self.check, passphrase)
        except Exception as error:
            self.refuse(error)
            return
        self.dismiss(result)

    def refuse(self, error: Exception) -> None:
        reason = error.message if isinstance(error, WizardError) else f"Could not check it ({type(error).__name__})."
        where = f"{self.source} is not the right passphrase: " if self.source else ""
        self.say(f"✗ {where}{reason} Try again.")
        self.query_one("#confirm", Button).disabled = False
        field = self.query_one(f"#{self.input_id}", Input)
        field.value = ""
        field.focus()

    def say(self, text: str) -> None:
        self.query_one("#passphrase-problem", Static).update(plain(text))
