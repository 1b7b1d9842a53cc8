"""Dashboard: the certificates, their lifetimes, enforcement, slots and the secret backend; the
door to rotation, guarded revocation, enforcement changes and the doctor."""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Footer, Header, Static

from screens.base import ReportsWorkerErrors, fingerprint_lines
from screens.doctor import DoctorScreen
from screens.done import DoneScreen
from screens.keys import KeysScreen
from screens.modals import ConfirmModal, EnforceModal, TypedConfirmModal
from screens.pair_check import PairCheckScreen
from screens.plain_text import cell, plain
from screens.repair import RepairScreen
from screens.rotate import RotateScreen
from screens.runtimes_table import RuntimesPanel
from screens.services import ScreenServices
from wizard.core import acceptance, rules
from wizard.core.environments import typed_confirmation_required
from wizard.core.errors import ApiError, InstalledPairRefused, InterlockRefused, LockedOut, TransportError, WizardError
from wizard.core.findings import Finding
from wizard.core.rules import clean_text, redact
from wizard.services import offline, onboarding, revocation, runtime_gate
from wizard.services.status import CertificateRow, ProfileStatus

BAR = 12


def lifetime_bar(row: CertificateRow) -> str:
    """Elapsed (█) and remaining (░) validity, with the renewal window start marked │."""
    if row.lifetime_elapsed is None:
        return "?" * BAR
    used = round(row.lifetime_elapsed * BAR)
    bar = ["█"] * used + ["░"] * (BAR - used)
    window = rules.RENEWAL_WINDOW.days / (3 * 365)
    mark = min(BAR - 1, round((1 - window) * BAR))
    bar[mark] = "│" if bar[mark] == "░" else "┃"
    return "".join(bar)


def table_row(row: CertificateRow) -> tuple[str, ...]:
    """One certificate in 7 narrow columns (about 70 cells: the table fits 80 columns); the rest
    of it is in the details line under the table."""
    here = "●" if row.current else ("○" if row.installed_here else "")
    state = row.status + (" ↻" if row.in_renewal_window and row.status == "ACTIVE" else "")
    days = "" if row.days_left is None else str(row.days_left)
    return (
        "…" + row.credential_id[-8:],
        "…" + row.fingerprint_suffix,
        (row.expires_at or "")[:10],
        days,
        state,
        here,
        lifetime_bar(row),
    )


COLUMNS = ("id", "sha-256", "expires", "days", "state", "here", "lifetime")
LEGEND = "● in use here ○ installed here ↻ renew now █ used ░ left │ renewal starts"


def details(row: CertificateRow) -> str:
    """The selected certificate whole: the id, and the fingerprint cut between bytes."""
    fingerprint = fingerprint_lines(row.fingerprint or "?", indent=9)
    seen = (row.last_seen_valid or "never")[:16].replace("T", " ")
    return (
        f"{row.credential_id}\nSHA-256  {fingerprint}\n"
        f"CN {row.cn or '?'} · created {(row.created_at or '?')[:10]} · last VALID {seen}"
    )


