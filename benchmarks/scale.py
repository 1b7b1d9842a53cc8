"""Scale: `status --all` across 50 and 500 profiles versus `status` of one (target <= 2x at 50),
with the sandbox in its own process so the client's CPU per profile is measured apart from the
server's. Runs are interleaved (1, 50, 500, 1, 50, 500, ...) so load hits every size alike.
`--short`: one run of 5 and 20 profiles."""

from __future__ import annotations

import os
import shutil
import sys

from _common import SHORT, SandboxProcess, emit_json, median, onboard_argv, report, run, run_measured, throwaway_home

SIZES = (5, 20) if SHORT else (50, 500)


def make_homes(home, sb) -> dict[int, dict]:
    """One home per fleet size, every profile a copy of one onboarded profile (same account and
    installed pair: the case of one agency checking many merchants is the same work per profile)."""
    env = {**os.environ, "KLARNA_API_KEY": sb.api_key, "KLARNA_MTLS_HOME": str(home / "h1")}
    seconds, done = run(onboard_argv(sb, "p0"), env)
    assert done.returncode == 0, done.stderr
    homes = {1: env}
    source = home / "h1" / "state" / "profiles" / "p0"
    for size in SIZES:
        root = home / f"h{size}"
        shutil.copytree(home / "h1", root)
        for i in range(1, size):
            shutil.copytree(source, root / "state" / "profiles" / f"p{i}")
        homes[size] = {**env, "KLARNA_MTLS_HOME": str(root)}
    return homes


def main(runs: int = 3) -> None:
    home = throwaway_home()
    sb = SandboxProcess(home / "sb")
    status = [sys.executable, "-m", "wizard.cli", "status"]
    wall: dict[int, list[float]] = {n: [] for n in (1, *SIZES)}
    cpu: dict[int, list[float]] = {n: [] for n in (1, *SIZES)}
    server: dict[int, list[float]] = {n: [] for n in (1, *SIZES)}
    try:
        homes = make_homes(home, sb)
        for _ in range(runs):
            for size in (1, *SIZES):
                argv = status + (["--profile", "p0", "--json"] if size == 1 else ["--all", "--json"])
                before = sb.cpu_seconds()
                seconds, used, code, out = run_measured(argv, homes[size])
                assert code == 0, out[-500:]
                wall[size].append(seconds)
                cpu[size].append(used)
                server[size].append(sb.cpu_seconds() - before)
    finally:
        sb.stop()
    one = median(wall[1])
    rows = [
        ("one profile", f"{one:.3f} s wall, client CPU {median(cpu[1]):.3f} s, sandbox CPU {median(server[1]):.3f} s")
    ]
    figures = {"one_s": one, "one_cpu_s": median(cpu[1])}
    for size in SIZES:
        per_profile = (median(cpu[size]) - median(cpu[1])) / (size - 1)
        rows += [
            (
                f"{size} profiles",
                f"{median(wall[size]):.3f} s wall = {median(wall[size]) / one:.2f}x of one"
                + (" (target <= 2x)" if size == 50 else ""),
            ),
            ("  client CPU", f"{median(cpu[size]):.3f} s; per extra profile {per_profile * 1000:.1f} ms"),
            ("  sandbox CPU", f"{median(server[size]):.3f} s; per profile {median(server[size]) / size * 1000:.1f} ms"),
        ]
        figures.update(
            {
                f"all{size}_s": median(wall[size]),
                f"ratio{size}": median(wall[size]) / one,
                f"client_cpu_ms_per_profile{size}": per_profile * 1000,
                f"sandbox_cpu_ms_per_profile{size}": median(server[size]) / size * 1000,
            }
        )
    report(f"status --all, sandbox in its own process (median of {runs}, interleaved)", rows)
    emit_json("scale", figures)


if __name__ == "__main__":
    main(runs=1 if SHORT else 3)
