"""The records of the resumable flows, kept in the journal under ``flows`` (never a secret).

Each flow has a typed record: the certificate rotation (``CertificateRotation``), the rotation of
the tool's API key (``KeyRotation``), an API key creation whose answer is awaited
(``KeyCreation``), and the runtime exchange's request made on a runtime's host
(``RuntimeRequest``) and issues in flight on the managing machine (``RuntimeIssue``, by public
key id). A record's ``step`` names the step to run next (``done`` when finished); its optional
fields are what the steps learned so far. What an ended rotation leaves behind is kept too: the
certificates it was issued but never switched to (``UnusedCertificate``, by credential id), still
active at Klarna until revoked.

They are ``records._Record``s, read and written as the journal's other records are: the same JSON
as the untyped records of earlier versions (an optional field is written once learned), so a
journal saved half-way through a flow by an earlier version resumes. A field of the wrong type, a
missing one or an unknown step raises TypeError or ValueError, which the journal reports as damage
(JournalError). Flow names this version does not know are kept as they were."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

from wizard.core.errors import JournalError
from wizard.core.evidence import RESET_HINT
from wizard.core.records import _Record, expect_type

RotationStep = Literal["key", "issue", "install", "verify", "switch", "retire", "done"]
KeyRotationStep = Literal["create", "prove", "switch", "disable_old", "done"]
ROTATION_STEPS: tuple[RotationStep, ...] = get_args(RotationStep)
KEY_ROTATION_STEPS: tuple[KeyRotationStep, ...] = get_args(KeyRotationStep)

# The names under the journal's "flows".
ROTATION = "rotation"
KEY_ROTATION = "key_rotation"
RUNTIME_REQUEST = "runtime_request"  # on the host: the request waiting for its certificate
RUNTIME_ISSUE = "runtime_issue"  # on the managing machine: issues in flight, by public key id
KEY_CREATION = "key_creation"  # `keys create`: journaled before sending, cleared once the answer is kept
UNUSED_CERTIFICATES = "unused_certificates"  # issued to a rotation that ended before using them

T = TypeVar("T")


def required(value: T | None, name: str) -> T:
    """A field a step needs that an earlier step recorded; missing means the journal is damaged."""
    if value is None:
        raise JournalError(f"The saved progress of a flow is damaged (no '{name}').", hint=RESET_HINT)
    return value


@dataclass
class CertificateRotation(_Record):
    """A certificate rotation: key → issue → install → verify → switch (→ retire) → done.

    ``retire`` runs only when the old certificate is to be revoked (``retire_old``), not before
    ``retire_at`` (the switch plus the grace period): journaled, so a rerun finishes it."""

    STEPS = ROTATION_STEPS
    WRITTEN = ("old_certificate_id",)
    WHERE = f"flows.{ROTATION}"

    step: RotationStep
    folder: str  # where the new key and CSR are written
    old_certificate_id: str | None = None
    key_sha256: str | None = None  # digest of the key file, journaled before the file exists
    key_path: str | None = None
    public_key_id: str | None = None
    csr_pem: str | None = None
    cn: str | None = None
    idempotency_key: str | None = None  # journaled before the certificate is requested
    certificate_id: str | None = None
    certificate_pem: str | None = None
    fingerprint: str | None = None
    label: str | None = None
    retire_old: bool = False  # revoke the old certificate once switched (rotate --retire-old)
    grace_seconds: str | None = None  # with retire_old: how long after the switch (a number, as text)
    retire_at: str | None = None  # ISO time, set at the switch: the old one is not revoked before
    deploy_hook_owed: bool = False  # renew --deploy-hook: set before the switch, cleared once the hook ran


@dataclass
class UnusedCertificate(_Record):
    """A certificate a rotation was issued but never switched to (a certificate refused before the
    switch, or the rotation abandoned): it stays active at Klarna, taking a slot, until revoked."""

    reason: str  # why it was not used, in the words the user saw
    at: str  # UTC, when the rotation ended


@dataclass
class KeyCreation(_Record):
    """``keys create`` in flight: journaled before the request is sent and cleared once the answer
    (and its secret) is kept. Found at the next run, it means the answer was lost: the key is
    looked for by its description and creation time before anything else is created."""

    WHERE = f"flows.{KEY_CREATION}"

    description: str
    idempotency_key: str
    started_at: str  # UTC, just before the request was sent
    stored_as: str | None = None  # the secret-store name the new secret was to be kept under


@dataclass
class KeyRotation(_Record):
    """A rotation of the tool's API key: create → prove → switch → disable_old → done."""

    STEPS = KEY_ROTATION_STEPS
    WRITTEN = ("old_credential_id", "description", "keep_old")
    WHERE = f"flows.{KEY_ROTATION}"

    step: KeyRotationStep
    old_credential_id: str | None = None
    description: str = ""
    keep_old: bool = False  # the tool taking its own key: the given key stays active (written since then)
    started_at: str | None = None
    idempotency_key: str | None = None  # journaled before the key is created
    new_credential_id: str | None = None


