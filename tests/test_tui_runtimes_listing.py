"""The dashboard's runtimes panel judges readiness as ``klarna-mtls status`` does (``runtimes.rows``
with the account's listing read just now): a runtime whose certificate the listing marks REVOKED is
not ready, though its signed VALID report is under 24 h old."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from evidence import ACCOUNT, NOW
from snapshot_apps import dashboard_app, fixed_status
from tests_support import settle

from wizard.core import rules
from wizard.core.runtimes import ReadinessReport, RuntimeRecord

CERT = "krn:partner:global:account:credential:client-certificate:SNAPRT01"
FP = ":".join(["AA"] * 32)


def app_listing_the_runtime_as(listed: str):
    """The dashboard with one runtime, a fresh VALID report for its current certificate, and a
    status whose listing gives that certificate ``listed``."""
    app = dashboard_app()
    at = rules.format_utc(NOW - timedelta(hours=1))
    report = ReadinessReport("checkout", ACCOUNT, FP, "VALID", at, "0.1.0", klarna_date=at)
    app.session.state.runtimes = {"checkout": RuntimeRecord("checkout", [CERT], FP, "2029-12-01T09:00:00Z", report)}
    app.session.save()  # the dashboard re-reads runtimes from the journal on refresh
    status = fixed_status()
    runtime_row = dataclasses.replace(
        status.certificates[0], credential_id=CERT, status=listed, installed_here=False, current=False
    )
    status = dataclasses.replace(status, certificates=[*status.certificates, runtime_row])

    async def load(session):
        return status

    app.services.status_loader = load
    return app


@pytest.mark.parametrize(("listed", "ready"), [("ACTIVE", "ready"), ("REVOKED", "not ready")])
async def test_the_runtimes_panel_reads_the_listing_as_status_does(listed, ready):
    app = app_listing_the_runtime_as(listed)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        summary = str(app.screen.query_one("#runtimes-summary").content)
        assert summary.startswith(f"{int(ready == 'ready')} of 1 runtimes VALID"), summary
        assert app.screen.query_one("#runtimes").get_row("checkout")[-1] == ready


@pytest.mark.parametrize(("listed", "ready"), [("ACTIVE", "ready"), ("REVOKED", "not ready")])
async def test_the_enforce_steps_runtimes_panel_reads_the_listing_too(listed, ready):
    from snapshot_apps import snapshot_app

    from wizard.core.stages import Stage

    app = app_listing_the_runtime_as(listed)
    enforce = snapshot_app(Stage.ENFORCE)
    enforce.session.state.runtimes = app.session.state.runtimes
    enforce.session.save()
    enforce.services.status_loader = app.services.status_loader
    async with enforce.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        if enforce.screen.__class__.__name__ == "WelcomeScreen":
            await pilot.press("ctrl+n")
            await settle(pilot)
        assert enforce.screen.query_one("#runtimes").get_row("checkout")[-1] == ready
