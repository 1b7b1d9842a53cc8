"""Logging to a private file, with a filter that redacts anything shaped like a Klarna key and any
secret registered at run time (a passphrase has no recognisable shape, so it is matched exactly),
and keeps text from servers text: no terminal escapes, control or bidi characters reach the file
(it is read with cat and less), and no message line can pass for a record of its own."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from wizard.core.fsutil import ensure_private_dir
from wizard.core.paths import Paths
from wizard.core.rules import clean_text, redact

LOGGER = "klarna_mtls"
REDACTED = "[redacted]"
_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

_secrets: tuple[str, ...] = ()  # longest first, so a secret containing another is removed whole
_secrets_lock = threading.Lock()


def register_secret(value: str | bytes | None) -> None:
    """Never write this exact value to a log. Blank values are ignored."""
    global _secrets
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not value or not value.strip():
        return
    with _secrets_lock:
        _secrets = tuple(sorted({*_secrets, value}, key=len, reverse=True))


def scrub(text: str) -> str:
    """Mask key-shaped strings, then remove every registered secret."""
    return _remove_secrets(redact(text))


def _remove_secrets(text: str) -> str:
    for secret in _secrets:  # a snapshot: register_secret replaces the tuple, never mutates it
        text = text.replace(secret, REDACTED)
    return text


def loggable(text: str) -> str:
    """``text`` as it may be written to the log: cleaned by rules.clean_text (escapes, C0 but
    newline, C1 and bidi controls removed), then scrubbed. Cleaned before the keys are masked: a
    key split by an escape sequence is whole, and masked whole, once the escape is gone."""
    return scrub(clean_text(_remove_secrets(text), keep_newlines=True))


class RedactingFilter(logging.Filter):
    """Rewrites the record before any handler formats it: message, arguments, traceback, stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        # A newline in a message (server text) indents what follows: it cannot start a record.
        record.msg = loggable(_message(record)).replace("\n", "\n    ")
        record.args = None
        if record.exc_info and not record.exc_text:
            # Formatter uses exc_text when present: a traceback can quote a secret.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = loggable(record.exc_text)
        if record.stack_info:
            record.stack_info = loggable(record.stack_info)
        return True


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a mismatched format string must not drop the line, nor its redaction
        return f"{record.msg} {record.args!r}"


def setup_logging(paths: Paths, verbose: bool = False) -> logging.Logger:
    """Log to the state folder's klarna-mtls.log (0600 in a 0700 folder); idempotent."""
    logger = logging.getLogger(LOGGER)
    path = paths.log_path()
    for handler in list(logger.handlers):
        if getattr(handler, "_klarna_mtls", False):
            if getattr(handler, "baseFilename", None) == str(path):
                logger.setLevel(logging.DEBUG if verbose else logging.INFO)
                return logger
            logger.removeHandler(handler)  # another home (tests, scripts): follow it
            handler.close()
    _create_private_file(path)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler._klarna_mtls = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter(_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    return logger


def _create_private_file(path: Path) -> None:
    """Create the log 0600 before FileHandler opens it (it would follow the umask), and tighten a
    log left readable by an older run."""
    ensure_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
