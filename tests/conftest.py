"""Test isolation: every test gets its own KLARNA_MTLS_HOME and never touches the real home."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from pathlib import Path

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
def sandbox_settings() -> dict:
    """Sandbox settings for every test of a module: a module overrides this fixture (e.g. an
    enforcement that applies at once)."""
    return {}


@pytest.fixture
def sandbox(tmp_path, request, sandbox_settings):
    """The in-process sandbox. Answers like our sandbox ("ours") unless a test asks for Klarna's
    documented fields only: ``@pytest.mark.parametrize("sandbox", ANSWER_MODES, indirect=True)``;
    a parameter ``(mode, settings)`` adds settings (answer options) to the module's."""
    from wizard.sandbox import start_sandbox

    param = getattr(request, "param", "ours")
    answers, settings = param if isinstance(param, tuple) else (param, {})
    sb = start_sandbox(
        tmp_path / "sandbox", answers=answers, **{"enforcement_delay": 0.5, **sandbox_settings, **settings}
    )
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


@pytest.fixture
def run_json(capsys, monkeypatch, sandbox):
    """A CLI command with --json and the sandbox's key in KLARNA_API_KEY: (exit code, its JSON
    object, its progress lines on stderr)."""
    import json

    from wizard.cli import main

    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)

    def go(*argv: str):
        code = main([*argv, "--json"])
        captured = capsys.readouterr()
        lines = captured.out.strip().splitlines()
        return code, (json.loads(lines[-1]) if lines else None), captured.err

    return go


@pytest.fixture
def cli_json(cli, monkeypatch, sandbox):
    """``cli`` with the sandbox's key in KLARNA_API_KEY: (exit code, the last JSON line)."""
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    return cli


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


# ---------------------------------------------------------------- the fast tier
# `python -m pytest -m "not slow"` runs in well under a minute. A test is marked slow by what it
# uses, so a new test lands in the right tier without a list to keep: the names its code refers to
# (comments and strings do not count), followed into the fixtures it requests, the parameters it
# is given and the helpers under tests/ they call, down to the bottom.
TESTS = Path(__file__).resolve().parent
SLOW_NAMES = {
    "start_sandbox": "starts the sandbox (a TLS server)",
    "run_test": "drives the TUI with Pilot",
    "snap_compare": "takes a TUI snapshot",
    "subprocess": "runs a subprocess",
    "Popen": "runs a subprocess",
    "pexpect": "runs a pty",
    "pty": "runs a pty",
    "fork": "forks a process",
    "listen": "listens on a socket",
    "wrap_socket": "runs a TLS server",
    "serve_forever": "runs a server",
}
HYPOTHESIS_DEFAULT_EXAMPLES = 100  # more than this is a fuzzing budget


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        reason = slow_reason(item)
        if reason:
            item.add_marker(pytest.mark.slow(reason=reason))
        if fuzzing_budget(item):
            item.user_properties.append(("examples fuzzed", fuzzing_budget(item)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """The "examples fuzzed" figure counts the fuzz tests that ran and passed in this run."""
    if report.when == "call" and report.passed:
        for name, examples in report.user_properties:
            if name == "examples fuzzed":
                record_figure(name, examples, examples)


def slow_reason(item: pytest.Item) -> str | None:
    """Why ``item`` belongs to the slow tier, or None when nothing it uses is slow."""
    fixtures = getattr(item, "_fixtureinfo", None)
    names = fixtures.name2fixturedefs if fixtures else {}
    used = [getattr(item, "obj", None)]
    used += [definition.func for name in item.fixturenames for definition in names.get(name, ())]
    used += list(getattr(getattr(item, "callspec", None), "params", {}).values())
    seen: set[int] = set()
    for name in [*item.fixturenames, *(n for obj in used for n in _names_used(obj, seen))]:
        if name in SLOW_NAMES:
            return SLOW_NAMES[name]
    if fuzzing_budget(item):
        return f"fuzzes {fuzzing_budget(item)} examples"
    return None


def fuzzing_budget(item: pytest.Item) -> int:
    """The examples a Hypothesis test runs when that is more than Hypothesis's default, else 0."""
    chosen = getattr(getattr(item, "obj", None), "_hypothesis_internal_use_settings", None)
    examples = getattr(chosen, "max_examples", 0)
    return examples if examples > HYPOTHESIS_DEFAULT_EXAMPLES else 0


def _names_used(obj, seen: set[int]) -> Iterator[str]:
    """Every global, attribute and imported name the code of ``obj`` refers to, and, through the
    functions and classes defined under tests/ among them (also held in a dict, list or tuple),
    the names those refer to."""
    if isinstance(obj, (dict, list, tuple)) and id(obj) not in seen:  # a table of helpers (by name)
        seen.add(id(obj))
        for value in obj.values() if isinstance(obj, dict) else obj:
            yield from _names_used(value, seen)
        return
    for wrapper in ("__func__", "fget", "func"):  # a method, a property, a functools.partial
        obj = getattr(obj, wrapper, obj)
    obj = inspect.unwrap(obj) if callable(obj) else obj
    if id(obj) in seen or not (inspect.isfunction(obj) or inspect.isclass(obj)):
        return
    seen.add(id(obj))
    inner = getattr(getattr(obj, "hypothesis", None), "inner_test", None)
    if inner is not None:  # a @given test: its wrapper may be generated code naming nothing
        yield from _names_used(inner, seen)
    if not _defined_in_tests(obj):
        # Hypothesis's own wrappers (a @given test, a state machine's TestCase) hold the test's
        # function or machine class in their closure: follow that, not their code.
        if getattr(obj, "is_hypothesis_test", False):
            for value in _closure_values(obj):
                yield from _names_used(value, seen)
        return
    if inspect.isclass(obj):
        for member in [*vars(obj).values(), *obj.__bases__]:
            yield from _names_used(member, seen)
        return
    for name in _code_names(obj.__code__):
        yield name
        yield from _names_used(obj.__globals__.get(name), seen)
    for value in _closure_values(obj):
        yield from _names_used(value, seen)


def _code_names(code) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if inspect.iscode(const):
            yield from _code_names(const)


def _closure_values(function) -> list:
    cells = getattr(function, "__closure__", None) or ()
    values = []
    for cell in cells:
        with contextlib.suppress(ValueError):  # a cell not filled yet
            values.append(cell.cell_contents)
    return values


def _defined_in_tests(obj) -> bool:
    try:
        return Path(inspect.getfile(obj)).resolve().is_relative_to(TESTS)
    except (TypeError, OSError):
        return False
