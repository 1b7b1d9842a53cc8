"""Enforce: NOW or a date and time (validated live), confirmed, then watched until it applies."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, Static

from screens.base import STEP_TASKS, StageScreen
from screens.modals import ConfirmModal
from screens.plain_text import plain
from screens.progress import WORK_GROUP
from screens.runtimes_table import RuntimesPanel
from wizard.core import rules
from wizard.core.errors import InputError, WizardError
from wizard.core.stages import Stage
from wizard.services import onboarding, onboarding_waits, waits


class EnforceScreen(StageScreen):
    STAGE = Stage.ENFORCE
    HEADING = "6. Enforce mTLS"
    PRIMARY = "#enforce"

    def compose_body(self) -> ComposeResult:
        yield Static(
            "Once enforced, Klarna refuses every call without a valid client certificate. "
            "Klarna applies it up to 5 minutes after the chosen time.",
            classes="muted",
        )
        if self.services.sandbox_note:
            yield Static(self.services.sandbox_note, id="sandbox-note")
        yield Static("When: NOW, or a date and time with zone (e.g. 2026-12-01T09:00:00Z), at most 3 months ahead")
        yield Input(value="NOW", id="enforce-at")
        yield Static("", id="when")
        with Horizontal(classes="actions"):
            yield Button("Enforce…", id="enforce", variant="warning")
        yield Static("", id="facts")
        yield RuntimesPanel(id="runtimes-panel")  # hidden while no runtime is declared

    def on_mount(self) -> None:
        super().on_mount()
        self.describe_choice(self.query_one("#enforce-at", Input).value)
        self.query_one(RuntimesPanel).show(self.session.state.runtimes, self.session.clock())
        self.judge_runtimes()

    @work(group="runtimes", exclusive=True, exit_on_error=False)
    async def judge_runtimes(self) -> None:
        """The declared runtimes judged again with the account's listing read now, as klarna-mtls
        status does; when it cannot be read, the records alone (the gate reads it when enforcing)."""
        if not self.session.state.runtimes:
            return
        try:
            status = await self.services.load_status()
        except WizardError:
            return
        self.query_one(RuntimesPanel).show(self.session.state.runtimes, self.session.clock(), status.listed_statuses)

    @on(Input.Changed, "#enforce-at")
    def choice_changed(self, event: Input.Changed) -> None:
        self.describe_choice(event.value)
        self.refresh_state()

    def refresh_state(self) -> None:
        super().refresh_state()
        if not self.blocked or self.session.evidence.enforced_from:
            return
        # "Choose when enforcement starts" beside a valid typed time contradicted the screen.
        chosen = self.parsed(self.query_one("#enforce-at", Input).value)
        lines = [
            f"✗ {b.reason}"
            for b in self.session.model.blockers(self.STAGE)
            if b.name != "enforced_from" or chosen is None
        ]
        if chosen is not None:
            lines.insert(0, f"✗ Press Enforce… to schedule enforcement from {chosen}.")
        self.query_one("#blockers", Static).update(plain("To continue:\n" + "\n".join(lines)))

    def parsed(self, typed: str) -> str | None:
        try:
            return rules.parse_enforced_from(typed, now=self.session.clock())
        except InputError:
            return None

    def describe_choice(self, text: str) -> str | None:
        when = self.query_one("#when", Static)
        try:
            value = rules.parse_enforced_from(text, now=self.session.clock())
        except InputError as error:
            when.update(plain(f"✗ {error.message} {error.hint}".strip()))  # quotes what was typed
            when.add_class("-problem")
            self.query_one("#enforce", Button).disabled = True
            return None
        when.remove_class("-problem")
        self.query_one("#enforce", Button).disabled = False
        if value == "NOW":
            when.update("Enforcement starts now.")
        else:
            moment = rules.parse_timestamp(value)
            when.update(f"UTC: {moment:%Y-%m-%d %H:%M}  ·  local: {moment.astimezone():%Y-%m-%d %H:%M %Z}")
        return value

    @on(Button.Pressed, "#enforce")
    @on(Input.Submitted, "#enforce-at")  # Enter in the one field asks, like the button
    @work(group="confirm", exclusive=True, exit_on_error=False)
    async def confirm(self) -> None:
        """Enforce the typed time once the person confirms."""
        value = self.describe_choice(self.query_one("#enforce-at", Input).value)
        if value is None:
            return
        if not await self.app.push_screen_wait(
            ConfirmModal(
                "Enforce mTLS?",
                f"From {value}, every call to Klarna from any of your systems without a valid client "
                "certificate will be refused. Only continue if every system that calls Klarna is verified.",
                "Enforce",
            )
        ):
            return
        self.enforce_and_watch(value)

    @work(group=WORK_GROUP, exclusive=True, exit_on_error=False)
    async def enforce_and_watch(self, value: str) -> None:
        async with self.working(
            cancelled="Stopped watching. Klarna applies the enforcement by itself; the dashboard shows when it has."
        ):
            await self.enforce(value)
        self.refresh_state()

    async def enforce(self, value: str) -> None:
        facts = self.query_one("#facts", Static)
        mode = await self.timed(STEP_TASKS["enforce"], onboarding.enforce(self.session, value))
        facts.update(plain(f"Klarna answered {mode}."))
        self.refresh_state()  # the chosen time is evidence now: the list says what is left
        if value != "NOW":
            return
        timing = self.services.timing
        limits = waits.PollLimits.for_enforcement(timing.poll_interval, timing.enforce_limit)
        last = await self.follow(onboarding_waits.watch_enforcement(self.session, limits))
        if last is not None:
            facts.update(plain(last.text))

    def watch_busy(self, busy: bool) -> None:
        super().watch_busy(busy)
        if not busy:  # the Enforce button follows the typed time again
            self.describe_choice(self.query_one("#enforce-at", Input).value)

    def show_facts(self) -> None:
        ev = self.session.evidence
        if ev.enforcement_mode:
            proved = self.session.settings.enforcement_proved_at
            self.query_one("#facts", Static).update(
                plain(
                    f"Klarna answered {ev.enforcement_mode} from {ev.enforced_from}."
                    + ("\n✓ Proved: a request without a client certificate is refused." if proved else "")
                )
            )
