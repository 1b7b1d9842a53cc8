"""Private folders and atomic file writes: temp file in the same folder, fsync, rename.

A crash or a full disk leaves the previous file intact."""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
import tempfile
from pathlib import Path

from wizard.core.errors import StorageError, storage_error


def ensure_private_dir(path: Path) -> Path:
    """Make ``path`` a private folder: every missing level is created 0700 whatever the umask.

    A folder that already exists is never chmodded: it must be a real folder (not a symlink) owned
    by this user and not writable by group or others, else a StorageError says how to fix it. The
    folders above must be owned by this user or root and not writable by others (sticky folders
    such as /tmp excepted), so nobody else can swap or plant anything on the way to a key."""
    path = Path(os.path.abspath(path))
    missing: list[Path] = []
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    check_safe_path(probe if missing else path.parent)
    if not missing:
        _check_own_folder(path)
        return path
    for level in reversed(missing):
        try:
            os.mkdir(level, 0o700)
        except FileExistsError:
            _check_own_folder(level)  # another process made it first: judge it like any other
            continue
        except OSError as exc:
            raise _storage_error(level / ".", exc) from exc
        os.chmod(level, 0o700, follow_symlinks=False)  # ours: the umask does not decide
    return path


def ensure_output_dir(folder: Path) -> Path:
    """A folder for a file the user asked for (export, support bundle): created 0700 when missing,
    an existing one is left exactly as it is (a 1777 temp folder stays 1777)."""
    if not os.path.lexists(folder):
        return ensure_private_dir(folder)
    if not folder.is_dir():
        raise StorageError(f"{folder} is not a folder.", hint="Choose a file inside an existing folder.")
    return folder


def check_safe_path(folder: Path) -> None:
    """Refuse a path whose folders another user could change (owner, group/other write, symlinks)."""
    euid = os.geteuid()
    current = Path(folder.anchor)
    for part in Path(os.path.abspath(folder)).parts[1:]:
        current = current / part
        try:
            info = os.lstat(current)
            if stat.S_ISLNK(info.st_mode):
                if info.st_uid not in (0, euid):
                    raise _unsafe(current, "is a symlink owned by another user", f"rm {shlex.quote(str(current))}")
                info = os.stat(current)
        except OSError as exc:
            raise _storage_error(current / ".", exc) from exc
        if info.st_uid not in (0, euid):
            raise _unsafe(current, "is owned by another user", f"chown {euid} {shlex.quote(str(current))}")
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            raise _unsafe(current, "is writable by group or others", f"chmod go-w {shlex.quote(str(current))}")


def _check_own_folder(path: Path) -> None:
    """An existing folder we would write private files into: ours, a real folder, not shared."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise _storage_error(path / ".", exc) from exc
    quoted = shlex.quote(str(path))
    if stat.S_ISLNK(info.st_mode):
        raise _unsafe(
            path,
            "is a symlink; klarna-mtls does not follow links to private folders",
            f"rm {quoted}  (or point klarna-mtls at the real folder)",
        )
    if not stat.S_ISDIR(info.st_mode):
        raise _unsafe(path, "is not a folder", f"mv {quoted} {quoted}.bak")
    if info.st_uid != os.geteuid():
        raise _unsafe(path, "is owned by another user", f"choose another folder, or chown {os.geteuid()} {quoted}")
    if info.st_mode & 0o022:
        raise _unsafe(path, "is writable by group or others", f"chmod go-w {quoted}, or choose another folder")


def _unsafe(path: Path, why: str, fix: str) -> StorageError:
    return StorageError(f"Refusing to use {path}: it {why}.", title="Unsafe folder", hint=f"Run: {fix}")


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
        with contextlib.suppress(OSError):
            os.unlink(tmp)
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
    return storage_error(path, exc)  # one home for the reasons: wizard/core/errors.py
