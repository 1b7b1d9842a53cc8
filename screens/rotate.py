"""Rotate: a new pair is issued, installed beside the current one and seen VALID before it
replaces it; then the old certificate may be retired. The steps are the domain's
(``certificate_rotation.rotation``); this screen renders their events."""

from __future__ import annotations

import asyncio

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Header, Static

from screens.base import fingerprint_lines
from screens.modals import ConfirmModal
from screens.plain_text import plain
from screens.progress import CANCEL_BINDINGS, WORK_GROUP, WorkPanel, WorkScreen
from screens.services import ScreenServices
from wizard.core import acceptance, rules
from wizard.services import certificate_rotation, revocation, waits


class RotateScreen(WorkScreen):
    BINDINGS = [Binding("escape", "close", "Back"), *CANCEL_BINDINGS]
    WORK_BUTTONS = ("#start", "#back")
    AUTO_FOCUS = "#start"  # Enter starts the rotation

    def __init__(self, services: ScreenServices) -> None:
        super().__init__(services)
        self.done_steps: list[str] = []
        self.result: certificate_rotation.RotationProgress | None = None
        self.damage: str | None = None  # the records and the installed files disagreeing, before the switch

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="body"):
            yield Static("Rotate the certificate (never a gap)", classes="heading")
            yield Static(self.describe(), id="steps")
            yield WorkPanel()
            with Horizontal(classes="actions"):
                yield Button("Start rotation", id="start", variant="success")
                yield Button("Back", id="back")
        yield Footer()

    def describe(self, running: str | None = None) -> str:
        lines = []
        for step, words in certificate_rotation.ROTATION_WORDS.items():
            mark = "✓" if step in self.done_steps else ("…" if step == running else " ")
            lines.append(f"[{mark}] {words}")
        return "\n".join(lines)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close":
            return not self.busy  # Esc cancels the rotation first
        return super().check_action(action, parameters)

    def show_event(self, event: waits.Event) -> None:
        super().show_event(event)
        if isinstance(event, waits.Step):
            steps: list[str] = list(certificate_rotation.ROTATION_WORDS)
            self.done_steps = steps[: steps.index(event.step)]
            self.query_one("#steps", Static).update(self.describe(running=event.step))

    @on(Button.Pressed, "#start")
    def start_pressed(self) -> None:
        """Start (or resume) the rotation; once one has finished here, another only after the
        person confirms it (an extra Enter must not spend a slot and move `current` again)."""
        if self.result is None:
            self.rotate()
        else:
            self.confirm_another()

    @work(group="confirm", exclusive=True, exit_on_error=False)
    async def confirm_another(self) -> None:
        if not await self.app.push_screen_wait(
            ConfirmModal(
                "Rotate again?",
                "The rotation just finished. Another one issues one more certificate (one more of the "
                f"{rules.MAX_ACTIVE_CERTIFICATES} slots) and switches `current` again: services you have "
                "just reloaded would move on once more.",
                "Rotate again",
            )
        ):
            return
        self.result, self.done_steps = None, []
        self.query_one("#start", Button).label = "Start rotation"
        self.query_one("#steps", Static).update(self.describe())
        self.rotate()

    @work(group=WORK_GROUP, exclusive=True, exit_on_error=False)
    async def rotate(self) -> None:
        async with self.working(
            cancelled="Rotation paused. Start it again to resume; the current certificate stays in use."
        ):
            timing = self.services.timing
            limits = waits.PollLimits.for_new_certificate(timing.poll_interval, timing.rotation_limit)
            # as seen before the switch, which makes the new pair sound: it keeps the old certificate
            self.damage = await asyncio.to_thread(self.session.installed_damage)
            last = await self.follow(certificate_rotation.rotation(self.session, limits=limits))
        if isinstance(last, waits.Failed):
            raise last.error
        assert isinstance(last, waits.Done) and isinstance(last.result, certificate_rotation.RotationProgress)
        self.result = last.result
        self.done_steps = list(certificate_rotation.ROTATION_WORDS)
        self.query_one("#start", Button).label = "Rotate again…"
        self.query_one("#back", Button).focus()  # a further Enter leaves; it never rotates again
        self.query_one("#steps", Static).update(
            plain(
                self.describe()
                + "\n\nNow in use (SHA-256)"
                + (f", {acceptance.in_words(self.result.verification)}" if self.result.verification else "")
                + ":\n  "
                + fingerprint_lines(self.result.new_fingerprint or "?", indent=2)
                + "\nServices that read `current` keep the old pair until reloaded."
                + "".join(f"\nNote: {note}" for note in self.result.notes)  # the way back, a CN Klarna assigned
            )
        )
        old = self.result.old_certificate_id
        if old and old != self.result.new_certificate_id:
            self.offer_retirement(old)

    @work(group="confirm", exclusive=True, exit_on_error=False)
    async def offer_retirement(self, old: str) -> None:
        """The old certificate is no longer used here: revoke it if the person says so, offered
        only when no declared runtime or other local profile still presents it and the records
        agreed with the installed files before the switch (the check ``rotate --retire-old`` makes
        before it starts; the revocation judges everything again)."""
        found = await asyncio.to_thread(certificate_rotation.retirement_refusals, self.session, old, self.damage)
        if found:
            reasons = " ".join(r.reason for r in found)
            self.notify(f"{old} stays active: {reasons} {found[0].hint}", severity="warning", timeout=15)
            return
        if not await self.app.push_screen_wait(
            ConfirmModal(
                "Retire the old certificate?",
                f"{old}\nis no longer used here. Revoke it once no other system uses it.",
                "Revoke old",
            )
        ):
            return
        self.revoke_old(old)

    @work(group=WORK_GROUP, exclusive=True, exit_on_error=False)
    async def revoke_old(self, old: str) -> None:
        suffix = revocation.confirm_suffix_for(self.session, old)
        async with self.working():
            await self.timed(
                "Revoking the old certificate", revocation.revoke(self.session, old, confirm_suffix=suffix)
            )
        self.notify("Old certificate revoked.")

    @on(Button.Pressed, "#back")
    def action_close(self) -> None:
        self.dismiss(None)
