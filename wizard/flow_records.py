"""The records of the resumable flows, kept in the journal under ``flows`` (never a secret).

Each flow has a typed record: the certificate rotation (``CertificateRotation``), the rotation of
the tool's API key (``KeyRotation``), and the runtime exchange's request made on a runtime's host
(``RuntimeRequest``) and issues in flight on the managing machine (``RuntimeIssue``, by public
key id). A record's ``step`` names the step to run next (``done`` when finished); its optional
fields are what the steps learned so far.

``to_dict``/``from_dict`` read and write the same JSON as the untyped records of earlier
versions, so a journal saved half-way through a flow by an earlier version resumes. A field of the
wrong type raises TypeError or ValueError, which the journal reports as damage (JournalError).
Flow names this version does not know are kept as they were."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar, get_args

from .errors import JournalError
from .model import RESET_HINT

RotationStep = Literal["key", "issue", "install", "verify", "switch", "done"]
KeyRotationStep = Literal["create", "prove", "switch", "disable_old", "done"]
ROTATION_STEPS: tuple[RotationStep, ...] = get_args(RotationStep)
KEY_ROTATION_STEPS: tuple[KeyRotationStep, ...] = get_args(KeyRotationStep)

# The names under the journal's "flows".
ROTATION = "rotation"
KEY_ROTATION = "key_rotation"
RUNTIME_REQUEST = "runtime_request"  # on the host: the request waiting for its certificate
RUNTIME_ISSUE = "runtime_issue"  # on the managing machine: issues in flight, by public key id

T = TypeVar("T")
S = TypeVar("S", bound=str)


class _Fields:
    """Typed reads of one JSON object; a wrong type is a TypeError naming the field."""

    def __init__(self, data: Any, name: str) -> None:
        if not isinstance(data, dict):
            raise TypeError(f"'{name}' has the wrong type")
        self.data: dict[str, Any] = data
        self.name = name

    def _wrong(self, key: str) -> TypeError:
        return TypeError(f"'{self.name}.{key}' has the wrong type")

    def text(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str):
            raise self._wrong(key)
        return value

    def optional_text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            raise self._wrong(key)
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self._wrong(key)
        return value

    def step(self, choices: tuple[S, ...]) -> S:
        value = self.data.get("step")
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"'{self.name}.step' is not one of {', '.join(choices)}")
        return choices[choices.index(value)]


def required(value: T | None, name: str) -> T:
    """A field a step needs that an earlier step recorded; missing means the journal is damaged."""
    if value is None:
        raise JournalError(f"The saved progress of a flow is damaged (no '{name}').", hint=RESET_HINT)
    return value


def _learned(record: object, names: tuple[str, ...]) -> dict[str, Any]:
    """The optional fields set so far (earlier versions wrote a field only once learned)."""
    return {name: getattr(record, name) for name in names if getattr(record, name) is not None}


@dataclass
class CertificateRotation:
    """A certificate rotation: key → issue → install → verify → switch → done."""

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

    LEARNED: ClassVar[tuple[str, ...]] = (
        "key_sha256",
        "key_path",
        "public_key_id",
        "csr_pem",
        "cn",
        "idempotency_key",
        "certificate_id",
        "certificate_pem",
        "fingerprint",
        "label",
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "old_certificate_id": self.old_certificate_id,
            "folder": self.folder,
            **_learned(self, self.LEARNED),
        }

    @classmethod
    def from_dict(cls, data: Any, name: str = f"flows.{ROTATION}") -> CertificateRotation:
        read = _Fields(data, name)
        text = read.optional_text
        return cls(
            step=read.step(ROTATION_STEPS),
            folder=read.text("folder"),
            old_certificate_id=text("old_certificate_id"),
            key_sha256=text("key_sha256"),
            key_path=text("key_path"),
            public_key_id=text("public_key_id"),
            csr_pem=text("csr_pem"),
            cn=text("cn"),
            idempotency_key=text("idempotency_key"),
            certificate_id=text("certificate_id"),
            certificate_pem=text("certificate_pem"),
            fingerprint=text("fingerprint"),
            label=text("label"),
        )


@dataclass
class KeyRotation:
    """A rotation of the tool's API key: create → prove → switch → disable_old → done."""

    step: KeyRotationStep
    old_credential_id: str | None
    description: str
    keep_old: bool = False  # the tool taking its own key: the given key stays active
    started_at: str | None = None
    idempotency_key: str | None = None  # journaled before the key is created
    new_credential_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "old_credential_id": self.old_credential_id,
            "description": self.description,
            "keep_old": self.keep_old,
            **_learned(self, ("started_at", "idempotency_key", "new_credential_id")),
        }

    @classmethod
    def from_dict(cls, data: Any, name: str = f"flows.{KEY_ROTATION}") -> KeyRotation:
        read = _Fields(data, name)
        return cls(
            step=read.step(KEY_ROTATION_STEPS),
            old_credential_id=read.optional_text("old_credential_id"),
            description=read.optional_text("description") or "",
            keep_old=read.flag("keep_old", False),  # written since the tool takes its own key
            started_at=read.optional_text("started_at"),
            idempotency_key=read.optional_text("idempotency_key"),
            new_credential_id=read.optional_text("new_credential_id"),
        )


