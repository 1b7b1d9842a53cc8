"""Install: write the pair into a folder, show ready-to-paste snippets, prove it over mTLS."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Checkbox, Input, Label, Static, TabbedContent, TabPane

from screens.base import StageScreen, fold_shell
from screens.plain_text import plain
from screens.services import ScreenServices
from screens.toggles import MarkedCheckbox
from wizard.core.errors import InputError
from wizard.core.stages import Stage
from wizard.services import exports, onboarding
from wizard.services.exports import EXPORTERS, PEM
from wizard.services.install import snippets

SNIPPET_TABS = ("curl", "httpx", "requests", "java", "node", "nginx")
EXTRA_FORMATS = tuple(f for f in EXPORTERS if f != PEM)  # the PEM pair is what the install writes


class InstallScreen(StageScreen):
    STAGE = Stage.INSTALL
    HEADING = "4. Install the certificate and key"
    PRIMARY = "#install"

    def __init__(self, services: ScreenServices) -> None:
        super().__init__(services)
        self.exported: list[str] = []  # the files of the extra formats the last install wrote
        self.snippet_texts: dict[str, str] = {}  # tab name → the snippet as copied (unfolded)

    def compose_body(self) -> ComposeResult:
        yield Label("Install folder (a `current` link points at the active pair)")
        yield Input(value=str(self.session.install_dir), id="install-dir")
        yield Label("Formats: the PEM pair always; also, for other runtimes:")
        with Horizontal(classes="formats"):
            for fmt in EXTRA_FORMATS:
                yield MarkedCheckbox(EXPORTERS[fmt].label, id=f"fmt-{fmt}")
        yield Input(password=True, placeholder="password for the PKCS#12 file", id="p12-password")
        with Horizontal(classes="actions"):
            yield Button("Install and prove with mTLS", id="install", variant="success")
        yield Static("", id="facts")
        yield Static(
            "Long lines scroll sideways; ctrl+y copies the snippet shown, whole.",
            id="snippet-hint",
            classes="muted",
        )
        with TabbedContent(id="snippets"):
            for name in SNIPPET_TABS:
                with TabPane(name, id=f"tab-{name}"):
                    yield Static("", id=f"snippet-{name}", classes="snippet")

    def on_mount(self) -> None:
        self.query_one("#p12-password").display = False
        super().on_mount()

    @on(Checkbox.Changed, "#fmt-p12")
    def show_p12_password(self, event: Checkbox.Changed) -> None:
        self.query_one("#p12-password").display = event.value

    @on(Button.Pressed, "#install")
    def install_pair(self) -> None:
        folder = self.query_one("#install-dir", Input).value.strip() or None
        formats = [f for f in EXTRA_FORMATS if self.query_one(f"#fmt-{f}", Checkbox).value]
        password = self.query_one("#p12-password", Input).value.encode()
        if any(EXPORTERS[f].needs_password for f in formats) and not password:
            self.app.show_error(InputError("A PKCS#12 file needs a password.", hint="Type one, or untick PKCS#12."))
            return

        async def install_and_export() -> None:
            await onboarding.install(self.session, folder)
            self.exported = self.export(formats, password)

        self.run_step(install_and_export, "install")

    def copyable(self) -> tuple[str, str] | None:
        name = self.query_one("#snippets", TabbedContent).active.removeprefix("tab-")
        text = self.snippet_texts.get(name)
        return (f"the {name} snippet", text) if text else None

    def export(self, formats: list[str], password: bytes) -> list[str]:
        """The extra formats, beside the pair in <install folder>/exports (0600 files), each
        through the export service (and so the gate)."""
        out = self.session.install_dir / "exports"
        written: list[Path] = []
        for fmt in formats:  # beside the pair on purpose: the tool's own folder is not kept out here
            written += exports.export(self.session, fmt, out / EXPORTERS[fmt].file_name, password, keep_out=())
        return [str(p) for p in written]

    def show_facts(self) -> None:
        ev = self.session.evidence
        folder = Path(ev.install_dir or self.session.install_dir)
        cert = Path(ev.cert_path) if ev.cert_path else folder / "current" / "certificate.pem"
        key = Path(ev.installed_key_path) if ev.installed_key_path else folder / "current" / "private-key.pem"
        base_url = self.services.display_base_url()
        ca = self.session.ca_bundle if self.session.environment == "sandbox" else None
        self.snippet_texts = snippets(cert, key, base_url, ca)
        for name, text in self.snippet_texts.items():  # shown unwrapped (scrolls), curl folded
            self.query_one(f"#snippet-{name}", Static).update(plain(fold_shell(text) if name == "curl" else text))
        if ev.install_probe_ok_at:
            extra = "".join(f"\nExported: {path}" for path in self.exported)
            self.query_one("#facts", Static).update(
                plain(
                    f"Installed: {cert}\n           {key}\n✓ A real mTLS call with exactly these files succeeded.{extra}"
                )
            )
