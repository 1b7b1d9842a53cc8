"""Command line: with no sub-command, the TUI; otherwise headless commands.

Exit codes (stable, for cron and CI): 0 ok (or nothing to do), 1 warning, 2 critical, 3 error.
Secrets are never taken as arguments: the API key comes from the secret store, ``KLARNA_API_KEY``
or standard input. Each group of sub-commands lives in its own module listed in COMMAND_MODULES,
which exposes ``register(subparsers)``; handlers are ``fn(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any

from . import __version__
from .errors import WizardError

EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_ERROR = 0, 1, 2, 3

COMMAND_MODULES: list[str] = [
    "wizard.cli_onboard",
    "wizard.cli_sandbox",
    "wizard.cli_manage",
    "wizard.cli_keys",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="klarna-mtls",
        description="Set up and keep Klarna mTLS client certificates healthy.",
        epilog="Exit codes: 0 ok, 1 warning, 2 critical, 3 error.",
    )
    parser.add_argument("--version", action="version", version=f"klarna-mtls {__version__}")
    parser.add_argument("--profile", default="default", help="profile name (default: default)")
    parser.add_argument(
        "--sandbox", action="store_true", help="run the wizard against the embedded sandbox"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def add_common(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    """--profile after the sub-command too (without clobbering one given before it), and --json."""
    parser.add_argument("--profile", default=argparse.SUPPRESS, help="profile name")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="one JSON object on standard output")


def progress(args: argparse.Namespace, line: str) -> None:
    """Progress lines go to stderr under --json so stdout holds only the JSON object."""
    print(line, file=sys.stderr if getattr(args, "json", False) else sys.stdout, flush=True)


def emit(args: argparse.Namespace, payload: dict[str, Any], text: str | None = None) -> None:
    """One JSON object on stdout with --json, else the human text."""
    if getattr(args, "json", False):
        print(json.dumps(payload, sort_keys=True, default=str))
    elif text is not None:
        print(text)


def fail(args: argparse.Namespace, error: WizardError) -> int:
    """Report a WizardError in both modes and return the error exit code."""
    from .rules import redact

    payload = {
        "ok": False,
        "error": {"title": error.title, "message": redact(error.message), "hint": redact(error.hint)},
    }
    if getattr(args, "json", False):
        print(json.dumps(payload, sort_keys=True))
    print(f"error: {error.title}: {redact(str(error))}", file=sys.stderr)
    return EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command != "sandbox":
            from .logs import register_secret, setup_logging
            from .paths import Paths

            setup_logging(Paths.from_env())
            register_secret(os.environ.get("KLARNA_MTLS_KEY_PASSPHRASE"))
            register_secret(os.environ.get("KLARNA_MTLS_STORE_PASSPHRASE"))
        if args.command is None:
            from screens.app import run_tui  # lazy: headless commands never load Textual

            return run_tui(args)
        return int(args.handler(args))
    except WizardError as error:
        return fail(args, error)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