@dataclass
class RuntimeRequest(_Record):
    """On a runtime's host: the key and CSR made for runtime ``name``, waiting for a certificate."""

    WRITTEN = ("encrypted",)
    WHERE = f"flows.{RUNTIME_REQUEST}"

    name: str
    key_path: str
    public_key_id: str
    csr_pem: str
    cn: str
    encrypted: bool = False


@dataclass
class RuntimeIssue(_Record):
    """On the managing machine: a certificate requested for a runtime, answer not yet recorded."""

    name: str
    idempotency_key: str  # journaled before sending: a rerun reuses it and reconciles


@dataclass
class Flows:
    """Every flow record of a profile, as the journal's ``flows`` holds them."""

    rotation: CertificateRotation | None = None
    key_rotation: KeyRotation | None = None
    runtime_request: RuntimeRequest | None = None
    runtime_issues: dict[str, RuntimeIssue] = field(default_factory=dict)  # by public key id
    key_creation: KeyCreation | None = None
    unused_certificates: dict[str, UnusedCertificate] = field(default_factory=dict)  # by credential id
    others: dict[str, Any] = field(default_factory=dict)  # flows this version does not know

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.others)
        for name, record in (
            (ROTATION, self.rotation),
            (KEY_ROTATION, self.key_rotation),
            (RUNTIME_REQUEST, self.runtime_request),
            (KEY_CREATION, self.key_creation),
        ):
            if record is not None:
                out[name] = record.to_dict()
        if self.runtime_issues:
            out[RUNTIME_ISSUE] = {key: issue.to_dict() for key, issue in self.runtime_issues.items()}
        if self.unused_certificates:
            out[UNUSED_CERTIFICATES] = {cid: unused.to_dict() for cid, unused in self.unused_certificates.items()}
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Flows:
        found: dict[str, Any] = expect_type(data, dict, "flows")
        for name, value in found.items():
            expect_type(value, (dict, type(None)), f"flows.{name}")
        issues = found.get(RUNTIME_ISSUE) or {}
        unused = found.get(UNUSED_CERTIFICATES) or {}
        known = (ROTATION, KEY_ROTATION, RUNTIME_REQUEST, RUNTIME_ISSUE, KEY_CREATION, UNUSED_CERTIFICATES)
        return cls(
            rotation=_optional(found, ROTATION, CertificateRotation.from_dict),
            key_rotation=_optional(found, KEY_ROTATION, KeyRotation.from_dict),
            runtime_request=_optional(found, RUNTIME_REQUEST, RuntimeRequest.from_dict),
            runtime_issues={
                str(key): RuntimeIssue.from_dict(value, f"flows.{RUNTIME_ISSUE}.{key}") for key, value in issues.items()
            },
            key_creation=_optional(found, KEY_CREATION, KeyCreation.from_dict),
            unused_certificates={
                str(cid): UnusedCertificate.from_dict(value, f"flows.{UNUSED_CERTIFICATES}.{cid}")
                for cid, value in unused.items()
            },
            others={name: value for name, value in found.items() if name not in known},
        )


def _optional(found: dict[str, Any], name: str, load: Callable[[Any], T]) -> T | None:
    value = found.get(name)
    return None if value is None else load(value)
