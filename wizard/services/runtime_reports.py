"""Readiness reports: made and signed on a runtime by ``klarna-mtls probe``, checked and recorded on
the managing machine by ``klarna-mtls runtime report``.

``probe`` makes one call with the runtime's pair and signs what Klarna answered with that pair's
private key (the rules of a report are in wizard/core/runtimes.py). ``record`` refuses a report
unless it is signed by the key of the certificate this profile issued to that runtime: the copy kept
in the profile's records, or the one installed here.

Shared report folders (a cron job on each runtime writes into one folder the managing machine reads):

- ``write_report`` creates ``NAME.<16 random hex digits>.json``: a hidden temporary file created
  with O_EXCL|O_NOFOLLOW, then hard-linked to that name (a link never replaces an existing name).
  No entry another user planted first can block or replace it. It then removes this user's older
  reports for NAME. The folder itself is opened without following a link, and every name is
  resolved inside it. A folder anyone may write to without the sticky bit is refused.
- ``report_files`` never follows a link either, reads only regular files and, in a folder anyone
  may write to, only those owned by the reading user, root, the folder's owner or a user named with
  ``--report-owner``; the others are named as skipped. What a file says counts only through its
  signature."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard import __version__
from wizard.core import crypto, rules
from wizard.core.errors import InputError
from wizard.core.runtimes import REPORT_KIND, ReadinessReport, record_report, verify_runtime_name
from wizard.services.install import current_pair, list_pairs
from wizard.services.runtime_exchange import MAX_EXCHANGE_BYTES, parse_exchange, probe_answer

if TYPE_CHECKING:
    from wizard.services.install import InstalledPair
    from wizard.services.session import Session

_TAG_DIGITS = 16  # hex digits of the random part of a report's file name
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


# ---------------------------------------------------------------- on the runtime
async def probe(session: Session, name: str, pair: InstalledPair | None = None) -> ReadinessReport:
    """One call with the runtime's pair (the installed one by default): what Klarna said, signed
    with that pair's private key."""
    verify_runtime_name(name)
    named = pair is not None
    pair = pair or current_pair(session.install_dir)
    if pair is None:
        raise InputError("No certificate is installed here.", hint="Give --cert and --key, or install one first.")
    key = await asyncio.to_thread(_signing_key, session, pair)
    answer = await probe_answer(session, pair, named_files=named)
    report = ReadinessReport(
        name,
        session.evidence.account_id,
        pair.fingerprint,
        answer.status,
        rules.format_utc(session.clock()),
        __version__,
        rules.format_utc(answer.klarna_date) if answer.klarna_date else None,
        answer.klarna_correlation_id,
    )
    return report.signed_with(key)


def _signing_key(session: Session, pair: InstalledPair) -> crypto.PrivateKey:
    """The pair's private key (its passphrase as for the call itself), checked against its certificate."""
    key = crypto.load_private_key_file(pair.key_path, session.key_passphrase)
    try:
        cert = crypto.load_certificate(pair.cert_path.read_bytes())
    except OSError as exc:
        raise InputError(f"Cannot read the certificate at {pair.cert_path}: {exc.strerror}.") from exc
    crypto.verify_cert_matches_key(cert, key)
    return key


# ---------------------------------------------------------------- on the managing machine
def record(session: Session, report: ReadinessReport) -> str:
    """Record ``report`` when it proves itself (``runtimes.record_report``); InputError says why not."""
    return record_report(session.state, report, session.evidence.account_id, issued_pem_lookup(session))


def issued_pem_lookup(session: Session) -> Callable[[str], str | None]:
    """Finds the PEM of a certificate this profile issued, by fingerprint: the copy kept when a
    runtime's certificate was issued, the profile's own current one, or one installed here. The
    fingerprint (public) only finds it; the signature check reads the certificate itself."""

    def pem_for(fingerprint: str) -> str | None:
        for entry in session.state.certificates.values():
            if entry.fingerprint == fingerprint and entry.certificate_pem:
                return entry.certificate_pem
        evidence = session.evidence
        if evidence.fingerprint == fingerprint and evidence.certificate_pem:
            return evidence.certificate_pem
        for pair in list_pairs(session.install_dir):
            if pair.fingerprint == fingerprint:
                with contextlib.suppress(OSError, UnicodeDecodeError):
                    return pair.cert_path.read_text()
        return None

    return pem_for


