"""Credentials: the account's API keys, one per service; create, disable (guarded) and rotate the
key this tool uses."""

from __future__ import annotations

import asyncio

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.coordinate import Coordinate
from textual.screen import ModalScreen
from textual.validation import Function
from textual.widgets import Button, DataTable, Footer, Header, Input, Static

from screens.modals import ConfirmModal, TypedConfirmModal
from screens.plain_text import cell, plain
from screens.progress import CANCEL_BINDINGS, WORK_GROUP, WorkPanel, WorkScreen
from screens.services import ScreenServices
from screens.unlock import store_passphrase_for_new_keys
from wizard.core import rules
from wizard.core.environments import typed_confirmation_required
from wizard.core.errors import InputError, SecretStoreError, WizardError
from wizard.core.interlocks import Action, ActionRefused, Refusal
from wizard.core.secret_value import SecretValue
from wizard.secrets.base import SecretStore
from wizard.secrets.resolve import PERSISTENT_KINDS, open_profile_store, recorded_store
from wizard.services import api_key_rotation, api_keys

STORE_NAMES = {
    "keyring": "OS keyring",
    "encrypted-file": "encrypted secrets file",
    "sandbox": "sandbox-only file",
    "vault": "Vault place",
}


def _valid_description(text: str) -> bool:
    try:
        rules.verify_description(text)
    except InputError:
        return False
    return bool(text.strip())


def tool_key_lost(masked: str, reason: str, profile: str) -> WizardError:
    """What to say when the key just disabled turns out to be the one the tool runs on."""
    return WizardError(
        f"Key {masked} was the key klarna-mtls runs on: Klarna now refuses it ({reason.rstrip('.')}).",
        title="klarna-mtls lost its API key",
        hint="Create a key in Klarna's portal, then start klarna-mtls with it once: "
        f"KLARNA_API_KEY=… klarna-mtls --profile {profile}. Until then status, check and rotate fail.",
    )


