"""Every setting of the sandbox in one place, under the names every way in uses.

The same name works as a ``start_sandbox(...)`` keyword, in ``Sandbox.configure(...)``, as a key of
``POST /__sandbox__/config`` and, with dashes, as a ``klarna-mtls sandbox serve`` flag. Each
answer-shape switch is off by default, so the sandbox answers as it always has unless a test asks.
Settings belong to the running sandbox and are not saved in its state folder (the clock offset is).

Time:
- ``enforcement_delay`` (seconds, default 300): enforcement applies this long after the chosen
  moment (Klarna: up to 5 minutes); until then the mode reads REPORTING.
- ``certificate_lifetime_seconds`` / ``certificate_lifetime_days`` (default 3 years): the life of
  the certificates issued from now on, so an expiry can be reached in a test.
- ``date_follows_clock`` (default off): the ``Date`` header reads the sandbox clock (real time plus
  what ``advance_clock`` added) instead of real time. Off, ``advance_clock`` moves only Klarna's
  view of time (expiry, enforcement, revocation) and the client sees no clock skew; on, it also
  stands for a managing machine whose clock is behind Klarna's.

Answers (each documented by Klarna as possible, or left open by its docs):
- ``answers``: "ours" (every field the sandbox knows) or "docs-only" (only what Klarna documents;
  answers.py).
- ``put_enforcement_answers_204``: PUT enforcement answers 204 with no body in "ours" mode too.
- ``allow_custom_cn``: accept any CN of 1 to 64 characters (the newer page) instead of the suffix.
- ``propagation_delay`` (seconds, default 0): "changes take up to 5 minutes to apply". While the
  account is ENFORCED, a certificate issued less than this long ago (sandbox clock) reads INVALID
  and calls made with it are refused; afterwards it is accepted as usual.
- ``no_header_once_enforced``: while the account's mode is ENFORCED, no answer carries
  ``Klarna-Mtls-Verification-Status`` (as Klarna's IP-restriction header does once enforced).
- ``refusal_status`` (403 or 401, default 403): the status of the enforcement refusal
  (ACCESS_ERROR / MTLS_REQUIRED either way; the status is not documented).
- ``enforcement_field``: where an enforcement state answer puts the mode: "enforcement_mode" (the
  default), "status" (the seed page's "status verbs, ENFORCED or REPORTING"), "both" (the same
  mode in each) or "both-disagree" (``status`` says the opposite of ``enforcement_mode``).
- ``null_empty_lists``: a listing with nothing in it answers ``{"credentials": null}``.
- ``assigned_cn``: every certificate is issued with the CN Klarna assigns when it does not take
  the CSR's (Network partner page): the account suffix, a dash and 16 random lower-case hex
  digits, whatever CN the CSR asked for (the CSR's other rules still apply)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any, Literal

from wizard.core import rules

AnswerMode = Literal["ours", "docs-only"]
ANSWER_MODES: tuple[AnswerMode, ...] = ("ours", "docs-only")
ENFORCEMENT_FIELDS = ("enforcement_mode", "status", "both", "both-disagree")
REFUSAL_STATUSES = (403, 401)
FLAGS = (
    "put_enforcement_answers_204",
    "allow_custom_cn",
    "date_follows_clock",
    "no_header_once_enforced",
    "null_empty_lists",
    "assigned_cn",
)
SECONDS = ("enforcement_delay", "propagation_delay")
CHOICES: dict[str, tuple[Any, ...]] = {
    "answers": ANSWER_MODES,
    "refusal_status": REFUSAL_STATUSES,
    "enforcement_field": ENFORCEMENT_FIELDS,
}
LIFETIMES = {"certificate_lifetime_seconds": 1.0, "certificate_lifetime_days": 86400.0}
SETTING_NAMES = (*SECONDS, *LIFETIMES, *FLAGS, *CHOICES)


@dataclass
class SandboxOptions:
    enforcement_delay: float = 300.0
    certificate_lifetime: timedelta = rules.CERTIFICATE_VALIDITY
    date_follows_clock: bool = False
    answers: AnswerMode = "ours"
    put_enforcement_answers_204: bool = False
    allow_custom_cn: bool = False
    propagation_delay: float = 0.0
    no_header_once_enforced: bool = False
    refusal_status: int = 403
    enforcement_field: str = "enforcement_mode"
    null_empty_lists: bool = False
    assigned_cn: bool = False

    def update(self, settings: Mapping[str, Any]) -> None:
        """Check every setting first, then apply them all: a bad one changes nothing."""
        checked = dict(_checked(name, value) for name, value in settings.items())
        for name, value in checked.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        """The settings in force, under their setting names."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "certificate_lifetime"}
        return out | {"certificate_lifetime_seconds": self.certificate_lifetime.total_seconds()}


def _checked(name: str, value: Any) -> tuple[str, Any]:
    """(attribute, value) for one setting, or ValueError naming what is wrong."""
    if name in FLAGS:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, not {value!r}")
        return name, value
    if name in CHOICES:
        if value not in CHOICES[name]:
            raise ValueError(f"{name} must be one of {', '.join(map(str, CHOICES[name]))}, not {value!r}")
        return name, value
    if name in SECONDS:
        return name, _non_negative(name, value)
    if name in LIFETIMES:
        seconds = _non_negative(name, value) * LIFETIMES[name]
        if seconds <= 0:
            raise ValueError(f"{name} must be more than 0")
        return "certificate_lifetime", timedelta(seconds=seconds)
    raise ValueError(f"unknown sandbox setting {name!r}; one of {', '.join(SETTING_NAMES)}")


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number of 0 or more, not {value!r}")
    return float(value)
