"""The profile's settings and its records (what it knows of each certificate, the request in
flight, the verification history) as typed objects, read from and written to the journal's JSON.

Each is one JSON object of the journal (schema 2). Known keys become typed attributes and a key
holding the wrong type is damage (TypeError, which the journal reports as such). Keys this version
does not know are kept in ``extra`` and written back unchanged, so a newer tool's settings survive
an older tool's save. A value that is None or False is left out when written, as the dicts before
these types left the key out, unless the loaded document held the key: then it is written back as
it was read, so loading and saving a journal changes nothing in it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

# The JSON types each attribute may hold, by its annotation.
_KINDS: dict[str, Any] = {
    "str": str,
    "str | None": (str, type(None)),
    "bool": bool,
    "bool | None": (bool, type(None)),
    "dict[str, Any]": dict,
}
_KNOWN: dict[type, dict[str, Any]] = {}


def expect_type(value: Any, kind: Any, name: str) -> Any:
    """``value`` when it is of ``kind``; else TypeError naming it, which the journal reports as damage."""
    if not isinstance(value, kind):
        raise TypeError(f"'{name}' has the wrong type")
    return value


@dataclass
class _Record:
    """A JSON object of the journal: the known keys as attributes, unknown ones in ``extra``."""

    REQUIRED: ClassVar[tuple[str, ...]] = ()  # keys a sound document always holds
    NESTED: ClassVar[tuple[str, ...]] = ()  # attributes that are records: the subclass reads and writes them

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False)
    # The keys the loaded document held: an empty value there is written back as it was read.
    loaded_keys: frozenset[str] = field(default=frozenset(), kw_only=True, repr=False, compare=False)

    @classmethod
    def _known(cls) -> dict[str, Any]:
        """Each known key and the JSON types it may hold (worked out once per class)."""
        known = _KNOWN.get(cls)
        if known is None:
            skip = ("extra", "loaded_keys", *cls.NESTED)
            known = _KNOWN[cls] = {f.name: _KINDS[str(f.type)] for f in fields(cls) if f.name not in skip}
        return known

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Self:
        """Read the object ``where`` names (e.g. ``settings``); TypeError when it is damaged."""
        expect_type(data, dict, where)
        known, values, extra = cls._known(), {}, {}
        for key, value in data.items():
            if key in known:
                values[key] = expect_type(value, known[key], f"{where}.{key}")
            else:
                extra[key] = value
        for key in cls.REQUIRED:
            if key not in values:
                raise TypeError(f"'{where}.{key}' is missing")
        return cls(**values, extra=extra, loaded_keys=frozenset(data))

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        for key in self._known():
            value = getattr(self, key)
            if (value is not None and value is not False) or key in self.loaded_keys:
                out[key] = value
        return out


@dataclass
class Settings(_Record):
    """How this profile reaches Klarna, where it installs, and what it recorded of its own keys."""

    NESTED = ("last_status",)

    base_url: str | None = None  # a sandbox's URL; None means the environment's own host
    ca_bundle: str | None = None  # the sandbox's CA
    trust_ca: str | None = None  # live/test: a CA set the user chose instead of the bundled roots
    allow_remote_sandbox: bool = False  # a sandbox URL off loopback was allowed on purpose
    install_dir: str | None = None
    key_file_sha256: str | None = None  # sha256 of the key file this tool wrote (resume adopts only it)
    api_key_credential_id: str | None = None  # the API key the profile keeps and runs on
    api_key_id_source: str | None = None  # how that id is known: "created" by the tool, or "told"
    enforced_from_server: str | None = None  # the enforcement time Klarna answered
    enforcement_proved_at: str | None = None  # when a request without a certificate was refused
    runtime_name: str | None = None  # this host's runtime name (runtime install)
    last_status: LastStatus | None = None  # Klarna's last answer, for an offline start

    @classmethod
    def from_dict(cls, data: Any, where: str = "settings") -> Self:
        expect_type(data, dict, where)
        settings = super().from_dict({k: v for k, v in data.items() if k != "last_status"}, where)
        if "last_status" in data:
            try:
                settings.last_status = LastStatus.from_dict(data["last_status"], f"{where}.last_status")
            except TypeError:  # only a cache: kept as it is, and not used
                settings.extra["last_status"] = data["last_status"]
        settings.loaded_keys = frozenset(data)
        return settings

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.last_status is not None:
            out["last_status"] = self.last_status.to_dict()
        return out


@dataclass
class LastStatus(_Record):
    """Klarna's last answer about the profile, kept to show it when Klarna cannot be reached."""

    REQUIRED = ("at", "status")

    at: str = ""  # UTC, when Klarna answered
    # The answer as ``lifecycle.ProfileStatus.to_dict()`` wrote it (this core module cannot know
    # that type); wizard/offline.py reads it back, or falls back to the journal's own records.
    status: dict[str, Any] = field(default_factory=dict)


@dataclass
class CertificateRecord(_Record):
    """What this profile knows of one certificate: the tool's own records decide safety."""

    fingerprint: str | None = None  # SHA-256 of the certificate Klarna returned to us
    issued_here: bool = False
    not_after: str | None = None  # UTC
    installed: bool = False  # installed on this machine (or by `runtime install` on its host)
    label: str | None = None  # the installed pair's folder name
    last_seen_valid: str | None = None  # UTC; the day it was last seen VALID
    retired: bool = False  # revoked by this tool
    current: bool | None = None  # False once a rotation switched away from it
    runtime: str | None = None  # the runtime it was issued to
    public_key_id: str | None = None  # of the runtime's request: a rerun finds the certificate again
    certificate_pem: str | None = None  # the runtime's certificate, to hand over again on a rerun


@dataclass
class InFlight(_Record):
    """A non-idempotent request sent or about to be sent: a resumed run reconciles it."""

    REQUIRED = ("operation", "idempotency_key")

    operation: str = ""  # "create_certificate"
    idempotency_key: str = ""
    public_key_id: str | None = None  # of the key the request is for
    sent_at: str | None = None  # UTC


@dataclass
class StatusEntry(_Record):
    """One change of the verification status seen for a certificate."""

    REQUIRED = ("at", "status")

    at: str = ""  # UTC
    status: str = ""  # VALID | NOT_PRESENT | INVALID | REJECTED | UNKNOWN
    fingerprint: str | None = None  # of the pair it was seen with
    source: str | None = None  # what looked: verify, status, rotation

    def to_dict(self) -> dict[str, Any]:
        # Always the four keys, as every entry has been written so far.
        return {
            **self.extra,
            "at": self.at,
            "status": self.status,
            "fingerprint": self.fingerprint,
            "source": self.source,
        }