class SecretOnceModal(ModalScreen[bool]):
    """Klarna shows a new key once: show it here with a Copy (c), and where it was kept. The key
    is kept only in a store that keeps keys (``kept_in``); otherwise ``no_store`` says why not."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("c", "copy", "Copy")]

    NO_STORE = (
        "this profile's key is read per run (KLARNA_API_KEY or standard input), so nothing here keeps the new one"
    )

    def __init__(
        self, masked: str, secret: SecretValue[str], kept_in: str | None = None, no_store: str = NO_STORE
    ) -> None:
        super().__init__()
        self.masked, self.secret, self.kept_in, self.no_store = masked, secret, kept_in, no_store

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box", id="confirm-box"):
            yield Static("New API key: shown once", classes="modal-title")
            yield Static(plain(self.secret.reveal()), id="secret")
            if self.kept_in:
                advice = f"Kept in {self.kept_in}. Copy it now (c) for the service that uses it."
            else:
                advice = f"Copy it now (c): {self.no_store}. It is not kept anywhere and Klarna will not show it again."
            yield Static(plain(advice), id="advice")
            with Horizontal(classes="buttons"):
                yield Button("Copy", id="copy")
                yield Button("Close", id="close")

    @on(Button.Pressed, "#copy")
    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.secret.reveal())  # OSC 52: the terminal's clipboard
        self.notify("Copied to the clipboard (if your terminal allows it).")

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(True)


class KeysScreen(WorkScreen):
    """The table has the focus first (arrows pick a key), n goes to the new key's field; the key
    actions work wherever the focus is (ctrl+d too, which a text field would take), and the
    footer fits 80 columns."""

    WORK_BUTTONS = ("#create",)
    DEFAULT_CSS = """
    KeysScreen #keys { border-left: tall $panel; }
    KeysScreen #keys:focus { border-left: tall $accent; }
    """
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("f5", "refresh", "Refresh", show=False),
        Binding("n", "new_key", "New key", show=False, tooltip="Type the service name of a new key"),
        Binding("ctrl+d", "disable", "Disable", priority=True, tooltip="Disable the selected key"),
        Binding("ctrl+r", "rotate", "Rotate own", priority=True, tooltip="Rotate the key klarna-mtls runs on"),
        Binding(
            "ctrl+t", "mark_tool_key", "Mark own", priority=True, tooltip="Record the selected key as klarna-mtls's"
        ),
        *CANCEL_BINDINGS,
    ]

    def __init__(self, services: ScreenServices) -> None:
        super().__init__(services)
        self.rows: list[api_keys.KeyRow] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="body"):
            yield Static("API keys: one per service", classes="heading")
            yield DataTable(id="keys", cursor_type="row", zebra_stripes=True)
            yield Static("", id="note")
            yield Input(
                placeholder="service name for a new key (n), e.g. checkout-eu",
                id="description",
                validators=[Function(_valid_description, "Letters, digits, spaces and - : ; . , _ (max 100).")],
            )
            with Horizontal(classes="actions"):
                yield Button("Create key", id="create", variant="success")
            yield WorkPanel()
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#body").can_focus = False  # Tab goes table → new key's name → Create
        table = self.query_one(DataTable)
        table.add_columns("id", "description", "key", "state", "created", "tool")
        table.focus()
        self.action_refresh()

    def action_new_key(self) -> None:
        self.query_one("#description", Input).focus()

    @work(group="keys", exclusive=True, exit_on_error=False)
    async def action_refresh(self) -> None:
        self.show(await self.services.load_keys())

    def show(self, rows: list[api_keys.KeyRow]) -> None:
        self.rows = rows
        table = self.query_one(DataTable)
        table.clear()
        for r in rows:  # server strings: shown as text, never parsed as markup
            table.add_row(  # narrow columns: the whole row fits 80 columns
                cell("…" + r.credential_id[-8:]),
                cell(r.description or "(none)"),
                cell("…" + r.masked[-4:]),
                cell(r.status),
                cell((r.created_at or "")[:10]),
                "in use" if r.used_by_tool else "",
                key=r.credential_id,
            )
        initial = any(r.used_by_tool and r.is_initial for r in rows)
        unknown = self.session.state.tool_key_id is None
        self.query_one("#note", Static).update(
            "! klarna-mtls does not know which key it runs on: select it and press ctrl+t, or press ctrl+r "
            "to let it create and use its own key."
            if unknown
            else "! klarna-mtls runs on the initial key: rotate it (ctrl+r) to give this tool its own."
            if initial
            else ""
        )

    @on(Button.Pressed, "#create")
    @on(Input.Submitted, "#description")  # Enter in the one field creates, like the button
    def create_from_form(self) -> None:
        description = self.query_one("#description", Input).value.strip()
        if not _valid_description(description):
            self.app.show_error(
                InputError(
                    "Describe the service the key is for.", hint="Letters, digits, spaces and - : ; . , _ (max 100)."
                )
            )
            return
        self.query_one("#description", Input).value = ""  # a second Enter must not make a duplicate
        if self.keeps_keys():
            self.create(description, keep=True)
        else:
            self.create_unkept(description)

    def keeps_keys(self) -> bool:
        """Whether the profile's store keeps keys (never offer one that cannot: a key read per run
        from KLARNA_API_KEY or standard input)."""
        return self.session.evidence.secret_backend in PERSISTENT_KINDS

    async def profile_store(self) -> SecretStore | None:
        """The profile's persistent store (asks an encrypted file's passphrase), or None."""
        if not self.keeps_keys():
            return None
        kind = self.session.evidence.secret_backend
        passphrase = await store_passphrase_for_new_keys(self.app, self.services) if kind == "encrypted-file" else None
        where = recorded_store(self.session.evidence)
        return await asyncio.to_thread(open_profile_store, where, self.session.paths, passphrase=passphrase)

    @work(group="confirm", exclusive=True, exit_on_error=False)
    async def create_unkept(self, description: str) -> None:
        """No store keeps keys for this profile: create one kept nowhere only when the person says so."""
        if not await self.app.push_screen_wait(
            ConfirmModal(
                "Create a key that is kept nowhere?",
                "This profile's key is read per run, so there is no secret store to keep the new key in. "
                "Its secret will be shown once; copy it at once.",
                "Create and show once",
            )
        ):
            return
        self.create(description, keep=False)

    @work(group=WORK_GROUP, exclusive=True, exit_on_error=False)
    async def create(self, description: str, keep: bool) -> None:
        """The CLI's safety net: the key is created with the profile's store, so a store that
        refuses it gets the new key disabled."""
        store = await self.profile_store() if keep else None
        try:
            async with self.working():
                row, secret = await self.timed(
                    "Creating the API key", api_keys.create_key(self.session, description, store=store)
                )
        except SecretStoreError:
            self.action_refresh()  # a key the store refused was disabled: the list shows it
            raise
        where = (
            f"{store.display_name} as {api_keys.stored_name(self.session.profile, row.credential_id)}"
            if store
            else None
        )
        await self.app.push_screen_wait(SecretOnceModal(row.masked, secret, where))
        self.action_refresh()

    def selected(self) -> api_keys.KeyRow | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return next((r for r in self.rows if r.credential_id == key), None)

    async def confirmed(
        self, title: str, consequence: str, row: api_keys.KeyRow, label: str, *, force_typed: bool = False
    ) -> str | None:
        """Ask before a destructive key action, like certificate revocation: live profiles (and
        ``force_typed``: a doubt only the person can lift) type the key's suffix
        (``KeyRow.confirm_suffix``), which the domain checks again; Cancel is the default. Returns
        what was typed (the suffix itself once confirmed where no typing is asked), None if not."""
        suffix = row.confirm_suffix
        if force_typed or typed_confirmation_required(self.session.environment):
            what = f"the key's last four characters ({suffix})" if len(suffix) == 4 else f"the key id's end ({suffix})"
            modal = TypedConfirmModal(title, consequence, suffix, what=what, confirm_label=label)
            typed: str | None = await self.app.push_screen_wait(modal)
            return typed
        return suffix if await self.app.push_screen_wait(ConfirmModal(title, consequence, label)) else None

    def action_disable(self) -> None:
        row = self.selected()
        if row is None:
            return
        found = api_keys.disable_refusals(self.session, self.rows, row.credential_id)
        if any(r.check not in api_keys.CONFIRMABLE for r in found):
            self.app.show_error(ActionRefused(Action.DISABLE_API_KEY, found))
            return
        self.disable_key(row, found)

    @work(group="disable-key", exclusive=True, exit_on_error=False)
    async def disable_key(self, row: api_keys.KeyRow, doubts: list[Refusal]) -> None:
        """Disable once the person confirms; ``doubts`` (it may be the tool's key) are said first,
        and then the key's last characters must be typed. After a doubtful disable, the tool
        checks its own key still works, and says at once when it does not."""
        doubt = " ".join(r.reason for r in doubts)
        typed = await self.confirmed(
            "Disable this API key?",
            f"Key {row.masked} ({row.description or 'no description'}) stops working at once, for good, for every "
            "system that uses it" + (f", klarna-mtls too if it runs on it. {doubt}" if doubt else "."),
            row,
            "Disable key",
            force_typed=bool(doubts),
        )
        if typed is None:
            return
        await api_keys.disable_key(
            self.session, row.credential_id, not_the_tools_key=bool(doubts), confirm_suffix=typed
        )
        self.notify(f"Key {row.masked} disabled.")
        if doubts:
            refused = await api_keys.running_key_refused(self.session)
            if refused:
                self.services.key_refused = refused
                self.app.show_error(tool_key_lost(row.masked, refused, self.session.profile))
                return
        self.action_refresh()

    def action_mark_tool_key(self) -> None:
        row = self.selected()
        if row is not None:
            self.record_tool_key(row)

    @work(group="mark-key", exclusive=True, exit_on_error=False)
    async def record_tool_key(self, row: api_keys.KeyRow) -> None:
        """Name the selected key the tool's, through the domain's rule: replacing a recorded key
        is typed (the new key's last characters), a key the tool created is never replaced."""
        typed = None
        if api_keys.naming_needs_confirmation(self.session, row.credential_id):
            found = api_keys.naming_refusals(self.session, self.rows, row.credential_id)
            if found:
                self.app.show_error(ActionRefused(Action.NAME_TOOL_KEY, found))
                return
            old = next((r.masked for r in self.rows if r.used_by_tool), self.session.state.tool_key_id)
            typed = await self.confirmed(
                "Run on another API key?",
                f"klarna-mtls records {row.masked} ({row.description or 'no description'}) as the key it runs on, "
                f"instead of {old}: that one is no longer protected from being disabled.",
                row,
                "Record key",
                force_typed=True,
            )
            if typed is None:
                return
        await api_keys.record_tool_key(self.session, row.credential_id, confirm_suffix=typed)
        self.notify(f"Recorded: klarna-mtls runs on {row.masked}.")
        self.action_refresh()

    def action_rotate(self) -> None:
        if not self.keeps_keys():
            self.app.show_error(
                SecretStoreError(
                    "Rotating the tool's key needs the store that keeps it (OS keyring or encrypted file).",
                    hint="A key from KLARNA_API_KEY is rotated in Klarna's portal; store the API key in the keyring "
                    "or the encrypted file first (the wizard's Credentials step).",
                )
            )
            return
        if self.session.state.tool_key_id is None:  # nothing is disabled: the key it ran on stays active
            self.rotate_key()
        else:
            self.confirm_rotation()

    @work(group="confirm", exclusive=True, exit_on_error=False)
    async def confirm_rotation(self) -> None:
        """Rotating the tool's known key disables the old one: ask first, naming it."""
        old = next((r for r in self.rows if r.used_by_tool), None)
        where = STORE_NAMES.get(self.session.evidence.secret_backend or "", "profile's secret store")
        consequence = (
            f"klarna-mtls creates a new key, keeps it in the {where}, proves it with a "
            "live call and switches to it. Then the old key "
            + (f"{old.masked} ({old.description or 'no description'})" if old else "it used")
            + " is disabled: every other system still using it stops working."
        )
        if (
            await self.confirmed(
                "Rotate the tool's API key?",
                consequence,
                old
                or api_keys.KeyRow(
                    "", None, "ACTIVE", None, None, self.session.custody.api_key_suffix or "????", False, True
                ),
                "Rotate key",
            )
            is None
        ):
            return
        self.rotate_key()

    @work(group=WORK_GROUP, exclusive=True, exit_on_error=False)
    async def rotate_key(self) -> None:
        """The domain's key rotation, its steps shown as they run. When the tool's key is
        unknown, the tool creates its own and leaves the one it ran on active."""
        store = await self.profile_store()
        if store is None:
            raise SecretStoreError(
                "Rotating the tool's key needs a store that keeps keys (OS keyring or encrypted file).",
                hint="Store the API key in the keyring or the encrypted file first (the wizard's Credentials step).",
            )
        own = self.session.state.tool_key_id is None
        async with self.working(
            cancelled="Key rotation paused: press ctrl+r to resume. The tool keeps a working key throughout."
        ):
            if own:
                await api_key_rotation.take_own_key(self.session, store, on_event=self.show_event)
                self.notify("klarna-mtls now runs on its own new key; the key it ran on stays active.")
            else:
                await api_key_rotation.rotate_tool_key(self.session, store, on_event=self.show_event)
                self.notify("The tool now uses its own new key; the old one is disabled.")
        self.action_refresh()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close":
            return not self.busy  # Esc cancels the running work first
        return super().check_action(action, parameters)

    def action_close(self) -> None:
        self.dismiss(None)
