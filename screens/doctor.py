"""Doctor: each finding in plain words with what to do next."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Button, Footer, Header, Static

from screens.base import ReportsWorkerErrors
from screens.plain_text import plain
from screens.repair import RepairScreen
from screens.services import ScreenServices
from wizard.services.doctor import offers_repair

MARKS = {"ok": "✓", "warning": "!", "critical": "✗", "error": "✗"}


class DoctorScreen(ReportsWorkerErrors[None]):
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("r", "repair", "Repair", tooltip="Restore the installed pair from what this tool keeps"),
        Binding("f5", "run", "Run again"),
        Binding("ctrl+y", "copy", "Copy next steps", tooltip="Copy the next steps, one a line (paths whole)"),
    ]

    def __init__(self, services: ScreenServices) -> None:
        super().__init__(services)
        self.next_steps: list[str] = []
        self.repairable = False  # a finding that `repair` answers: a missing or damaged installed file

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="body"):
            yield Static("Doctor", classes="heading")
            yield Static("Checking…", id="findings")
            yield Button("Repair the installed pair (r)", id="repair", variant="warning")
        yield Footer()

    def on_mount(self) -> None:
        self.action_run()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "repair":
            return self.repairable
        return True

    @work(group="doctor", exclusive=True, exit_on_error=False)
    async def action_run(self) -> None:
        self._show_checking()  # never the last run's findings, nor its Repair, while this one looks
        findings = await self.services.run_doctor()
        lines = []
        for f in findings:
            lines.append(f"{MARKS[f.severity]} {f.check}: {f.summary}")
            if f.next_step:
                lines.append(f"    → {f.next_step}")
        self.query_one("#findings", Static).update(plain("\n".join(lines)))  # findings quote server messages
        # The terminal wraps a long path in the middle: ctrl+y copies each step whole, once.
        self.next_steps = list(dict.fromkeys(f.next_step for f in findings if f.next_step and f.severity != "ok"))
        self.repairable = offers_repair(findings)
        button = self.query_one("#repair", Button)
        button.display = self.repairable
        if self.repairable:
            button.focus()  # Enter repairs
        self.refresh_bindings()

    def _show_checking(self) -> None:
        self.query_one("#findings", Static).update("Checking…")
        self.repairable = False
        self.query_one("#repair").display = False
        self.refresh_bindings()

    @on(Button.Pressed, "#repair")
    def action_repair(self) -> None:
        if self.repairable:
            self.app.push_screen(RepairScreen(self.services), self.repair_closed)

    def repair_closed(self, _: bool | None) -> None:
        self.action_run()  # the doctor looks again at what the repair left

    def action_copy(self) -> None:
        if not self.next_steps:
            self.notify("Nothing to do: no finding has a next step.")
            return
        self.app.copy("the next steps", "\n".join(self.next_steps))

    def action_close(self) -> None:
        self.dismiss(None)
