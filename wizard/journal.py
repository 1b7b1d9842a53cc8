"""Per-profile journal (resumable progress) and append-only audit log. Neither holds a secret.

The journal is one JSON document written atomically (temp, fsync, rename) with a schema version.
It records the stage, the evidence, profile settings, what we know of each certificate, and any
non-idempotent request in flight, so a resumed run reconciles instead of repeating it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import rules
from .errors import JournalError
from .flow_records import Flows
from .fsutil import append_line, atomic_write, ensure_private_dir
from .model import RESET_HINT, Evidence, Onboarding, Stage
from .paths import Paths, valid_profile_name
from .runtimes import RuntimeRecord, records_from_dict, records_to_dict

SCHEMA_VERSION = 2
# Schema 2 adds "runtimes". Schema 1 journals load (with no runtimes) and are saved as 2, so an
# older tool refuses the file instead of silently dropping the runtimes when it saves.
READABLE_SCHEMAS = (1, 2)
STATUS_HISTORY_LIMIT = 200


@dataclass
class ProfileState:
    """Everything remembered about one profile."""

    profile: str
    model: Onboarding = field(default_factory=Onboarding)
    # base_url, ca_bundle, install_dir, key_passphrase_protected, enforcement_delay …
    settings: dict[str, Any] = field(default_factory=dict)
    # {"operation", "idempotency_key", "public_key_id", "sent_at", …} or None
    in_flight: dict[str, Any] | None = None
    # certificate id -> {"fingerprint", "installed", "last_seen_valid", "retired", …}
    certificates: dict[str, dict[str, Any]] = field(default_factory=dict)
    status_history: list[dict[str, Any]] = field(default_factory=list)
    # The records of the resumable flows (rotations, the runtime exchange): wizard/flow_records.py
    flows: Flows = field(default_factory=Flows)
    # runtime name -> the runtime's certificates and latest readiness report (wizard/runtimes.py)
    runtimes: dict[str, RuntimeRecord] = field(default_factory=dict)
    # The runtimes as loaded (not saved): lets a long-lived session (the TUI) keep reports that
    # another process (`runtime report`, `probe`) recorded since, instead of overwriting them.
    runtimes_loaded: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "profile": self.profile,
            "stage": self.model.stage.value,
            "evidence": self.model.evidence.to_dict(),
            "settings": self.settings,
            "in_flight": self.in_flight,
            "certificates": self.certificates,
            "status_history": self.status_history[-STATUS_HISTORY_LIMIT:],
            "flows": self.flows.to_dict(),
            "runtimes": records_to_dict(self.runtimes),
        }

    @classmethod
    def from_dict(cls, data: Any, profile: str) -> ProfileState:
        if not isinstance(data, dict):
            raise JournalError("The saved progress is not a JSON object.", hint=RESET_HINT)
        schema = data.get("schema")
        if schema not in READABLE_SCHEMAS:
            raise JournalError(
                f"The saved progress has schema {schema!r}; this version reads {SCHEMA_VERSION}.",
                hint=RESET_HINT,
            )
        try:
            stage = Stage(data.get("stage", Stage.CREDENTIALS.value))
            evidence = Evidence.from_dict(_expect(data.get("evidence", {}), dict, "evidence"))
            if not isinstance(evidence.verifications, list):
                raise TypeError("verifications")
            runtimes = records_from_dict(data.get("runtimes", {}))
            return cls(
                profile=profile,
                model=Onboarding.resumed(stage, evidence),
                settings=_settings(_expect(data.get("settings", {}), dict, "settings")),
                in_flight=_expect(data.get("in_flight"), (dict, type(None)), "in_flight"),
                certificates=_expect(data.get("certificates", {}), dict, "certificates"),
                status_history=_expect(data.get("status_history", []), list, "status_history"),
                flows=Flows.from_dict(data.get("flows", {})),
                runtimes=runtimes,
                runtimes_loaded=records_to_dict(runtimes),
            )
        except (TypeError, ValueError) as exc:
            raise JournalError(
                f"The saved progress for profile '{profile}' is damaged ({exc}).", hint=RESET_HINT
            ) from exc

    # -- the records safety decisions rest on (what the tool did is what the tool knows) --------
    def certificate(self, credential_id: str) -> dict[str, Any]:
        """The record of one certificate, created empty when new."""
        return self.certificates.setdefault(credential_id, {})

    def id_for_pair(self, label: str | None, fingerprint: str | None) -> str | None:
        """The credential id recorded when the pair with this label (or, failing that, this
        fingerprint, taken from the certificate Klarna returned to us) was issued or installed."""
        for key, value in (("label", label), ("fingerprint", fingerprint)):
            if value:
                found = [
                    cid for cid, rec in self.certificates.items() if isinstance(rec, dict) and rec.get(key) == value
                ]
                if len(found) == 1:
                    return found[0]
        return None

    def retired_ids(self) -> frozenset[str]:
        return frozenset(cid for cid, rec in self.certificates.items() if isinstance(rec, dict) and rec.get("retired"))

    @property
    def tool_key_id(self) -> str | None:
        """The credential id of the API key this profile keeps and runs on: recorded when the tool
        created it, or when the user named it; never guessed from a listing."""
        value = self.settings.get("api_key_credential_id")
        return value if isinstance(value, str) and value else None

    def record_tool_key(self, credential_id: str | None, source: str) -> None:
        if credential_id is None:
            self.settings.pop("api_key_credential_id", None)
            self.settings.pop("api_key_id_source", None)
            return
        self.settings["api_key_credential_id"] = credential_id
        self.settings["api_key_id_source"] = source

    def record_status(self, status: str, fingerprint: str | None, source: str) -> bool:
        """Remember a verification status when it differs from the last one remembered: the
        history holds changes, so a reader that sees the same answer again writes nothing."""
        last = self.status_history[-1] if self.status_history else {}
        if (last.get("status"), last.get("fingerprint")) == (status, fingerprint):
            return False
        self.status_history.append(
            {"at": rules.format_utc(rules.utc_now()), "status": status, "fingerprint": fingerprint, "source": source}
        )
        del self.status_history[:-STATUS_HISTORY_LIMIT]
        return True


def note_seen_valid(entry: dict[str, Any], at: datetime) -> None:
    """Set a certificate's ``last_seen_valid`` to the day it was seen VALID. Within one day it
    stays as it is, so repeated readings (cron `check`, the dashboard) leave the journal untouched;
    the interlocks only ask whether it was ever seen VALID, and screens show the date."""
    previous = entry.get("last_seen_valid")
    if not previous or previous[:10] != rules.format_utc(at)[:10]:
        entry["last_seen_valid"] = rules.format_utc(at)


# Settings read as paths or URLs: a hand-edited number or list there is damage, said as such.
_TEXT_SETTINGS = ("base_url", "ca_bundle", "install_dir", "trust_ca", "key_file_sha256")


def _settings(settings: dict[str, Any]) -> dict[str, Any]:
    for name in _TEXT_SETTINGS:
        _expect(settings.get(name), (str, type(None)), f"settings.{name}")
    return settings


def _expect(value: Any, kind: Any, name: str) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"'{name}' has the wrong type")
    return value


class Journal:
    """Loads and saves one profile's ProfileState."""

    def __init__(self, paths: Paths, profile: str) -> None:
        if not valid_profile_name(profile):
            raise JournalError(
                f"'{profile[:40]}' is not a valid profile name.",
                hint="Use letters, digits, '.', '_' or '-' (up to 64).",
            )
        self.paths = paths
        self.profile = profile
        self.path = paths.journal_path(profile)
        self._saved: bytes | None = None  # what the file holds as far as this Journal knows

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> ProfileState:
        """The saved state, or a fresh one when the profile is new."""
        if not self.exists():
            return ProfileState(profile=self.profile)
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise JournalError(f"Cannot read saved progress at {self.path}.", hint=RESET_HINT) from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise JournalError(
                f"The saved progress at {self.path} is not valid JSON (line {exc.lineno}).",
                hint=RESET_HINT,
            ) from exc
        state = ProfileState.from_dict(data, self.profile)
        self._saved = _digest(state.to_dict())
        return state

    def save(self, state: ProfileState) -> bool:
        """Write the state unless it is what was last loaded or saved here: readers that observed
        nothing new write nothing (and never put back an unchanged copy over another process's
        newer file). True when written."""
        from .locking import ProfileBusy, held_elsewhere

        if _digest(state.to_dict()) == self._saved:
            return False
        holder = held_elsewhere(self.paths, self.profile)
        if holder is not None:  # another process writes this profile: never overwrite its work
            raise ProfileBusy(
                f"Profile '{self.profile}' is in use by {holder}; nothing was saved.",
                hint="Wait for it to finish and try again.",
            )
        ensure_private_dir(self.path.parent)
        self._keep_runtimes_saved_by_others(state)
        document = state.to_dict()
        atomic_write(self.path, json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False).encode(), 0o600)
        self._saved = _digest(document)
        return True

    def _keep_runtimes_saved_by_others(self, state: ProfileState) -> None:
        """When this session did not change the runtimes, take the ones on disk: another process
        may have recorded reports since this session loaded. A session that changed them wins."""
        mine = records_to_dict(state.runtimes)
        if mine == state.runtimes_loaded and self.exists():
            try:
                theirs = json.loads(self.path.read_text(encoding="utf-8")).get("runtimes", {})
                state.runtimes = records_from_dict(theirs)
            except (OSError, ValueError, TypeError, AttributeError):
                theirs = mine  # unreadable on disk: this save rewrites it whole
            mine = records_to_dict(state.runtimes)
        state.runtimes_loaded = mine


def _digest(document: dict[str, Any]) -> bytes:
    """A compact canonical form to compare states by (the C encoder: indent= would not use it)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class AuditLog:
    """Append-only JSON lines of every action taken; values are redacted of anything key-shaped."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_profile(cls, paths: Paths, profile: str) -> AuditLog:
        return cls(paths.audit_path(profile))

    def record(self, action: str, **details: Any) -> None:
        ensure_private_dir(self.path.parent)
        entry = {"at": rules.format_utc(rules.utc_now()), "action": action, **details}
        append_line(self.path, rules.redact(json.dumps(entry, sort_keys=True, default=str)))

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line after a crash is skipped, not fatal
        return out
