"""Snapshots at 80x24 of what issue 24's TUI fixes show: the question of which API key the tool
was given, the dashboard naming a broken installed file as a local problem, the Key step refusing
an unconfirmed passphrase, and the confirmation a second rotation needs."""

from __future__ import annotations

from snapshot_apps import dashboard_app, fixed_keys, snapshot_app
from tests_support import settle

from screens.modals import ConfirmModal, ErrorModal
from screens.tool_key import ToolKeyModal
from wizard.core.stages import Stage

SIZE = (80, 24)


def test_which_key_was_the_tool_given(snap_compare):
    async def asked(pilot):
        await settle(pilot)
        pilot.app.push_screen(ToolKeyModal([r for r in fixed_keys() if r.active], "a1b2"))
        await pilot.pause()

    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=asked)


def test_dashboard_local_problem(snap_compare):
    app = dashboard_app()

    def missing(session):
        return "Installed certificate file missing: /srv/klarna-mtls/certs/current/certificate.pem"

    app.services.pair_checker = missing
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_key_step_unconfirmed_passphrase(snap_compare):
    async def typed_once(pilot):
        await settle(pilot)
        if type(pilot.app.screen).__name__ == "WelcomeScreen":
            await pilot.press("ctrl+n")
            await settle(pilot)
        await pilot.press(*"only once")
        pilot.app.screen.generate()
        await pilot.pause()
        assert isinstance(pilot.app.screen, ErrorModal)

    assert snap_compare(snapshot_app(Stage.KEY_AND_CSR), terminal_size=SIZE, run_before=typed_once)


def test_rotate_again_asks_first(snap_compare):
    from snapshot_apps import fixed_status

    from screens.rotate import RotateScreen
    from wizard.services.certificate_rotation import RotationProgress

    async def again(pilot):
        await settle(pilot)
        screen = RotateScreen(pilot.app.services)
        await pilot.app.push_screen(screen)
        await pilot.pause()
        new = fixed_status().certificates[1]
        screen.result = RotationProgress("done", "old", new.credential_id, new.fingerprint)
        screen.start_pressed()
        await pilot.pause()
        assert isinstance(pilot.app.screen, ConfirmModal)

    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=again)


# ---------------------------------------------------------------- repair (issue 24: "Repair" in the TUI)
MISSING = "/srv/klarna-mtls/certs/current/certificate.pem"


def broken_dashboard_app():
    from wizard.core.findings import Finding, Severity

    app = dashboard_app()

    async def findings(session):
        return [
            Finding("secret backend", Severity.OK, "API key kept in: OS keyring (Memory)."),
            Finding(
                "install",
                Severity.CRITICAL,
                f"Could not open certificate file {MISSING}: no such file.",
                "Restore it: klarna-mtls repair --profile snap",
            ),
        ]

    app.services.pair_checker = lambda session: f"Installed certificate file missing: {MISSING}"
    app.services.findings_loader = findings
    return app


async def open_doctor(pilot):
    await settle(pilot)
    await pilot.press("d")
    await settle(pilot)


def test_doctor_offers_repair(snap_compare):
    assert snap_compare(broken_dashboard_app(), terminal_size=SIZE, run_before=open_doctor)


def test_repair_result(snap_compare):
    from snapshot_apps import fixed_status

    from wizard.services.repair import RepairReport

    app = broken_dashboard_app()
    current = fixed_status().certificates[1]

    async def repaired(session, on_step):
        return RepairReport(
            "snap",
            [f"Could not open certificate file {MISSING}: no such file."],
            [
                "re-installed /srv/klarna-mtls/certs/ab12 (certificate from the journal (as Klarna returned it), key from the keys folder)"
            ],
            certificate_id=current.credential_id,
            fingerprint=current.fingerprint,
            verification="VALID",
            enforcement="ENFORCED",
            proved=True,
        )

    async def repair_from_doctor(pilot):
        await open_doctor(pilot)
        await pilot.press("r")
        await settle(pilot)

    app.services.repairer = repaired
    assert snap_compare(app, terminal_size=SIZE, run_before=repair_from_doctor)


def test_repair_nothing_to_restore(snap_compare):
    from wizard.core.errors import CryptoError

    app = broken_dashboard_app()

    async def nothing(session, on_step):
        on_step(f"found: Could not open certificate file {MISSING}: no such file.")
        raise CryptoError(
            "Certificate krn:partner:global:account:credential:client-certificate:SNAP0002 cannot be restored: "
            "no copy of it and its key that passes the checks is kept here, and no usable previous pair is installed.",
            title="Nothing to restore",
            hint="Issue a new pair: klarna-mtls rotate --profile snap.",
        )

    async def repair_here(pilot):
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)

    app.services.repairer = nothing
    assert snap_compare(app, terminal_size=SIZE, run_before=repair_here)
