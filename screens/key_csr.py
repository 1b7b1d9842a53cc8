"""Key and CSR: generate a P-256 key (optionally passphrase-protected) and a CN-only CSR."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, Static

from screens.base import StageScreen
from screens.modals import ConfirmModal
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

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "generate":
            self.generate()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "passphrase":  # Enter in the one field generates, like the button
            self.generate()

    def generate(self) -> None:
        passphrase = self.query_one("#passphrase", Input).value.encode() or None
        if self.session.key_path.exists():

            def answered(replace: bool | None) -> None:
                if replace:
                    self.run_step(
                        lambda: onboarding.generate_key(self.session, passphrase=passphrase, overwrite=True), "generate"
                    )

            self.app.push_screen(
                ConfirmModal(
                    "Replace the existing private key?",
                    f"A key already exists at {self.session.key_path}. Replacing it makes any certificate "
                    "issued for it unusable from this machine.",
                    "Replace key",
                ),
                answered,
            )
            return
        self.run_step(lambda: onboarding.generate_key(self.session, passphrase=passphrase), "generate")

    def show_facts(self) -> None:
        ev = self.session.evidence
        if not ev.csr_pem:
            return
        results = self.session.model.results(self.STAGE)
        lint = "\n".join(f"{'✓' if r.ok else '✗'} {r.reason}" for r in results)
        self.query_one("#facts", Static).update(
            f"Key: {ev.key_path} (P-256{', encrypted' if ev.key_encrypted else ''})\nCSR subject: CN={ev.cn}\n{lint}"
        )
