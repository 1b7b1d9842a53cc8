"""Dashboard: the certificates, their lifetimes, enforcement, slots and the secret backend; the
door to rotation, guarded revocation, enforcement changes and the doctor."""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from wizard import lifecycle, rules, runtime_gate
from wizard.flow import Session
from wizard.rules import clean_text

from .base import ReportsWorkerErrors
from .modals import ConfirmModal, EnforceModal, TypedConfirmModal, plain
from .runtimes_table import RuntimesPanel

BAR = 20


def lifetime_bar(row: lifecycle.CertificateRow) -> str:
    """Elapsed (█) and remaining (░) validity, with the renewal window start marked │."""
    if row.lifetime_elapsed is None:
        return "?" * BAR
    used = round(row.lifetime_elapsed * BAR)
    bar = ["█"] * used + ["░"] * (BAR - used)
    window = rules.RENEWAL_WINDOW.days / (3 * 365)
    mark = min(BAR - 1, round((1 - window) * BAR))
    bar[mark] = "│" if bar[mark] == "░" else "┃"
    return "".join(bar)


class DashboardScreen(ReportsWorkerErrors, Screen):
    """Certificates after onboarding."""

    BINDINGS = [
        Binding("f5", "refresh", "Refresh"),
        Binding("o", "rotate", "Rotate"),
        Binding("v", "revoke", "Revoke selected"),
        Binding("e", "enforce", "Enforce"),
        Binding("u", "unenforce", "Remove enforcement"),
        Binding("d", "doctor", "Doctor"),
        Binding("k", "keys", "API keys"),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.status: lifecycle.ProfileStatus | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="body"):
            yield Static("Certificates", classes="heading")
            yield Static("Loading…", id="summary")
            yield DataTable(id="certificates", cursor_type="row", zebra_stripes=True)
            yield Static("█ used  ░ left  │ renewal window starts", classes="muted")
            yield RuntimesPanel(id="runtimes-panel")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#certificates", DataTable)
        table.add_columns("id", "CN", "fingerprint", "created", "expires", "days", "state", "here", "last VALID", "lifetime")
        self.app.update_header()
        self.action_refresh()

    def action_refresh(self) -> None:
        async def load() -> None:
            status = await self.app.load_status(self.session)
            await asyncio.to_thread(runtime_gate.reload, self.session)  # reports recorded by other processes
            self.show(status)

        self.run_worker(load(), name="status", group="status", exclusive=True, exit_on_error=False)

    def show(self, status: lifecycle.ProfileStatus) -> None:
        self.status = status
        when = f" from {status.enforced_from}" if status.enforced_from else ""
        self.query_one("#summary", Static).update(plain(
            f"Enforcement: {status.enforcement_mode}{when} · slots {status.slots_used}/{rules.MAX_ACTIVE_CERTIFICATES}"
            f" · installed pair: {status.verification or 'none'} · key kept in {status.secret_backend or '?'}"
        ))
        self.query_one(RuntimesPanel).show(self.session.state.runtimes, self.session.clock())
        table = self.query_one("#certificates", DataTable)
        table.clear()
        for row in status.certificates:
            here = "current" if row.current else ("yes" if row.installed_here else "")
            cells = (
                "…" + row.credential_id[-10:], row.cn or "?", "…" + row.fingerprint_suffix,
                (row.created_at or "")[:10], (row.expires_at or "")[:10], str(row.days_left),
                row.status + (" RENEW" if row.in_renewal_window and row.status == "ACTIVE" else ""),
                here, (row.last_seen_valid or "")[:10], lifetime_bar(row),
            )  # server strings: shown as text, never parsed as markup
            table.add_row(*(Text(clean_text(c), end="") for c in cells), key=row.credential_id)

    def selected_id(self) -> str | None:
        table = self.query_one("#certificates", DataTable)
        if self.status is None or not self.status.certificates or table.cursor_row is None:
            return None
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value

    def action_revoke(self) -> None:
        credential_id = self.selected_id()
        if credential_id is None or self.status is None:
            return
        reason = lifecycle.revoke_refusal(self.status, credential_id)
        if reason:
            from wizard.errors import InterlockRefused

            self.app.show_error(InterlockRefused(f"Refusing to revoke this certificate: {reason}"))
            return
        row = next(c for c in self.status.certificates if c.credential_id == credential_id)

        def answered(suffix: str | None) -> None:
            if suffix is not None:
                self.run_worker(self._revoke(credential_id, suffix), group="action", exclusive=True, exit_on_error=False)

        consequence = (f"Certificate …{row.fingerprint_suffix} stops working for every system that uses it, "
                       "immediately and for good.")
        if self.session.environment == "live":
            self.app.push_screen(TypedConfirmModal("Revoke certificate?", consequence, row.confirm_suffix), answered)
        else:
            self.app.push_screen(ConfirmModal("Revoke certificate?", consequence, "Revoke"),
                                 lambda yes: answered(row.confirm_suffix if yes else None))

    async def _revoke(self, credential_id: str, suffix: str) -> None:
        self.show(await lifecycle.revoke(self.session, credential_id, confirm_suffix=suffix))
        self.notify("Certificate revoked.")

    def action_rotate(self) -> None:
        from .rotate import RotateScreen

        self.app.push_screen(RotateScreen(self.session), lambda _: self.action_refresh())

    def action_keys(self) -> None:
        from .keys import KeysScreen

        self.app.push_screen(KeysScreen(self.session))

    def action_doctor(self) -> None:
        from .doctor import DoctorScreen

        self.app.push_screen(DoctorScreen(self.session))

    def action_enforce(self) -> None:
        def chosen(value: str | None) -> None:
            if value:
                self.run_worker(self._enforce(value), group="action", exclusive=True, exit_on_error=False)

        self.app.push_screen(EnforceModal(self.session.clock), chosen)

    async def _enforce(self, value: str) -> None:
        mode = await lifecycle.schedule_enforcement(self.session, value)
        self.notify(f"Klarna answered {mode}.")
        self.action_refresh()

    def action_unenforce(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._unenforce(), group="action", exclusive=True, exit_on_error=False)

        self.app.push_screen(ConfirmModal(
            "Remove mTLS enforcement?",
            "Klarna will accept calls without a client certificate again: a leaked API key alone will work.",
            "Remove enforcement"), answered)

    async def _unenforce(self) -> None:
        await self.session.remove_enforcement()
        self.action_refresh()
