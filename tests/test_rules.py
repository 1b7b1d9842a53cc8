"""Klarna's rules as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wizard.core import rules
from wizard.core.errors import InputError

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text,env,suffix",
    [
        ("krn:partner:global:account:live:LYABCDEI", "live", "LYABCDEI"),
        ("krn:partner:global:account:test:LYABCDEI", "test", "LYABCDEI"),
        (
            "krn:partner:global:account:test:3f2b8c1e-9d4a-4c7b-a1e2-0f9e8d7c6b5a",
            "test",
            "3f2b8c1e-9d4a-4c7b-a1e2-0f9e8d7c6b5a",
        ),
    ],
)
def test_account_ids(text, env, suffix):
    account = rules.parse_account_id(text)
    assert (account.environment, account.suffix) == (env, suffix)
    assert rules.default_cn(text) == suffix
    assert str(account) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "LYABCDEI",
        "krn:partner:global:account:prod:X",
        "krn:partner:global:account:test:",
        "krn:partner:global:account:test:a b",
    ],
)
def test_bad_account_ids(text):
    with pytest.raises(InputError):
        rules.parse_account_id(text)


def test_api_key_shape_and_environment():
    key = "klarna_test_api_" + "A1b2" * 8
    assert rules.verify_api_key(key, "test") == "test"
    assert rules.verify_api_key(key, "sandbox") == "test"
    with pytest.raises(InputError, match="test key but the profile is live"):
        rules.verify_api_key(key, "live")
    for bad in ("", "klarna_prod_api_" + "x" * 20, "klarna_test_client_" + "x" * 20, "klarna_test_api_short"):
        with pytest.raises(InputError):
            rules.verify_api_key(bad)


def test_mask_and_redact_leave_only_four_characters():
    key = "klarna_live_api_" + "Zq9" * 10 + "WXYZ"
    assert rules.mask_key(key) == "klarna_live_api_…WXYZ"
    text = rules.redact(f"sent Authorization: Basic {key} ok")
    assert key not in text and "klarna_live_api_…WXYZ" in text


def test_descriptions():
    rules.verify_description("checkout service, eu-1: prod; v2.")
    for bad in ("x" * 101, "emoji 🙂", "slash/", None):
        with pytest.raises(InputError):
            rules.verify_description(bad)


def test_enforced_from_rules():
    assert rules.parse_enforced_from("now", now=NOW) == "NOW"
    assert rules.parse_enforced_from("2026-12-02T10:00:00+01:00", now=NOW) == "2026-12-02T09:00:00Z"
    with pytest.raises(InputError, match="in the past"):
        rules.parse_enforced_from("2026-11-01T00:00:00Z", now=NOW)
    with pytest.raises(InputError, match="more than 3 months"):
        rules.parse_enforced_from(rules.format_utc(NOW + timedelta(days=122)), now=NOW)
    with pytest.raises(InputError, match="time zone"):
        rules.parse_enforced_from("2026-12-05T09:00:00", now=NOW)
    with pytest.raises(InputError, match="ISO-8601"):
        rules.parse_enforced_from("next tuesday", now=NOW)
    assert rules.parse_enforced_from(rules.format_utc(NOW + timedelta(days=90)), now=NOW)


@pytest.mark.parametrize(
    "header,expected",
    [
        ("VALID", "VALID"),
        ("VALID, VALID", "VALID"),
        ("not_present", "NOT_PRESENT"),
        ("INVALID,VALID", "INVALID"),
        (None, "UNKNOWN"),
        ("", "UNKNOWN"),
        ("junk", "UNKNOWN"),
    ],
)
def test_verification_header(header, expected):
    assert rules.VerificationStatus.parse(header).value == expected


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_timestamps_out_of_range_are_input_errors(text):
    # Before the fix: OverflowError escaped from astimezone().
    with pytest.raises(InputError):
        rules.parse_timestamp(text)
    with pytest.raises(InputError):
        rules.parse_enforced_from(text, now=NOW)


@pytest.mark.parametrize("value", [None, 1, b"\x00", ["VALID"], b"VALID, VALID"])
def test_verification_status_of_non_text_header(value):
    # Before the fix: AttributeError/TypeError for anything but str.
    expected = rules.VerificationStatus.VALID if value == b"VALID, VALID" else rules.VerificationStatus.UNKNOWN
    assert rules.VerificationStatus.parse(value) is expected
