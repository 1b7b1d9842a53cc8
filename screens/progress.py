"""Progress and a Cancel for every wait: a panel that renders the domain's progress events, and
the screen base that runs each piece of work in one exclusive worker group."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, ClassVar, TypeVar, cast

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.screen import Screen, ScreenResultType
from textual.widgets import Button, Static
from textual.worker import Worker

from screens.plain_text import plain
from screens.services import ScreenServices
from screens.shell import Shell
from wizard.services import waits

WORK_GROUP = "work"
T = TypeVar("T")


class WizardScreen(Screen[ScreenResultType]):
    """A screen of this app: it is handed the services (its data and actions, ``self.session``
    among them), and to the type checker ``self.app`` is the Shell (navigation and feedback;
    Textual types it as a bare ``App``, and nothing changes at run time)."""

    if TYPE_CHECKING:
        app = getters.app(Shell)

    def __init__(self, services: ScreenServices) -> None:
        super().__init__()
        self.services = services
        self.session = services.session


class ReportsWorkerErrors(WizardScreen[ScreenResultType]):
    """Worker.StateChanged does not bubble: each screen hands failures to the app's one handler."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.app.report_worker_state(event)


class WorkPanel(Horizontal):
    """What is happening, the elapsed time and the limit, and a Cancel button."""

    DEFAULT_CSS = """
    WorkPanel {
        height: auto;
        margin: 1 0 0 0;
    }
    WorkPanel #work-status {
        width: 1fr;
        color: $text-muted;
    }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="work-status")
        cancel = Button("Cancel (Esc)", id="cancel-work", variant="error")
        cancel.can_focus = False  # a second Enter on the step's button must not cancel it
        yield cancel

    def on_mount(self) -> None:
        self.display = False

    def show(self, text: str) -> None:
        self.display = True
        self.query_one("#cancel-work").display = True
        self.query_one("#work-status", Static).update(plain(text))  # events quote Klarna's answers

    def finish(self, text: str = "") -> None:
        """The work ended: keep ``text`` on screen (or hide the panel when there is none)."""
        self.query_one("#cancel-work").display = False
        self.query_one("#work-status", Static).update(plain(text))
        self.display = bool(text)


# Listed last by each screen, so its own keys keep their places in the footer.
CANCEL_BINDINGS = [
    Binding("escape", "cancel_work", "Cancel"),
    Binding("ctrl+c", "cancel_work", "Cancel", show=False),
]


class WorkScreen(ReportsWorkerErrors[None]):
    """A screen whose long work runs in one exclusive worker group, shows its progress in a
    ``WorkPanel`` and can be cancelled (button, Esc, ctrl+c). ``WORK_BUTTONS`` (the buttons that
    start work) are disabled while it runs."""

    WORK_BUTTONS: ClassVar[tuple[str, ...]] = ()
    BINDINGS: ClassVar[list[BindingType]] = []  # each subclass ends its own with CANCEL_BINDINGS

    busy: reactive[bool] = reactive(False, bindings=True, init=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_work":
            return self.busy
        return True

    def work_buttons(self) -> tuple[str, ...]:
        return self.WORK_BUTTONS

    def watch_busy(self, busy: bool) -> None:
        for selector in self.work_buttons():
            with contextlib.suppress(NoMatches):
                self.query_one(selector, Button).disabled = busy

    def show_event(self, event: waits.Event) -> None:
        """Render one progress event; screens extend this for what they show besides."""
        with contextlib.suppress(NoMatches):
            self.query_one(WorkPanel).show(event.text)

    @contextlib.asynccontextmanager
    async def working(
        self, cancelled: str = "Cancelled. Nothing was lost; you can start again."
    ) -> AsyncIterator[None]:
        """Marks the screen busy for the block; on cancel the panel says so, on error it hides
        (the app's error handler shows the error)."""
        self.busy = True
        outcome = ""
        try:
            yield
        except asyncio.CancelledError:
            outcome = cancelled
            raise
        finally:
            self.busy = False
            with contextlib.suppress(NoMatches):
                self.query_one(WorkPanel).finish(outcome)

    async def follow(self, events: waits.Events) -> waits.Event | None:
        """Show every event of a domain runner; returns the last (Done or Failed)."""
        return await waits.follow(events, self.show_event)

    async def timed(self, task: str, work: Awaitable[T], *, limit: float | None = None) -> T:
        """Await ``work`` with progress under a limit (the app's step limit by default)."""
        limit = limit or self.services.timing.step_limit
        last = await self.follow(waits.timed(task, work, limit=limit))
        assert isinstance(last, waits.Done)  # timed ends with Done or raises
        return cast(T, last.result)

    def action_cancel_work(self) -> None:
        self.workers.cancel_group(self, WORK_GROUP)

    @on(Button.Pressed, "#cancel-work")
    def cancel_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_cancel_work()
