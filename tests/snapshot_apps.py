"""Deterministic apps for snapshot tests: evidence from tests/evidence.py, no network. Nothing
random, no clock, host name or port reaches the picture."""

from __future__ import annotations

from evidence import INSTALL, evidence_through, fixed_clock
from screens.app import WizardApp
from wizard.flow import Session
from wizard.model import Evidence, Stage
from wizard.paths import Paths
from wizard.secrets import StoreChoice


def snapshot_app(stage: Stage, *, profile: str = "snap", evidence: Evidence | None = None, keyring: bool = True) -> WizardApp:
    session = Session(Paths.from_env(), profile, clock=fixed_clock)
    session.model.stage = stage
    session.state.model.evidence = evidence or evidence_through(stage)
    session.state.settings.update({"install_dir": INSTALL})
    if stage is not Stage.CREDENTIALS or evidence is not None:
        session.save()

    def choices():
        return [
            StoreChoice("keyring", "OS keyring (Memory)" if keyring else "OS keyring (not available)",
                        "Kept by your operating system's keyring." if keyring else "No OS keyring is available on this machine.",
                        keyring),
            StoreChoice("encrypted-file", "Encrypted file", "AES-GCM with a key derived from your passphrase (scrypt).", True),
            StoreChoice("env", "KLARNA_API_KEY for this run", "Nothing is stored; set the variable for each run.", True),
            StoreChoice("stdin", "Standard input for this run", "Nothing is stored; pipe or type the key each run.", True),
        ]

    return WizardApp(session, autostart_polling=False, store_choices=choices)
