"""Logging to a private file, with a filter that redacts anything shaped like a Klarna key and any
secret registered at run time (e.g. a key passphrase)."""

from __future__ import annotations

import logging
import os

from .fsutil import ensure_private_dir
from .paths import Paths
from .rules import redact

LOGGER = "klarna_mtls"
_SECRETS: set[str] = set()


def register_secret(value: str | bytes | None) -> None:
    """Exact values never to be written to a log (passphrases have no recognisable shape)."""
    if value:
        _SECRETS.add(value.decode() if isinstance(value, bytes) else value)


def scrub(text: str) -> str:
    text = redact(text)
    for secret in _SECRETS:
        text = text.replace(secret, "[redacted]")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        return True


def setup_logging(paths: Paths, verbose: bool = False) -> logging.Logger:
    """Log to the state folder's klarna-mtls.log (0600 in a 0700 folder)."""
    logger = logging.getLogger(LOGGER)
    path = paths.log_path()
    for handler in list(logger.handlers):
        if getattr(handler, "_klarna_mtls", False):
            if handler.baseFilename == str(path):
                return logger
            logger.removeHandler(handler)  # another home (tests, scripts): follow it
            handler.close()
    ensure_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.close(fd)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler._klarna_mtls = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    return logger
