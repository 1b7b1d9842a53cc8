"""Doctor: each finding in plain words with what to do next."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static

from screens.base import ReportsWorkerErrors
from screens.plain_text import plain

MARKS = {"ok": "✓", "warning": "!", "critical": "✗", "error": "✗"}


class DoctorScreen(ReportsWorkerErrors[None]):
    BINDINGS = [Binding("escape", "close", "Back"), Binding("f5", "run", "Run again")]

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

    def action_close(self) -> None:
        self.dismiss(None)
