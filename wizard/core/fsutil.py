"""Private folders, atomic file writes (temp file in the same folder, fsync, rename), the outputs a
user names (``write_output``) and the files that decide trust (``check_trusted_file``).

A crash or a full disk leaves the previous file intact."""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from wizard.core.errors import InputError, StorageError, storage_error


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
    """A folder for a file the user asked for (export, support bundle): created 0700 when missing.
    An existing one is left exactly as it is (a 1777 temp folder stays 1777), but it and every folder
    above it must be ones no other user can change (check_safe_path): a link another user planted
    as the folder, or a folder others may write (sticky ones excepted), is refused."""
    if not os.path.lexists(folder):
        return ensure_private_dir(folder)
    check_safe_path(folder)
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


def _unsafe(path: Path, why: str, fix: str, title: str = "Unsafe folder") -> StorageError:
    return StorageError(f"Refusing to use {path}: it {why}.", title=title, hint=f"Run: {fix}")


def check_trusted_file(path: Path) -> Path:
    """A file whose content decides trust (a CA set chosen with --trust-ca), checked on every use:
    a regular file owned by this user or root, not writable by group or others, reached through
    folders (and links) no other user can change. Else a StorageError says what to fix."""
    path = Path(os.path.abspath(Path(path).expanduser()))
    check_safe_path(path.parent)
    real = Path(os.path.realpath(path))
    if real != path:  # a link (e.g. into /etc/ssl): judge the link, then where it leads
        _check_link_owner(path)
        check_safe_path(real.parent)
    try:
        info = os.stat(real)
    except OSError as exc:
        raise storage_error(path, exc, "read") from exc
    quoted, title = shlex.quote(str(real)), "Unsafe trusted CA file"
    if not stat.S_ISREG(info.st_mode):
        raise _unsafe(real, "is not a regular file", f"point klarna-mtls at the PEM file itself ({quoted})", title)
    if info.st_uid not in (0, os.geteuid()):
        fix = f"cp {quoted} into a folder of yours, then onboard --trust-ca <that copy>"
        raise _unsafe(real, "is owned by another user, who could change whom this profile trusts", fix, title)
    if info.st_mode & 0o022:
        raise _unsafe(real, "is writable by group or others", f"chmod go-w {quoted}", title)
    return real


def _check_link_owner(path: Path) -> None:
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise storage_error(path, exc, "read") from exc
    if stat.S_ISLNK(info.st_mode) and info.st_uid not in (0, os.geteuid()):
        raise _unsafe(path, "is a symlink owned by another user", f"rm {shlex.quote(str(path))}", "Unsafe link")


# ---------------------------------------------------------------- outputs the user names
def check_output_path(path: Path, keep_out: Iterable[Path]) -> Path:
    """The absolute path of an output the user named, refused (InputError, nothing written) when
    it resolves into one of ``keep_out``: the folders the tool keeps (journal, audit log, keys,
    installed pairs and their ``current`` link). The folder's links are resolved before comparing;
    the file's own name is never followed (write_output refuses a link)."""
    path = Path(os.path.abspath(Path(path).expanduser()))
    if path.name in ("", ".", ".."):
        raise InputError(f"{path} does not name a file.", hint="Give a file name, e.g. ./bundle.pem.")
    resolved = Path(os.path.realpath(path.parent)) / path.name
    for folder in keep_out:
        kept = Path(os.path.realpath(folder))
        if resolved == kept or kept in resolved.parents:
            raise InputError(
                f"Refusing to write {path}: it is inside {kept}, which holds what klarna-mtls keeps "
                "(its journal, audit log, keys and installed pairs). Nothing was written.",
                title="Output refused",
                hint="Choose a path outside klarna-mtls's own folders, e.g. in your home folder.",
            )
    return path


def write_output(path: Path, data: bytes, mode: int, *, keep_out: Iterable[Path] = ()) -> Path:
    """Write a file the user named (an export, a support bundle) and return its absolute path.

    Never inside ``keep_out`` (check_output_path); only in a folder no other user can change
    (ensure_output_dir); never through a link. A new file is created with O_EXCL|O_NOFOLLOW (also
    in a sticky shared folder); an existing entry is replaced, atomically, only when it is a
    regular file of this user."""
    path = check_output_path(path, keep_out)
    ensure_output_dir(path.parent)
    for _ in range(2):  # a file that appears between the look and the create is judged again
        try:
            info: os.stat_result | None = os.lstat(path)
        except FileNotFoundError:
            info = None
        except OSError as exc:
            raise storage_error(path, exc) from exc
        if info is not None:
            _check_replaceable(path, info)
            atomic_write(path, data, mode)
            return path
        if _create_exclusive(path, data, mode):
            return path
    raise InputError(f"{path} keeps changing while klarna-mtls writes it; nothing was written.")


def _check_replaceable(path: Path, info: os.stat_result) -> None:
    quoted = shlex.quote(str(path))
    if stat.S_ISLNK(info.st_mode):
        why, hint = (
            "it is a symbolic link (klarna-mtls never writes through a link)",
            f"rm {quoted}, or choose another name",
        )
    elif not stat.S_ISREG(info.st_mode):
        why, hint = "it exists and is not a regular file", "choose another name"
    elif info.st_uid != os.geteuid():
        why, hint = "it belongs to another user", "choose another name (that user planted or owns this one)"
    else:
        return
    raise InputError(f"Refusing to write {path}: {why}. Nothing was written.", title="Output refused", hint=hint)


def _create_exclusive(path: Path, data: bytes, mode: int) -> bool:
    """Create ``path`` (never an existing entry, never through a link); False when it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except FileExistsError:
        return False
    except OSError as exc:
        raise storage_error(path, exc) from exc
    try:
        os.fchmod(fd, mode)  # before any byte lands, whatever the umask
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(path)  # ours: created above, never someone else's
        raise storage_error(path, exc) from exc
    fsync_dir(path.parent)
    return True


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
