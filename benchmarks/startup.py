"""Startup: launch to the first painted wizard screen in a pseudo-terminal, side by side with a
minimal Textual app that shows one label (target <= 1.2x); and the first-keypress latency, from
launch until keys typed on the first screen are echoed, side by side with a minimal app that shows
one input. Runs alternate (wizard, minimal, wizard, ...) so load hits both alike.
`python benchmarks/startup.py [RUNS]` (default 7); `--short`: one run."""

from __future__ import annotations

import os
import pty
import select
import sys
import time

from _common import SHORT, emit_json, median, report, throwaway_home

MINIMAL = """
from textual.app import App
from textual.widgets import Label
class One(App):
    def compose(self):
        yield Label("minimal-ready")
One().run()
"""
MINIMAL_INPUT = """
from textual.app import App
from textual.widgets import Input, Label
class One(App):
    def compose(self):
        yield Label("minimal-ready")
        yield Input()
One().run()
"""
TYPED = b"zq"  # appears nowhere on either screen until typed


def time_to_marker(argv: list[str], marker: bytes, keys: bytes = b"", timeout: float = 30.0) -> tuple[float, float]:
    """(seconds to ``marker``, seconds to the echo of ``keys`` typed as soon as the marker shows)."""
    started = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm-256color"
        os.execvp(argv[0], argv)
    seen, painted, typed_at = b"", None, 0
    try:
        while time.perf_counter() - started < timeout:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
            if painted is None and marker in seen:
                painted = time.perf_counter() - started
                if not keys:
                    return painted, painted
                typed_at = len(seen)
                os.write(fd, keys)
            if painted is not None and TYPED in seen[typed_at:]:
                return painted, time.perf_counter() - started
        raise RuntimeError(f"{marker!r} or the typed keys never appeared")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)


def main(runs: int = 7) -> None:
    throwaway_home()
    wizard = [sys.executable, "-m", "wizard.cli", "--profile", "bench-startup"]
    minimal = [sys.executable, "-c", MINIMAL]
    minimal_input = [sys.executable, "-c", MINIMAL_INPUT]
    wizard_keys = TYPED  # a first run opens with the account id focused: typing goes straight in
    time_to_marker(wizard, b"Set up mTLS")  # warm the file cache (and compile) for both
    time_to_marker(minimal, b"minimal-ready")
    paint, floor, keypress, key_floor = [], [], [], []
    for _ in range(runs):
        paint.append(time_to_marker(wizard, b"Set up mTLS")[0])
        floor.append(time_to_marker(minimal, b"minimal-ready")[0])
        keypress.append(time_to_marker(wizard, b"Set up mTLS", wizard_keys)[1])
        key_floor.append(time_to_marker(minimal_input, b"minimal-ready", TYPED)[1])
    ratio, key_ratio = median(paint) / median(floor), median(keypress) / median(key_floor)
    report(
        f"Startup, pty, median of {runs} (interleaved)",
        [
            ("first paint: klarna-mtls wizard", f"{median(paint):.3f} s"),
            ("first paint: one-label Textual app", f"{median(floor):.3f} s"),
            ("ratio (target <= 1.2x)", f"{ratio:.2f}x"),
            ("first keypress echoed: wizard", f"{median(keypress):.3f} s from launch"),
            ("first keypress echoed: one-input app", f"{median(key_floor):.3f} s from launch"),
            ("ratio", f"{key_ratio:.2f}x"),
        ],
    )
    emit_json(
        "startup",
        {
            "ours_s": median(paint),
            "minimal_s": median(floor),
            "ratio": ratio,
            "keypress_s": median(keypress),
            "keypress_minimal_s": median(key_floor),
            "keypress_ratio": key_ratio,
        },
    )


if __name__ == "__main__":
    counts = [int(arg) for arg in sys.argv[1:] if arg.isdigit()]
    main(1 if SHORT else counts[0] if counts else 7)
