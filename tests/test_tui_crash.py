"""A crash never shows a secret: Textual's crash report printed every frame's locals, and an API
key typed into the Credentials screen was one of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from wizard.core.secret_value import SecretValue

ROOT = Path(__file__).resolve().parent.parent
KEY = "klarna_test_api_CRASHxTESTxKEYxRECOGNISABLEx0123456789ab"
PASSPHRASE = "crash-test passphrase 42"

SCRIPT = f"""
from screens.app import WizardApp, run_tui
from screens.services import ScreenServices
from wizard.services.session import Session
from wizard.core.paths import Paths

KEY = {KEY!r}

class Crashing(WizardApp):
    def on_ready(self):
        self.set_timer(0.3, self.boom)

    def boom(self):
        api_key = KEY  # a local holding the key, as a screen's handler would
        passphrase = {PASSPHRASE!r}.encode()
        raise RuntimeError("boom on purpose")

session = Session(Paths.from_env(), "crash")
session.unlock(KEY, {PASSPHRASE!r}.encode())
app = Crashing(ScreenServices(session))
app.run(headless=True, size=(80, 24))
print("RETURN", app.return_code)
"""


def test_a_crash_shows_no_key_and_no_passphrase(isolated_home):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, cwd=ROOT, stdin=subprocess.DEVNULL
    )
    output = done.stdout + done.stderr
    assert "RuntimeError" in output and "boom on purpose" in output, output  # the report is there
    assert KEY not in output and KEY[16:40] not in output
    assert PASSPHRASE not in output
    assert "klarna-mtls.log" in output  # where the full report went
    from wizard.core.paths import Paths

    log = Paths.from_env().log_path().read_text()
    assert "boom on purpose" in log and KEY not in log and PASSPHRASE not in log


def test_secret_value_masks_itself():
    key, phrase = SecretValue(KEY), SecretValue(PASSPHRASE.encode())
    for text in (repr(key), str(key), f"{key}", repr([key, phrase]), str({"k": phrase})):
        assert KEY not in text and PASSPHRASE not in text
    assert key.reveal() == KEY and repr(key).endswith("…89ab')")
    assert SecretValue(key).reveal() == KEY  # never double-wrapped


def test_the_session_holds_its_secrets_masked(paths):
    from wizard.services.session import Session

    session = Session(paths, "custody")
    session.unlock(KEY, PASSPHRASE.encode())
    held = repr(vars(session))
    assert KEY not in held and PASSPHRASE not in held
    assert session.key_passphrase == PASSPHRASE.encode() and session.custody.api_key_suffix == "89ab"
