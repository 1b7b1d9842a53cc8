"""Done: what is in place, and when to start renewing. Paths and commands are shown whole, each on
a line of its own (never wrapped inside a value), and can be copied."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static

from screens.base import WizardScreen, fingerprint_lines
from wizard.core import crypto, rules
from wizard.core.stages import ORDER


class DoneScreen(WizardScreen[None]):
    DEFAULT_CSS = """
    DoneScreen #body { overflow-x: auto; }
    DoneScreen #summary { width: auto; min-width: 100%; text-wrap: nowrap; }
    """
    BINDINGS = [
        Binding("d", "dashboard", "Dashboard"),
        Binding("q", "app.quit", "Quit"),
        Binding("ctrl+y", "copy", "Copy", tooltip="Copy the certificate's SHA-256 fingerprint"),
        Binding("c", "copy_path('cert')", "Copy certificate path", show=False),
        Binding("k", "copy_path('key')", "Copy key path", show=False),
        Binding("m", "copy_cron", "Copy the crontab lines", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="body"):
            yield Static("mTLS is set up", classes="heading")
            yield Static(self.summary(), id="summary", markup=False)
        yield Footer()

    def summary(self) -> str:
        ev = self.session.evidence
        lines = [
            f"Certificate:\n  {ev.certificate_id}",
            f"SHA-256: {fingerprint_lines(ev.fingerprint or '', indent=9)}",
            f"Certificate file (c copies it):\n  {ev.cert_path}",
            f"Private key file (k copies it):\n  {ev.installed_key_path}",
            f"Enforcement: {ev.enforcement_mode} from {ev.enforced_from}",
        ]
        if ev.certificate_pem:
            cert = crypto.load_certificate(ev.certificate_pem)
            renew = cert.not_valid_after_utc - rules.RENEWAL_WINDOW
            lines.append(f"Expires: {cert.not_valid_after_utc:%Y-%m-%d}. Start renewal by {renew:%Y-%m-%d}.")
        if ev.cert_path:  # the crontab lines work as printed: whole, each on a line of its own
            cron = self.services.cron_advice().text().splitlines()
            lines.append(
                "Monitor and renew from cron, daily (crontab -e; m copies the lines):\n"
                + "\n".join(f"  {c}" for c in cron)
            )
        lines += [f"Note: {r.reason}" for stage in ORDER for r in self.session.model.results(stage) if r.noted]
        return rules.clean_text("\n".join(lines), keep_newlines=True)  # ids and Klarna's answers: text only

    def on_mount(self) -> None:
        self.app.update_header()

    def action_copy(self) -> None:
        if self.session.evidence.fingerprint:
            self.app.copy("the SHA-256 fingerprint", self.session.evidence.fingerprint)

    def action_copy_path(self, which: str) -> None:
        ev = self.session.evidence
        path = ev.cert_path if which == "cert" else ev.installed_key_path
        if path:
            self.app.copy("the certificate path" if which == "cert" else "the private key path", path)

    def action_copy_cron(self) -> None:
        if self.session.evidence.cert_path:
            self.app.copy("the crontab lines", self.services.cron_advice().text())

    def action_dashboard(self) -> None:
        self.app.show_dashboard()
