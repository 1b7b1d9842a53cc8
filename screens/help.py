"""Help (F1 or ?): every action of the screen it was opened on, with its key, plus the keys that
work everywhere. The same actions are in the command palette (ctrl+p)."""

from __future__ import annotations

from typing import Any, NamedTuple

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static

EVERYWHERE = [
    ("tab / shift+tab", "Move to the next / previous field or button"),
    ("enter", "Press the focused button, or submit the field"),
    ("ctrl+p", "Command palette: every action by name"),
    ("f1 / ?", "This help"),
    ("ctrl+q", "Quit (progress is saved)"),
]


class Action(NamedTuple):
    key: str  # as the footer shows it
    description: str
    action: str  # run in the screen's namespace
    enabled: bool


TEXTUAL_SCREEN_ACTIONS = {b.action for b in Screen.BINDINGS if isinstance(b, Binding)}  # tab, copy


def screen_actions(screen: Screen[Any]) -> list[Action]:
    """The screen's own bindings that are active now (not the focused widget's editing keys,
    not the app's: those are listed as EVERYWHERE). Hidden ones too: help is for finding them."""
    found: dict[str, Action] = {}
    for active in screen.active_bindings.values():
        binding = active.binding
        if (
            active.node is not screen
            or not binding.description
            or binding.action in found
            or binding.action in TEXTUAL_SCREEN_ACTIONS
        ):
            continue
        found[binding.action] = Action(
            screen.app.get_key_display(binding), binding.tooltip or binding.description, binding.action, active.enabled
        )
    return list(found.values())


def help_text(screen: Screen[Any]) -> str:
    """Two-column text: key, then what it does. Plain words; fits 80 columns."""
    width = 16
    lines = [f"{a.key:<{width}} {a.description}" + ("" if a.enabled else " (not now)") for a in screen_actions(screen)]
    lines = lines or ["(this screen has no keys of its own)"]
    lines += ["", "Everywhere"] + [f"{key:<{width}} {text}" for key, text in EVERYWHERE]
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    """Lists the actions of the screen beneath it."""

    BINDINGS = [Binding("escape,f1,question_mark,q", "close", "Close")]

    def __init__(self, under: Screen[Any]) -> None:
        super().__init__()
        self.title_text = f"Keys on this screen: {getattr(under, 'HELP_TITLE', '') or _title(under)} (esc closes)"
        self.body_text = help_text(under)

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="modal-box"):
            yield Static(self.title_text, classes="modal-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(self.body_text, id="help-text")
        yield Footer()  # this screen's keys, not those of the screen beneath

    def action_close(self) -> None:
        self.dismiss(None)


def _title(screen: Screen[Any]) -> str:
    name = type(screen).__name__.removesuffix("Screen")
    heading = getattr(screen, "HEADING", "")
    return heading or {"Keys": "API keys"}.get(name, name)
