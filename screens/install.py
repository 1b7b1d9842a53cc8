"""Install: write the pair into a folder, show ready-to-paste snippets, prove it over mTLS."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, Static, TabbedContent, TabPane

from wizard.install import snippets
from wizard.model import Stage

from .base import StageScreen

SNIPPET_TABS = ("curl", "httpx", "requests", "java", "node", "nginx")


class InstallScreen(StageScreen):
    STAGE = Stage.INSTALL
    HEADING = "4. Install the certificate and key"
    PRIMARY = "#install"

    def compose_body(self) -> ComposeResult:
        yield Label("Install folder (a `current` link points at the active pair)")
        yield Input(value=str(self.session.install_dir), id="install-dir")
        with Horizontal(classes="actions"):
            yield Button("Install and prove with mTLS", id="install", variant="success")
        yield Static("", id="facts")
        with TabbedContent(id="snippets"):
            for name in SNIPPET_TABS:
                with TabPane(name, id=f"tab-{name}"):
                    yield Static("", id=f"snippet-{name}", classes="snippet")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "install":
            folder = self.query_one("#install-dir", Input).value.strip() or None
            self.run_step(lambda: self.session.install(folder), "install")

    def show_facts(self) -> None:
        ev = self.session.evidence
        folder = Path(ev.install_dir or self.session.install_dir)
        cert = Path(ev.cert_path) if ev.cert_path else folder / "current" / "certificate.pem"
        key = Path(ev.installed_key_path) if ev.installed_key_path else folder / "current" / "private-key.pem"
        base_url = self.app.display_base_url()
        ca = self.session.ca_bundle if self.session.environment == "sandbox" else None
        for name, text in snippets(cert, key, base_url, ca).items():
            self.query_one(f"#snippet-{name}", Static).update(text)
        if ev.install_probe_ok_at:
            self.query_one("#facts", Static).update(
                f"Installed: {cert}\n           {key}\n✓ A real mTLS call with exactly these files succeeded."
            )
