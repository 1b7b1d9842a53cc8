"""The app as the screens see it: where to go, and how to tell the person something. The screens'
data and actions are in ScreenServices; this is only navigation and feedback."""

from __future__ import annotations

from textual.app import App
from textual.notifications import SeverityLevel
from textual.worker import Worker

from wizard.core.rules import clean_text
from wizard.core.stages import Stage


class Shell(App[None]):
    """WizardApp (screens/app.py) does all of this. Screens type ``self.app`` as a Shell, so no screen
    imports the app module, which imports every screen."""

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification as plain text, whoever sends it (screens and widgets end here too):
        messages quote server strings (a key, a certificate, Klarna's answer), so ``markup`` is
        ignored, never parsed, and control characters are removed."""
        super().notify(
            clean_text(message, keep_newlines=True),
            title=clean_text(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    def show_stage(self) -> None:
        """Show the screen of the journal's current stage."""
        raise NotImplementedError

    def show_dashboard(self) -> None:
        raise NotImplementedError

    def advance(self) -> None:
        """Move the journal to the next stage and show it; an error modal says why not."""
        raise NotImplementedError

    def reopen(self, stage: Stage) -> None:
        """Back to an earlier stage, asking first when that discards later evidence."""
        raise NotImplementedError

    def update_header(self) -> None:
        """The header's profile, environment and progress, from the journal."""
        raise NotImplementedError

    def copy(self, label: str, text: str) -> None:
        """Copy through the terminal, and say what was copied."""
        raise NotImplementedError

    def show_error(self, error: BaseException) -> None:
        """The one error modal, naming the log."""
        raise NotImplementedError

    def report_worker_state(self, event: Worker.StateChanged) -> None:
        """Where a screen hands its workers' state changes: failures become the error modal."""
        raise NotImplementedError
