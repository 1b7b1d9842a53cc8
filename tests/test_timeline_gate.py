"""Time in the enforcement gate (issue 21, rules 1 and 3), as entries of the interlock table: the
counted certificates must outlast the enforcement's start plus the margin (Klarna's 5-minute apply
delay plus the clock tolerance), and this machine's clock must agree with Klarna's ``Date``. Pure:
no session, no network; the end-to-end reproductions are in test_timeline_e2e.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wizard.core import timeline
from wizard.core.checks import CLOCK_SKEW_TOLERANCE
from wizard.core.interlocks import Action, ActionRefused, Situation, refusals, require
from wizard.core.stages import Stage
from wizard.services.onboarding_waits import _not_verified


class Settled:
    def unsettled_before(self, stage: Stage) -> list[str]:
        return []


NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
READY = Situation(
    Stage.DONE,
    model=Settled(),  # type: ignore[arg-type]
    installed=True,
    current_id="a",
    listed_ids=frozenset({"a"}),
    verification_now="VALID",
    enforcement="REPORTING",
    now=NOW,
    server_date=NOW,
    effective_at=NOW,
    current_not_after=NOW + timedelta(days=1000),
)


def checks(situation: Situation) -> list[str]:
    return [r.check for r in refusals(Action.ENFORCE, situation)]


def test_the_margin_is_the_apply_delay_plus_the_clock_tolerance():
    assert timedelta(minutes=5) + timedelta(seconds=CLOCK_SKEW_TOLERANCE) == timeline.ENFORCEMENT_MARGIN


@pytest.mark.parametrize(
    "start,lifetime,refused",
    [
        (timedelta(0), timedelta(minutes=4), True),  # LO-01 with NOW: it expires while enforcement applies
        (timedelta(minutes=10), timedelta(minutes=4), True),  # LO-01: scheduled after the expiry
        (timedelta(days=60), timedelta(days=10), True),  # A45: 60 days out, 10 days left
        (timedelta(days=1), timedelta(days=1, minutes=6), True),  # inside the margin
        (timedelta(days=1), timedelta(days=1, minutes=8), False),  # just past it
        (timedelta(days=60), timedelta(days=1000), False),
    ],
)
def test_the_installed_certificate_must_outlast_the_start_plus_the_margin(start, lifetime, refused):
    situation = replace(READY, effective_at=NOW + start, current_not_after=NOW + lifetime)
    assert ("current lasts" in checks(situation)) is refused
    if refused:
        with pytest.raises(ActionRefused) as caught:
            require(Action.ENFORCE, situation)
        message = caught.value.message
        assert "The certificate installed here (a) expires at" in message
        assert timeline.when(NOW + lifetime) in message  # which certificate, and when
        assert "Rotate it first" in message  # what to do
        assert "rotate" in caught.value.hint and "earlier time" in caught.value.hint


def test_a_refusal_names_the_latest_start_the_certificate_outlasts():
    situation = replace(READY, effective_at=NOW + timedelta(days=60), current_not_after=NOW + timedelta(days=10))
    latest = NOW + timedelta(days=10) - timeline.ENFORCEMENT_MARGIN
    assert f"choose a start no later than {timeline.when(latest)}" in refusals(Action.ENFORCE, situation)[0].reason


def test_an_unknown_expiry_or_start_means_no():
    assert "current lasts" in checks(replace(READY, current_not_after=None))
    assert "start known" in checks(replace(READY, effective_at=None))


def test_every_counted_runtime_must_outlast_it_too_and_each_is_named():
    situation = replace(
        READY,
        effective_at=NOW + timedelta(hours=1),
        runtime_not_after=(
            ("checkout", NOW + timedelta(days=900)),
            ("refunds", NOW + timedelta(minutes=30)),
            ("batch", None),
        ),
    )
    found = refusals(Action.ENFORCE, situation)
    assert [r.check for r in found] == ["runtimes last"]
    assert (
        "runtime refunds expires at" in found[0].reason and "runtime batch: its expiry is not known" in found[0].reason
    )
    assert "checkout" not in found[0].reason
    assert "--leave-out" in found[0].hint


@pytest.mark.parametrize(
    "skew,refused",
    [
        (0, False),
        (CLOCK_SKEW_TOLERANCE - 1, False),
        (-(CLOCK_SKEW_TOLERANCE - 1), False),
        (CLOCK_SKEW_TOLERANCE + 1, True),
        (-3 * 86400, True),
    ],
)
def test_a_clock_off_from_klarnas_date_refuses_with_the_skew_named(skew, refused):
    situation = replace(READY, server_date=NOW + timedelta(seconds=skew))
    assert ("clock agrees" in checks(situation)) is refused
    if refused:
        reason = refusals(Action.ENFORCE, situation)[0].reason
        assert timeline.span(abs(skew)) in reason and timeline.when(NOW + timedelta(seconds=skew)) in reason


def test_an_answer_without_a_date_cannot_vouch_for_the_clock():
    assert checks(replace(READY, server_date=None)) == ["clock agrees"]


def test_the_skew_of_lo09_is_three_days_behind():
    """LO-09: the managing machine's clock 3 days behind Klarna's."""
    reason = timeline.skew_reason(NOW + timedelta(days=3), NOW)
    assert reason is not None and "3.0 d behind Klarna's" in reason


def test_a_certificate_in_its_renewal_window_at_the_start_is_allowed_but_named():
    start = NOW + timedelta(days=30)
    situation = replace(READY, effective_at=start, current_not_after=NOW + timedelta(days=45))
    assert checks(situation) == []
    note = timeline.renewal_note("The certificate installed here", NOW + timedelta(days=45), start)
    assert note is not None and "15 days after enforcement starts" in note


def test_a_poll_that_ends_on_valid_says_why_it_is_not_verified():
    """A57: the poll ended with VALID answers but not enough in a row; the message no longer says
    both "did not reach VALID" and "ready" without explaining."""
    error: Any = _not_verified("VALID")
    assert "3 VALID answers in a row" in error.message and "ready" not in error.message
    assert "--poll-limit" in error.hint
