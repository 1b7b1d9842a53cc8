"""The journal's typed records: the profile's settings and its records (what it knows of each
certificate, the request in flight, the verification history) here, the resumable flows' records in
wizard/core/flow_records.py. All are ``_Record``s, read from and written to the journal's JSON one way.

Each is one JSON object of the journal (schema 2). Known keys become typed attributes and a key
holding the wrong type is damage (TypeError, which the journal reports as such); so is a missing
required key (``REQUIRED``, and every attribute without a default) and a ``step`` not in ``STEPS``
(ValueError). Keys this version does not know are kept in ``extra`` and written back unchanged, so
a newer tool's settings survive an older tool's save. A value that is None, or False in a plain
``bool`` attribute that defaults to False, is left out when written, as the dicts before these
types left the key out, unless the key is in ``WRITTEN`` or the loaded document held it: then it is
written back as it was read, so loading and saving a journal changes nothing in it. (False in a
``bool | None`` attribute is information, e.g. a certificate switched away from, and is written.)"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Self

# The JSON types each attribute may hold, by its annotation.
_KINDS: dict[str, Any] = {
    "str": str,
    "str | None": (str, type(None)),
    "bool": bool,
    "bool | None": (bool, type(None)),
    "dict[str, Any]": dict,
}


@dataclass(frozen=True)
class _Layout:
    """What a record class reads and writes, worked out once from its annotations."""

    kinds: dict[str, Any]  # each known key and the JSON types it may hold
    required: tuple[str, ...]  # the keys a sound document always holds
    quiet_false: frozenset[str]  # plain bool keys defaulting to False: False is written as absent


_LAYOUTS: dict[type, _Layout] = {}


def expect_type(value: Any, kind: Any, name: str) -> Any:
    """``value`` when it is of ``kind``; else TypeError naming it, which the journal reports as damage."""
    if not isinstance(value, kind):
        raise TypeError(f"'{name}' has the wrong type")
    return value


@dataclass
class _Record:
    """A JSON object of the journal: the known keys as attributes, unknown ones in ``extra``."""

    REQUIRED: ClassVar[tuple[str, ...]] = ()  # keys a sound document holds, besides those without a default
    NESTED: ClassVar[tuple[str, ...]] = ()  # attributes that are records: the subclass reads and writes them
    WRITTEN: ClassVar[tuple[str, ...]] = ()  # keys always written, even None or False
    STEPS: ClassVar[tuple[str, ...]] = ()  # a flow's record: the values its (Literal-typed) ``step`` may hold
    WHERE: ClassVar[str] = ""  # where the journal keeps it: names its keys in errors when no ``where`` is given

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False)
    # The keys the loaded document held: an empty value there is written back as it was read.
    loaded_keys: frozenset[str] = field(default=frozenset(), kw_only=True, repr=False, compare=False)

    @classmethod
    def _layout(cls) -> _Layout:
        layout = _LAYOUTS.get(cls)
        if layout is None:
            skip = ("extra", "loaded_keys", *cls.NESTED)
            own = [f for f in fields(cls) if f.name not in skip]
            kinds = {f.name: str if f.name == "step" and cls.STEPS else _KINDS[str(f.type)] for f in own}
            bare = tuple(f.name for f in own if f.default is MISSING and f.default_factory is MISSING)
            quiet = frozenset(f.name for f in own if kinds[f.name] is bool and f.default is False)
            layout = _LAYOUTS[cls] = _Layout(kinds, (*cls.REQUIRED, *bare), quiet)
        return layout

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Self:
        """Read the object ``where`` names (e.g. ``settings``); TypeError or ValueError when it is damaged."""
        where = where or cls.WHERE
        expect_type(data, dict, where)
        layout, values, extra = cls._layout(), {}, {}
        for key, value in data.items():
            if key in layout.kinds:
                values[key] = expect_type(value, layout.kinds[key], f"{where}.{key}")
            else:
                extra[key] = value
        for key in layout.required:
            if key not in values:
                raise TypeError(f"'{where}.{key}' is missing")
        if cls.STEPS and values["step"] not in cls.STEPS:
            raise ValueError(f"'{where}.step' is not one of {', '.join(cls.STEPS)}")
        return cls(**values, extra=extra, loaded_keys=frozenset(data))

    def to_dict(self) -> dict[str, Any]:
        layout, out = self._layout(), dict(self.extra)
        for key in layout.kinds:
            value = getattr(self, key)
            absent = value is None or (value is False and key in layout.quiet_false)
            if not absent or key in self.WRITTEN or key in self.loaded_keys:
                out[key] = value
        return out


@dataclass
class Settings(_Record):
    """How this profile reaches Klarna, where it installs, and what it recorded of its own keys."""

    NESTED = ("last_status",)
    WHERE = "settings"

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
    enforcement_seen: str | None = None  # what Klarna last said of enforcement: "MODE[ from TIME]"
    enforcement_seen_at: str | None = None  # when (UTC): on a change, else refreshed once a day
    runtime_name: str | None = None  # this host's runtime name (runtime install)
    last_status: LastStatus | None = None  # Klarna's last answer, for an offline start

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Self:
        where = where or cls.WHERE
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
    # The answer as ``services.status.ProfileStatus.to_dict()`` wrote it (this core module cannot know
    # that type); wizard/services/offline.py reads it back, or falls back to the journal's own records.
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
    # The id came from a runtime-response file and Klarna has not confirmed that it names this
    # certificate: "installed here" and "current" never rest on it (see ProfileState.id_for_pair).
    id_unconfirmed: bool = False


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
    WRITTEN = ("fingerprint", "source")  # every entry so far has been written with all four keys

    at: str = ""  # UTC
    status: str = ""  # VALID | NOT_PRESENT | INVALID | REJECTED | UNKNOWN
    fingerprint: str | None = None  # of the pair it was seen with
    source: str | None = None  # what looked: verify, status, rotation
