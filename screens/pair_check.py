"""Check a pair: any certificate and key on disk (e.g. copied from a failing server), checked by the
domain's pair doctor (the same checks as ``klarna-mtls doctor --cert FILE --key FILE``); each
finding with its severity and what to do next."""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Footer, Header, Input, Label, Static

from screens.doctor import MARKS
from screens.plain_text import plain
from screens.progress import CANCEL_BINDINGS, WORK_GROUP, WorkPanel, WorkScreen
from wizard.core.errors import InputError
from wizard.core.findings import Finding
from wizard.services import pair_doctor

EMPTY = "Name a certificate file and its private key file, then press Enter or Check."


def findings_text(findings: list[Finding]) -> Content:
    """Each finding as plain text (paths and server words are never markup)."""
    lines = []
    for f in findings:
        lines.append(f"{MARKS.get(f.severity, '?')} {f.check} ({f.severity}): {f.summary}")
        if f.next_step:
            lines.append(f"    → {f.next_step}")
    return plain("\n".join(lines))


class PairCheckScreen(WorkScreen):
    HELP_TITLE = "Check a pair"
    DEFAULT_CSS = """
    PairCheckScreen .field { height: 1; margin: 0 0 1 0; }
    PairCheckScreen .field Label { width: 13; }
    PairCheckScreen .field Input { width: 1fr; }
    PairCheckScreen #findings { margin: 1 0 0 0; }
    """
    BINDINGS = [Binding("escape", "close", "Back"), *CANCEL_BINDINGS]
    WORK_BUTTONS = ("#check",)
    AUTO_FOCUS = "#cert-file"

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="body"):
            yield Static("Check a certificate and key pair", classes="heading")
            for label, field, hint, secret in (
                ("Certificate", "cert-file", "certificate.pem", False),
                ("Private key", "key-file", "private-key.pem", False),
                ("Passphrase", "key-passphrase", "key passphrase, if it has one", True),
            ):
                with Horizontal(classes="field"):
                    yield Label(label)
                    yield Input(placeholder=hint, id=field, password=secret, compact=True)
            yield Button("Check", id="check", variant="success", compact=True)
            yield WorkPanel()
            yield Static(EMPTY, id="findings", markup=False)
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close":
            return not self.busy  # Esc cancels the check first
        return super().check_action(action, parameters)

    @on(Input.Submitted)  # Enter in any field checks, like the button
    @on(Button.Pressed, "#check")
    def submit(self) -> None:
        if self.busy:
            return
        cert, key = (self.query_one(f"#{i}", Input).value.strip() for i in ("cert-file", "key-file"))
        if not (cert and key):
            self.app.show_error(InputError("Give both a certificate file and a key file."))
            return
        passphrase = self.query_one("#key-passphrase", Input).value
        self.check(Path(cert).expanduser(), Path(key).expanduser(), passphrase.encode() if passphrase else None)

    @work(group=WORK_GROUP, exclusive=True, exit_on_error=False)
    async def check(self, cert: Path, key: Path, passphrase: bytes | None) -> None:
        shown = self.query_one("#findings", Static)
        shown.update("")
        async with self.working(cancelled="Check cancelled."):
            findings = await self.timed(
                "Checking the pair", pair_doctor.doctor_pair(self.session, cert, key, key_passphrase=passphrase)
            )
        shown.update(findings_text(findings))

    def action_close(self) -> None:
        self.dismiss(None)
