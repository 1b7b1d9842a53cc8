"""Rotate: a new pair is issued, installed beside the current one and seen VALID before it
replaces it; then the old certificate may be retired."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Static

from wizard import lifecycle
from wizard.flow import Session

from .base import ReportsWorkerErrors, fingerprint_lines
from .modals import ConfirmModal

STEP_WORDS = {
    "key": "New private key and CSR",
    "issue": "Klarna issues the new certificate",
    "install": "Install it beside the current pair",
    "verify": "See the new certificate VALID",
    "switch": "Switch `current` to the new pair",
}


class RotateScreen(ReportsWorkerErrors, Screen[None]):
    BINDINGS = [Binding("escape", "close", "Back")]
    AUTO_FOCUS = "#start"  # Enter starts the rotation

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.done_steps: list[str] = []
        self.result: lifecycle.RotationProgress | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="body"):
            yield Static("Rotate the certificate (never a gap)", classes="heading")
            yield Static(self.describe(), id="steps")
            with Horizontal(classes="actions"):
                yield Button("Start rotation", id="start", variant="success")
                yield Button("Back", id="back")
        yield Footer()

    def describe(self, running: str | None = None) -> str:
        lines = []
        for step, words in STEP_WORDS.items():
            mark = "✓" if step in self.done_steps else ("…" if step == running else " ")
            lines.append(f"[{mark}] {words}")
        return "\n".join(lines)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            event.button.disabled = True
            self.run_worker(self.rotate(), group="rotate", exclusive=True, exit_on_error=False)
        elif event.button.id == "back":
            self.action_close()

    def on_step(self, step: str) -> None:
        previous = list(STEP_WORDS)[: list(STEP_WORDS).index(step)]
        self.done_steps = previous
        self.query_one("#steps", Static).update(self.describe(running=step))

    async def rotate(self) -> None:
        self.result = await lifecycle.rotate(self.session, verify_interval=self.app.poll_interval, on_step=self.on_step)
        self.done_steps = list(STEP_WORDS)
        self.query_one("#steps", Static).update(self.describe() + "\n\nNow in use (SHA-256):\n  "
                                                  + fingerprint_lines(self.result.new_fingerprint or "?", indent=2)
                                                  + "\nServices that read `current` keep the old pair until reloaded.")
        old = self.result.old_certificate_id
        if old and old != self.result.new_certificate_id:
            self.app.push_screen(
                ConfirmModal("Retire the old certificate?",
                             f"{old}\nis no longer used here. Revoke it once no other system uses it.",
                             "Revoke old"),
                self.retire,
            )

    def retire(self, yes: bool | None) -> None:
        if yes and self.result and self.result.old_certificate_id:
            old = self.result.old_certificate_id

            async def revoke() -> None:
                suffix = lifecycle._suffix_of(self.session, old)
                await lifecycle.revoke(self.session, old, confirm_suffix=suffix)
                self.notify("Old certificate revoked.")

            self.run_worker(revoke(), group="rotate", exclusive=True, exit_on_error=False)

    def action_close(self) -> None:
        self.dismiss(None)
