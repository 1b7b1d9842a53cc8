"""Verify: poll the verification header until VALID, with visible progress and a diagnosis."""

from __future__ import annotations

import asyncio
import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from wizard.diagnosis import diagnose
from wizard.model import VALID_IN_A_ROW, Stage
from wizard.pacing import poll_delay

from .base import StageScreen, show_text


class VerifyScreen(StageScreen):
    STAGE = Stage.VERIFY
    HEADING = "5. Verify Klarna sees your certificate"
    BINDINGS = [
        Binding("ctrl+n", "next", "Next", priority=True),
        Binding("c", "cancel_poll", "Cancel polling"),
        Binding("r", "retry", "Retry"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static(f"Polling until Klarna answers VALID {VALID_IN_A_ROW} times in a row.", classes="muted")
        yield Static("Not polling.", id="progress")
        yield Static("", id="diagnosis")

    def on_mount(self) -> None:
        super().on_mount()
        if self.app.autostart_polling and self.blocked:
            self.action_retry()

    def action_retry(self) -> None:
        self.run_worker(self.poll(), name="poll", group="poll", exclusive=True, exit_on_error=False)

    def action_cancel_poll(self) -> None:
        self.workers.cancel_group(self, "poll")
        self.query_one("#progress", Static).update("Polling cancelled. Press r to retry.")

    async def poll(self) -> None:
        interval = self.app.poll_interval
        started = time.monotonic()
        attempt = 0
        while self.blocked:
            attempt += 1
            observation = await self.session.verify_once()
            self.refresh_state()
            self.show_diagnosis(observation.status)
            if not self.blocked:
                break
            if observation.status in ("INVALID", "REJECTED"):
                self.query_one("#progress", Static).update(
                    f"Attempt {attempt}: {observation.status}. Stopped: fix the cause, then press r to retry."
                )
                return
            elapsed = time.monotonic() - started
            delay = poll_delay(interval, attempt)  # slower as the wait goes on
            show_text(self.query_one("#progress", Static),
                      f"Attempt {attempt} · last status {observation.status} · elapsed {elapsed:.0f} s · "
                      f"next check in {delay:g} s (c cancels)")
            await asyncio.sleep(delay)
        self.query_one("#progress", Static).update(f"VALID {VALID_IN_A_ROW} times in a row. Press Next.")

    def show_diagnosis(self, status: str) -> None:
        diagnosis = diagnose(status)
        steps = "\n".join(f" • {step}" for step in diagnosis.next_steps)
        show_text(self.query_one("#diagnosis", Static), f"{status}: {diagnosis.summary}\n{steps}".rstrip())
        self.query_one("#diagnosis").set_class(status != "VALID", "-problem")

    def show_facts(self) -> None:
        history = self.session.evidence.verifications
        if history and not self.query_one("#diagnosis", Static).content:
            self.show_diagnosis(history[-1]["status"])
