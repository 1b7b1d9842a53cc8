"""Hostile input from the network side: Hypothesis drives the parsers of Klarna's JSON answers and
the key masking. Together with tests/test_fuzz.py the run fuzzes well over 10,000 examples (the
"examples fuzzed" figure adds up the budgets of the fuzz tests that passed: tests/conftest.py)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests_support import only_wizard_errors

from wizard.core import rules
from wizard.klarna.models import ApiKeyInfo, CertificateInfo, EnforcementState

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
ENTRY_KEYS = [
    "credential_id",
    "status",
    "certificate",
    "fingerprint_sha256",
    "expires_at",
    "secret",
    "enforcement_mode",
    "enforced_from",
    "key_suffix",
    "is_initial",
    "description",
]
API_EXAMPLES = {"test_api_json_bodies": 1500, "test_masking_never_shows_more_than_four": 1000}


@settings(
    max_examples=API_EXAMPLES["test_api_json_bodies"],
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.one_of(
        st.dictionaries(st.sampled_from(ENTRY_KEYS), json_values, max_size=6),
        st.dictionaries(st.text(max_size=10), json_values, max_size=4),
    )
)
def test_api_json_bodies(body):
    for parse in (CertificateInfo.from_json, EnforcementState.from_json, ApiKeyInfo.from_json):
        only_wizard_errors(parse, body)


@settings(max_examples=API_EXAMPLES["test_masking_never_shows_more_than_four"], deadline=None, database=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda e, r: f"klarna_{e}_api_{r}",
            st.sampled_from(["live", "test"]),
            st.text(alphabet="abcXYZ0129_-", min_size=16, max_size=60),
        ),
    )
)
def test_masking_never_shows_more_than_four(text):
    assert len(rules.mask_key(text)) <= len("klarna_live_api_…") + 4
    if rules.api_key_environment(text):
        assert text not in rules.redact(f"Authorization: Basic {text}")
