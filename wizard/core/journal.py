"""Per-profile journal (resumable progress) and append-only audit log. Neither holds a secret.

The journal is one JSON document written atomically (temp, fsync, rename) with a schema version.
It records the stage, the evidence, profile settings, what we know of each certificate, and any
non-idempotent request in flight, so a resumed run reconciles instead of repeating it."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from wizard.core import rules
from wizard.core.errors import CryptoError, JournalError
from wizard.core.evidence import RESET_HINT, Evidence
from wizard.core.flow_records import Flows
from wizard.core.fsutil import append_line, atomic_write, ensure_private_dir
from wizard.core.model import Onboarding
from wizard.core.paths import Paths, valid_profile_name
from wizard.core.records import CertificateRecord, InFlight, Settings, StatusEntry, expect_type
from wizard.core.runtimes import RuntimeRecord, records_from_dict, records_to_dict
from wizard.core.stages import Stage

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
    settings: Settings = field(default_factory=Settings)
    in_flight: InFlight | None = None  # the create request to reconcile on resume
    certificates: dict[str, CertificateRecord] = field(default_factory=dict)  # by credential id
    status_history: list[StatusEntry] = field(default_factory=list)  # changes only, oldest first
    # The records of the resumable flows (rotations, the runtime exchange): wizard/core/flow_records.py
    flows: Flows = field(default_factory=Flows)
    # runtime name -> the runtime's certificates and latest readiness report (wizard/core/runtimes.py)
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
            "settings": self.settings.to_dict(),
            "in_flight": self.in_flight.to_dict() if self.in_flight is not None else None,
            "certificates": {cid: record.to_dict() for cid, record in self.certificates.items()},
            "status_history": [entry.to_dict() for entry in self.status_history[-STATUS_HISTORY_LIMIT:]],
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
            evidence = Evidence.from_dict(expect_type(data.get("evidence", {}), dict, "evidence"))
            if not isinstance(evidence.verifications, list):
                raise TypeError("verifications")
            runtimes = records_from_dict(data.get("runtimes", {}))
            certificates = _certificates(expect_type(data.get("certificates", {}), dict, "certificates"))
            _derive_fingerprints(certificates, evidence)
            return cls(
                profile=profile,
                model=Onboarding.resumed(stage, evidence),
                settings=Settings.from_dict(data.get("settings", {})),
                in_flight=_in_flight(data.get("in_flight")),
                certificates=certificates,
                status_history=_status_history(expect_type(data.get("status_history", []), list, "status_history")),
                flows=Flows.from_dict(data.get("flows", {})),
                runtimes=runtimes,
                runtimes_loaded=records_to_dict(runtimes),
            )
        except (TypeError, ValueError) as exc:
            raise JournalError(
                f"The saved progress for profile '{profile}' is damaged ({exc}).", hint=RESET_HINT
            ) from exc

    # -- the records safety decisions rest on (what the tool did is what the tool knows) --------
    def certificate(self, credential_id: str) -> CertificateRecord:
        """The record of one certificate, created empty when new."""
        return self.certificates.setdefault(credential_id, CertificateRecord())

    def fingerprint_of(self, credential_id: str | None) -> str | None:
        """The fingerprint recorded for a certificate, None when it has no record here."""
        record = self.certificates.get(credential_id or "")
        return record.fingerprint if record is not None else None

    def id_for_pair(self, label: str | None, fingerprint: str | None) -> str | None:
        """The credential id of an installed pair (see ``pair_identity``)."""
        return self.pair_identity(label, fingerprint)[0]

    def pair_identity(self, label: str | None, fingerprint: str | None) -> tuple[str | None, str | None]:
        """(credential id, damage) of the pair installed under ``label`` whose certificate has
        ``fingerprint``. The id is the one record whose fingerprint, recorded at issue, is the
        file's: the label only names a folder and never decides. Damage is the journal and the
        files disagreeing (the label given to another record, or a certificate none of the records
        has): destructive steps stop on it. An id Klarna has not confirmed (``id_unconfirmed``:
        from a runtime-response file) is unknown, not damage; so is an install whose record has no
        fingerprint (an old journal that kept no copy of the certificate)."""
        known = {cid: rec for cid, rec in self.certificates.items() if not rec.id_unconfirmed}
        matches = [cid for cid, rec in known.items() if fingerprint and rec.fingerprint == fingerprint]
        claims = [cid for cid, rec in known.items() if label and rec.label == label]
        where = f"the installed pair ({label or 'current'}, certificate …{(fingerprint or '')[-8:]})"
        if len(matches) == 1:
            others = [cid for cid in claims if cid != matches[0]]
            if not others:
                return matches[0], None
            return matches[0], (
                f"The journal gives {where} to {', '.join(others)}, but by its SHA-256 fingerprint it is "
                f"{matches[0]}: the records and the installed files disagree."
            )
        if matches:
            return None, f"Several of this profile's records ({', '.join(matches)}) claim {where}."
        unconfirmed = any(rec.fingerprint == fingerprint for rec in self.certificates.values())
        if not fingerprint or unconfirmed or any(rec.fingerprint is None and rec.installed for rec in known.values()):
            return None, None  # unknown: the interlocks refuse it as such
        claimed = f" (the journal says it holds {', '.join(claims)})" if claims else ""
        return (
            None,
            f"{where[0].upper()}{where[1:]} is none of the certificates this profile recorded at issue{claimed}.",
        )

    def retired_ids(self) -> frozenset[str]:
        return frozenset(cid for cid, rec in self.certificates.items() if rec.retired)

    @property
    def tool_key_id(self) -> str | None:
        """The credential id of the API key this profile keeps and runs on: recorded when the tool
        created it, or when the user named it; never guessed from a listing."""
        return self.settings.api_key_credential_id or None

    def record_tool_key(self, credential_id: str | None, source: str) -> None:
        self.settings.api_key_credential_id = credential_id
        self.settings.api_key_id_source = source if credential_id is not None else None

    def record_status(self, status: str, fingerprint: str | None, source: str) -> bool:
        """Remember a verification status when it differs from the last one remembered: the
        history holds changes, so a reader that sees the same answer again writes nothing."""
        last = self.status_history[-1] if self.status_history else None
        if last is not None and (last.status, last.fingerprint) == (status, fingerprint):
            return False
        at = rules.format_utc(rules.utc_now())
        self.status_history.append(StatusEntry(at=at, status=status, fingerprint=fingerprint, source=source))
        del self.status_history[:-STATUS_HISTORY_LIMIT]
        return True


def note_seen_valid(entry: CertificateRecord, at: datetime) -> None:
    """Set a certificate's ``last_seen_valid`` to the day it was seen VALID. Within one day it
    stays as it is, so repeated readings (cron `check`, the dashboard) leave the journal untouched;
    the interlocks only ask whether it was ever seen VALID, and screens show the date."""
    previous = entry.last_seen_valid
    if not previous or previous[:10] != rules.format_utc(at)[:10]:
        entry.last_seen_valid = rules.format_utc(at)


def _in_flight(data: Any) -> InFlight | None:
    return None if data is None else InFlight.from_dict(data, "in_flight")


def _certificates(data: dict[str, Any]) -> dict[str, CertificateRecord]:
    return {cid: CertificateRecord.from_dict(rec, f"certificates.{_shown(cid)}") for cid, rec in data.items()}


def _derive_fingerprints(certificates: dict[str, CertificateRecord], evidence: Evidence) -> None:
    """Journals written before every record kept its fingerprint: derive it from what the journal
    keeps of that certificate (the evidence of the one onboarding issued, or a PEM); with nothing
    to derive it from it stays unknown, and "installed here" with it."""
    for cid, record in certificates.items():
        mine = cid == evidence.certificate_id
        if record.fingerprint or (mine and evidence.fingerprint):
            record.fingerprint = record.fingerprint or evidence.fingerprint
            continue
        pem = record.certificate_pem or (evidence.certificate_pem if mine else None)
        if pem:
            from wizard.core import crypto  # only for such old journals: loading stays light

            with contextlib.suppress(CryptoError, ValueError):  # unreadable: unknown
                record.fingerprint = crypto.fingerprint_sha256(crypto.load_certificate(pem))


def _status_history(data: list[Any]) -> list[StatusEntry]:
    return [StatusEntry.from_dict(entry, f"status_history[{n}]") for n, entry in enumerate(data)]


def _shown(text: str) -> str:
    """A hand-edited key as an error message may show it: printable ASCII, not too long."""
    return ascii(text)[1:-1][:60]


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
        from wizard.core.locking import ProfileBusy, held_elsewhere

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
