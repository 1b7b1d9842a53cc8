"""The runtimes panel: each runtime's certificate and latest readiness report, and whether the
enforcement gate counts it as ready. Hidden while the profile declares no runtime."""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from screens.plain_text import cell, plain
from wizard.core import runtimes


class RuntimesPanel(Vertical):
    """A heading, the '2 of 3 runtimes VALID, last seen …' line and one row per runtime."""

    DEFAULT_CSS = """
    RuntimesPanel { height: auto; display: none; }
    RuntimesPanel.-declared { display: block; }
    RuntimesPanel DataTable { height: auto; max-height: 12; }
    """

    def compose(self) -> ComposeResult:
        yield Static("Runtimes", classes="heading")
        yield Static("", id="runtimes-summary")
        yield DataTable(id="runtimes", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("runtime", "cert id", "sha256", "report", "reported", "gate")

    def show(
        self, records: dict[str, runtimes.RuntimeRecord], now: datetime, listed: runtimes.Listing | None = None
    ) -> None:
        """``listed``: the account's listing read just now, as ``klarna-mtls status`` passes it (a
        certificate it does not hold, or marks REVOKED or EXPIRED, makes its runtime not ready)."""
        self.set_class(bool(records), "-declared")
        self.query_one("#runtimes-summary", Static).update(plain(runtimes.summary(records, now, listed)))
        table = self.query_one(DataTable)
        table.clear()
        for row in runtimes.rows(records, now, listed):
            table.add_row(  # names and reports come from other machines' files: text, never markup
                cell(row.name),
                cell("…" + (row.certificate_id or "-")[-8:]),
                cell("…" + row.fingerprint_suffix),
                cell(row.status or "none"),
                cell(row.reported_at[5:16].replace("T", " ") if row.reported_at else "never"),
                "ready" if row.ready else "not ready",
                key=row.name,
            )