@dataclass
class RuntimeRequest:
    """On a runtime's host: the key and CSR made for runtime ``name``, waiting for a certificate."""

    name: str
    key_path: str
    public_key_id: str
    csr_pem: str
    cn: str
    encrypted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key_path": self.key_path,
            "public_key_id": self.public_key_id,
            "csr_pem": self.csr_pem,
            "cn": self.cn,
            "encrypted": self.encrypted,
        }

    @classmethod
    def from_dict(cls, data: Any, name: str = f"flows.{RUNTIME_REQUEST}") -> RuntimeRequest:
        read = _Fields(data, name)
        return cls(
            name=read.text("name"),
            key_path=read.text("key_path"),
            public_key_id=read.text("public_key_id"),
            csr_pem=read.text("csr_pem"),
            cn=read.text("cn"),
            encrypted=read.flag("encrypted", False),
        )


@dataclass
class RuntimeIssue:
    """On the managing machine: a certificate requested for a runtime, answer not yet recorded."""

    name: str
    idempotency_key: str  # journaled before sending: a rerun reuses it and reconciles

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "idempotency_key": self.idempotency_key}

    @classmethod
    def from_dict(cls, data: Any, name: str) -> RuntimeIssue:
        read = _Fields(data, name)
        return cls(name=read.text("name"), idempotency_key=read.text("idempotency_key"))


@dataclass
class Flows:
    """Every flow record of a profile, as the journal's ``flows`` holds them."""

    rotation: CertificateRotation | None = None
    key_rotation: KeyRotation | None = None
    runtime_request: RuntimeRequest | None = None
    runtime_issues: dict[str, RuntimeIssue] = field(default_factory=dict)  # by public key id
    others: dict[str, Any] = field(default_factory=dict)  # flows this version does not know

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.others)
        for name, record in (
            (ROTATION, self.rotation),
            (KEY_ROTATION, self.key_rotation),
            (RUNTIME_REQUEST, self.runtime_request),
        ):
            if record is not None:
                out[name] = record.to_dict()
        if self.runtime_issues:
            out[RUNTIME_ISSUE] = {key: issue.to_dict() for key, issue in self.runtime_issues.items()}
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Flows:
        read = _Fields(data, "flows")
        for name, value in read.data.items():
            if not isinstance(value, (dict, type(None))):
                raise TypeError(f"'flows.{name}' has the wrong type")
        found = read.data
        issues = found.get(RUNTIME_ISSUE) or {}
        known = (ROTATION, KEY_ROTATION, RUNTIME_REQUEST, RUNTIME_ISSUE)
        return cls(
            rotation=_optional(found, ROTATION, CertificateRotation.from_dict),
            key_rotation=_optional(found, KEY_ROTATION, KeyRotation.from_dict),
            runtime_request=_optional(found, RUNTIME_REQUEST, RuntimeRequest.from_dict),
            runtime_issues={
                str(key): RuntimeIssue.from_dict(value, f"flows.{RUNTIME_ISSUE}.{key}") for key, value in issues.items()
            },
            others={name: value for name, value in found.items() if name not in known},
        )


def _optional(found: dict[str, Any], name: str, load: Callable[[Any], T]) -> T | None:
    value = found.get(name)
    return None if value is None else load(value)
