"""Command line: with no sub-command, the TUI; otherwise headless commands.

Exit codes (stable, for cron and CI): 0 ok (or nothing to do), 1 warning, 2 critical, 3 error.
Secrets are never taken as arguments: the API key comes from the secret store, ``KLARNA_API_KEY``
or standard input. Each group of sub-commands lives in its own module listed in COMMAND_MODULES,
which exposes ``register(subparsers)``; handlers are ``fn(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .. import __version__
from ..errors import WizardError
from .common import EXIT_ERROR, fail

COMMAND_MODULES: list[str] = [
    "wizard.cli.onboard",
    "wizard.cli.sandbox",
    "wizard.cli.manage",
    "wizard.cli.keys",
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
    parser.add_argument("--debug", action="store_true", help="write more detail to the log (never secrets)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command != "sandbox":
            from ..logs import register_secret, setup_logging
            from ..paths import Paths

            setup_logging(Paths.from_env(), verbose=args.debug)
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

