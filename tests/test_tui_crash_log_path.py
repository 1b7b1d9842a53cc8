"""The crash message names the log on one line, whatever its length: a hard-wrapped path cannot be
copied from the terminal (and broke test_tui_crash.py whenever the temporary folder was long)."""

from __future__ import annotations

import subprocess
import sys

from test_tui_crash import ROOT, SCRIPT


def test_a_long_log_path_is_printed_whole(tmp_path, monkeypatch):
    home = tmp_path.joinpath(*["a-rather-long-folder-name-for-the-state"] * 4)
    monkeypatch.setenv("KLARNA_MTLS_HOME", str(home))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, cwd=ROOT, stdin=subprocess.DEVNULL
    )
    output = done.stdout + done.stderr
    log = str(home / "state" / "klarna-mtls.log")
    assert len(log) > 120 and "boom on purpose" in output, output
    assert any(line.strip() == log for line in output.splitlines()), output  # on a line of its own, whole
