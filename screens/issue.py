"""Issue: submit the CSR; show the certificate Klarna returned."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static

from screens.base import StageScreen, fingerprint_lines
from screens.plain_text import plain
from wizard.core import crypto, rules
from wizard.core.stages import Stage
from wizard.services import onboarding


class IssueScreen(StageScreen):
    STAGE = Stage.ISSUE
    HEADING = "3. Issue the certificate"
    PRIMARY = "#submit"

    def compose_body(self) -> ComposeResult:
        yield Static("Klarna signs your CSR and returns a certificate valid for 3 years.", classes="muted")
        with Horizontal(classes="actions"):
            yield Button("Submit CSR to Klarna", id="submit", variant="success")
        yield Static("", id="facts")

    @on(Button.Pressed, "#submit")
    def submit_csr(self) -> None:
        self.run_step(lambda: onboarding.issue_certificate(self.session), "issue")

    def copyable(self) -> tuple[str, str] | None:
        fingerprint = self.session.evidence.fingerprint
        return ("the SHA-256 fingerprint", fingerprint) if fingerprint else None

    def show_facts(self) -> None:
        ev = self.session.evidence
        if not ev.certificate_pem:
            return
        cert = crypto.load_certificate(ev.certificate_pem)
        self.query_one("#facts", Static).update(
            plain(
                f"Certificate id:\n  {ev.certificate_id}\nCN: {crypto.certificate_cn(cert)}\n"
                f"SHA-256: {fingerprint_lines(ev.fingerprint or '', indent=9)}\n"
                f"Valid: {cert.not_valid_before_utc:%Y-%m-%d} → {cert.not_valid_after_utc:%Y-%m-%d}\n"
                f"Slots used: {ev.active_certificates} of {rules.MAX_ACTIVE_CERTIFICATES}"
            )
        )
