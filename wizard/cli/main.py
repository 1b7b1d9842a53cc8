"""Command line: with no sub-command, the TUI; otherwise headless commands.

Exit codes (stable, for cron and CI): 0 ok (or nothing to do), 1 warning, 2 critical, 3 error.
Secrets are never taken as arguments: the API key comes from the secret store, ``KLARNA_API_KEY``
or standard input. Each group of sub-commands lives in its own module listed in COMMAND_MODULES,
which exposes ``register(subparsers)``; handlers are ``fn(args) -> int``; opening a profile is
in wizard.cli.session.

Every command module is imported before the TUI starts, so the only imports a command module makes
inside its handlers are of the services that load cryptography, httpx or keyring (status, rotation,
revocation, api_keys, install, doctor, pair_doctor, runtime_exchange, the secret stores, the API client, the
sandbox): the TUI's first paint (benchmarks/startup.py) and ``--help`` never load them."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from wizard import __version__
from wizard.cli.common import fail
from wizard.core.env_vars import KEY_PASSPHRASE_ENV, STORE_PASSPHRASE_ENV
from wizard.core.errors import WizardError
from wizard.core.locking import profile_lock, try_profile_lock
from wizard.core.logs import register_secret, setup_logging
from wizard.core.paths import Paths, valid_profile_name

# In the order `klarna-mtls --help` lists their commands.
COMMAND_MODULES: list[str] = [
    "wizard.cli.onboard",
    "wizard.cli.sandbox",
    "wizard.cli.status",
    "wizard.cli.certs",
    "wizard.cli.renew",
    "wizard.cli.repair",
    "wizard.cli.enforcement",
    "wizard.cli.checks",
    "wizard.cli.export",
    "wizard.cli.profiles",
    "wizard.cli.keys",
    "wizard.cli.runtime",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="klarna-mtls",
        description="Set up and keep Klarna mTLS client certificates healthy.",
        epilog="Exit codes: 0 ok, 1 warning, 2 critical, 3 error.",
    )
    parser.add_argument("--version", action="version", version=f"klarna-mtls {__version__}")
    parser.add_argument("--profile", default="default", help="profile name (default: default)")
    parser.add_argument("--sandbox", action="store_true", help="run the wizard against the embedded sandbox")
    parser.add_argument("--debug", action="store_true", help="write more detail to the log (never secrets)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


# Commands that change a profile hold its lock for the whole run; readers take it only when it is
# free and otherwise run read-only (they never write a journal another process holds).
WRITERS = {
    "onboard",
    "rotate",
    "renew",
    "repair",
    "enforce",
    "unenforce",
    "certs revoke",
    "keys create",
    "keys describe",
    "keys disable",
    "keys rotate",
    "keys set-own",
    "tui",
    "runtime request",
    "runtime issue",
    "runtime install",
    "runtime report",
    "runtime add",
    "runtime remove",
    "probe",
}
INTERRUPTED = 130  # Ctrl+C: 128 + SIGINT, as shells report it (the command says what stands)
READERS = {"status", "certs list", "check", "doctor", "keys list", "runtime list"}


# Options whose typed value may start with "-" (an API key's last characters are URL-safe base64):
# argparse reads such a value as an option, so it is joined to its option before parsing.
TYPED_VALUES = ("--confirm-suffix",)


def with_dash_values(argv: list[str], options: set[str]) -> list[str]:
    """``--confirm-suffix -ab1`` as ``--confirm-suffix=-ab1``. A word that is one of the parser's
    ``options`` (``--json``) is never taken as the typed value: argparse then says one is missing."""
    joined: list[str] = []
    index = 0
    while index < len(argv):
        word, value = argv[index], argv[index + 1] if index + 1 < len(argv) else None
        typed = word in TYPED_VALUES and value is not None and value not in options
        joined.append(f"{word}={value}" if typed else word)
        index += 2 if typed else 1
    return joined


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` and its sub-commands."""
    found: set[str] = set()
    for action in parser._actions:
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= option_strings(sub)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(with_dash_values(sys.argv[1:] if argv is None else argv, option_strings(parser)))
    _no_core_dumps()
    _not_dumpable()
    log_path: Path | None = None
    try:
        if args.command != "sandbox":
            log_path = Paths.from_env().log_path()
            setup_logging(Paths.from_env(), verbose=args.debug)
            register_secret(os.environ.get(KEY_PASSPHRASE_ENV))
            register_secret(os.environ.get(STORE_PASSPHRASE_ENV))
        with _command_lock(args):
            if args.command is None:
                from screens.app import run_tui  # lazy: headless commands never load Textual

                return run_tui(args)
            return int(args.handler(args))
    except WizardError as error:
        return fail(args, error)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as error:  # noqa: BLE001 - the one place an unexpected failure is reported
        return _unexpected(args, error, log_path)


def command_name(args: argparse.Namespace) -> str:
    """``certs revoke``, ``keys list``, ``status``, or ``tui`` when no sub-command was given."""
    if args.command is None:
        return "tui"
    sub = getattr(args, f"{args.command}_command", None)
    return f"{args.command} {sub}" if sub else args.command


def _command_lock(args: argparse.Namespace) -> AbstractContextManager[object]:
    """The profile lock this command needs: exclusive for writers, opportunistic for readers."""
    name = command_name(args)
    profile = getattr(args, "profile", "default")
    if name == "tui" and getattr(args, "sandbox", False) and profile == "default":
        profile = "sandbox"
    if not valid_profile_name(profile) or getattr(args, "all", False):
        return contextlib.nullcontext()  # Journal refuses a bad name; --all locks per profile
    label = f"klarna-mtls {name}"
    if name in WRITERS:
        return profile_lock(Paths.from_env(), profile, label)
    if name in READERS:
        return _reader_lock(args, try_profile_lock(Paths.from_env(), profile, label))
    return contextlib.nullcontext()


def _reader_lock(args: argparse.Namespace, lock: AbstractContextManager[bool]) -> AbstractContextManager[None]:
    @contextlib.contextmanager
    def run() -> Iterator[None]:
        with lock as held:
            args.read_only = not held
            yield

    return run()


def _unexpected(args: argparse.Namespace, error: Exception, log_path: Path | None) -> int:
    """Not a finding: exit 3 with one line and where the details are; the traceback goes to the
    private log only (redacted, no local variables), never to the terminal."""
    logging.getLogger("klarna_mtls").error("unexpected failure in %s", command_name(args), exc_info=error)
    hint = f"Details are in {log_path}." if log_path else ""
    return fail(
        args, WizardError(f"Unexpected failure ({type(error).__name__}).", title="Unexpected failure", hint=hint)
    )


def _no_core_dumps() -> None:
    """A core file would hold the API key and private keys in clear: none for this process."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass


PR_SET_DUMPABLE = 4  # <linux/prctl.h>


def _not_dumpable() -> None:
    """Linux: mark the process non-dumpable before any secret is read, so no other process of
    the same user can attach a debugger (gcore) or read /proc/PID/mem and /proc/PID/environ; only
    root with CAP_SYS_PTRACE still can. Elsewhere a no-op (core files are off all the same)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass
