"""The app as the screens see it: where to go, and how to tell the person something. The screens'
data and actions are in ScreenServices; this is only navigation and feedback."""

from __future__ import annotations

from textual.app import App
from textual.worker import Worker

from wizard.core.stages import Stage


class Shell(App[None]):
    """WizardApp (screens/app.py) does all of this. Screens type ``self.app`` as a Shell, so no screen
    imports the app module, which imports every screen."""

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
