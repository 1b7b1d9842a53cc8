"""Snapshots of the "check a pair" screen at 80x24: empty, and with fixed findings (no network,
no clock, no temporary paths)."""

from __future__ import annotations

from snapshot_apps import dashboard_app
from tests_support import settle

from wizard.core.findings import Finding
from wizard.services import pair_doctor

SIZE = (80, 24)
CERT, KEY = "/srv/klarna-mtls/copied/certificate.pem", "/srv/klarna-mtls/copied/private-key.pem"


async def _open(pilot):
    await settle(pilot)
    await pilot.press("p")
    await settle(pilot)


def test_pair_check_empty_80x24(snap_compare):
    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=_open)


def test_pair_check_findings_80x24(snap_compare, monkeypatch):
    async def fixed(session, cert_path, key_path, *, key_passphrase=None):
        assert (str(cert_path), str(key_path), key_passphrase) == (CERT, KEY, None)
        return [
            Finding("key match", "ok", "The certificate and the key belong together."),
            Finding(
                "CN",
                "warning",
                "CN is [b]LYABCDEI[/b]; Klarna's rule for this account expects LYABCDEF.",
                "A custom CN is allowed on some variants; if Klarna answers INVALID, issue a new certificate.",
            ),
            Finding("expiry", "ok", "The certificate expires in 900 days (2029-05-19)."),
            Finding(
                "verification",
                "critical",
                "INVALID: Klarna does not know this certificate.",
                "Issue a new certificate for that runtime (runtime request/issue/install).",
            ),
        ]

    monkeypatch.setattr(pair_doctor, "doctor_pair", fixed)

    async def check(pilot):
        await _open(pilot)
        pilot.app.screen.query_one("#cert-file").value = CERT
        pilot.app.screen.query_one("#key-file").value = KEY
        await pilot.click("#check")
        await settle(pilot)
        assert "(critical)" in str(pilot.app.screen.query_one("#findings").content)

    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=check)