# ---------------------------------------------------------------- shared report folders
def write_report(folder: Path, report: ReadinessReport) -> Path:
    """Write ``report`` into ``folder`` under a name no one else can take first (see the module's
    docstring); returns the file's path."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"Cannot create the report folder {folder}: {exc.strerror}.") from exc
    data = (json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n").encode()
    with _open_folder(folder) as dir_fd:
        mode = os.fstat(dir_fd).st_mode
        if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
            raise InputError(
                f"Anyone can remove or replace files in {folder} (mode {stat.S_IMODE(mode):03o}, no sticky bit).",
                hint=f"Run: chmod 1777 {folder} (a shared folder), or use a folder only its users can write.",
            )
        name = _create_unique(dir_fd, folder, report.runtime, data)
        _remove_older(dir_fd, report.runtime, keep=name)
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    return folder / name


@contextlib.contextmanager
def _open_folder(folder: Path) -> Iterator[int]:
    try:
        dir_fd = os.open(folder, _FOLDER_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and folder.is_symlink():
            raise InputError(
                f"{folder} is a symbolic link; klarna-mtls does not follow links to report folders.",
                hint="Give the folder it points to.",
            ) from exc
        raise InputError(f"Cannot open the report folder {folder}: {exc.strerror}.") from exc
    try:
        yield dir_fd
    finally:
        os.close(dir_fd)


def _create_unique(dir_fd: int, folder: Path, runtime: str, data: bytes) -> str:
    """Write ``data`` to a new ``RUNTIME.<random>.json`` in the folder open as ``dir_fd``."""
    for _ in range(8):
        tag = secrets.token_hex(_TAG_DIGITS // 2)
        temporary, name = f".{runtime}.{tag}.tmp", f"{runtime}.{tag}.json"
        try:
            fd = os.open(
                temporary,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o644,
                dir_fd=dir_fd,
            )
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"Cannot write a report in {folder}: {exc.strerror}.") from exc
        try:
            os.fchmod(fd, 0o644)  # reports hold no secret; whatever the umask, readers can read them
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if _link(dir_fd, temporary, name):
                return name
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=dir_fd)
    raise InputError(f"Could not find a free report file name in {folder}.")


def _link(dir_fd: int, temporary: str, name: str) -> bool:
    """Give the written file its name without replacing anything; False when the name is taken."""
    try:
        os.link(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        # A file system without hard links: the name is random and new, so a rename is as safe.
        os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    return True


def _remove_older(dir_fd: int, runtime: str, *, keep: str) -> None:
    """Remove this user's earlier reports for ``runtime`` (and one an older version named
    RUNTIME.json); entries of other users, links and folders are left alone."""
    mine = re.compile(re.escape(runtime) + rf"(\.[0-9a-f]{{{_TAG_DIGITS}}})?\.json")
    for entry in os.listdir(dir_fd):
        if entry == keep or not mine.fullmatch(entry):
            continue
        with contextlib.suppress(OSError):
            found = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISREG(found.st_mode) and found.st_uid == os.geteuid():
                os.unlink(entry, dir_fd=dir_fd)


@dataclass(frozen=True)
class ReportFile:
    """A report as read (from a file, or a ``vault:`` place): its JSON, or why it was not read."""

    path: Path | str
    data: dict[str, Any] | None
    problem: str | None = None


def report_files(sources: Iterable[Path], owners: Iterable[int] = ()) -> list[ReportFile]:
    """Every ``*.json`` report in each folder of ``sources`` (and each file named), read without
    following a link. ``owners``: other users whose files count in a folder anyone may write to."""
    allowed = {os.geteuid(), 0, *owners}
    found: list[ReportFile] = []
    for source in sources:
        source = Path(source).expanduser()
        if source.is_dir() and not source.is_symlink():
            with _open_folder(source) as dir_fd:
                names = sorted(n for n in os.listdir(dir_fd) if n.endswith(".json") and not n.startswith("."))
                found += [_read_entry(dir_fd, source, name, allowed) for name in names]
        else:
            with _open_folder(source.parent) as dir_fd:
                found.append(_read_entry(dir_fd, source.parent, source.name, allowed))
    return found


def _read_entry(dir_fd: int, folder: Path, name: str, allowed: set[int]) -> ReportFile:
    path = folder / name
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return ReportFile(path, None, "skipped: it is a symbolic link (links are not followed)")
        return ReportFile(path, None, f"skipped: cannot be read ({exc.strerror})")
    try:
        problem = _unread_because(os.fstat(fd), os.fstat(dir_fd), allowed)
        data = b"" if problem else _read_some(fd)
    finally:
        os.close(fd)
    if problem:
        return ReportFile(path, None, problem)
    try:
        return ReportFile(path, parse_exchange(data, path, REPORT_KIND))
    except InputError as error:
        return ReportFile(path, None, f"refused: {error}")


def _unread_because(found: os.stat_result, folder: os.stat_result, allowed: set[int]) -> str | None:
    """Why a folder entry is not read (the rule in the module's docstring), or None."""
    if not stat.S_ISREG(found.st_mode):
        return "skipped: not a regular file"
    if folder.st_mode & stat.S_IWOTH and found.st_uid not in allowed | {folder.st_uid}:
        return (
            f"skipped: owned by uid {found.st_uid} in a folder anyone can write to "
            "(name that user with --report-owner if it is a runtime's)"
        )
    return None


def _read_some(fd: int) -> bytes:
    """Up to MAX_EXCHANGE_BYTES + 1 bytes (more is refused as too large)."""
    chunks, size = [], 0
    while size <= MAX_EXCHANGE_BYTES:
        chunk = os.read(fd, MAX_EXCHANGE_BYTES + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
