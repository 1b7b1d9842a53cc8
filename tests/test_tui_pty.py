"""The day-2 journey on a real terminal at 80x24 (issue 24, "Done when"): `klarna-mtls --sandbox`
driven by key presses alone through onboarding to ENFORCED, the installed certificate deleted, the
dashboard naming that as a local problem (not "Could not reach Klarna"), the doctor's Repair, the
dashboard back to `installed pair: VALID`, then quit."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from pty_terminal import Terminal

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")]
ROOT = Path(__file__).resolve().parent.parent
PROFILE = "ptyday2"


def environment(tmp_path: Path) -> dict[str, str]:
    """A home of its own, no keyring (never the user's), no key in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLARNA_", "XDG_"))}
    env.update(
        HOME=str(tmp_path / "home"),
        KLARNA_MTLS_HOME=str(tmp_path / "klarna-home"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        TERM="xterm-256color",
        COLUMNS="80",
        LINES="24",
    )
    return env


def stage_shown(text: str) -> int | None:
    """The stage number the header shows (`· 3/6`), or None."""
    found = re.search(r"· (\d)/6", text.splitlines()[0] if text else "")
    return int(found.group(1)) if found else None


def onboard(term: Terminal) -> None:
    """From the Welcome screen to Done, keys only: Enter presses each step's button, ctrl+n goes
    Next once the step's checks pass; the enforcement confirmation needs Tab (Cancel is its
    default)."""
    term.wait_for_text("Continue ▶")
    term.press("enter")
    for number in range(1, 7):
        term.wait_for(lambda t, n=number: stage_shown(t) == n, f"step {number}/6")
        term.settle()
        if number != 5:  # Verify polls by itself
            term.press("enter")
        if number == 6:
            term.wait_for_text("Enforce mTLS?")
            term.press("tab", "enter")
        passed = term.wait_for(lambda t: "✓ All checks pass." in t or "Close" in t, f"step {number} done")
        assert "Close" not in passed, passed  # an error modal
        term.settle()
        next_stage(term, number)
    term.wait_for_text("mTLS is set up")


def next_stage(term: Terminal, number: int) -> None:
    """ctrl+n until the header leaves step ``number`` (it does nothing while the step is blocked)."""
    for _ in range(10):
        term.press("ctrl+n")
        term.settle()
        if stage_shown(term.text()) != number:
            return
    raise AssertionError(f"Next did not leave step {number}:\n{term.text()}")


def joined(text: str) -> str:
    """The screen's text with the lines a long sentence wrapped onto joined again."""
    return text.replace("\n  ", " ")


def test_onboard_delete_the_certificate_repair_it_from_the_doctor_and_quit(tmp_path):
    env = environment(tmp_path)
    term = Terminal([sys.executable, "-m", "wizard.cli", "--sandbox", "--profile", PROFILE], env=env, cwd=str(ROOT))
    try:
        onboard(term)
        certificate = next(Path(env["KLARNA_MTLS_HOME"]).rglob("current/certificate.pem"))
        certificate.resolve().unlink()  # the file a service reads, gone
        term.press("d")
        text = term.wait_for_text("Local problem")
        assert "Installed certificate file missing" in text and "Could not reach Klarna" not in text
        assert "installed pair: broken here" in joined(text)
        term.settle()
        term.press("d")  # the doctor offers Repair, never "unenforce"
        text = term.wait_for_text("Repair the installed pair (r)")
        assert "klarna-mtls repair" in joined(text) and "unenforce" not in text
        term.press("r")
        text = term.wait_for(lambda t: "repaired:" in t or "Repair failed" in t, "the repair's report")
        assert "✓ repaired:" in text and "Klarna: VALID." in joined(text), text
        assert certificate.is_file()
        term.press("escape")  # back to the doctor, which looks again
        text = term.wait_for(lambda t: "esc Back  f5 Run again" in t, "the doctor again, Repair no longer offered")
        assert "Repair the installed pair (r)" not in text
        term.settle()
        term.press("escape")
        text = term.wait_for(lambda t: "installed pair: VALID" in joined(t), "the dashboard VALID again")
        assert "Local problem" not in text
        term.press("q")
        assert term.finish() == 0
        summary = "".join(term.transcript)
        assert f"klarna-mtls: profile '{PROFILE}' (sandbox) · stage Done" in summary
    finally:
        term.close()
