"""Shared bits for the benchmark scripts: a throwaway home, an in-process sandbox, timing."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def throwaway_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="klarna-mtls-bench-"))
    os.environ["KLARNA_MTLS_HOME"] = str(home / "home")
    return home


def start_sandbox(folder: Path, delay: float = 300.0):
    from wizard.sandbox import start_sandbox as start

    return start(folder, enforcement_delay=delay)


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
    return [sys.executable, "-m", "wizard.cli", "onboard", "--profile", profile, "--non-interactive", "--json",
            "--environment", "sandbox", "--account-id", sb.account_id, "--base-url", sb.base_url,
            "--ca-bundle", str(sb.ca_bundle), "--enforce-at", enforce_at, "--poll-interval", "0.05"]


def emit_json(name: str, figures: dict) -> None:
    print("JSON " + json.dumps({"benchmark": name, **figures}))
