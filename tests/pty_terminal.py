"""A program on a real pseudo-terminal of a fixed size, and the screen it draws, read back as text:
enough of a VT100/xterm to follow what Textual writes (cursor moves, erases, text; colours and
modes are ignored). For end-to-end tests that press keys as a person would, with no test hook
inside the program.

The terminal answers that it supports synchronized output (DEC mode 2026), so Textual brackets
each frame, and the text read back is the last whole frame: a read that ends mid-frame (a busy
machine) never shows half of one update beside what the other half replaces."""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Sequence

KEYS = {
    "enter": "\r",
    "tab": "\t",
    "escape": "\x1b",
    "f5": "\x1b[15~",
    "ctrl+q": "\x11",
    "ctrl+n": "\x0e",
}
CSI = re.compile(r"\x1b\[([0-9;?<>=!$ ]*)([@A-Za-z~])")
OSC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
OTHER_ESCAPE = re.compile(r"\x1b[()#][0-9A-Za-z]|\x1b[=>78DEHMNOPZc\\]")


class Screen:
    """The cells of a ``rows`` x ``columns`` terminal, written as a terminal would."""

    def __init__(self, rows: int, columns: int) -> None:
        self.rows, self.columns = rows, columns
        self.cells = [[" "] * columns for _ in range(rows)]
        self.row = self.column = 0
        self.saved = (0, 0)
        self.pending = ""  # an escape sequence cut by a read
        self.answers: list[str] = []  # what the terminal says back to the program
        self.synchronized = False  # the program brackets its frames
        self.frame = ""  # the last whole frame, once it does

    def text(self) -> str:
        return self.frame if self.synchronized else self.drawn()

    def drawn(self) -> str:
        return "\n".join("".join(line).rstrip() for line in self.cells)

    def feed(self, data: str) -> None:
        data, self.pending = self.pending + data, ""
        i = 0
        while i < len(data):
            char = data[i]
            if char == "\x1b":
                match = CSI.match(data, i) or OSC.match(data, i) or OTHER_ESCAPE.match(data, i)
                if match is None:
                    if len(data) - i < 64:  # incomplete: wait for the rest
                        self.pending = data[i:]
                        return
                    i += 1
                    continue
                if match.re is CSI:
                    self.control(match.group(1), match.group(2))
                elif match.group(0) in ("\x1b7", "\x1b8"):
                    self.save_or_restore(match.group(0)[1])
                i = match.end()
                continue
            self.put(char)
            i += 1

    def put(self, char: str) -> None:
        if char == "\r":
            self.column = 0
        elif char == "\n":
            self.row = min(self.rows - 1, self.row + 1)
        elif char == "\b":
            self.column = max(0, self.column - 1)
        elif char >= " ":
            if self.column >= self.columns:  # the pending wrap of a full line
                self.column, self.row = 0, min(self.rows - 1, self.row + 1)
            self.cells[self.row][self.column] = char
            self.column += 1

    def save_or_restore(self, which: str) -> None:
        if which == "7":
            self.saved = (self.row, self.column)
        else:
            self.row, self.column = self.saved

    def control(self, params: str, final: str) -> None:
        if params == "?2026$" and final == "p":  # does the terminal synchronize output? yes
            self.answers.append("\x1b[?2026;2$y")
        elif params == "?2026" and final in "hl":  # a frame begins (h) or is whole (l)
            self.synchronized = True
            if final == "l":
                self.frame = self.drawn()
        if params.startswith(("?", ">", "<", "=")) or "$" in params or " " in params:
            return  # modes, queries and reports: nothing drawn
        numbers = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else []
        first = numbers[0] if numbers else 0
        if final in "Hf":
            row, column = (numbers + [1, 1])[:2]
            self.row = min(self.rows - 1, max(1, row or 1) - 1)
            self.column = min(self.columns - 1, max(1, column or 1) - 1)
        elif final in "ABCD":
            step = first or 1
            if final == "A":
                self.row = max(0, self.row - step)
            elif final == "B":
                self.row = min(self.rows - 1, self.row + step)
            elif final == "C":
                self.column = min(self.columns - 1, self.column + step)
            else:
                self.column = max(0, self.column - step)
        elif final == "G":
            self.column = min(self.columns - 1, max(1, first or 1) - 1)
        elif final == "d":
            self.row = min(self.rows - 1, max(1, first or 1) - 1)
        elif final == "K":
            self.erase_line(first)
        elif final == "J":
            self.erase_screen(first)
        elif final == "X":
            for column in range(self.column, min(self.columns, self.column + (first or 1))):
                self.cells[self.row][column] = " "

    def erase_line(self, mode: int) -> None:
        line = self.cells[self.row]
        span = {0: range(self.column, self.columns), 1: range(0, self.column + 1)}.get(mode, range(self.columns))
        for column in span:
            if column < self.columns:
                line[column] = " "

    def erase_screen(self, mode: int) -> None:
        rows = {0: range(self.row + 1, self.rows), 1: range(0, self.row)}.get(mode, range(self.rows))
        for row in rows:
            self.cells[row] = [" "] * self.columns
        if mode in (0, 1):
            self.erase_line(mode)


class Terminal:
    """``argv`` running on a pseudo-terminal of ``rows`` x ``columns``."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str], cwd: str, rows: int = 24, columns: int = 80):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.process = subprocess.Popen(
            list(argv), stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, start_new_session=True
        )
        os.close(slave)
        self.master = master
        self.screen = Screen(rows, columns)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.transcript: list[str] = []  # everything written, as text (the exit summary is read from it)

    def read(self, timeout: float = 0.1) -> bool:
        """Take what the program wrote within ``timeout``; False when nothing came."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the program ended and the pty closed
            return False
        if not data:
            return False
        text = self.decoder.decode(data)
        self.transcript.append(text)
        self.screen.feed(text)
        while self.screen.answers:
            os.write(self.master, self.screen.answers.pop(0).encode())
        return True

    def text(self) -> str:
        return self.screen.text()

    def press(self, *keys: str) -> None:
        for key in keys:
            os.write(self.master, KEYS.get(key, key).encode())
            self.read(0.05)

    def settle(self, quiet: float = 0.5, limit: float = 10.0) -> None:
        """Read until the program has written nothing for ``quiet`` seconds (pacing, not a test)."""
        deadline = time.monotonic() + limit
        while self.read(quiet) and time.monotonic() < deadline:
            pass

    def wait_for(self, condition: Callable[[str], bool], what: str, limit: float = 120.0) -> str:
        """Read until the screen satisfies ``condition``. ``limit`` only ends a hung program: it
        is far above what a busy machine needs, and no assertion is about time."""
        deadline = time.monotonic() + limit
        while True:
            text = self.text()
            if condition(text):
                return text
            if self.process.poll() is not None and not self.read(0.2):
                raise AssertionError(f"the program ended waiting for {what}:\n{text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {what}:\n{text}")
            self.read(0.2)

    def wait_for_text(self, needle: str, limit: float = 120.0) -> str:
        return self.wait_for(lambda text: needle in text, repr(needle), limit)

    def finish(self, limit: float = 60.0) -> int:
        """Wait for the program to end (reading all it writes); its exit code."""
        deadline = time.monotonic() + limit
        while self.process.poll() is None and time.monotonic() < deadline:
            self.read(0.2)
        while self.read(0.2):
            pass
        return self.process.wait(timeout=5)

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        os.close(self.master)
