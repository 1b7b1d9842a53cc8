"""Private folders and atomic file writes: temp file in the same folder, fsync, rename.

A crash or a full disk leaves the previous file intact."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import StorageError, storage_error


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make sure the leaf is mode 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically with ``mode``; the folder must exist."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # before any byte lands, whatever the umask
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise _storage_error(path, exc) from exc
    fsync_dir(path.parent)


def write_private(path: Path, data: bytes) -> None:
    """Atomically write a 0600 file inside a 0700 folder."""
    ensure_private_dir(path.parent)
    atomic_write(path, data, 0o600)


def append_line(path: Path, line: str, mode: int = 0o600) -> None:
    """Append one line (O_APPEND, fsync) to a log that is only ever appended to."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
        try:
            os.write(fd, (line.rstrip("\n") + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _storage_error(path, exc) from exc


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def fsync_dir(folder: Path) -> None:
    """fsync a folder so a rename or a new symlink in it survives a power cut."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _storage_error(path: Path, exc: OSError) -> StorageError:
    return storage_error(path, exc)  # one home for the reasons: wizard/errors.py
