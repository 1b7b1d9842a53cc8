"""Polling cost: CPU seconds per minute while the Verify screen polls, and requests sent versus the
schedule. The TUI runs headless (Textual's test driver) against the in-process sandbox."""

from __future__ import annotations

import asyncio
import resource
import sys
import time

from _common import emit_json, report, start_sandbox, throwaway_home

WINDOW = 30.0
INTERVAL = 2.0


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main() -> None:
    home = throwaway_home()
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "tests"))
    import wizard.model as model
    from screens.app import make_app
    from test_tui_journey import settle, walk_to
    from wizard.model import Stage
    from wizard.sandbox import server

    sb = start_sandbox(home / "sb")
    served = {"n": 0}
    original = server.SandboxHandler._dispatch

    def counting(self):
        served["n"] += 1
        return original(self)

    server.SandboxHandler._dispatch = counting
    app = make_app("poll", sandbox=sb, poll_interval=INTERVAL, autostart_polling=False)
    async with app.run_test(size=(100, 40)) as pilot:
        await walk_to(app, pilot, Stage.VERIFY)
        model.VALID_IN_A_ROW = 10**6  # keep polling for the whole window
        await settle(app, pilot)
        start_requests, start_cpu, started = served["n"], cpu(), time.monotonic()
        app.screen.action_retry()
        await asyncio.sleep(WINDOW)
        elapsed = time.monotonic() - started
        used, sent = cpu() - start_cpu, served["n"] - start_requests
        app.screen.action_cancel_poll()
    sb.stop()
    scheduled = int(elapsed // INTERVAL) + 1
    report(f"Verify polling for {elapsed:.0f} s at one check every {INTERVAL:g} s", [
        ("CPU per minute", f"{used * 60 / elapsed:.2f} s (target: near zero)"),
        ("requests sent", f"{sent}"),
        ("requests scheduled", f"{scheduled} (target: never more than scheduled)"),
    ])
    emit_json("polling", {"cpu_s_per_min": used * 60 / elapsed, "sent": sent, "scheduled": scheduled})


if __name__ == "__main__":
    asyncio.run(main())
