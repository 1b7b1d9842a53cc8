"""Shared bits for the benchmark scripts: imports from the checkout, the short mode, a throwaway
home, an in-process sandbox, timing."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `python benchmarks/<name>.py` from a fresh checkout: the project and the tests' shared helpers
# (tests/tests_support.py) import from the checkout, installed or not.
for _folder in (ROOT / "tests", ROOT):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

# `--short`: a run of a few seconds that still prints every figure (tests/test_benchmarks.py runs
# each benchmark this way, so none can rot); the figures of a short run are rough.
SHORT = "--short" in sys.argv[1:]


def throwaway_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="klarna-mtls-bench-"))
    os.environ["KLARNA_MTLS_HOME"] = str(home / "home")
    bytecode_as_installed(home)
    return home


def bytecode_as_installed(home: Path) -> None:
    """Child processes keep compiled bytecode (in a throwaway folder), as after `pip install`,
    which compiles .pyc files. Machines that set PYTHONDONTWRITEBYTECODE would otherwise charge
    every launch of an editable checkout a compile of its own modules (about 0.1 s here) that no
    installed copy pays, while the libraries it is compared with come precompiled."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(home / "pycache")


def start_sandbox(folder: Path, delay: float = 300.0):
    from wizard.sandbox import start_sandbox as start

    return start(folder, enforcement_delay=delay)


class SandboxProcess:
    """`klarna-mtls sandbox serve --json` in its own process, so a client's figures exclude it."""

    def __init__(self, folder: Path, delay: float = 300.0) -> None:
        argv = [
            sys.executable,
            "-m",
            "wizard.cli",
            "sandbox",
            "serve",
            "--json",
            "--state-dir",
            str(folder),
            "--enforcement-delay",
            str(delay),
        ]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        info = json.loads(self.process.stdout.readline())
        self.base_url, self.api_key, self.account_id = info["base_url"], info["api_key"], info["account_id"]
        self.ca_bundle = Path(info["ca_bundle"])
        self.enforcement_delay = delay
        self.info = {k: info[k] for k in ("base_url", "api_key", "account_id", "ca_bundle")} | {
            "enforcement_delay": delay
        }

    def cpu_seconds(self) -> float:
        """User + system CPU the sandbox process has used so far (from /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def run_measured(argv: list[str], env: dict | None = None) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds of the child, exit code, stdout) of one whole process."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, env=env or os.environ.copy())
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return wall, usage.ru_utime + usage.ru_stime, child.returncode, out.read()


def run(argv: list[str], env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env or os.environ.copy(), timeout=600)
    return time.perf_counter() - started, done


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n{title}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value}")


def onboard_argv(sb, profile: str, enforce_at: str = "never") -> list[str]:
    from tests_support import sandbox_profile_args

    return [
        sys.executable, "-m", "wizard.cli", "onboard", "--profile", profile, "--non-interactive", "--json",
        *sandbox_profile_args(sb), "--enforce-at", enforce_at, "--poll-interval", "0.05",
    ]  # fmt: skip


def emit_json(name: str, figures: dict) -> None:
    print("JSON " + json.dumps({"benchmark": name, **figures}))
