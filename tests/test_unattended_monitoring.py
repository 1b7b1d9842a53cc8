"""Monitoring that works unattended (issue 24, item 1): `check --all` and `status --all` from cron,
where KLARNA_API_KEY is not set, each profile read from its own store; a profile that cannot be
opened is reported and the others carry on; a broken installed file is critical, not an error;
the printed cron lines work as printed or say what they need."""

from __future__ import annotations

import json
import shlex

import pytest
from tests_support import onboard_with_store

from wizard.core.env_vars import API_KEY_ENV, STORE_PASSPHRASE_ENV

pytestmark = pytest.mark.e2e


def install_dir(paths, profile: str):
    from pathlib import Path

    journal = json.loads(paths.journal_path(profile).read_text())
    return Path(journal["settings"]["install_dir"])


def installed_cert(paths, profile: str):
    return install_dir(paths, profile) / "current" / "certificate.pem"


@pytest.fixture
def keyring_profiles(sandbox, monkeypatch, capsys):
    """Profiles a and b, each with its API key in the (in-memory) OS keyring; afterwards
    KLARNA_API_KEY is unset, as in cron."""
    monkeypatch.setenv(API_KEY_ENV, sandbox.api_key)
    for name in ("a", "b"):
        onboard_with_store(sandbox, name, "keyring")
    capsys.readouterr()
    monkeypatch.delenv(API_KEY_ENV)
    return sandbox


def test_check_all_and_status_all_read_each_profiles_key_from_its_own_store(keyring_profiles, cli):
    code, out = cli("check", "--all")
    assert code == 0, out
    assert {row["profile"]: row["exit_code"] for row in out["profiles"]} == {"a": 0, "b": 0}
    code, out = cli("status", "--all")
    assert code == 0, out
    assert [row["profile"] for row in out["profiles"]] == ["a", "b"]
    assert all(row["verification"] == "VALID" for row in out["profiles"])


def test_a_profile_that_cannot_be_opened_is_reported_and_the_others_carry_on(
    keyring_profiles, cli, paths, monkeypatch, capsys
):
    sandbox = keyring_profiles
    monkeypatch.setenv(API_KEY_ENV, sandbox.api_key)
    monkeypatch.setenv(STORE_PASSPHRASE_ENV, "store passphrase")
    onboard_with_store(sandbox, "vault", "encrypted-file")
    capsys.readouterr()
    monkeypatch.delenv(API_KEY_ENV)
    monkeypatch.delenv(STORE_PASSPHRASE_ENV)  # cron without the file's passphrase
    paths.journal_path("b").write_text("{ not json")  # a damaged journal
    for command in ("check", "status"):
        code, out = cli(command, "--all")
        assert code == 3, out
        rows = {row["profile"]: row for row in out["profiles"]}
        assert set(rows) == {"a", "b", "vault"}, f"{command} --all stopped at the first bad profile"
        assert "error" not in rows["a"]
        assert STORE_PASSPHRASE_ENV in rows["vault"]["error"]
        assert "journal.json is not valid JSON" in rows["b"]["error"]
    code, out = cli("check", "--all")
    assert {row["profile"]: row["exit_code"] for row in out["profiles"]} == {"a": 0, "b": 3, "vault": 3}


def test_an_unexpected_failure_in_one_profile_does_not_hide_the_others(keyring_profiles, cli, monkeypatch):
    from wizard.services import status

    real = status.gather_status

    async def fails_for_b(session):
        if session.profile == "b":
            raise KeyError("KLARNA_API_KEY")
        return await real(session)

    monkeypatch.setattr(status, "gather_status", fails_for_b)
    code, out = cli("status", "--all")
    assert code == 3
    rows = {row["profile"]: row for row in out["profiles"]}
    assert rows["a"]["verification"] == "VALID"
    assert "Unexpected failure (KeyError)" in rows["b"]["error"] and "klarna-mtls.log" in rows["b"]["error"]


