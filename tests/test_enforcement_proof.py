"""Enforcement is proved by Klarna refusing a call without a client certificate as mTLS requires
(its refusal code, answered 401 or 403): a wrong API key's 401 is not that proof (issue 23, item 4)."""

from __future__ import annotations

import asyncio

import pytest
from tests_support import session_for

from wizard.services import onboarding

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("refusal_status", [403, 401])
def test_enforcement_is_proved_by_the_mtls_refusal_whatever_its_status(onboard, sandbox, refusal_status):
    sandbox.configure(refusal_status=refusal_status)
    onboard(enforce_at="NOW")
    assert asyncio.run(onboarding.prove_enforced(session_for("p", sandbox)))


def test_a_wrong_api_keys_401_proves_nothing(onboard, sandbox):
    onboard()  # not enforced
    session = session_for("p", sandbox)
    session.unlock("klarna_test_api_" + "W" * 40)  # Klarna answers 401 UNAUTHORIZED to any call
    assert asyncio.run(onboarding.prove_enforced(session)) is False
    assert session.settings.enforcement_proved_at is None
