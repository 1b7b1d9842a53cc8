"""Deterministic apps for snapshot tests: evidence from tests/evidence.py, no network. Nothing
random, no clock, host name or port reaches the picture."""

from __future__ import annotations

from evidence import ACCOUNT, INSTALL, evidence_through, fixed_clock

from screens.app import WizardApp
from screens.services import ScreenServices, Timing
from wizard.core.evidence import Evidence
from wizard.core.model import Onboarding
from wizard.core.paths import Paths
from wizard.core.stages import Stage
from wizard.secrets.resolve import StoreChoice
from wizard.services.session import Session


def snapshot_app(
    stage: Stage, *, profile: str = "snap", evidence: Evidence | None = None, keyring: bool = True
) -> WizardApp:
    session = Session(Paths.from_env(), profile, clock=fixed_clock)
    session.state.model = Onboarding(stage, evidence or evidence_through(stage), clock=fixed_clock)
    session.state.settings.install_dir = INSTALL
    if stage is not Stage.CREDENTIALS or evidence is not None:
        session.save()
    session.unlock("klarna_test_api_" + "0" * 32)  # a resumed run would load it from the store

    def choices():
        return [
            StoreChoice(
                "keyring",
                "OS keyring (Memory)" if keyring else "OS keyring (not available)",
                "Kept by your operating system's keyring."
                if keyring
                else "No OS keyring is available on this machine.",
                keyring,
            ),
            StoreChoice(
                "encrypted-file", "Encrypted file", "AES-GCM with a key derived from your passphrase (scrypt).", True
            ),
            StoreChoice(
                "env", "KLARNA_API_KEY for this run", "Nothing is stored; set the variable for each run.", True
            ),
            StoreChoice(
                "stdin", "Standard input for this run", "Nothing is stored; pipe or type the key each run.", True
            ),
        ]

    def installed_files_fine(session):  # the evidence's install folder (/srv/…) exists only in the evidence
        return None

    return WizardApp(
        ScreenServices(
            session,
            timing=Timing(autostart_polling=False),
            choices_loader=choices,
            pair_checker=installed_files_fine,
            cron_advisor=fixed_cron,
        )
    )


def fixed_cron(session):
    """The real advice's needs, with the program at a fixed path (not this checkout's) and no
    moved home (the tests' temporary folder) in the lines."""
    from wizard.services.renewal import CronAdvice, cron_advice

    program, profile = "/opt/klarna-mtls/bin/klarna-mtls", session.profile
    lines = (
        f"17 6 * * * {program} check --profile {profile} --warn-days 60 --critical-days 14",
        f"47 5 * * * {program} renew --profile {profile}",
    )
    return CronAdvice(lines, cron_advice(session).needs)


def fixed_status():
    from wizard.services.status import CertificateRow, ProfileStatus

    def row(n, status, *, current=False, installed=False, elapsed=0.1, days=985, renew=False):
        return CertificateRow(
            credential_id=f"krn:partner:global:account:credential:client-certificate:SNAP000{n}",
            cn="LYABCDEI",
            fingerprint=":".join(["AB", "CD", "EF"] * 10 + ["1A", f"{n:02d}"]),
            fingerprint_suffix=f"EFAB1A{n:02d}",
            created_at="2026-01-01T00:00:00Z",
            expires_at="2029-01-01T00:00:00Z",
            days_left=days,
            status=status,
            installed_here=installed,
            current=current,
            last_seen_valid="2026-12-01T08:59:00Z" if installed else None,
            lifetime_elapsed=elapsed,
            in_renewal_window=renew,
        )

    return ProfileStatus(
        profile="snap",
        environment="test",
        account_id=ACCOUNT,
        stage="DONE",
        certificates=[
            row(1, "ACTIVE", elapsed=0.97, days=30, renew=True, installed=True),
            row(2, "ACTIVE", current=True, installed=True),
            row(3, "REVOKED", elapsed=0.5, days=500),
        ],
        enforcement_mode="ENFORCED",
        enforced_from="2026-12-01T09:00:00Z",
        slots_used=2,
        secret_backend="OS keyring (Memory)",
        verification="VALID",
        installed=True,
        current_id="krn:partner:global:account:credential:client-certificate:SNAP0002",
    )


def fixed_findings():
    from wizard.core.findings import Finding

    return [
        Finding("secret backend", "ok", "API key kept in: OS keyring (Memory)."),
        Finding(
            "file modes",
            "critical",
            "The private key /srv/klarna-mtls/certs/current/private-key.pem is readable by others (mode 644).",
            "Run: chmod 600 /srv/klarna-mtls/certs/current/private-key.pem",
        ),
        Finding(
            "expiry",
            "warning",
            "The certificate expires in 30 days (2026-12-31).",
            "Plan a rotation: klarna-mtls rotate",
        ),
        Finding(
            "verification",
            "critical",
            "NOT_PRESENT: The request reached Klarna without any client certificate.",
            "Point your HTTP client at both files: the certificate and the private key.",
        ),
        Finding("enforcement", "ok", "Enforcement: ENFORCED from 2026-12-01T09:00:00Z."),
    ]


def dashboard_app() -> WizardApp:
    app = snapshot_app(Stage.DONE)

    async def status(session):
        return fixed_status()

    async def doctor(session):
        return fixed_findings()

    app.services.status_loader, app.services.findings_loader = status, doctor
    return app


def fixed_keys():
    from wizard.services.api_keys import KeyRow

    return [
        KeyRow(
            "krn:partner:global:account:credential:api-key:SNAPKEY00001",
            "Initial API key",
            "ACTIVE",
            "2026-01-01T00:00:00Z",
            "2026-12-01T08:00:00Z",
            "klarna_test_api_…a1b2",
            True,
            True,
        ),
        KeyRow(
            "krn:partner:global:account:credential:api-key:SNAPKEY00002",
            "checkout eu",
            "ACTIVE",
            "2026-06-01T00:00:00Z",
            None,
            "klarna_test_api_…c3d4",
            False,
            False,
        ),
        KeyRow(
            "krn:partner:global:account:credential:api-key:SNAPKEY00003",
            "",
            "DISABLED",
            "2026-02-01T00:00:00Z",
            None,
            "klarna_test_api_…e5f6",
            False,
            False,
        ),
    ]


def keys_app() -> WizardApp:
    app = dashboard_app()
    app.session.state.record_tool_key(fixed_keys()[0].credential_id, "told")  # as keys set-own would

    async def load(session):
        return fixed_keys()

    app.services.keys_loader = load
    return app


def offline_dashboard_app(app: WizardApp, *, remembered: bool = False) -> WizardApp:
    """``app`` with Klarna unreachable. ``remembered``: first store the fixed status in the
    journal, as a successful online start would have."""
    from wizard.core.errors import TransportError
    from wizard.services import offline

    if remembered:
        offline.remember(app.session, fixed_status())
        return app

    async def unreachable(session):
        raise TransportError("Could not connect to Klarna.", hint="Check the network.")

    app.services.status_loader = unreachable
    return app
