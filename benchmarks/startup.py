"""Startup: launch to the first painted wizard screen in a pseudo-terminal, side by side with a
minimal Textual app that shows one label. Prints the medians and the ratio (target <= 1.2x)."""

from __future__ import annotations

import os
import pty
import select
import sys
import time

from _common import emit_json, median, report, throwaway_home

MINIMAL = """
from textual.app import App
from textual.widgets import Label
class One(App):
    def compose(self):
        yield Label("minimal-ready")
One().run()
"""


def time_to_marker(argv: list[str], marker: bytes, timeout: float = 30.0) -> float:
    started = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm-256color"
        os.execvp(argv[0], argv)
    seen = b""
    try:
        while time.perf_counter() - started < timeout:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    break
                if marker in seen:
                    return time.perf_counter() - started
        raise RuntimeError(f"{marker!r} never appeared")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)


def main(runs: int = 7) -> None:
    throwaway_home()
    wizard = [sys.executable, "-m", "wizard.cli", "--profile", "bench-startup"]
    minimal = [sys.executable, "-c", MINIMAL]
    time_to_marker(wizard, b"Set up mTLS")  # warm the file cache for both
    time_to_marker(minimal, b"minimal-ready")
    ours = [time_to_marker(wizard, b"Set up mTLS") for _ in range(runs)]
    floor = [time_to_marker(minimal, b"minimal-ready") for _ in range(runs)]
    ratio = median(ours) / median(floor)
    report("Startup to first painted screen (median of %d, pty)" % runs, [
        ("klarna-mtls wizard", f"{median(ours):.3f} s"),
        ("minimal Textual app", f"{median(floor):.3f} s"),
        ("ratio (target <= 1.2x)", f"{ratio:.2f}x"),
    ])
    emit_json("startup", {"ours_s": median(ours), "minimal_s": median(floor), "ratio": ratio})


if __name__ == "__main__":
    main()
