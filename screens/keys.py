"""Credentials: the account's API keys, one per service; create, disable (guarded) and rotate the
key this tool uses."""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.validation import Function
from textual.widgets import Button, DataTable, Footer, Header, Input, Static

from wizard import keys, rules
from wizard.errors import InputError
from wizard.flow import Session
from wizard.interlocks import Action, ActionRefused

from .modals import ConfirmModal
from .progress import CANCEL_BINDINGS, WORK_GROUP, WorkPanel, WorkScreen


def _valid_description(text: str) -> bool:
    try:
        rules.verify_description(text)
    except InputError:
        return False
    return bool(text.strip())


class SecretOnceModal(ModalScreen[bool]):
    """Klarna shows a new key once: show it here, and where it was kept (if anywhere)."""

    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, masked: str, secret, kept_in: str | None) -> None:
        super().__init__()
        self.masked, self.secret, self.kept_in = masked, secret, kept_in

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box", id="confirm-box"):
            yield Static("New API key: shown once", classes="modal-title")
            yield Static(self.secret.reveal(), id="secret")
            yield Static(f"\nKept in {self.kept_in}." if self.kept_in else
                         "\nCopy it now: it is not kept anywhere and Klarna will not show it again.")
            with Horizontal(classes="buttons"):
                yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(True)

    def action_close(self) -> None:
        self.dismiss(True)


