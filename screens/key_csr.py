"""Key and CSR: generate a P-256 key (optionally passphrase-protected) and a CN-only CSR."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, Static

from screens.base import StageScreen
from screens.modals import ConfirmModal
from screens.plain_text import plain
from wizard.core.stages import Stage
from wizard.services import onboarding


class KeyCsrScreen(StageScreen):
    STAGE = Stage.KEY_AND_CSR
    HEADING = "2. Private key and certificate signing request"
    PRIMARY = "#generate"

    def compose_body(self) -> ComposeResult:
        yield Label("Key passphrase (optional; leave empty for an unencrypted 0600 key file)")
        yield Input(password=True, id="passphrase")
        with Horizontal(classes="actions"):
            yield Button("Generate key and CSR", id="generate", variant="success")
        yield Static("", id="facts")

    @on(Button.Pressed, "#generate")
    @on(Input.Submitted, "#passphrase")  # Enter in the one field generates, like the button
    def generate(self) -> None:
        passphrase = self.query_one("#passphrase", Input).value.encode() or None
        if self.session.key_path.exists():
            self.replace_key(passphrase)
            return
        self.run_step(lambda: onboarding.generate_key(self.session, passphrase=passphrase), "generate")

    @work(group="confirm", exclusive=True, exit_on_error=False)
    async def replace_key(self, passphrase: bytes | None) -> None:
        """A key is there already: replace it only once the person confirms."""
        if not await self.app.push_screen_wait(
            ConfirmModal(
                "Replace the existing private key?",
                f"A key already exists at {self.session.key_path}. Replacing it makes any certificate "
                "issued for it unusable from this machine.",
                "Replace key",
            )
        ):
            return
        self.run_step(lambda: onboarding.generate_key(self.session, passphrase=passphrase, overwrite=True), "generate")

    def show_facts(self) -> None:
        ev = self.session.evidence
        if not ev.csr_pem:
            return
        results = self.session.model.results(self.STAGE)
        lint = "\n".join(f"{'✓' if r.ok else '✗'} {r.reason}" for r in results)
        self.query_one("#facts", Static).update(
            plain(
                f"Key: {ev.key_path} (P-256{', encrypted' if ev.key_encrypted else ''})\nCSR subject: CN={ev.cn}\n{lint}"
            )
        )
