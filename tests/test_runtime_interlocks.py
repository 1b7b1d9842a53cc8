"""The two runtime lock-out rules as entries of the interlock table: the runtimes service gives
facts, ``interlocks`` judges them and words the refusal. Pure: no session, no network."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wizard.core.interlocks import ACTIONS, Action, ActionRefused, Situation, refusals, require, require_check
from wizard.core.stages import Stage


class Settled:
    """The onboarding evidence before ENFORCE holds (what ``Onboarding.unsettled_before`` says)."""

    def unsettled_before(self, stage: Stage) -> list[str]:
        return []


# Everything else holds: the installed certificate "a" is ours, listed and VALID now, valid for a
# year after enforcement from NOW, with this machine's clock on Klarna's; "b" is another.
SETTLED: Any = Settled()
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
READY = Situation(
    Stage.DONE,
    model=SETTLED,
    installed=True,
    current_id="a",
    listed_ids=frozenset({"a", "b"}),
    verification_now="VALID",
    enforcement="NOT_ENABLED",
    target="b",
    now=NOW,
    server_date=NOW,
    effective_at=NOW,
    current_not_after=NOW + timedelta(days=365),
)


def checks(action: Action, situation: Situation) -> list[str]:
    return [r.check for r in refusals(action, situation)]


def test_both_rules_are_entries_of_the_table():
    assert "runtimes ready" in [g.name for g in ACTIONS[Action.ENFORCE].gates]
    assert "target unused" in [g.name for g in ACTIONS[Action.REVOKE].gates]


def test_enforce_is_refused_while_a_declared_runtime_is_not_ready():
    lagging = replace(READY, runtimes_not_ready=("refunds: no readiness report yet", "batch: NOT_PRESENT"))
    assert checks(Action.ENFORCE, READY) == []
    assert checks(Action.ENFORCE, lagging) == ["runtimes ready"]
    with pytest.raises(ActionRefused) as refused:
        require(Action.ENFORCE, lagging)
    assert str(refused.value).startswith(
        "Refusing to enforce mTLS: Runtimes not ready for enforcement: "
        "refunds: no readiness report yet; batch: NOT_PRESENT."
    )
    assert "--leave-out NAME" in refused.value.hint


def test_the_runtime_check_is_judged_alone_for_a_service_with_only_its_own_facts():
    bare = Situation(Stage.CREDENTIALS)  # nothing else established: only the named check is judged
    require_check(Action.ENFORCE, "runtimes ready", bare)
    with pytest.raises(ActionRefused, match="refunds: no readiness report yet") as refused:
        require_check(
            Action.ENFORCE, "runtimes ready", replace(bare, runtimes_not_ready=("refunds: no readiness report yet",))
        )
    assert [r.check for r in refused.value.refusals] == ["runtimes ready"]


def test_revoking_a_runtimes_current_certificate_is_refused_with_the_way_out():
    busy = replace(READY, target_in_use_by=("checkout",))
    assert checks(Action.REVOKE, READY) == []
    assert checks(Action.REVOKE, busy) == ["target unused"]
    reason = refusals(Action.REVOKE, busy)[0].reason
    assert reason.startswith("Certificate b is the current certificate of runtime checkout.")
    assert "runtime request --new-key there" in reason and "runtime remove checkout" in reason


def test_revoking_an_older_certificate_waits_for_a_valid_report_with_the_newer():
    waiting = replace(READY, target_not_replaced_on=(("checkout", "krn:new"),))
    assert checks(Action.REVOKE, waiting) == ["target unused"]
    reason = refusals(Action.REVOKE, waiting)[0].reason
    assert "Runtime checkout may still use certificate b" in reason
    assert "has not reported VALID with its newer certificate krn:new yet" in reason


def test_every_runtime_in_the_way_is_named_alongside_the_other_rules():
    both = replace(READY, target="a", target_in_use_by=("checkout",), target_not_replaced_on=(("batch", "krn:c"),))
    assert checks(Action.REVOKE, both) == ["not current", "target unused"]
    reason = refusals(Action.REVOKE, both)[-1].reason
    assert "runtime checkout" in reason and "Runtime batch" in reason
