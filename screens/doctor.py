"""Doctor: each finding in plain words with what to do next."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static

from screens.base import ReportsWorkerErrors
from screens.plain_text import plain
from screens.services import ScreenServices

MARKS = {"ok": "✓", "warning": "!", "critical": "✗", "error": "✗"}


class DoctorScreen(ReportsWorkerErrors[None]):
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("f5", "run", "Run again"),
        Binding("ctrl+y", "copy", "Copy next steps", tooltip="Copy the next steps, one a line (paths whole)"),
    ]

    def __init__(self, services: ScreenServices) -> None:
        super().__init__(services)
        self.next_steps: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="body"):
            yield Static("Doctor", classes="heading")
            yield Static("Checking…", id="findings")
        yield Footer()

    def on_mount(self) -> None:
        self.action_run()

    @work(group="doctor", exclusive=True, exit_on_error=False)
    async def action_run(self) -> None:
        findings = await self.services.run_doctor()
        lines = []
        for f in findings:
            lines.append(f"{MARKS[f.severity]} {f.check}: {f.summary}")
            if f.next_step:
                lines.append(f"    → {f.next_step}")
        self.query_one("#findings", Static).update(plain("\n".join(lines)))  # findings quote server messages
        # The terminal wraps a long path in the middle: ctrl+y copies each step whole, once.
        self.next_steps = list(dict.fromkeys(f.next_step for f in findings if f.next_step and f.severity != "ok"))

    def action_copy(self) -> None:
        if not self.next_steps:
            self.notify("Nothing to do: no finding has a next step.")
            return
        self.app.copy("the next steps", "\n".join(self.next_steps))

    def action_close(self) -> None:
        self.dismiss(None)
