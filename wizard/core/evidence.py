"""What workers observed, recorded through the onboarding model and saved in the journal.

``Evidence`` is JSON-safe and never holds a secret. Each field belongs to the stage that records
it, so going back to a stage forgets that stage's evidence and every later stage's. Loading checks
each field's type, so a hand-edited journal is refused with a reason instead of crashing a check."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from wizard.core.errors import JournalError
from wizard.core.stages import ORDER, Stage


def _copied(value: Any) -> Any:
    return [dict(item) for item in value] if isinstance(value, list) else value


def _ev(stage: Stage, default: Any = None) -> Any:
    if isinstance(default, list):
        return field(default_factory=list, metadata={"stage": stage})
    return field(default=default, metadata={"stage": stage})


@dataclass
class Evidence:
    """What workers observed. JSON-safe, and never a secret: no API key, no private key."""

    environment: str | None = _ev(Stage.CREDENTIALS)  # live | test | sandbox
    account_id: str | None = _ev(Stage.CREDENTIALS)
    api_key_environment: str | None = _ev(Stage.CREDENTIALS)  # derived from the key, not the key
    api_key_masked: str | None = _ev(Stage.CREDENTIALS)
    secret_backend: str | None = _ev(Stage.CREDENTIALS)  # kind chosen by the user
    secret_backend_name: str | None = _ev(Stage.CREDENTIALS)  # e.g. "SecretService Keyring"
    secret_place: str | None = _ev(Stage.CREDENTIALS)  # kind "vault": the vault:MOUNT/PATH holding the key
    api_call_ok_at: str | None = _ev(Stage.CREDENTIALS)
    clock_skew_seconds: float | None = _ev(Stage.CREDENTIALS)

    key_path: str | None = _ev(Stage.KEY_AND_CSR)
    key_curve: str | None = _ev(Stage.KEY_AND_CSR)
    key_public_id: str | None = _ev(Stage.KEY_AND_CSR)
    key_file_mode: int | None = _ev(Stage.KEY_AND_CSR)
    key_dir_mode: int | None = _ev(Stage.KEY_AND_CSR)
    key_encrypted: bool | None = _ev(Stage.KEY_AND_CSR)
    cn: str | None = _ev(Stage.KEY_AND_CSR)
    csr_pem: str | None = _ev(Stage.KEY_AND_CSR)

    certificate_id: str | None = _ev(Stage.ISSUE)
    certificate_pem: str | None = _ev(Stage.ISSUE)
    fingerprint: str | None = _ev(Stage.ISSUE)
    active_certificates: int | None = _ev(Stage.ISSUE)
    # The issuer (RFC 4514) of the CA that issues this account's certificates, when established
    # (wizard/services/account_ca.py): lets the Issue check accept a CN that Klarna assigned.
    account_ca_issuer: str | None = _ev(Stage.ISSUE)

    install_dir: str | None = _ev(Stage.INSTALL)
    cert_path: str | None = _ev(Stage.INSTALL)
    installed_key_path: str | None = _ev(Stage.INSTALL)
    installed_cert_mode: int | None = _ev(Stage.INSTALL)
    installed_key_mode: int | None = _ev(Stage.INSTALL)
    installed_dir_mode: int | None = _ev(Stage.INSTALL)
    install_probe_ok_at: str | None = _ev(Stage.INSTALL)
    install_probe_fingerprint: str | None = _ev(Stage.INSTALL)

    # Each: {"at": ISO time, "status": VALID|NOT_PRESENT|INVALID|REJECTED|…, "fingerprint": …}
    verifications: list[dict[str, Any]] = _ev(Stage.VERIFY, [])

    enforced_from: str | None = _ev(Stage.ENFORCE)  # NOW or UTC Z, as sent
    enforced_from_chosen_at: str | None = _ev(Stage.ENFORCE)
    enforcement_mode: str | None = _ev(Stage.ENFORCE)  # server answer: ENFORCED | REPORTING

    def to_dict(self) -> dict[str, Any]:
        # Field by field: asdict's deep copy was a fifth of a fleet `status`. The only container
        # is `verifications`, a list of flat dicts, copied one level down.
        return {f.name: _copied(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Evidence:
        """Evidence from its JSON form. Unknown keys are ignored; a known key holding the wrong
        type (a hand-edited journal) raises JournalError rather than crashing a check later."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise JournalError("The saved evidence is damaged: it is not a JSON object.", hint=RESET_HINT)
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                continue
            if not _evidence_type_ok(str(known[name].type), value):
                raise JournalError(
                    f"The saved evidence is damaged: '{name}' has the wrong type ({type(value).__name__}).",
                    hint=RESET_HINT,
                )
            values[name] = [dict(v) for v in value] if name == "verifications" else value
        return cls(**values)

    def clear_from(self, stage: Stage) -> None:
        """Forget evidence of ``stage`` and every later stage (e.g. after a new key)."""
        for f in fields(self):
            if ORDER.index(f.metadata["stage"]) >= ORDER.index(stage):
                setattr(self, f.name, [] if f.name == "verifications" else None)


RESET_HINT = "Move the journal file aside to start this profile again; your keys are untouched."


def _evidence_type_ok(annotation: str, value: Any) -> bool:
    """Type test for one Evidence field; annotations are strings (``from __future__``)."""
    if value is None:
        return not annotation.startswith("list[")
    if annotation.startswith("list["):
        return isinstance(value, list) and all(
            isinstance(v, dict)
            and all(isinstance(v.get(k), (str, type(None))) for k in ("at", "status", "fingerprint"))
            for v in value
        )
    if annotation.startswith("str"):
        return isinstance(value, str)
    if annotation.startswith("bool"):
        return isinstance(value, bool)
    if annotation.startswith("int"):
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation.startswith("float"):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return True