class DashboardScreen(ReportsWorkerErrors[None]):
    """Certificates after onboarding. Opens on what the journal holds, then asks Klarna; when
    Klarna cannot be reached it keeps showing the journal's view, marked with when it was seen."""

    HELP_TITLE = "Dashboard"
    BINDINGS = [
        Binding("d", "doctor", "Doctor"),
        Binding("r", "repair", "Repair", tooltip="Restore the installed pair from what this tool keeps"),
        Binding("k", "keys", "API keys"),
        Binding("o", "rotate", "Rotate"),
        Binding("v", "revoke", "Revoke", tooltip="Revoke the selected certificate"),
        Binding("e", "enforce", "Enforce"),
        Binding("u", "unenforce", "Remove enforcement", show=False),
        Binding("p", "check_pair", "Check a pair", show=False, tooltip="Check any certificate and key files"),
        Binding("ctrl+y", "copy_fingerprint", "Copy fingerprint", show=False),
        Binding("f5", "refresh", "Refresh", show=False),
        Binding("q", "app.quit", "Quit", show=False, tooltip="Quit (progress is saved), as on the Done screen"),
        Binding("escape", "back", "Back", show=False, tooltip="Back to the Done screen when you came from it"),
    ]

    def __init__(self, services: ScreenServices) -> None:
        super().__init__(services)
        self.status: ProfileStatus | None = None
        self.local_problem: str | None = None  # what is wrong with the files installed here
        self.damage: Finding | None = None  # the journal and the installed files disagree
        self.repairable = False  # ... and `repair` can restore it

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="body"):
            yield Static("Certificates", classes="heading")
            yield Static("Reading this profile's journal…", id="summary")
            yield Static("", id="offline")
            yield Static("", id="notes")
            yield DataTable(id="certificates", cursor_type="row", zebra_stripes=True)
            yield Static("", id="details")
            yield Static(LEGEND, classes="muted")
            yield RuntimesPanel(id="runtimes-panel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#notes").display = False
        table = self.query_one("#certificates", DataTable)
        table.add_columns(*COLUMNS)
        table.focus()  # arrows move between certificates at once
        self.app.update_header()
        self.action_refresh()

    @work(group="status", exclusive=True, exit_on_error=False)
    async def action_refresh(self) -> None:
        """The journal's view first (never "Loading…" for ever), then Klarna's answer. A problem
        with the files installed here is said as local, before and whatever Klarna answers."""
        self.local_problem = await self.services.local_problem()
        self.damage = await self.services.local_damage()
        self.repairable = bool(self.local_problem) and await self.services.repair_needed()
        self.refresh_bindings()  # Repair is offered while a file it can restore is missing or damaged,
        # or while the journal disagrees with the files (repair sets it straight)
        if self.status is None:
            cached = await asyncio.to_thread(offline.cached_status, self.session)
            self.show(cached.status, read_now=False)
            checking = f"Checking with Klarna… showing {self.seen_words(cached)}."
            self.show_offline(self.local_words() or checking, problem=bool(self.local_problem))
        try:
            status = await self.services.load_status()
            await asyncio.to_thread(runtime_gate.reload, self.session)  # reports recorded by other processes
        except WizardError as error:
            self.services.note_failure(error)
            cached = await asyncio.to_thread(offline.cached_status, self.session)
            self.show(cached.status, read_now=False)
            self.show_offline(self.failure_words(error, self.seen_words(cached)), problem=True)
            self.show_notes([])
            return
        self.show(status)
        self.show_offline(self.local_words(), problem=bool(self.local_problem))
        self.show_notes(self.services.status_notes)

    def local_words(self) -> str:
        if not self.local_problem:
            return ""
        return (
            f"Local problem: {self.local_problem}\nCalls that need the certificate fail until the file is "
            + (
                "restored: r repairs it from what this tool keeps; d explains."
                if self.repairable
                else "fixed; the doctor (d) says what to do."
            )
            + " (f5 checks again)"
        )

    def failure_words(self, error: WizardError, seen: str) -> str:
        """Why Klarna's view could not be refreshed, named for where the problem is: this
        machine's files, Klarna's answer, or the network."""
        if self.local_problem:  # a call without the missing certificate fails too: the file is the cause
            return f"{self.local_words()}\nShowing {seen}."
        reason = clean_text(redact(error.message))
        if isinstance(error, TransportError):
            return f"Offline: showing {seen}.\nCould not reach Klarna: {reason} (f5 tries again)"
        if isinstance(error, ApiError):
            return f"Klarna refused the call: {reason}\nShowing {seen}. (f5 tries again)"
        if isinstance(error, LockedOut):  # its steps (some 900 characters) would push the table off an
            # 80x24 screen: the doctor gives the same steps, and copies them
            return (
                f"Klarna refuses the installed certificate: {reason}\nWhat to do: the doctor (d) gives the steps "
                f"(ctrl+y there copies them).\nShowing {seen}. (f5 tries again)"
            )
        if isinstance(error, InstalledPairRefused):  # Klarna's refusal, and the way back is closed
            hint = clean_text(redact(error.hint))
            return f"Klarna refuses the installed certificate: {reason}\n{hint}\nShowing {seen}. (f5 tries again)"
        return f"Local problem: {reason}\nShowing {seen}. (f5 checks again)"

    @staticmethod
    def seen_words(cached: offline.CachedStatus) -> str:
        when = cached.seen_at[:16].replace("T", " ") + " UTC" if cached.seen_at else "never"
        what = "Klarna's last answer" if cached.source == "last answer" else "this tool's records"
        return f"{what}, last seen {when}"

    def show_offline(self, text: str, *, problem: bool = False) -> None:
        """The banner: ``text``, then the damage to the records whatever Klarna answered."""
        damage = f"{self.damage.summary}\n{self.damage.next_step}" if self.damage else ""
        text = "\n".join(part for part in (text, damage) if part)
        banner = self.query_one("#offline", Static)
        banner.update(plain(text))
        banner.display = bool(text)
        banner.set_class(problem or bool(damage), "-problem")

    def show_notes(self, notes: list[str]) -> None:
        """What Klarna's status said beside it (the way back, a stage corrected): server text, cleaned."""
        box = self.query_one("#notes", Static)
        box.update(plain("\n".join(f"Note: {note}" for note in notes)))
        box.display = bool(notes)

    def show(self, status: ProfileStatus, *, read_now: bool = True) -> None:
        """``read_now``: ``status`` is Klarna's answer just now, whose listing judges the runtimes as
        ``klarna-mtls status`` does; a cached view's listing is not, and the records alone judge them."""
        selected = self.selected_id()  # kept across refreshes; else the certificate in use
        self.status = status
        when = f" from {status.enforced_from}" if status.enforced_from else ""
        pair = "broken here (see below)" if self.local_problem else acceptance.in_words(status.verification or "none")
        self.query_one("#summary", Static).update(
            plain(
                f"Enforcement: {status.enforcement_mode or 'unknown'}{when} · {status.slots_words()} · "
                f"installed pair: {pair} · key kept in {status.secret_backend or '?'}"
            )
        )
        listed = status.listed_statuses if read_now else None
        self.query_one(RuntimesPanel).show(self.session.state.runtimes, self.session.clock(), listed)
        table = self.query_one("#certificates", DataTable)
        table.clear()
        for row in status.certificates:  # server strings: shown as text, never parsed as markup
            table.add_row(*(cell(c) for c in table_row(row)), key=row.credential_id)
        ids = [c.credential_id for c in status.certificates]
        wanted = selected if selected in ids else status.current_id
        if wanted in ids:
            table.move_cursor(row=ids.index(wanted), animate=False)
        self.show_details()

    def selected_row(self) -> CertificateRow | None:
        credential_id = self.selected_id()
        if credential_id is None or self.status is None:
            return None
        return next((c for c in self.status.certificates if c.credential_id == credential_id), None)

    def show_details(self) -> None:
        row = self.selected_row()
        self.query_one("#details", Static).update(plain(details(row)) if row else "No certificate selected.")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_details()

    def action_copy_fingerprint(self) -> None:
        row = self.selected_row()
        if row is None or not row.fingerprint:
            self.notify("Select a certificate with a known fingerprint first.", severity="warning")
            return
        self.app.copy("the SHA-256 fingerprint", row.fingerprint)

    def selected_id(self) -> str | None:
        table = self.query_one("#certificates", DataTable)
        if self.status is None or not self.status.certificates or table.cursor_row is None:
            return None
        return table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value

    def action_revoke(self) -> None:
        credential_id = self.selected_id()
        if credential_id is None or self.status is None:
            return
        self.revoke(self.status, next(c for c in self.status.certificates if c.credential_id == credential_id))

    @work(group="revoke", exclusive=True, exit_on_error=False)
    async def revoke(self, status: ProfileStatus, row: CertificateRow) -> None:
        """Offered only when the revocation's own facts allow it (the runtimes and the other local
        profiles read off the event loop); revoke once the person confirms: on live profiles by
        typing the fingerprint suffix."""
        reason = await asyncio.to_thread(revocation.revoke_refusal, self.session, status, row.credential_id)
        if reason:
            self.app.show_error(InterlockRefused(f"Refusing to revoke this certificate: {reason}"))
            return
        consequence = (
            f"Certificate …{row.fingerprint_suffix} stops working for every system that uses it, "
            "immediately and for good."
        )
        if typed_confirmation_required(self.session.environment):
            suffix = await self.app.push_screen_wait(
                TypedConfirmModal("Revoke certificate?", consequence, row.confirm_suffix)
            )
        elif await self.app.push_screen_wait(ConfirmModal("Revoke certificate?", consequence, "Revoke")):
            suffix = row.confirm_suffix
        else:
            suffix = None
        if suffix is None:
            return
        status = await revocation.revoke(self.session, row.credential_id, confirm_suffix=suffix)
        await asyncio.to_thread(offline.remember, self.session, status)  # the next offline view has it
        self.show(status)
        self.notify("Certificate revoked.")

    def action_back(self) -> None:
        """Back to the Done screen when the dashboard was opened from it; this is otherwise the
        first screen of a finished profile, and q quits."""
        beneath = self.app.screen_stack[-2] if len(self.app.screen_stack) > 1 else None
        if isinstance(beneath, DoneScreen):
            self.dismiss(None)
        else:
            self.notify("This is the first screen of a finished profile: q quits (progress is saved).")

    def action_rotate(self) -> None:
        self.app.push_screen(RotateScreen(self.services), self.rotation_closed)

    def rotation_closed(self, _: None) -> None:
        self.action_refresh()  # a new certificate, an old one revoked

    def action_keys(self) -> None:
        self.app.push_screen(KeysScreen(self.services))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "repair":
            return self.repairable or self.damage is not None
        return True

    def action_doctor(self) -> None:
        self.app.push_screen(DoctorScreen(self.services), self.closed_refresh)

    def action_repair(self) -> None:
        if self.repairable or self.damage is not None:
            self.app.push_screen(RepairScreen(self.services), self.closed_refresh)

    def closed_refresh(self, _: object) -> None:
        self.action_refresh()  # a repair, from here or from the doctor, changed the installed pair

    def action_check_pair(self) -> None:
        self.app.push_screen(PairCheckScreen(self.services))

    @work(group="enforce", exclusive=True, exit_on_error=False)
    async def action_enforce(self) -> None:
        value = await self.app.push_screen_wait(EnforceModal(self.session.clock))
        if not value:
            return
        mode = await onboarding.enforce(self.session, value)
        self.notify(f"Klarna answered {mode}.")
        self.action_refresh()

    @work(group="unenforce", exclusive=True, exit_on_error=False)
    async def action_unenforce(self) -> None:
        if not await self.app.push_screen_wait(
            ConfirmModal(
                "Remove mTLS enforcement?",
                "Klarna will accept calls without a client certificate again: a leaked API key alone will work.",
                "Remove enforcement",
            )
        ):
            return
        await onboarding.remove_enforcement(self.session)
        self.action_refresh()
