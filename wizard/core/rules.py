"""Klarna's rules as pure functions: account ids, API keys, CNs, descriptions, enforced_from.

One home for each rule; the model, the client, the CLI and the sandbox all call these."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

from wizard.core.environments import ENVIRONMENTS as ENVIRONMENT_TABLE
from wizard.core.errors import InputError

ENVIRONMENTS = tuple(ENVIRONMENT_TABLE)
KEY_ENVIRONMENT = {env.name: env.key_environment for env in ENVIRONMENT_TABLE.values()}

# \Z, not $: "$" also matches before a final newline, and a value ending in "\n" must not pass.
_ACCOUNT_RE = re.compile(r"^krn:partner:global:account:(live|test):([A-Za-z0-9-]{1,64})\Z")
_API_KEY_RE = re.compile(r"^klarna_(live|test)_api_([A-Za-z0-9_\-+/=]{16,512})\Z")
_KEY_SHAPED_RE = re.compile(r"klarna_(?:live|test)_(?:api|client)_[A-Za-z0-9_\-+/=]+")
_DESCRIPTION_RE = re.compile(r"^[a-zA-Z0-9\-:;., _]{0,100}\Z")
_CORRELATION_RE = re.compile(r"^[A-Za-z0-9]{1,255}\Z")
MAX_CN_LENGTH = 64
MAX_ACTIVE_CERTIFICATES = 10
CERTIFICATE_VALIDITY = timedelta(days=3 * 365)
MAX_ENFORCEMENT_AHEAD = timedelta(days=92)  # "at most 3 months": the longest 3 months
ENFORCEMENT_APPLY_DELAY = timedelta(minutes=5)  # "takes up to 5 minutes to apply"
RENEWAL_WINDOW = timedelta(days=60)


class VerificationStatus(str, Enum):  # noqa: UP042 -- StrEnum would change str() and f-string output
    NOT_PRESENT = "NOT_PRESENT"
    VALID = "VALID"
    INVALID = "INVALID"
    UNKNOWN = "UNKNOWN"  # header absent or unparseable

    @classmethod
    def parse(cls, header: str | None) -> VerificationStatus:
        """Read the first value of a possibly duplicated header (``VALID, VALID``)."""
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        if not header or not isinstance(header, str):
            return cls.UNKNOWN
        first = header.split(",")[0].strip().upper()
        try:
            return cls(first)
        except ValueError:
            return cls.UNKNOWN


class EnforcementMode(str, Enum):  # noqa: UP042 -- StrEnum would change str() and f-string output
    NOT_ENABLED = "NOT_ENABLED"
    REPORTING = "REPORTING"
    ENFORCED = "ENFORCED"
    UNKNOWN = "UNKNOWN"  # the answer had no readable mode: never taken as "not enabled"


@dataclass(frozen=True)
class AccountId:
    environment: str  # live | test
    suffix: str

    def __str__(self) -> str:
        return f"krn:partner:global:account:{self.environment}:{self.suffix}"


def parse_account_id(text: str) -> AccountId:
    match = _ACCOUNT_RE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise InputError(
            "That is not a Klarna account id.",
            hint="It looks like krn:partner:global:account:test:LYABCDEI (live or test, then the id).",
        )
    return AccountId(match.group(1), match.group(2))


def default_cn(account: AccountId | str) -> str:
    """The CN Klarna accepts in every variant of its docs: the account id's last segment."""
    if isinstance(account, str):
        account = parse_account_id(account)
    return account.suffix


_ASSIGNED_TAIL_RE = re.compile(r"-[0-9a-fA-F]{16}")


def is_assigned_cn(cn: object, account: AccountId | str) -> bool:
    """Whether ``cn`` is the CN Klarna assigns a certificate when it does not take the CSR's
    (Network partner page): the account suffix, a dash and 16 hex digits, e.g. ``LYABCDEI-1f0c…``.
    Hex is matched in either case; an account id that cannot be read matches nothing."""
    try:
        suffix = default_cn(account)
    except InputError:
        return False
    if not isinstance(cn, str) or not cn.startswith(suffix):
        return False
    return _ASSIGNED_TAIL_RE.fullmatch(cn[len(suffix) :]) is not None