class KeysScreen(WorkScreen):
    WORK_BUTTONS = ("#create",)
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("f5", "refresh", "Refresh"),
        Binding("ctrl+d", "disable", "Disable selected"),
        Binding("ctrl+r", "rotate", "Rotate tool's key"),
        Binding("ctrl+t", "mark_tool_key", "Mark tool's key"),
        *CANCEL_BINDINGS,
    ]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.rows: list[keys.KeyRow] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="body"):
            yield Static("API keys: one per service", classes="heading")
            yield DataTable(id="keys", cursor_type="row", zebra_stripes=True)
            yield Static("", id="note")
            yield Input(placeholder="service name for a new key, e.g. checkout-eu", id="description",
                        validators=[Function(_valid_description, "Letters, digits, spaces and - : ; . , _ (max 100).")])
            with Horizontal(classes="actions"):
                yield Button("Create key", id="create", variant="success")
            yield WorkPanel()
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("id", "description", "key", "state", "created", "tool")
        self.action_refresh()

    def action_refresh(self) -> None:
        async def load() -> None:
            self.show(await self.app.load_keys(self.session))

        self.run_worker(load(), group="keys", exclusive=True, exit_on_error=False)

    def show(self, rows: list[keys.KeyRow]) -> None:
        self.rows = rows
        table = self.query_one(DataTable)
        table.clear()
        for r in rows:
            table.add_row("…" + r.credential_id[-12:], r.description or "(none)", r.masked, r.status,
                          (r.created_at or "")[:10], "in use" if r.used_by_tool else "", key=r.credential_id)
        initial = any(r.used_by_tool and r.is_initial for r in rows)
        unknown = self.session.state.tool_key_id is None
        self.query_one("#note", Static).update(
            "! klarna-mtls does not know which key it runs on: select it and press ctrl+t, or press ctrl+r "
            "to let it create and use its own key." if unknown else
            "! klarna-mtls runs on the initial key: rotate it (ctrl+r) to give this tool its own." if initial else "")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "create":
            description = self.query_one("#description", Input).value.strip()
            if not _valid_description(description):
                self.app.show_error(InputError("Describe the service the key is for.",
                                               hint="Letters, digits, spaces and - : ; . , _ (max 100)."))
                return
            self.start_create(description)

    async def profile_store(self):
        """The profile's persistent store (asks an encrypted file's passphrase), or None."""
        from wizard import secrets

        kind = self.session.evidence.secret_backend
        if kind not in secrets.PERSISTENT_KINDS:
            return None
        passphrase = await self.app.store_passphrase() if kind == "encrypted-file" else None
        return await asyncio.to_thread(secrets.open_profile_store, kind, self.session.paths, passphrase=passphrase)

    def start_create(self, description: str) -> None:
        """The CLI's safety net: the key is created with the profile's store, so a store that
        refuses it gets the new key disabled. Kept nowhere only when the person says so."""
        from wizard import secrets

        if self.session.evidence.secret_backend in secrets.PERSISTENT_KINDS:
            self.create(description, keep=True)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.create(description, keep=False)

        self.app.push_screen(ConfirmModal(
            "Create a key that is kept nowhere?",
            "This profile's key is read per run, so there is no secret store to keep the new key in. "
            "Its secret will be shown once; copy it at once.", "Create and show once"), answered)

    @work(group=WORK_GROUP, exclusive=True, exit_on_error=False)
    async def create(self, description: str, keep: bool) -> None:
        store = await self.profile_store() if keep else None
        async with self.working():
            row, secret = await self.timed("Creating the API key",
                                           keys.create_key(self.session, description, store=store))
        where = f"{store.display_name} as {keys.stored_name(self.session.profile, row.credential_id)}" if store else None
        self.app.push_screen(SecretOnceModal(row.masked, secret, where), lambda _: self.action_refresh())

    def selected(self) -> keys.KeyRow | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return next((r for r in self.rows if r.credential_id == key), None)

    def action_disable(self) -> None:
        row = self.selected()
        if row is None:
            return
        found = keys.disable_refusals(self.session, self.rows, row.credential_id)
        if any(r.check not in keys.CONFIRMABLE for r in found):
            self.app.show_error(ActionRefused(Action.DISABLE_API_KEY, found))
            return

        async def disable(confirmed: bool) -> None:
            await keys.disable_key(self.session, row.credential_id, not_the_tools_key=confirmed)
            self.action_refresh()

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(disable(True), group="keys", exclusive=True, exit_on_error=False)

        if not found:
            self.run_worker(disable(False), group="keys", exclusive=True, exit_on_error=False)
            return
        reasons = " ".join(r.reason for r in found)
        self.app.push_screen(ConfirmModal(
            "Is this not the tool's key?",
            f"{reasons} Disable {row.masked} only if klarna-mtls does not run on it: the tool would stop working.",
            "Disable"), answered)

    def action_mark_tool_key(self) -> None:
        row = self.selected()
        if row is None:
            return

        async def mark() -> None:
            await keys.record_tool_key(self.session, row.credential_id)
            self.notify(f"Recorded: klarna-mtls runs on {row.masked}.")
            self.action_refresh()

        self.run_worker(mark(), group="keys", exclusive=True, exit_on_error=False)

    def action_rotate(self) -> None:
        self.rotate_key()

    @work(group=WORK_GROUP, exclusive=True, exit_on_error=False)
    async def rotate_key(self) -> None:
        """The domain's key rotation, its steps shown as they run. When the tool's key is
        unknown, the tool creates its own and leaves the one it ran on active."""
        store = await self.profile_store()
        if store is None:
            from wizard.errors import SecretStoreError

            raise SecretStoreError(
                "Rotating the tool's key needs a store that keeps keys (OS keyring or encrypted file).",
                hint="Store the API key in the keyring or the encrypted file first (the wizard's Credentials step).")
        own = self.session.state.tool_key_id is None
        async with self.working(cancelled="Key rotation paused: press ctrl+r to resume. The tool keeps a "
                                          "working key throughout."):
            if own:
                await keys.take_own_key(self.session, store, on_event=self.show_event)
                self.notify("klarna-mtls now runs on its own new key; the key it ran on stays active.")
            else:
                await keys.rotate_tool_key(self.session, store, on_event=self.show_event)
                self.notify("The tool now uses its own new key; the old one is disabled.")
        self.action_refresh()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close":
            return not self.busy  # Esc cancels the running work first
        return super().check_action(action, parameters)

    def action_close(self) -> None:
        self.dismiss(None)
