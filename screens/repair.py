"""Repair: the installed pair put back from what the tool keeps, by the same domain call as
`klarna-mtls repair` (``wizard.services.repair``), with what it found and did."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static

from screens.base import ReportsWorkerErrors
from screens.plain_text import plain
from screens.services import ScreenServices
from wizard.core.errors import KeyLocked, WizardError


class RepairScreen(ReportsWorkerErrors[bool]):
    """Runs the repair when it opens; dismissed with True once the pair was restored (the screen
    beneath refreshes either way: a failed repair may still have moved a file aside)."""

    HELP_TITLE = "Repair"
    BINDINGS = [Binding("escape", "close", "Back")]

    def __init__(self, services: ScreenServices) -> None:
        super().__init__(services)
        self.steps: list[str] = []
        self.finished = False
        self.restored = False

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="body"):
            yield Static("Repair the installed pair", classes="heading")
            yield Static("Restoring from what this tool keeps…", id="report")
        yield Footer()

    def on_mount(self) -> None:
        self.run_repair()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close":
            return self.finished  # files are being moved: the repair ends first (its calls are bounded)
        return True

    def show_steps(self, *more: str) -> None:
        self.query_one("#report", Static).update(plain("\n".join([*self.steps, *more])))  # paths, Klarna's words

    def step_seen(self, line: str) -> None:
        self.steps.append(line)
        self.show_steps("…")

    @work(group="repair", exclusive=True, exit_on_error=False)
    async def run_repair(self) -> None:
        try:
            report = await self.services.repair(self.step_seen)
        except KeyLocked:
            raise  # the app asks for the key's passphrase; Esc, then Repair again
        except WizardError as error:
            self.show_steps(
                f"✗ Repair failed: {error.message}", *([f"  → {error.hint}"] if error.hint else []), "", "Esc: back"
            )
        else:
            self.restored = report.proved
            mark = "✓" if report.proved or not report.problems else "!"
            self.steps = report.lines()
            self.steps[-1] = f"{mark} {self.steps[-1]}"
            self.show_steps("", "Esc: back")
        finally:
            self.finished = True
            self.refresh_bindings()

    def action_close(self) -> None:
        self.dismiss(self.restored)
