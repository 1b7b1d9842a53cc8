"""Time in the safety rules: when an enforcement starts, how long a certificate must last for it,
and whether this machine's clock can be trusted to tell. Pure functions over datetimes; the gate
(``interlocks``) and the re-judging of a scheduled enforcement (``services.enforcement_outlook``)
both word their reasons here, so a refusal and a later warning say the same thing.

The margin: enforcement chosen for T applies at some moment up to 5 minutes after T (Klarna), and
this machine's clock may be off by up to ``CLOCK_SKEW_TOLERANCE`` without being refused; so every
counted certificate must still be valid at T + ``ENFORCEMENT_MARGIN``. A certificate that would be
inside its renewal window at T is allowed (rotation is the normal way out of that window, and it
works under enforcement while the installed pair is valid) but is named in a warning."""

from __future__ import annotations

from datetime import datetime, timedelta

from wizard.core import rules
from wizard.core.checks import CLOCK_SKEW_TOLERANCE

ENFORCEMENT_MARGIN = rules.ENFORCEMENT_APPLY_DELAY + timedelta(seconds=CLOCK_SKEW_TOLERANCE)


def enforcement_start(enforced_from: str, now: datetime) -> datetime:
    """The moment ``enforced_from`` (NOW or a UTC time, as ``rules.parse_enforced_from`` returns it) names."""
    return now if enforced_from.strip().upper() == "NOW" else rules.parse_timestamp(enforced_from)


def must_last_until(start: datetime) -> datetime:
    """The latest moment a counted certificate must still be valid for an enforcement from ``start``."""
    return start + ENFORCEMENT_MARGIN


def when(moment: datetime) -> str:
    return rules.format_utc(moment)


def lasting_reason(label: str, not_after: datetime | None, now: datetime, start: datetime) -> str | None:
    """Why certificate ``label`` will not be valid from ``now`` until enforcement from ``start``
    has applied (plus the margin); None when it will be."""
    if not_after is None:
        return f"{label}: its expiry is not known, so it cannot be shown to outlast the enforcement."
    if not_after <= now:
        return f"{label} expired at {when(not_after)}. Rotate it first."
    deadline = must_last_until(start)
    if not_after >= deadline:
        return None
    latest = not_after - ENFORCEMENT_MARGIN
    way_out = (
        f"Rotate it first, or choose a start no later than {when(latest)}."
        if latest > now
        else "Rotate it first: it expires too soon for any start."
    )
    return (
        f"{label} expires at {when(not_after)}, before enforcement from {when(start)} has surely applied "
        f"({when(deadline)}: Klarna's {_minutes(rules.ENFORCEMENT_APPLY_DELAY)} apply delay plus "
        f"{_minutes(timedelta(seconds=CLOCK_SKEW_TOLERANCE))} clock tolerance); from then on its calls are "
        f"refused. {way_out}"
    )


def renewal_note(label: str, not_after: datetime | None, start: datetime) -> str | None:
    """A warning when ``label`` will be inside its renewal window when enforcement starts."""
    if not_after is None or not_after - start > rules.RENEWAL_WINDOW:
        return None
    return f"{label} expires at {when(not_after)}, {(not_after - start).days} days after enforcement starts: rotate it before then."


def skew_seconds(server_date: datetime | None, now: datetime) -> float | None:
    """Klarna's clock minus this machine's (positive: this machine is behind)."""
    return None if server_date is None else (server_date - now).total_seconds()


def skew_reason(server_date: datetime | None, now: datetime) -> str | None:
    """Why this machine's clock cannot be trusted for a time-based decision; None when it can."""
    if server_date is None:
        return "Klarna's answer carried no Date, so this machine's clock could not be checked against Klarna's."
    skew = (server_date - now).total_seconds()
    if abs(skew) <= CLOCK_SKEW_TOLERANCE:
        return None
    direction = "behind" if skew > 0 else "ahead of"
    return (
        f"This machine's clock ({when(now)}) is {span(abs(skew))} {direction} Klarna's (Date: {when(server_date)}), "
        f"more than the {CLOCK_SKEW_TOLERANCE:.0f} s tolerated: times judged by it (expiry, report age, when "
        "enforcement starts) cannot be trusted."
    )


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.0f} min"


def span(seconds: float) -> str:
    """A duration as people say it: 40 s, 12 min, 5.0 h, 3.0 d."""
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
