"""One writer per profile: an exclusive ``flock`` on a lock file in the profile's state folder.

Every command and TUI session that writes a profile holds ``profile_lock`` for as long as it runs;
a second writer waits a few seconds (``KLARNA_MTLS_LOCK_WAIT``, default 5) and then refuses,
saying who holds the lock (pid, command, since). Readers take ``try_profile_lock``: when another
process holds the profile they run read-only and never write its journal. The kernel releases a
lock when its holder dies (kill -9 included), so a stale lock file never blocks anyone.

``file_lock`` is the same mechanism for one shared file (the encrypted secrets file)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from wizard.core import rules
from wizard.core.env_vars import LOCK_WAIT_ENV
from wizard.core.errors import WizardError
from wizard.core.fsutil import ensure_private_dir
from wizard.core.paths import Paths

DEFAULT_WAIT = 5.0
LOCK_NAME = ".lock"
_POLL = 0.05

# Lock files this process holds, by absolute path: a flock is per open file, so the same process
# asking again (Journal.save checking, a nested command) must not be refused by itself.
_held: dict[str, int] = {}


class ProfileBusy(WizardError):
    """Another process is writing this profile (or the secrets file) right now."""

    title = "Profile in use"


def lock_wait() -> float:
    """Seconds a second writer waits before refusing (``KLARNA_MTLS_LOCK_WAIT``)."""
    raw = os.environ.get(LOCK_WAIT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_WAIT
    except ValueError:
        return DEFAULT_WAIT
    return value if 0 <= value < float("inf") else DEFAULT_WAIT


def lock_path(paths: Paths, profile: str) -> Path:
    return paths.profile_state_dir(profile) / LOCK_NAME


@contextlib.contextmanager
def profile_lock(paths: Paths, profile: str, command: str, *, wait: float | None = None) -> Iterator[None]:
    """Hold the profile for writing; refuses with ProfileBusy after ``wait`` seconds."""
    with file_lock(lock_path(paths, profile), command, wait=wait, what=f"Profile '{profile}'"):
        yield


@contextlib.contextmanager
def try_profile_lock(paths: Paths, profile: str, command: str) -> Iterator[bool]:
    """For readers: True while this process holds the profile, False when another one does
    (the caller then must not save). A profile with no state folder yet needs no lock."""
    if not paths.profile_state_dir(profile).is_dir():
        yield True
        return
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(file_lock(lock_path(paths, profile), command, wait=0.0, what=f"Profile '{profile}'"))
    except ProfileBusy:
        yield False
        return
    with stack:
        yield True


def held_elsewhere(paths: Paths, profile: str) -> str | None:
    """Who holds the profile, when another process does (None if free or held by us)."""
    path = lock_path(paths, profile)
    if str(path) in _held or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd)
    finally:
        os.close(fd)
    return None


@contextlib.contextmanager
def file_lock(path: Path, command: str, *, wait: float | None = None, what: str | None = None) -> Iterator[None]:
    """An exclusive flock on ``path`` (created 0600 in a private folder), re-entrant in-process."""
    key = str(path)
    if key in _held:
        yield
        return
    ensure_private_dir(path.parent)
    fd = _open_lock_file(path)
    try:
        _acquire(fd, wait if wait is not None else lock_wait(), what or str(path))
        _held[key] = fd
        _write_holder(fd, command)
        try:
            yield
        finally:
            del _held[key]
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing releases the flock


def _open_lock_file(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        from wizard.core.fsutil import _storage_error

        raise _storage_error(path, exc) from exc


def _acquire(fd: int, wait: float, what: str) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise ProfileBusy(
                    f"{what} is in use by {_holder(fd)}.",
                    hint=f"Wait for it to finish and try again (waited {wait:g} s; {LOCK_WAIT_ENV} sets how long).",
                ) from None
            time.sleep(_POLL)


def _write_holder(fd: int, command: str) -> None:
    record = {"pid": os.getpid(), "command": command[:60], "since": rules.format_utc(rules.utc_now())}
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)


def _holder(fd: int) -> str:
    """'pid 123 (klarna-mtls rotate) since 2026-…' from the lock file, as far as it can be read."""
    try:
        raw = os.pread(fd, 4096, 0)
        record = json.loads(raw) if raw else {}
    except (OSError, ValueError):
        record = {}
    if not isinstance(record, dict) or "pid" not in record:
        return "another process"
    pid, command, since = record.get("pid"), record.get("command"), record.get("since")
    return f"pid {pid} ({rules.clean_text(str(command))}) since {since}" if command else f"pid {pid}"
