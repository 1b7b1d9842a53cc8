"""Memory: peak RSS of the TUI through a full journey on the sandbox (target <= 120 MB)."""

from __future__ import annotations

import asyncio
import resource
import sys
from pathlib import Path

from _common import emit_json, report, start_sandbox, throwaway_home


async def main() -> None:
    home = throwaway_home()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from test_tui_journey import walk_to

    from screens.app import make_app
    from wizard.core.stages import Stage

    sb = start_sandbox(home / "sb", delay=0.5)
    app = make_app("memory", sandbox=sb, poll_interval=0.05)
    async with app.run_test(size=(100, 40)) as pilot:
        await walk_to(app, pilot, Stage.DONE)
    sb.stop()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report(
        "Peak RSS through the whole journey (TUI headless, sandbox in the same process)",
        [
            ("peak RSS", f"{peak_mb:.1f} MB (target <= 120 MB)"),
        ],
    )
    emit_json("memory", {"peak_rss_mb": peak_mb})


if __name__ == "__main__":
    asyncio.run(main())
