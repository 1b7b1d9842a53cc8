"""One machine, all its profiles (issue 22, rule 6): the revoke interlock's facts about the other
local profiles of the same account. Another profile's journal and install folder are only read
(never locked, never written); one that cannot be read leaves its installs unknown, and unknown
means no. The rule is ``interlocks.ACTIONS[Action.REVOKE]`` ("other profiles")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wizard.core.errors import CryptoError, WizardError
from wizard.core.journal import Journal
from wizard.services.install import current_pair
from wizard.services.session import Session


def revoke_facts(session: Session, credential_id: str) -> dict[str, Any]:
    """The ``Situation`` field for revoking ``credential_id``: one reason per other profile of this
    account (same environment and account id) that has it installed here, or whose installs could
    not be established."""
    ours = (session.environment, session.evidence.account_id)
    reasons: list[str] = []
    for name in session.paths.profiles():
        if name == session.profile:
            continue
        try:
            state = Journal(session.paths, name).load()
        except (WizardError, OSError) as error:
            reasons.append(
                f"profile {name} could not be read ({_said(error)}), so whether it uses {credential_id} is unknown"
            )
            continue
        if (state.model.evidence.environment, state.model.evidence.account_id) != ours:
            continue  # another account: its certificates are not this account's
        folder = Path(state.settings.install_dir or session.paths.default_install_dir(name))
        try:
            pair = current_pair(folder)
        except (CryptoError, OSError) as error:
            reasons.append(f"the installed pair of profile {name} ({folder}) could not be read ({_said(error)})")
            continue
        installed = state.pair_identity(pair.label, pair.fingerprint)[0] if pair is not None else None
        if credential_id in (installed, state.model.evidence.certificate_id):
            reasons.append(f"{credential_id} is the certificate profile {name} has installed and uses on this machine")
    return {"target_installed_by_profiles": tuple(reasons)}


def _said(error: BaseException) -> str:
    return error.message.rstrip(".") if isinstance(error, WizardError) else type(error).__name__
