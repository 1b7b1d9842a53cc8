"""Modal screens with typed results: an error that says what to do, and a confirmation."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.content import Content
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from wizard.errors import WizardError
from wizard.rules import clean_text, redact


def plain(text: object) -> Content:
    """Text from a server, a user or a file, shown as is: never parsed as markup (a ``[/`` or
    ``[@click=…]`` in an id or a message is just characters), control characters removed."""
    return Content(clean_text(str(text), keep_newlines=True))


class ErrorModal(ModalScreen[None]):
    """Shows what happened and what to do next. Never a traceback."""

    BINDINGS = [Binding("escape,enter", "dismiss", "Close")]

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        if isinstance(error, WizardError):
            self.title_text = error.title
            self.body_text = redact(error.message)
            extra = [redact(error.hint)] if error.hint else []
            ids = str(error).replace(f"{error.message} {error.hint}".strip(), "").strip()
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
            yield Button("Close", id="close", variant="error")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)


class ConfirmModal(ModalScreen[bool]):
    """States the consequence of a destructive action and asks for a yes or no."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, consequence: str, confirm_label: str = "Confirm") -> None:
        super().__init__()
        self.title_text = title
        self.consequence = consequence
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="modal-box"):
            yield Static(self.title_text, classes="modal-title")
            yield Static(self.consequence, id="consequence")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm_label, id="confirm", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        self.dismiss(False)


class TypedConfirmModal(ModalScreen["str | None"]):
    """Live profiles: the user types the fingerprint suffix to confirm a destructive action."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, consequence: str, expected: str) -> None:
        super().__init__()
        self.title_text, self.consequence, self.expected = title, consequence, expected

    def compose(self) -> ComposeResult:
        from textual.widgets import Input

        with Vertical(id="confirm-box", classes="modal-box"):
            yield Static(self.title_text, classes="modal-title")
            yield Static(self.consequence)
            yield Static("Type the fingerprint suffix shown in the table to confirm:")
            yield Input(id="typed")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Confirm", id="confirm", variant="error", disabled=True)

    def on_input_changed(self, event) -> None:
        self.query_one("#confirm", Button).disabled = event.value.strip().upper() != self.expected.upper()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.expected if event.button.id == "confirm" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class EnforceModal(ModalScreen["str | None"]):
    """Choose NOW or a time, validated live by Klarna's rules, and see the consequence."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, clock) -> None:
        super().__init__()
        self.clock = clock

    def compose(self) -> ComposeResult:
        from textual.widgets import Input

        with Vertical(id="confirm-box", classes="modal-box"):
            yield Static("Enforce mTLS", classes="modal-title")
            yield Static("Every call without a valid client certificate will be refused from this time on.")
            yield Input(value="NOW", id="when-input")
            yield Static("", id="when")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Enforce", id="confirm", variant="warning")

    def on_input_changed(self, event) -> None:
        from wizard.errors import InputError
        from wizard.rules import parse_enforced_from

        try:
            value = parse_enforced_from(event.value, now=self.clock())
            self.query_one("#when", Static).update(plain(f"Enforcement from {value} (UTC)."))
            self.query_one("#confirm", Button).disabled = False
        except InputError as error:
            self.query_one("#when", Static).update(plain(f"✗ {error.message}"))
            self.query_one("#confirm", Button).disabled = True

    def on_button_pressed(self, event: Button.Pressed) -> None:
        from textual.widgets import Input

        self.dismiss(self.query_one("#when-input", Input).value.strip() if event.button.id == "confirm" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PassphraseModal(ModalScreen["bytes | None"]):
    """A resumed run asks once for a passphrase (the private key's by default; it is never stored)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str = "Private key passphrase",
                 prompt: str = "Your private key is encrypted. Enter its passphrase to use it in this run.") -> None:
        super().__init__()
        self.title_text, self.prompt = title, prompt

    def compose(self) -> ComposeResult:
        from textual.widgets import Input

        with Vertical(id="confirm-box", classes="modal-box"):
            yield Static(self.title_text, classes="modal-title")
            yield Static(self.prompt)
            yield Input(password=True, id="key-passphrase")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Unlock", id="confirm", variant="success")

    def on_mount(self) -> None:
        self.query_one("#key-passphrase").focus()

    def on_input_submitted(self, event) -> None:
        self.dismiss(event.value.encode() or None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        from textual.widgets import Input

        value = self.query_one("#key-passphrase", Input).value.encode()
        self.dismiss(value or None if event.button.id == "confirm" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
