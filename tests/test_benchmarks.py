"""No benchmark can rot: each script in benchmarks/ runs its short mode (`--short`, a few seconds,
every figure still printed) in its own process from the repository root, as from a fresh checkout,
and must exit 0. Its figures are not judged here: a short run's figures are rough."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = sorted(path for path in (ROOT / "benchmarks").glob("*.py") if not path.name.startswith("_"))
TOOLS_NEEDED = {"onboarding": ("openssl", "curl")}  # the docs-by-hand side of the comparison


def test_every_benchmark_is_found():
    assert {path.stem for path in BENCHMARKS} >= {"memory", "onboarding", "polling", "scale", "startup"}


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda path: path.stem)
def test_the_short_mode_runs_and_prints_its_figures(script, tmp_path):
    missing = [tool for tool in TOOLS_NEEDED.get(script.stem, ()) if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{script.name} needs {', '.join(missing)}")
    done = subprocess.run(
        [sys.executable, str(script), "--short"],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # its throwaway homes go with the test's folder
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{script.name} --short exited {done.returncode}:\n{done.stderr[-3000:]}"
    assert f'"benchmark": "{script.stem}"' in done.stdout, done.stdout[-3000:]
