"""Polling backs off politely: the chosen interval at first, then longer waits, bounded."""

from __future__ import annotations

from wizard.core import pacing


def test_first_polls_keep_the_chosen_interval_then_waits_grow_within_bounds():
    delays = [pacing.poll_delay(2.0, n) for n in range(1, 60)]
    assert delays[: pacing.STEADY_POLLS] == [2.0] * pacing.STEADY_POLLS
    assert delays == sorted(delays)  # never faster again
    assert delays[-1] == 2.0 * pacing.MAX_FACTOR  # reaches its bound and stays there
    assert max(pacing.poll_delay(10.0, n) for n in range(1, 60)) == pacing.CEILING
    assert pacing.poll_delay(60.0, 40) == 60.0  # an interval above the ceiling is kept, never shortened


def test_waiting_five_minutes_for_enforcement_sends_dozens_of_requests_not_hundreds():
    fixed = int(300 / 2.0) + 1
    paced = pacing.polls_within(2.0, 300.0)
    assert paced < fixed / 4
    assert paced >= pacing.STEADY_POLLS
