"""Test isolation: every test gets its own KLARNA_MTLS_HOME and never touches the real home."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "klarna-home"
    monkeypatch.setenv("KLARNA_MTLS_HOME", str(home))
    monkeypatch.delenv("KLARNA_API_KEY", raising=False)
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "xdg" / var.lower()))
    return home


@pytest.fixture
def paths(isolated_home):
    from wizard.core.paths import Paths

    return Paths.from_env()


@pytest.fixture(autouse=True)
def memory_keyring():
    """A fresh in-memory keyring per test: never the user's real keyring."""
    import keyring
    from memory_keyring import MemoryKeyring

    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def sandbox(tmp_path, request):
    """The in-process sandbox. Answers like our sandbox ("ours") unless a test asks for Klarna's
    documented fields only: ``@pytest.mark.parametrize("sandbox", ANSWER_MODES, indirect=True)``."""
    from wizard.sandbox import start_sandbox

    sb = start_sandbox(tmp_path / "sandbox", enforcement_delay=0.5, answers=getattr(request, "param", "ours"))
    yield sb
    sb.stop()


BOTH_ANSWER_MODES = pytest.mark.parametrize("sandbox", ["ours", "docs-only"], indirect=True)


@pytest.fixture
def blackhole():
    """A TCP port that accepts connections and never answers: a black-holed network."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"https://127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.fixture
def onboard(sandbox, monkeypatch, capsys):
    """Onboard a sandbox profile headlessly (to VERIFY done; enforce_at 'NOW' to go all the way)."""
    import json

    from wizard.cli import main

    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)

    def run(profile: str = "p", enforce_at: str = "never", **extra) -> dict:
        argv = [
            "onboard",
            "--profile",
            profile,
            "--non-interactive",
            "--json",
            "--environment",
            "sandbox",
            "--account-id",
            extra.get("account_id", sandbox.account_id),
            "--base-url",
            sandbox.base_url,
            "--ca-bundle",
            str(sandbox.ca_bundle),
            "--enforce-at",
            enforce_at,
            "--poll-interval",
            "0.05",
            "--enforce-wait",
            "20",
        ]
        assert main(argv) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    return run


@pytest.fixture
def cli(capsys):
    """Run a CLI command; returns (exit code, parsed JSON of the last stdout line)."""
    import json

    from wizard.cli import main

    def run(*argv: str):
        code = main([*argv, "--json"])
        out = capsys.readouterr().out.strip().splitlines()
        return code, (json.loads(out[-1]) if out else None)

    return run


# Figures produced by the robustness tests, printed at the end of every run (README cites them).
FIGURES: dict[str, list] = {}


def record_figure(name: str, passed: int, total: int) -> None:
    entry = FIGURES.setdefault(name, [0, 0])
    entry[0] += passed
    entry[1] += total


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.write_sep("-", "robustness figures")
        for name, (passed, total) in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {passed}/{total}")
