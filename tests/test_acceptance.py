"""Accepted under enforcement (issue 23, item 2): the one rule, and the revoke gate that takes it.
Pure: no session, no network."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_runtime_interlocks import READY, checks

from wizard.core import acceptance
from wizard.core.interlocks import Action

ACCEPTED = acceptance.ACCEPTED_UNDER_ENFORCEMENT


@pytest.mark.parametrize(
    ("header", "mode", "expected"),
    [
        ("UNKNOWN", "ENFORCED", ACCEPTED),  # no header, and Klarna refuses what it does not accept
        ("VALID", "ENFORCED", "VALID"),  # the header, when sent, is its word
        ("INVALID", "ENFORCED", "INVALID"),
        ("UNKNOWN", "REPORTING", "UNKNOWN"),  # not enforced: a 2xx proves nothing
        ("UNKNOWN", "NOT_ENABLED", "UNKNOWN"),
        ("UNKNOWN", "UNKNOWN", "UNKNOWN"),  # unknown means no
        ("UNKNOWN", None, "UNKNOWN"),
    ],
)
def test_only_a_call_accepted_while_enforced_without_a_header_is_accepted_under_enforcement(header, mode, expected):
    assert acceptance.verdict(header, mode) == expected


def test_accepted_takes_valid_and_accepted_under_enforcement_and_nothing_else():
    assert acceptance.accepted("VALID") and acceptance.accepted(ACCEPTED)
    for status in ("UNKNOWN", "INVALID", "NOT_PRESENT", "REJECTED", "REFUSED", None):
        assert not acceptance.accepted(status)


def test_the_revoke_gate_takes_accepted_under_enforcement_as_a_working_pair():
    enforced = replace(READY, enforcement="ENFORCED", verification_now=ACCEPTED)
    assert checks(Action.REVOKE, enforced) == []
    assert checks(Action.REVOKE, replace(enforced, verification_now="UNKNOWN")) == ["enforcement"]
