"""Snapshots of the dashboard's runtimes panel and of the enforcement gate's refusal, at 80x24."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from evidence import ACCOUNT, NOW
from snapshot_apps import dashboard_app, fixed_status
from tests_support import settle

from wizard.core import rules
from wizard.core.runtimes import ReadinessReport, RuntimeRecord

SIZE = (80, 24)
FP = [":".join([f"{n}{n}"] * 32) for n in "ABC"]


def _records() -> dict[str, RuntimeRecord]:
    def rep(name, fp, status="VALID", hours=1):
        at = rules.format_utc(NOW - timedelta(hours=hours))  # Klarna's Date and the runtime's clock agree
        return ReadinessReport(name, ACCOUNT, fp, status, at, "0.1.0", klarna_date=at)

    cert = "krn:partner:global:account:credential:client-certificate:SNAPRT0"
    return {
        "checkout": RuntimeRecord("checkout", [cert + "1"], FP[0], "2029-12-01T09:00:00Z", rep("checkout", FP[0])),
        "refunds": RuntimeRecord(
            "refunds", [cert + "2"], FP[1], "2029-12-01T09:00:00Z", rep("refunds", FP[1], "NOT_PRESENT")
        ),
        "orders": RuntimeRecord("orders", [cert + "3"], FP[2], "2029-12-01T09:00:00Z", rep("orders", FP[2], hours=30)),
        "batch": RuntimeRecord("batch", [cert + "4"], FP[0], "2029-12-01T09:00:00Z"),
    }


def runtimes_app():
    app = dashboard_app()
    app.session.state.runtimes = _records()
    app.session.save()  # the dashboard re-reads runtimes from the journal on refresh
    app.services.status_loader = listing_them(app.session.state.runtimes)
    return app


def listing_them(records: dict[str, RuntimeRecord]):
    """A status loader whose listing holds the runtimes' certificates, ACTIVE: the panels judge
    them with it, as klarna-mtls status does."""
    status = fixed_status()
    listed = [
        dataclasses.replace(status.certificates[0], credential_id=cid, installed_here=False, current=False)
        for cid in sorted({r.certificate_id for r in records.values()} - {None})
    ]
    status = dataclasses.replace(status, certificates=[*status.certificates, *listed])

    async def load(session):
        return status

    return load


def test_dashboard_runtimes_panel(snap_compare):
    async def scrolled(pilot):
        await settle(pilot)
        panel = pilot.app.screen.query_one("#runtimes-panel")
        assert panel.display and "1 of 4 runtimes VALID" in str(pilot.app.screen.query_one("#runtimes-summary").content)
        pilot.app.screen.query_one("#body").scroll_end(animate=False)
        await settle(pilot)

    assert snap_compare(runtimes_app(), terminal_size=SIZE, run_before=scrolled)


def test_dashboard_without_runtimes_hides_the_panel(snap_compare):
    async def settled(pilot):
        await settle(pilot)
        assert not pilot.app.screen.query_one("#runtimes-panel").display

    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=settled)


def test_gate_refusal_names_the_runtimes(snap_compare):
    """The error the enforcement gate raises, as the TUI shows it."""
    from wizard.core.errors import InterlockRefused
    from wizard.services.runtime_gate import require_ready

    async def refused(pilot):
        await settle(pilot)
        session = pilot.app.session
        try:
            require_ready(session, {r.certificate_id for r in session.state.runtimes.values()}, klarna_now=NOW)
        except InterlockRefused as error:
            pilot.app.show_error(error)
        await settle(pilot)

    assert snap_compare(runtimes_app(), terminal_size=SIZE, run_before=refused)


def test_enforce_stage_runtimes_panel(snap_compare):
    from snapshot_apps import snapshot_app

    from wizard.core.stages import Stage

    app = snapshot_app(Stage.ENFORCE)
    app.session.state.runtimes = _records()
    app.session.save()
    app.services.status_loader = listing_them(app.session.state.runtimes)

    async def scrolled(pilot):
        await settle(pilot)
        if pilot.app.screen.__class__.__name__ == "WelcomeScreen":
            await pilot.press("ctrl+n")
            await settle(pilot)
        panel = pilot.app.screen.query_one("#runtimes-panel")
        assert panel.display
        pilot.app.screen.scroll_to_widget(panel, animate=False, top=True)
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=scrolled)