@pytest.mark.parametrize("damage", ["deleted", "corrupted"])
def test_a_broken_installed_certificate_is_critical_not_an_error(keyring_profiles, cli, paths, damage):
    cert = installed_cert(paths, "b").resolve()
    if damage == "deleted":
        cert.unlink()
    else:
        cert.write_text("garbage\n")
    for command in ("check", "status"):
        code, out = cli(command, "--all")
        assert code == 2, (command, out)
        rows = {row["profile"]: row for row in out["profiles"]}
        assert str(cert) in rows["b"]["error"], rows["b"]
        assert "klarna-mtls repair --profile b" in rows["b"]["error"]
        assert "unenforce" not in rows["b"]["error"]
    code, out = cli("check", "--all")
    assert {row["profile"]: row["exit_code"] for row in out["profiles"]} == {"a": 0, "b": 2}


# ---------------------------------------------------------------- the cron lines
def run_as_cron(line: str, monkeypatch) -> int:
    """Run a crontab entry's command the way cron would, in this process: the five schedule
    fields dropped, VAR=value prefixes set, the program's own arguments given to main."""
    from wizard.cli import main

    words = shlex.split(line)[5:]
    while "=" in words[0] and not words[0].startswith("-"):
        name, _, value = words.pop(0).partition("=")
        monkeypatch.setenv(name, value)
    assert words[0].endswith("klarna-mtls"), words
    return main(words[1:])


def advice_for(profile: str):
    from wizard.core.paths import Paths
    from wizard.services.renewal import cron_advice
    from wizard.services.session import Session

    return cron_advice(Session(Paths.from_env(), profile))


def test_the_printed_cron_lines_work_as_printed(keyring_profiles, monkeypatch, capsys):
    advice = advice_for("a")
    assert ["check" in advice.lines[0], "renew" in advice.lines[1]] == [True, True]
    for line in advice.lines:
        assert "--profile a" in line
        assert run_as_cron(line, monkeypatch) == 0, capsys.readouterr()
    assert any("keyring" in need for need in advice.needs)  # cron must reach the keyring


def test_the_cron_line_of_an_encrypted_file_profile_says_what_it_needs(sandbox, monkeypatch, capsys):
    monkeypatch.setenv(API_KEY_ENV, sandbox.api_key)
    monkeypatch.setenv(STORE_PASSPHRASE_ENV, "store passphrase")
    onboard_with_store(sandbox, "vault", "encrypted-file")
    monkeypatch.delenv(API_KEY_ENV)
    monkeypatch.delenv(STORE_PASSPHRASE_ENV)
    capsys.readouterr()
    advice = advice_for("vault")
    assert any(STORE_PASSPHRASE_ENV in need for need in advice.needs), advice
    assert advice.text().splitlines()[0].startswith("# needs: ")  # still a valid crontab
    check = advice.lines[0]
    assert run_as_cron(check, monkeypatch) == 3  # as the advice says: without it, it cannot work
    assert STORE_PASSPHRASE_ENV in capsys.readouterr().err
    monkeypatch.setenv(STORE_PASSPHRASE_ENV, "store passphrase")
    assert run_as_cron(check, monkeypatch) == 0


def test_the_cron_lines_name_a_moved_home_and_the_full_program_path(keyring_profiles, isolated_home):
    import shutil

    advice = advice_for("a")
    for line in advice.lines:
        words = shlex.split(line)
        assert f"KLARNA_MTLS_HOME={isolated_home}" in words  # cron would not know this run's folders
        assert shutil.which("klarna-mtls") in words  # cron's PATH is short


def test_the_cron_lines_name_the_program_by_its_path_when_it_is_not_on_path(keyring_profiles, monkeypatch):
    """Run as /opt/venv/bin/klarna-mtls without the venv on PATH (as the README's walk-through does),
    the cron lines said a bare `klarna-mtls`, which cron cannot find."""
    import os
    import sys
    from pathlib import Path

    monkeypatch.setenv("PATH", "/nonexistent")
    program = Path(sys.executable).parent / "klarna-mtls"
    assert program.exists()  # the console script beside this interpreter, as pip installs it
    for line in advice_for("a").lines:
        assert os.fspath(program) in shlex.split(line), line
