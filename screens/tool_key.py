"""Which API key klarna-mtls runs on, asked when it did not create its own: the person picks it
among the account's keys (each shown by its last four characters, to compare with the key they
entered), or says they do not know. The tool never guesses it from the listing: while it is
unknown, disabling any key needs a typed confirmation."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, OptionList, Static
from textual.widgets.option_list import Option

from screens.modals import FIT_CSS
from screens.plain_text import plain
from screens.services import ScreenServices
from screens.shell import Shell
from wizard.services import api_keys


def key_label(row: api_keys.KeyRow) -> str:
    created = (row.created_at or "")[:10] or "?"
    return f"…{row.masked[-4:]}  {row.description or '(no description)'} · created {created}"


class ToolKeyModal(ModalScreen[str | None]):
    """The account's active keys; Enter picks the one klarna-mtls runs on, Esc: not known."""

    DEFAULT_CSS = FIT_CSS + "#tool-keys { height: auto; max-height: 8; }"
    BINDINGS = [Binding("escape", "unknown", "I don't know")]

    def __init__(self, rows: list[api_keys.KeyRow], entered_suffix: str | None) -> None:
        super().__init__()
        self.rows, self.entered_suffix = rows, entered_suffix

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="modal-box"):
            yield Static("Which API key did you give klarna-mtls?", classes="modal-title")
            yield Static(
                "klarna-mtls refuses to disable the key it runs on, so it needs to know which one that is. "
                f"The key you entered ends in …{self.entered_suffix or '????'}. Pick it (arrows, Enter):"
            )
            yield OptionList(*(Option(plain(key_label(r)), id=r.credential_id) for r in self.rows), id="tool-keys")
            with Horizontal(classes="buttons"):
                yield Button("I don't know", id="unknown")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    @on(Button.Pressed, "#unknown")
    def action_unknown(self) -> None:
        self.dismiss(None)


async def ask_tool_key(app: Shell, services: ScreenServices) -> None:
    """Ask which listed key the tool runs on and record the answer (from a worker: it awaits
    the modal). Not known: say what that means."""
    rows = [r for r in await services.load_keys() if r.active]
    if not rows:
        return
    chosen = await app.push_screen_wait(ToolKeyModal(rows, services.session.custody.api_key_suffix))
    if chosen is None:
        app.notify(
            "klarna-mtls does not know which API key it runs on: disabling any key asks you to type its last "
            "four characters. Name it on the API keys screen (ctrl+t) when you know.",
            severity="warning",
            timeout=20,
        )
        return
    row = await api_keys.record_tool_key(services.session, chosen)
    app.notify(f"Recorded: klarna-mtls runs on {row.masked}.")
