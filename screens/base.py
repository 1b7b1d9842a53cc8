"""What every stage screen shares: the session, a Next action gated by the model's blockers, and
the blockers listed in plain words."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.reactive import reactive
from textual.widgets import Button, Footer, Header, Static
from textual.worker import Worker

from screens.plain_text import plain
from screens.progress import CANCEL_BINDINGS, WORK_GROUP, ReportsWorkerErrors, WizardScreen, WorkPanel, WorkScreen
from wizard.core.stages import ORDER, Stage


def fingerprint_lines(fingerprint: str, *, indent: int = 0, per_line: int = 16) -> str:
    """A SHA-256 fingerprint cut between bytes, 16 a line (47 columns), so a narrow terminal
    never wraps it in the middle of a byte; later lines are indented by ``indent``."""
    octets = fingerprint.split(":")
    lines = [":".join(octets[i : i + per_line]) for i in range(0, len(octets), per_line)]
    return ("\n" + " " * indent).join(lines)


def shell_words(line: str) -> list[str]:
    """Split a shell line at unquoted spaces, keeping each word's quoting as written."""
    words: list[str] = []
    word, quote = "", ""
    for char in line:
        if char in "'\"" and quote in ("", char):
            quote = "" if quote else char
        if char == " " and not quote:
            words, word = words + [word] if word else words, ""
        else:
            word += char
    return words + [word] if word else words


def fold_shell(text: str, width: int = 72) -> str:
    """Long shell lines cut before each option with a `\\` continuation, so a narrow terminal
    never wraps a path or URL in its middle, and the folded text still runs as is."""
    out = []
    for line in text.splitlines():
        if len(line) <= width or line.lstrip().startswith("#"):
            out.append(line)
            continue
        parts: list[str] = []
        for word in shell_words(line):
            if parts and (word.startswith("-") or "://" in word):
                parts.append(word)
            elif parts:
                parts[-1] += " " + word
            else:
                parts.append(word)
        out.append(" \\\n  ".join(parts))
    return "\n".join(out)


__all__ = ["ReportsWorkerErrors", "StageScreen", "WizardScreen", "WorkScreen"]


# What each step is doing, in the words the progress panel shows.
STEP_TASKS = {
    "check-credentials": "Testing the API key with Klarna",
    "generate": "Generating the private key and CSR",
    "issue": "Submitting the CSR to Klarna",
    "install": "Installing the pair and proving it with a real mTLS call",
    "enforce": "Asking Klarna to enforce mTLS",
}


class StageScreen(WorkScreen):
    """Base for the six stage screens. Subclasses implement ``compose_body``; their long work
    runs through ``run_step`` (progress, a limit and a Cancel)."""

    STAGE: Stage
    HEADING = ""
    PRIMARY = ""  # the button Enter should press first; Next takes focus once the stage passes
    BINDINGS = [
        Binding("ctrl+n", "next", "Next", priority=True),
        Binding("escape", "back", "Back"),
        Binding("ctrl+y", "copy", "Copy", tooltip="Copy what this step produced (through the terminal)"),
        *CANCEL_BINDINGS,
    ]
    WORK_BUTTONS: ClassVar[tuple[str, ...]] = ()  # default: the PRIMARY button

    blocked: reactive[bool] = reactive(True, bindings=True)

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="body"):
            yield Static(self.HEADING, classes="heading")
            yield from self.compose_body()
            yield WorkPanel()
            yield Static("", id="blockers")
            with Horizontal(classes="nav"):
                yield Button("◀ Back", id="back")
                yield Button("Next ▶", id="next", variant="primary", disabled=True)
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.refresh_state()
        if self.blocked and self.PRIMARY:
            self.query_one(self.PRIMARY).focus()

    def on_screen_resume(self) -> None:
        self.refresh_state()

    def refresh_state(self) -> None:
        """Re-read the model: list blockers, gate Next, let subclasses redraw their facts."""
        blockers = self.session.model.blockers(self.STAGE)
        warnings = self.session.model.warnings(self.STAGE)
        self.blocked = bool(blockers)
        lines = [f"✗ {b.reason}" for b in blockers] + [f"! {w.reason}" for w in warnings]
        text = "To continue:\n" + "\n".join(lines) if blockers else "\n".join(lines) or "✓ All checks pass."
        notes = [
            f"ℹ {r.reason}" for r in self.session.model.results(self.STAGE) if r.noted
        ]  # e.g. a CN Klarna assigned
        text = "\n".join([text, *notes])
        self.query_one("#blockers", Static).update(plain(text))
        self.query_one("#blockers").set_class(bool(blockers), "-blocked")
        next_button = self.query_one("#next", Button)
        was_blocked, next_button.disabled = next_button.disabled, self.blocked
        if was_blocked and not self.blocked:
            next_button.focus()  # keyboard users go on with Enter
        self.app.update_header()
        self.show_facts()

    def show_facts(self) -> None:
        """Subclasses redraw what they show from the evidence."""

    def work_buttons(self) -> tuple[str, ...]:
        return self.WORK_BUTTONS or ((self.PRIMARY,) if self.PRIMARY else ())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next":
            return not self.blocked
        if action == "copy":
            return self.copyable() is not None
        if action == "back":
            return not self.busy  # Esc cancels the running work first
        return super().check_action(action, parameters)

    def copyable(self) -> tuple[str, str] | None:
        """(what it is, the text) that ctrl+y copies; None hides the key. Subclasses say."""
        return None

    def action_copy(self) -> None:
        found = self.copyable()
        if found:
            self.app.copy(*found)

    @on(Button.Pressed, "#next")
    def action_next(self) -> None:
        if not self.blocked:
            self.app.advance()

    @on(Button.Pressed, "#back")
    def action_back(self) -> None:
        """Reopen the previous stage (the app asks before discarding later evidence); from the
        first stage, back to the Welcome screen. Not while this screen's work is running."""
        if any(w.node is self and w.is_running for w in self.app.workers):
            self.notify("Wait for the running step to finish (or cancel it), then go back.", severity="warning")
            return
        index = ORDER.index(self.STAGE)
        if index > 0:
            self.app.reopen(ORDER[index - 1])
        elif len(self.app.screen_stack) > 2:
            self.app.pop_screen()  # the Welcome screen is beneath: environment and account id

    def run_step(self, work: Callable[[], Awaitable[object]], name: str, task: str | None = None) -> Worker[None]:
        """Run session work in the screen's exclusive worker, with progress, the app's step limit
        and a Cancel; failures go to the app's one error handler."""
        return self.step(task or STEP_TASKS.get(name, "Working"), work)

    @work(group=WORK_GROUP, exclusive=True, exit_on_error=False)
    async def step(self, task: str, job: Callable[[], Awaitable[object]]) -> None:
        async with self.working():
            await self.timed(task, job())
        self.refresh_state()
