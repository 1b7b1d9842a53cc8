"""The log file is private and redacts key-shaped strings and registered secrets."""

from __future__ import annotations

import logging

from wizard.logs import register_secret, setup_logging


def test_log_redacts_keys_and_registered_secrets(paths):
    logger = setup_logging(paths)
    key = "klarna_live_api_" + "L" * 30 + "QRST"
    register_secret("my passphrase 42")
    logging.getLogger("klarna_mtls.test").warning("calling with %s and my passphrase 42", key)
    for handler in logger.handlers:
        handler.flush()
    text = paths.log_path().read_text()
    assert "klarna_live_api_…QRST" in text
    assert key not in text and "my passphrase 42" not in text
    assert oct(paths.log_path().stat().st_mode & 0o777) == "0o600"
