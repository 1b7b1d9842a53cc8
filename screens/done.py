"""Done: what is in place, and when to start renewing."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static

from screens.base import WizardScreen, fingerprint_lines
from screens.plain_text import plain
from wizard.core import crypto, rules


class DoneScreen(WizardScreen[None]):
    BINDINGS = [
        Binding("d", "dashboard", "Dashboard"),
        Binding("q", "app.quit", "Quit"),
        Binding("ctrl+y", "copy", "Copy", tooltip="Copy the certificate's SHA-256 fingerprint"),
    ]

    def compose(self) -> ComposeResult:
        ev = self.session.evidence
        yield Header()
        with VerticalScroll(id="body"):
            yield Static("mTLS is set up", classes="heading")
            lines = [
                f"Certificate:\n  {ev.certificate_id}",
                f"SHA-256: {fingerprint_lines(ev.fingerprint or '', indent=9)}",
                f"Installed: {ev.cert_path}",
                f"Enforcement: {ev.enforcement_mode} from {ev.enforced_from}",
            ]
            if ev.certificate_pem:
                cert = crypto.load_certificate(ev.certificate_pem)
                renew = cert.not_valid_after_utc - rules.RENEWAL_WINDOW
                lines.append(f"Expires: {cert.not_valid_after_utc:%Y-%m-%d}. Start renewal by {renew:%Y-%m-%d}.")
            lines.append("Monitor from cron: klarna-mtls check --warn-days 60 --critical-days 14")
            yield Static(plain("\n".join(lines)), id="summary")
        yield Footer()

    def on_mount(self) -> None:
        self.app.update_header()

    def action_copy(self) -> None:
        if self.session.evidence.fingerprint:
            self.app.copy("the SHA-256 fingerprint", self.session.evidence.fingerprint)

    def action_dashboard(self) -> None:
        self.app.show_dashboard()
