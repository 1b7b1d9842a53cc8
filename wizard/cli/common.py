"""What every command module shares: common flags, output in text or JSON. The exit codes are
``wizard.core.findings.ExitCode``."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from wizard.core.errors import WizardError
from wizard.core.findings import ExitCode
from wizard.core.rules import clean_text, redact


def add_common(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    """--profile after the sub-command too (without clobbering one given before it), and --json."""
    parser.add_argument("--profile", default=argparse.SUPPRESS, help="profile name")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="one JSON object on standard output")


def seconds(text: str) -> float:
    """argparse type: a finite number of seconds, zero or more (no NaN, no infinity, no minus)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text[:20]}' is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("give a finite number of seconds, 0 or more")
    return value


def add_new_certificate_wait(parser: argparse.ArgumentParser, limit: float) -> None:
    """``--poll-interval`` and ``--poll-limit`` (default ``limit``) of the wait until Klarna accepts a
    new certificate: an enforced account may refuse it for up to 5 minutes."""
    parser.add_argument("--poll-interval", type=seconds, default=2.0)
    parser.add_argument(
        "--poll-limit",
        type=seconds,
        default=limit,
        metavar="SECONDS",
        help="how long to keep checking that Klarna accepts the new certificate (an enforced account may "
        f"refuse it for up to 5 minutes; default {limit:g}); the pair in use stays meanwhile",
    )


def positive_int(text: str) -> int:
    """argparse type: a whole number, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text[:20]}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("give a whole number, 1 or more")
    return value


def clean(text: object) -> str:
    """One server or file value for a line of terminal text: no escape sequence, control or bidi
    character, no newline (a server's newline must not forge a line of our output)."""
    return clean_text(text)


def terminal_text(text: str) -> str:
    """Every line of human text a command prints, cleaned (its own newlines kept). JSON needs
    none: ``json.dumps`` escapes every control and non-ASCII character."""
    return clean_text(text, keep_newlines=True)


def progress(args: argparse.Namespace, line: str) -> None:
    """Progress lines go to stderr under --json so stdout holds only the JSON object."""
    print(terminal_text(line), file=sys.stderr if getattr(args, "json", False) else sys.stdout, flush=True)


def emit(args: argparse.Namespace, payload: dict[str, Any], text: str | None = None) -> None:
    """One JSON object on stdout with --json, else the human text."""
    if getattr(args, "json", False):
        print(json.dumps(payload, sort_keys=True, default=str))
    elif text is not None:
        print(terminal_text(text))


def fail(args: argparse.Namespace, error: WizardError) -> int:
    """Report a WizardError in both modes and return the error exit code."""
    payload = {
        "ok": False,
        "error": {"title": error.title, "message": redact(error.message), "hint": redact(error.hint)},
    }
    if getattr(args, "json", False):
        print(json.dumps(payload, sort_keys=True))
    print(f"error: {clean(error.title)}: {clean(redact(str(error)))}", file=sys.stderr)
    return ExitCode.ERROR
