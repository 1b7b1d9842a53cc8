"""Scale: `status --all` across 50 profiles against the sandbox, versus one profile (target <= 2x)."""

from __future__ import annotations

import os
import shutil
import sys

from _common import emit_json, median, onboard_argv, report, run, start_sandbox, throwaway_home

PROFILES = 50


def main(runs: int = 3) -> None:
    home = throwaway_home()
    sb = start_sandbox(home / "sb")
    env = {**os.environ, "KLARNA_API_KEY": sb.api_key}
    try:
        seconds, done = run(onboard_argv(sb, "p0"), env)
        assert done.returncode == 0, done.stderr
        state = home / "home" / "state" / "profiles"
        for i in range(1, PROFILES):  # same account and installed pair, 50 journals
            shutil.copytree(state / "p0", state / f"p{i}")
        status = [sys.executable, "-m", "wizard.cli", "status"]
        one = [run(status + ["--profile", "p0", "--json"], env)[0] for _ in range(runs)]
        every = []
        for _ in range(runs):
            seconds, done = run(status + ["--all", "--json"], env)
            assert done.returncode == 0, done.stdout[-500:] + done.stderr[-500:]
            every.append(seconds)
    finally:
        sb.stop()
    ratio = median(every) / median(one)
    report(f"status --all across {PROFILES} profiles (median of {runs})", [
        ("one profile", f"{median(one):.3f} s"),
        (f"{PROFILES} profiles", f"{median(every):.3f} s"),
        ("ratio (target <= 2x)", f"{ratio:.2f}x"),
    ])
    emit_json("scale", {"one_s": median(one), "all_s": median(every), "ratio": ratio})


if __name__ == "__main__":
    main()
