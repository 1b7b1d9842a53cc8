"""Credentials: the account's API keys, one per service; create, disable (guarded) and rotate the
key this tool uses."""

from __future__ import annotations

import asyncio

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.validation import Function
from textual.widgets import Button, DataTable, Footer, Header, Input, Static

from wizard import keys, rules
from wizard.errors import InputError, SecretStoreError, WizardError
from wizard.flow import Session
from wizard.interlocks import Action, ActionRefused

from .base import ReportsWorkerErrors
from .modals import ConfirmModal, TypedConfirmModal


def _valid_description(text: str) -> bool:
    try:
        rules.verify_description(text)
    except InputError:
        return False
    return bool(text.strip())


class SecretOnceModal(ModalScreen[bool]):
    """Klarna shows a new key once: show it here, and keep it only if the user asks and a store
    that keeps keys is at hand (``store_name``; None when the key came from the environment)."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("c", "copy", "Copy")]

    NO_STORE = "this profile's key comes from KLARNA_API_KEY, so nothing here can keep the new one"

    def __init__(self, masked: str, secret, store_name: str | None = None, no_store: str = NO_STORE) -> None:
        super().__init__()
        self.masked, self.secret, self.store_name, self.no_store = masked, secret, store_name, no_store

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box", id="confirm-box"):
            yield Static("New API key: shown once", classes="modal-title")
            yield Static(self.secret.reveal(), id="secret", markup=False)
            if self.store_name:
                advice = f"Copy it now (c), or keep it in the {self.store_name}. It is not written anywhere else."
            else:
                advice = f"Copy it now (c): {self.no_store}. It is not written anywhere else."
            yield Static(advice, id="advice", markup=False)
            with Horizontal(classes="buttons"):
                if self.store_name:
                    yield Button("Keep in secret store", id="store", variant="success")
                yield Button("Copy", id="copy")
                yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "copy":
            self.action_copy()
            return
        self.dismiss(event.button.id == "store")

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.secret.reveal())  # OSC 52: the terminal's clipboard
        self.notify("Copied to the clipboard (if your terminal allows it).")

    def action_close(self) -> None:
        self.dismiss(False)


class KeysScreen(ReportsWorkerErrors, Screen[None]):
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("f5", "refresh", "Refresh"),
        Binding("ctrl+d", "disable", "Disable selected"),
        Binding("ctrl+r", "rotate", "Rotate tool's key"),
        Binding("ctrl+t", "mark_tool_key", "Mark tool's key"),
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
            self.create_from_form()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "description":  # Enter in the one field creates, like the button
            self.create_from_form()

    def create_from_form(self) -> None:
        description = self.query_one("#description", Input).value.strip()
        if not _valid_description(description):
            self.app.show_error(InputError("Describe the service the key is for.",
                                           hint="Letters, digits, spaces and - : ; . , _ (max 100)."))
            return
        self.query_one("#description", Input).value = ""  # a second Enter must not make a duplicate
        self.run_worker(self.create(description), group="keys", exclusive=True, exit_on_error=False)

    def keeping_store(self):
        """The profile's store when it keeps keys and can be opened now; None otherwise (a key
        from KLARNA_API_KEY, the encrypted file with no passphrase given in this run)."""
        kind = self.session.evidence.secret_backend or "keyring"
        try:
            store = self.app.open_store(kind)
        except WizardError:
            return None
        return store if store.persistent else None

    async def create(self, description: str) -> None:
        store = self.keeping_store()  # known before the key exists: never offer what cannot keep
        row, secret = await keys.create_key(self.session, description)

        def answered(keep: bool | None) -> None:
            if keep and store is not None:
                self.run_worker(self.keep(store, row, secret), group="keep", exit_on_error=False)
            self.action_refresh()

        self.app.push_screen(SecretOnceModal(row.masked, secret, store.display_name if store else None), answered)

    async def keep(self, store, row: keys.KeyRow, secret) -> None:
        try:
            await asyncio.to_thread(store.set, keys.stored_name(self.session.profile, row.credential_id), secret.reveal())
        except WizardError as error:  # the key exists at Klarna: show it again rather than lose it
            self.app.push_screen(SecretOnceModal(row.masked, secret, None, f"the {store.display_name} refused it"))
            self.app.show_error(error)
            return
        self.notify(f"Kept in {store.display_name}.")

    def selected(self) -> keys.KeyRow | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return next((r for r in self.rows if r.credential_id == key), None)

    def confirm(self, title: str, consequence: str, row: keys.KeyRow, label: str, then) -> None:
        """Ask before a destructive key action, like certificate revocation: live profiles type
        the key's last four characters; Cancel is the default."""
        suffix = row.masked[-4:]
        if self.session.environment == "live":
            modal = TypedConfirmModal(title, consequence, suffix, what=f"the key's last four characters ({suffix})",
                                      confirm_label=label)
            self.app.push_screen(modal, lambda typed: then() if typed else None)
        else:
            self.app.push_screen(ConfirmModal(title, consequence, label), lambda yes: then() if yes else None)

    def action_disable(self) -> None:
        row = self.selected()
        if row is None:
            return
        found = keys.disable_refusals(self.session, self.rows, row.credential_id)
        if any(r.check not in keys.CONFIRMABLE for r in found):
            self.app.show_error(ActionRefused(Action.DISABLE_API_KEY, found))
            return

        async def disable() -> None:
            await keys.disable_key(self.session, row.credential_id, not_the_tools_key=bool(found))
            self.notify(f"Key {row.masked} disabled.")
            self.action_refresh()

        doubt = " ".join(r.reason for r in found)  # confirmable doubts: it may be the tool's key
        self.confirm(
            "Disable this API key?",
            f"Key {row.masked} ({row.description or 'no description'}) stops working at once, for good, for every "
            "system that uses it" + (f", klarna-mtls too if it runs on it. {doubt}" if doubt else "."),
            row, "Disable key",
            lambda: self.run_worker(disable(), group="keys", exclusive=True, exit_on_error=False))

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
        store = self.keeping_store()
        if store is None:
            self.app.show_error(SecretStoreError(
                "Rotating the tool's key needs the store that keeps it (OS keyring or encrypted file), open in this run.",
                hint="A key from KLARNA_API_KEY is rotated in Klarna's portal; an encrypted file asks its passphrase when the wizard starts.",
            ))
            return
        own = self.session.state.tool_key_id is None
        old = next((r for r in self.rows if r.used_by_tool), None)

        async def rotate() -> None:
            if own:  # the tool's key is unknown: it creates its own and leaves that one active
                await keys.take_own_key(self.session, store)
                self.notify("klarna-mtls now runs on its own new key; the key it ran on stays active.")
            else:
                await keys.rotate_tool_key(self.session, store)
                self.notify("The tool now uses its own new key; the old one is disabled.")
            self.action_refresh()

        if own:  # nothing is disabled: the key it ran on stays active
            self.run_worker(rotate(), group="keys", exclusive=True, exit_on_error=False)
            return
        consequence = ("klarna-mtls creates a new key, keeps it in the " + store.display_name + ", proves it with a "
                       "live call and switches to it. Then the old key "
                       + (f"{old.masked} ({old.description or 'no description'})" if old else "it used")
                       + " is disabled: every other system still using it stops working.")
        self.confirm("Rotate the tool's API key?", consequence,
                     old or keys.KeyRow("", None, "ACTIVE", None, None, self.session.api_key_suffix or "????", False, True),
                     "Rotate key",
                     lambda: self.run_worker(rotate(), group="keys", exclusive=True, exit_on_error=False))

    def action_close(self) -> None:
        self.dismiss(None)
