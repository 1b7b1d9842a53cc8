"""How long to wait before asking Klarna again while waiting for something (verification,
enforcement): at the chosen interval at first, since the answer usually comes within seconds, then
less and less often, so a long wait (Klarna applies enforcement up to 5 minutes after the chosen
time) sends a few dozen requests instead of hundreds. A 429's Retry-After is honoured by the
client itself (api.KlarnaClient._backoff)."""

from __future__ import annotations

STEADY_POLLS = 5  # polls at the chosen interval before slowing down
GROWTH = 1.5  # each later wait is this much longer than the one before
MAX_FACTOR = 8.0  # never more than this many intervals between two polls
CEILING = 30.0  # nor more than this many seconds (unless the interval itself is longer)


def poll_delay(interval: float, attempt: int) -> float:
    """Seconds to wait after poll number ``attempt`` (counted from 1) at the chosen ``interval``."""
    if attempt <= STEADY_POLLS:
        return interval
    grown = interval * GROWTH ** (attempt - STEADY_POLLS)
    return min(grown, interval * MAX_FACTOR, max(interval, CEILING))


def polls_within(interval: float, seconds: float) -> int:
    """How many polls a wait of ``seconds`` sends (the first at once), for the figures."""
    polls, waited = 1, 0.0
    while True:
        waited += poll_delay(interval, polls)
        if waited > seconds:
            return polls
        polls += 1
