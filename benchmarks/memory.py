"""Memory: peak RSS of the TUI through a full journey on the sandbox (target <= 120 MB).
`--short` stops at VERIFY."""

from __future__ import annotations

import asyncio
import resource

from _common import SHORT, emit_json, report, start_sandbox, throwaway_home


async def main() -> None:
    from tests_support import SIZE, walk_to

    from screens.app import make_app
    from wizard.core.stages import Stage

    home = throwaway_home()
    last = Stage.VERIFY if SHORT else Stage.DONE  # short: no wait for enforcement to apply
    sb = start_sandbox(home / "sb", delay=0.5)
    app = make_app("memory", sandbox=sb, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, last)
    sb.stop()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report(
        f"Peak RSS through the journey to {last.name} (TUI headless, sandbox in the same process)",
        [
            ("peak RSS", f"{peak_mb:.1f} MB (target <= 120 MB)"),
        ],
    )
    emit_json("memory", {"peak_rss_mb": peak_mb})


if __name__ == "__main__":
    asyncio.run(main())
