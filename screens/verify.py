"""Verify: poll the verification header until VALID, with visible progress and a diagnosis.
The loop is the domain's (``onboarding_waits.poll_verification``); this screen renders its events."""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from screens.base import StageScreen
from screens.plain_text import plain
from screens.progress import WORK_GROUP
from wizard.core.checks import VALID_IN_A_ROW
from wizard.core.diagnosis import diagnose
from wizard.core.stages import Stage
from wizard.services import onboarding_waits, waits


class VerifyScreen(StageScreen):
    STAGE = Stage.VERIFY
    HEADING = "5. Verify Klarna sees your certificate"
    BINDINGS = [
        Binding("c", "cancel_work", "Cancel polling"),
        Binding("r", "retry", "Retry"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static(
            f"Polling until Klarna answers VALID {VALID_IN_A_ROW} times in a row. "
            "A first INVALID or NOT_PRESENT can be Klarna still settling (up to 5 minutes).",
            classes="muted",
        )
        yield Static("Not polling.", id="progress")
        yield Static("", id="diagnosis")

    def on_mount(self) -> None:
        super().on_mount()
        if self.services.timing.autostart_polling and self.blocked:
            self.action_retry()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "retry":
            return not self.busy and self.blocked
        return super().check_action(action, parameters)

    def action_retry(self) -> None:
        self.poll()

    def action_cancel_poll(self) -> None:
        self.action_cancel_work()

    @work(group=WORK_GROUP, exclusive=True, exit_on_error=False)
    async def poll(self) -> None:
        timing = self.services.timing
        limits = waits.PollLimits(
            interval=timing.poll_interval,
            limit=timing.poll_limit,
            max_attempts=max(1, int(timing.poll_limit / timing.poll_interval) + 1),
        )
        progress = self.query_one("#progress", Static)
        progress.update("Polling…")
        async with self.working(cancelled=""):
            try:
                last = await self.follow(onboarding_waits.poll_verification(self.session, limits))
            except asyncio.CancelledError:
                progress.update("Polling cancelled. Press r to retry.")
                raise
            except Exception:
                progress.update("Polling stopped by an error. Press r to retry.")
                raise
        if isinstance(last, waits.Failed):
            progress.update(
                plain(
                    f"Stopped: {last.status} after {last.elapsed:.0f} s. Fix the cause (see below), then press r to retry."
                )
            )
        else:
            progress.update(f"VALID {VALID_IN_A_ROW} times in a row. Press Next.")

    def show_event(self, event: waits.Event) -> None:
        super().show_event(event)
        if isinstance(event, waits.Attempt):
            self.refresh_state()
            self.show_diagnosis(event.status)

    def show_diagnosis(self, status: str) -> None:
        diagnosis = diagnose(status)
        steps = "\n".join(f" • {step}" for step in diagnosis.next_steps)
        self.query_one("#diagnosis", Static).update(plain(f"{status}: {diagnosis.summary}\n{steps}".rstrip()))
        self.query_one("#diagnosis").set_class(status != "VALID", "-problem")

    def show_facts(self) -> None:
        history = self.session.evidence.verifications
        if history and not self.query_one("#diagnosis", Static).content:
            self.show_diagnosis(history[-1]["status"])
