"""`check --all` and `status --all` read each profile's key from its own store when KLARNA_API_KEY is unset."""

from __future__ import annotations

from tests_support import sandbox_profile_args


def test_check_all_reads_each_profiles_key_from_its_store_when_klarna_api_key_is_unset(sandbox, cli, monkeypatch):
    """Reproduction: `check --all` and `status --all` with no KLARNA_API_KEY crashed with a
    KeyError instead of reading each profile's key from its own store."""
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    code, out = cli(
        "onboard",
        "--profile",
        "p",
        *sandbox_profile_args(sandbox),
        "--secret-store",
        "keyring",
        "--poll-interval",
        "0.05",
    )
    assert code == 0, out
    monkeypatch.delenv("KLARNA_API_KEY")
    code, checked = cli("check", "--all")
    assert code == 0, checked
    code, listed = cli("status", "--all")
    assert code == 0, listed
