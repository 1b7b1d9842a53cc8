"""What every stage screen shares: the session, a Next action gated by the model's blockers, and
the blockers listed in plain words."""

from __future__ import annotations

from typing import Awaitable, Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Static
from textual.worker import Worker

from wizard.flow import Session
from wizard.model import Stage


def show_text(widget: Static, text: str) -> None:
    """Update a Static only when its text changed, and without a layout pass when the new text
    wraps exactly like the old (same length, spaces in the same places): a poll that repeats
    what the screen says costs no re-render, and one that changes a digit no reflow."""
    old = str(widget.content)
    if text == old:
        return
    same_shape = len(text) == len(old) and all((a == " ") == (b == " ") for a, b in zip(text, old, strict=True))
    widget.update(text, layout=not same_shape)


class ReportsWorkerErrors:
    """Worker.StateChanged does not bubble: each screen hands failures to the app's one handler."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.app.report_worker_state(event)


class StageScreen(ReportsWorkerErrors, Screen):
    """Base for the six stage screens. Subclasses implement ``compose_body``."""

    STAGE: Stage
    HEADING = ""
    PRIMARY = ""  # the button Enter should press first; Next takes focus once the stage passes
    BINDINGS = [Binding("ctrl+n", "next", "Next", priority=True)]

    blocked: reactive[bool] = reactive(True, bindings=True)

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="body"):
            yield Static(self.HEADING, classes="heading")
            yield from self.compose_body()
            yield Static("", id="blockers")
            with Horizontal(classes="nav"):
                yield Button("Next ▶", id="next", variant="primary", disabled=True)
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.refresh_state()
        if self.blocked and self.PRIMARY:
            self.query_one(self.PRIMARY).focus()

    def on_screen_resume(self) -> None:
        self.refresh_state()

    def refresh_state(self) -> None:
        """Re-read the model: list blockers, gate Next, let subclasses redraw their facts."""
        blockers = self.session.model.blockers(self.STAGE)
        warnings = self.session.model.warnings(self.STAGE)
        self.blocked = bool(blockers)
        lines = [f"✗ {b.reason}" for b in blockers] + [f"! {w.reason}" for w in warnings]
        text = "To continue:\n" + "\n".join(lines) if blockers else "\n".join(lines) or "✓ All checks pass."
        show_text(self.query_one("#blockers", Static), text)
        self.query_one("#blockers").set_class(bool(blockers), "-blocked")
        next_button = self.query_one("#next", Button)
        was_blocked, next_button.disabled = next_button.disabled, self.blocked
        if was_blocked and not self.blocked:
            next_button.focus()  # keyboard users go on with Enter
        self.app.update_header()
        self.show_facts()

    def show_facts(self) -> None:
        """Subclasses redraw what they show from the evidence."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next":
            return not self.blocked
        return True

    def action_next(self) -> None:
        if not self.blocked:
            self.app.advance()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        # Textual also calls this for subclasses (handlers run along the MRO): they must not
        # call it again, or Next would advance twice.
        if event.button.id == "next":
            event.stop()
            self.action_next()

    def run_step(self, work: Callable[[], Awaitable[object]], name: str) -> None:
        """Run session work in an exclusive worker; failures go to the app's one error handler."""

        async def step() -> None:
            await work()
            self.refresh_state()

        self.run_worker(step(), name=name, group="step", exclusive=True, exit_on_error=False)
