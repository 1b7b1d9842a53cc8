"""Key and CSR: generate a P-256 key (optionally passphrase-protected) and a CN-only CSR."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, Static

from screens.base import StageScreen
from screens.modals import ConfirmModal
from screens.plain_text import plain
from wizard.core.errors import InputError
from wizard.core.stages import Stage
from wizard.services import onboarding


class KeyCsrScreen(StageScreen):
    """The passphrase field has focus on arrival (what is typed goes there, never to the button);
    a passphrase is typed twice, and one that is not confirmed is never silently dropped."""

    STAGE = Stage.KEY_AND_CSR
    HEADING = "2. Private key and certificate signing request"
    PRIMARY = "#passphrase"  # focused first: Enter with it empty generates an unencrypted key
    WORK_BUTTONS = ("#generate",)

    def compose_body(self) -> ComposeResult:
        yield Label("Key passphrase (optional; leave empty for an unencrypted 0600 key file)")
        yield Input(password=True, id="passphrase", placeholder="passphrase, or Enter for none")
        yield Input(password=True, id="passphrase-confirm", placeholder="the same passphrase again")
        with Horizontal(classes="actions"):
            yield Button("Generate key and CSR", id="generate", variant="success")
        yield Static("", id="facts")

    @on(Input.Submitted, "#passphrase")
    def passphrase_entered(self) -> None:
        """Enter after a passphrase goes on to its confirmation; with none, it generates."""
        if self.query_one("#passphrase", Input).value:
            self.query_one("#passphrase-confirm", Input).focus()
        else:
            self.generate()

    def confirmed_passphrase(self) -> bytes | None:
        """The passphrase typed twice (None: none typed); raises InputError, focusing the field
        to fix, when it is typed once or the two differ."""
        first = self.query_one("#passphrase", Input).value
        again = self.query_one("#passphrase-confirm", Input)
        if first and not again.value:
            again.focus()
            raise InputError(
                "Type the key passphrase again in the confirmation field.",
                title="Passphrase not confirmed",
                hint="Nothing was generated. Or clear the passphrase field for an unencrypted key file.",
            )
        if first != again.value:
            again.value = ""
            again.focus()
            raise InputError(
                "The two passphrases differ.",
                title="Passphrase not confirmed",
                hint="Nothing was generated. Type the same passphrase in both fields.",
            )
        return first.encode() or None

    @on(Button.Pressed, "#generate")
    @on(Input.Submitted, "#passphrase-confirm")
    def generate(self) -> None:
        try:
            passphrase = self.confirmed_passphrase()
        except InputError as error:
            self.app.show_error(error)
            return
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
