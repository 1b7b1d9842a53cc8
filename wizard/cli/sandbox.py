"""`klarna-mtls sandbox serve`: the sandbox as a process, for curl and for other processes.

Every setting of wizard/sandbox/options.py is a flag (its name with dashes); the sandbox checks
the values, so the lists of allowed ones live there only (the package is not imported until
`serve` runs: it loads cryptography)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from wizard.cli.common import terminal_text
from wizard.core.findings import ExitCode
from wizard.core.paths import Paths


def register(sub: Any) -> None:
    group = sub.add_parser("sandbox", help="the embedded Klarna sandbox").add_subparsers(
        dest="sandbox_command", required=True
    )
    p = group.add_parser("serve", help="serve the sandbox until interrupted")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="listen on a non-loopback address (others on the network can then reach it)",
    )
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--state-dir", type=Path, help="where the sandbox keeps its state")
    p.add_argument("--enforcement-delay", type=float, default=300.0, help="seconds before enforcement applies")
    p.add_argument(
        "--answers",
        choices=("ours", "docs-only"),
        default="ours",
        help="docs-only: answer with only the fields Klarna documents (rehearse against real Klarna)",
    )
    _add_setting_flags(p)
    p.add_argument(
        "--json", action="store_true", help="print one JSON line with base_url, ca_bundle, api_key, account_id"
    )
    p.set_defaults(handler=serve)


# Settings beyond the two above, as (flag, type or None for a switch, help). Each is left out of
# the sandbox's settings unless given, so the sandbox's own default applies.
SETTING_FLAGS: tuple[tuple[str, type | None, str], ...] = (
    ("--certificate-lifetime-seconds", float, "life of certificates issued (default 3 years)"),
    ("--date-follows-clock", None, "the Date header reads the sandbox clock, not real time"),
    ("--allow-custom-cn", None, "accept any CN of 1 to 64 characters, not only the account suffix"),
    ("--put-enforcement-answers-204", None, "PUT enforcement answers 204 with no body"),
    (
        "--propagation-delay",
        float,
        "seconds an enforced account refuses (and reads INVALID for) a certificate just issued",
    ),
    ("--no-header-once-enforced", None, "no Klarna-Mtls-Verification-Status header while ENFORCED"),
    ("--refusal-status", int, "status of the enforcement refusal: 403 (default) or 401"),
    (
        "--enforcement-field",
        str,
        "where enforcement answers put the mode: enforcement_mode (default), status, both, both-disagree",
    ),
    ("--null-empty-lists", None, 'an empty listing answers {"credentials": null}'),
    ("--assigned-cn", None, "issue every certificate with a CN Klarna assigns: <account suffix>-<16 hex>"),
)


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    for flag, kind, help_text in SETTING_FLAGS:
        if kind is None:
            parser.add_argument(flag, action="store_true", default=None, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=None, help=help_text)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, under options.py's names."""
    names = (flag[2:].replace("-", "_") for flag, _, _ in SETTING_FLAGS)
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error(text: str) -> int:
    """An error line on stderr (it may quote an argument or the system's message), and the code."""
    print(terminal_text(f"error: {text}"), file=sys.stderr)
    return ExitCode.ERROR


def serve(args: argparse.Namespace) -> int:
    from wizard.sandbox import start_sandbox

    state_dir = args.state_dir or Paths.from_env().sandbox_dir()
    if not (args.allow_remote or _loopback(args.host)):
        return _error(
            f"{args.host} is not a loopback address; the sandbox listens on this machine only "
            "(pass --allow-remote to serve others)"
        )
    try:
        sandbox = start_sandbox(
            state_dir,
            host=args.host,
            port=args.port,
            enforcement_delay=args.enforcement_delay,
            answers=args.answers,
            **_settings(args),
        )
    except ValueError as exc:  # a setting the sandbox does not take: say which
        return _error(str(exc))
    except OSError as exc:  # port taken, address not local: say so instead of a traceback
        return _error(f"the sandbox could not listen on {args.host}:{args.port}: {exc.strerror or exc}")
    info = {
        "base_url": sandbox.base_url,
        "ca_bundle": str(sandbox.ca_bundle),
        "account_id": sandbox.account_id,
        "api_key": sandbox.api_key,  # a throwaway sandbox credential, printed on request only
        "admin_token": sandbox.admin_token,
    }
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        print(
            f"sandbox serving at {sandbox.base_url}\n  CA bundle: {sandbox.ca_bundle}\n"
            f"  account:   {sandbox.account_id}\n  (API key: run with --json to print it)",
            flush=True,
        )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        sandbox.stop()
    return ExitCode.OK