def verify_cn(cn: str, account: AccountId | str | None = None) -> None:
    """A custom CN is allowed up to 64 printable characters; the default is the account suffix."""
    if not isinstance(cn, str) or not cn or len(cn) > MAX_CN_LENGTH:
        raise InputError(f"The CN must be 1 to {MAX_CN_LENGTH} characters.")
    if not cn.isprintable() or cn != cn.strip() or "/" in cn or "=" in cn:
        raise InputError("The CN may not contain control characters, '/', '=' or outer spaces.")


def api_key_environment(key: str) -> str | None:
    """``live``/``test`` for a well-formed API key, else None. Never echoes the key."""
    match = _API_KEY_RE.match(key) if isinstance(key, str) else None
    return match.group(1) if match else None


def verify_api_key(key: str, profile_environment: str | None = None) -> str:
    """The key's environment (``live``/``test``); InputError for anything else, before any request.
    Surrounding whitespace is named as such (``echo`` into a secret adds a newline) and never
    trimmed: the key that works is the one the user fixes at its source."""
    if isinstance(key, str) and key != key.strip() and key.strip():
        raise InputError(
            "The API key has surrounding whitespace (a newline at the end?).",
            title="API key has whitespace",
            hint="Remove it where the key is set: printf '%s' instead of echo, or kubectl create secret "
            "--from-literal; klarna-mtls never trims a secret.",
        )
    env = api_key_environment(key)
    if env is None:
        raise InputError(
            "That does not look like a Klarna API key.",
            hint="Keys look like klarna_test_api_… or klarna_live_api_…; paste it whole.",
        )
    if profile_environment and KEY_ENVIRONMENT[profile_environment] != env:
        raise InputError(
            f"This is a {env} key but the profile is {profile_environment}.",
            hint="Use a key from the same environment as the account.",
        )
    return env


def mask_key(key: str) -> str:
    """``klarna_test_api_…a1b2``: the environment and the last four characters only."""
    match = _API_KEY_RE.match(key) if isinstance(key, str) else None
    if not match:
        return "…" + (key[-4:] if isinstance(key, str) and len(key) > 12 else "")
    return f"klarna_{match.group(1)}_api_…{match.group(2)[-4:]}"


def redact(text: str) -> str:
    """Replace anything shaped like a Klarna key with its masked form."""
    return _KEY_SHAPED_RE.sub(lambda m: mask_key(m.group(0)) if "_api_" in m.group(0) else "klarna_…", text)


def verify_description(text: str) -> None:
    if not isinstance(text, str) or not _DESCRIPTION_RE.match(text):
        raise InputError(
            "Descriptions may hold up to 100 letters, digits, spaces and - : ; . , _ only.",
        )


