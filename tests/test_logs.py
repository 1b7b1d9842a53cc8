"""The log file is private and redacts key-shaped strings and registered secrets."""

from __future__ import annotations

import logging
import os

import pytest

from wizard.core import logs
from wizard.core.logs import RedactingFilter, register_secret, setup_logging

LIVE_KEY = "klarna_live_api_" + "L" * 30 + "QRST"


@pytest.fixture(autouse=True)
def forget_registered_secrets(monkeypatch):
    """Registered secrets are process-wide: restore the set so these tests leave no trace."""
    monkeypatch.setattr(logs, "_secrets", logs._secrets)


def close_our_handlers(logger) -> None:
    for handler in list(logger.handlers):
        if getattr(handler, "_klarna_mtls", False):
            logger.removeHandler(handler)
            handler.close()


@pytest.fixture
def logger(paths):
    logger = setup_logging(paths)
    yield logger
    close_our_handlers(logger)


def log_text(logger, paths) -> str:
    for handler in logger.handlers:
        handler.flush()
    return paths.log_path().read_text()


def test_log_redacts_keys_and_registered_secrets(logger, paths):
    register_secret("my passphrase 42")
    logging.getLogger("klarna_mtls.test").warning("calling with %s and my passphrase 42", LIVE_KEY)
    text = log_text(logger, paths)
    assert "klarna_live_api_…QRST" in text and "[redacted]" in text
    assert LIVE_KEY not in text and "my passphrase 42" not in text


def test_tracebacks_and_bytes_secrets_are_redacted(logger, paths):
    register_secret(b"bytes-passphrase-7")
    try:
        raise ValueError(f"backend echoed {LIVE_KEY} and bytes-passphrase-7")
    except ValueError:
        logging.getLogger("klarna_mtls.test").exception("store failed")
    text = log_text(logger, paths)
    assert "Traceback" in text and "ValueError" in text
    assert LIVE_KEY not in text and "bytes-passphrase-7" not in text


def test_a_secret_containing_another_is_removed_whole(logger, paths):
    register_secret("abc")
    register_secret("xxabcxx")
    logging.getLogger("klarna_mtls").info("value xxabcxx")
    assert "value [redacted]\n" in log_text(logger, paths)


def test_blank_secrets_are_ignored():
    before = logs._secrets
    register_secret("")
    register_secret("   ")
    register_secret(None)
    assert logs._secrets == before


def test_filter_survives_a_bad_format_string():
    record = logging.LogRecord("klarna_mtls", logging.INFO, __file__, 1, "only %s %s", (LIVE_KEY,), None)
    assert RedactingFilter().filter(record)
    assert LIVE_KEY not in record.getMessage() and "QRST" in record.getMessage()


def test_log_file_is_0600_in_a_0700_folder_even_under_umask_0(paths):
    old = os.umask(0)
    try:
        logger = setup_logging(paths)
    finally:
        os.umask(old)
    try:
        logger.info("hello")
        assert oct(paths.log_path().stat().st_mode & 0o777) == "0o600"
        assert oct(paths.log_path().parent.stat().st_mode & 0o777) == "0o700"
    finally:
        close_our_handlers(logger)


def test_a_readable_log_left_by_an_older_run_is_tightened(paths):
    paths.log_path().parent.mkdir(parents=True)
    paths.log_path().write_text("old line\n")
    os.chmod(paths.log_path(), 0o644)
    logger = setup_logging(paths)
    try:
        assert oct(paths.log_path().stat().st_mode & 0o777) == "0o600"
    finally:
        close_our_handlers(logger)


def test_setup_is_idempotent_and_follows_a_new_home(logger, paths, tmp_path, monkeypatch):
    assert setup_logging(paths) is logger
    ours = [h for h in logger.handlers if getattr(h, "_klarna_mtls", False)]
    assert len(ours) == 1 and any(isinstance(f, RedactingFilter) for f in ours[0].filters)
    from wizard.core.paths import Paths

    monkeypatch.setenv("KLARNA_MTLS_HOME", str(tmp_path / "other-home"))
    other = Paths.from_env()
    setup_logging(other, verbose=True)
    ours = [h for h in logger.handlers if getattr(h, "_klarna_mtls", False)]
    assert [h.baseFilename for h in ours] == [str(other.log_path())]
    assert logger.level == logging.DEBUG
