"""Polling cost: CPU seconds per minute of the wizard while the Verify screen polls, and while the
Enforce screen watches for enforcement to apply, side by side with an idle Textual app whose timer
fires at the same interval (target: no more CPU than that app). Three processes run the same
window at the same time (so load hits them alike), each headless (Textual's test driver); the
sandbox runs in a fourth process, so its work is not counted. Also: requests sent versus the
schedule, and what the polite back-off saves over Klarna's 5 minutes of enforcement delay.
The window is POLL_WINDOW seconds (default 60; 3 with `--short`)."""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from _common import SHORT, SandboxProcess, emit_json, report, throwaway_home

WINDOW = float(os.environ.get("POLL_WINDOW", 3 if SHORT else 60))
INTERVAL = 2.0


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measured_window(start, kind: str) -> dict:
    """Wait for the parent's go, run ``start()`` and measure CPU for WINDOW seconds. With
    POLL_PROFILE=folder, a CPU-time cProfile of the window is written there as <kind>.prof."""
    print("READY", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    profile = cProfile.Profile(time.process_time) if os.environ.get("POLL_PROFILE") else None
    if profile:
        profile.enable()
    begun, started = cpu(), time.monotonic()
    stop = start()
    await asyncio.sleep(WINDOW)
    elapsed, used = time.monotonic() - started, cpu() - begun
    stop()
    if profile:
        profile.disable()
        profile.dump_stats(Path(os.environ["POLL_PROFILE"]) / f"{kind}.prof")
    return {"cpu_s": used, "elapsed_s": elapsed}


async def idle_worker(_: dict) -> dict:
    from textual.app import App
    from textual.widgets import Footer, Header, Static

    class Idle(App):
        def compose(self):
            yield Header()
            yield Static("waiting", id="progress")
            yield Footer()

    app, ticks = Idle(), {"n": 0}

    def tick() -> None:
        ticks["n"] += 1
        app.query_one("#progress", Static).update(f"Attempt {ticks['n']} · elapsed {ticks['n'] * INTERVAL:g} s")

    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        result = await measured_window(lambda: app.set_interval(INTERVAL, tick).stop, "idle")
    return {**result, "requests": ticks["n"]}


async def wizard_worker(info: dict, stage_name: str) -> dict:
    from tests_support import SIZE, settle_journey, walk_to

    import wizard.core.checks as checks
    import wizard.core.pacing as pacing
    from screens.app import make_app
    from wizard.core.stages import Stage
    from wizard.klarna.client import KlarnaClient

    sent = {"n": 0}
    original = KlarnaClient._call
    polled = "list_certificates" if stage_name == "VERIFY" else "get_enforcement"  # not the PUT that starts it

    async def counting(self, operation, *args, **kwargs):
        sent["n"] += operation == polled
        return await original(self, operation, *args, **kwargs)

    KlarnaClient._call = counting
    stage = Stage[stage_name]
    app = make_app(
        stage_name.lower(),
        sandbox=SimpleNamespace(**info),
        poll_interval=0.05,
        autostart_polling=stage is not Stage.VERIFY,
    )
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, stage)
        await settle_journey(pilot)
        checks.VALID_IN_A_ROW = 10**6  # keep polling for the whole window
        pacing.STEADY_POLLS = 10**6  # the same fixed timer as the idle app: compare cost per poll
        app.services.timing.poll_interval = INTERVAL
        before = {}

        def start():
            before["n"] = sent["n"]
            if stage is Stage.VERIFY:
                app.screen.action_retry()
                return app.screen.action_cancel_poll
            worker = app.screen.run_worker(app.screen.enforce("NOW"), exclusive=True)
            return worker.cancel

        result = await measured_window(start, stage_name)
    return {**result, "requests": sent["n"] - before["n"]}


def worker_main(kind: str, info: dict) -> None:
    result = asyncio.run(idle_worker(info) if kind == "idle" else wizard_worker(info, kind))
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    from wizard.core import pacing

    home = throwaway_home()
    sb = SandboxProcess(home / "sb", delay=10**6)  # enforcement never applies: the watch goes on
    kinds = ("idle", "VERIFY", "ENFORCE")
    workers = {
        k: subprocess.Popen(
            [sys.executable, __file__, "--worker", k, json.dumps(sb.info)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "POLL_WINDOW": str(WINDOW)},  # the same window, --short or not
        )
        for k in kinds
    }
    try:
        for kind, proc in workers.items():  # each walks its journey first; then all start together
            while (line := proc.stdout.readline()) and line.strip() != "READY":
                pass
            assert line, f"the {kind} worker failed before its window"
        server_before = sb.cpu_seconds()
        for proc in workers.values():
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = {}
        for kind, proc in workers.items():
            line = next(line for line in proc.stdout if line.startswith("RESULT "))
            results[kind] = json.loads(line[len("RESULT ") :])
            proc.wait(timeout=120)
        server = sb.cpu_seconds() - server_before
    finally:
        for proc in workers.values():
            proc.kill() if proc.poll() is None else None
        sb.stop()
    per_min = {k: r["cpu_s"] * 60 / r["elapsed_s"] for k, r in results.items()}
    scheduled = int(WINDOW // INTERVAL) + 1
    fixed, paced = int(300 / INTERVAL) + 1, pacing.polls_within(INTERVAL, 300.0)
    report(
        f"Polling for {WINDOW:g} s at one check every {INTERVAL:g} s, side by side (CPU per minute)",
        [
            ("idle Textual app, same timer", f"{per_min['idle']:.3f} s"),
            (
                "Verify polling",
                f"{per_min['VERIFY']:.3f} s = {per_min['VERIFY'] / per_min['idle']:.2f}x of idle (target <= 1x)",
            ),
            (
                "Enforce watch",
                f"{per_min['ENFORCE']:.3f} s = {per_min['ENFORCE'] / per_min['idle']:.2f}x of idle (target <= 1x)",
            ),
            (
                "requests sent (verify, enforce)",
                f"{results['VERIFY']['requests']}, {results['ENFORCE']['requests']}"
                f" of {scheduled} scheduled (never more)",
            ),
            ("sandbox CPU, both clients", f"{server * 60 / WINDOW:.3f} s per minute (not counted above)"),
            ("back-off: 5 min of enforcement", f"{paced} requests instead of {fixed} at a fixed {INTERVAL:g} s"),
        ],
    )
    emit_json(
        "polling",
        {
            "idle_cpu_s_per_min": per_min["idle"],
            "verify_cpu_s_per_min": per_min["VERIFY"],
            "enforce_cpu_s_per_min": per_min["ENFORCE"],
            "verify_ratio": per_min["VERIFY"] / per_min["idle"],
            "enforce_ratio": per_min["ENFORCE"] / per_min["idle"],
            "verify_sent": results["VERIFY"]["requests"],
            "enforce_sent": results["ENFORCE"]["requests"],
            "scheduled": scheduled,
            "paced_5min": paced,
            "fixed_5min": fixed,
        },
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], json.loads(sys.argv[3]))
    else:
        main()