def valid_correlation_id(text: str) -> bool:
    return isinstance(text, str) and bool(_CORRELATION_RE.match(text))


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_utc(moment: datetime) -> str:
    """Klarna's timestamp form: UTC, whole seconds, ``Z``."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    """ISO-8601 with an offset or Z. A naive time is refused: we never guess a time zone."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("A date and time is required, e.g. 2026-12-01T09:00:00Z.")
    raw = text.strip()
    if raw.endswith(("z", "Z")):
        raw = raw[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise InputError(
            f"'{text[:40]}' is not an ISO-8601 date and time.",
            hint="Write it like 2026-12-01T09:00:00Z or 2026-12-01T10:00:00+01:00.",
        ) from exc
    if moment.tzinfo is None:
        raise InputError(
            "Give the time zone too (Z for UTC or an offset like +01:00).",
            hint="Enforcement times are absolute; a time without a zone is ambiguous.",
        )
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00
        raise InputError(f"'{text[:40]}' is outside the range of dates this tool handles.") from exc


def parse_enforced_from(text: str, now: datetime | None = None) -> str:
    """Validate an ``enforced_from`` value and return it as Klarna expects (``NOW`` or UTC Z)."""
    now = now or utc_now()
    if isinstance(text, str) and text.strip().upper() == "NOW":
        return "NOW"
    moment = parse_timestamp(text)
    # A minute of grace: "now-ish" typed by a person is not "in the past".
    if moment < now - timedelta(minutes=1):
        raise InputError("The enforcement time is in the past.", hint="Choose NOW or a future time.")
    if moment > now + MAX_ENFORCEMENT_AHEAD:
        raise InputError(
            "The enforcement time is more than 3 months ahead.",
            hint=f"Choose a time before {format_utc(now + MAX_ENFORCEMENT_AHEAD)}.",
        )
    return format_utc(max(moment, now))


# Escape sequences (ECMA-48), in their 7-bit (ESC …) and 8-bit (C1) forms: CSI (colours, cursor
# moves, clear screen), the control strings OSC (OSC 52 writes the clipboard, OSC 8 makes a link),
# DCS, SOS, PM and APC up to their terminator, and every other ESC sequence. A string without its
# terminator loses its introducer only: what follows is shown, as text.
_ESCAPES_RE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: parameters, intermediates, final byte
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x90\x98\x9c-\x9f]*(?:\x07|\x1b\\|\x9c)"  # string … BEL or ST
    r"|\x1b[ -/]*[0-~]"  # two-byte and nF escapes (ESC c, ESC ( 0, an unterminated OSC's ESC ])
)
# What is left of them, and the characters that change what a reader sees without being seen: any
# control but tab and newline (C0, DEL, C1), the bidi embeddings, overrides, isolates and marks
# (Trojan Source), and lone surrogates (they cannot be written to a terminal or a UTF-8 file).
_CONTROLS_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SURROGATES_RE = re.compile(r"[\ud800-\udfff]")
_LINE_BREAKS_RE = re.compile(r"\r\n?|[\x85\u2028\u2029]")  # CR, CRLF, NEL, line and paragraph separators
# Nothing this tool writes comes near it; a longer line is a server's or a file's, and is cut (saying
# so) before a terminal, a table cell or a log line has to hold it.
MAX_LINE = 1000


def clean_text(text: object, *, keep_newlines: bool = False, max_line: int | None = MAX_LINE) -> str:
    """Text from a server, a file or a person, safe on a terminal, in a widget and in a log: escape
    sequences, control characters and bidi controls removed, tabs turned into spaces, line breaks
    into newlines (kept with ``keep_newlines``, else spaces), and each line cut to ``max_line``
    characters with what was cut counted. Idempotent: cleaning twice changes nothing more."""
    text = _LINE_BREAKS_RE.sub("\n", str(text))
    text = _ESCAPES_RE.sub("", text)
    text = _SURROGATES_RE.sub("\ufffd", _CONTROLS_RE.sub("", text)).replace("\t", " ")
    if not keep_newlines:
        text = text.replace("\n", " ")
    if max_line is None:
        return text
    return "\n".join(_cut(line, max_line) for line in text.split("\n"))


def _cut(line: str, limit: int) -> str:
    """``line`` if it fits, else its start and ``… (N more characters)``: ``limit`` long at most
    (any limit over 30), so a cut line is never cut again."""
    if len(line) <= limit:
        return line
    kept = max(0, limit - len(f"… ({len(line)} more characters)"))
    return f"{line[:kept]}… ({len(line) - kept} more characters)"


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def verify_base_url(environment: str | None, url: str, *, allow_remote: bool = False) -> None:
    """A sandbox base URL is https, on loopback unless the user explicitly allowed another host;
    an API key must never travel in clear text or to a host chosen by accident."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    if parts is None or parts.scheme != "https" or not host or parts.username or parts.password:
        raise InputError(
            "The base URL must be https://host[:port] (no user or password).",
            hint="The API key is sent with every request: never over plain http.",
        )
    if environment == "sandbox" and not allow_remote and host not in LOOPBACK_HOSTS:
        raise InputError(
            f"The sandbox base URL points at {host}, which is not this machine.",
            hint="Use the sandbox on 127.0.0.1, or pass --allow-remote-sandbox if you mean that host.",
        )
