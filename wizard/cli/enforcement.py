"""`klarna-mtls enforce` and `klarna-mtls unenforce`: mTLS enforcement on and off, through the same
gate as onboarding and the TUI (the installed certificate and every declared runtime VALID now and
still valid when the enforcement has applied, this machine's clock agreeing with Klarna's Date).
`enforce` also names each certificate that will be inside its renewal window when it starts."""

from __future__ import annotations

import argparse
import asyncio

from wizard.cli.common import add_common, clean, emit
from wizard.cli.session import open_unlocked_session
from wizard.core.findings import ExitCode
from wizard.services import onboarding


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("enforce", help="enforce mTLS from NOW or a time at most 3 months ahead")
    add_common(p)
    p.add_argument("--at", required=True, help="NOW or an ISO-8601 time with zone")
    p.add_argument(
        "--leave-out",
        nargs="+",
        default=[],
        metavar="NAME",
        help="runtimes not counted by the readiness check (their calls will be refused)",
    )
    p.add_argument("--confirm-leave-out", metavar="NAMES", help="live profiles: the left-out names, comma-separated")
    p.set_defaults(handler=cmd_enforce)

    p = sub.add_parser("unenforce", help="remove mTLS enforcement")
    add_common(p)
    p.set_defaults(handler=cmd_unenforce)


def cmd_enforce(args: argparse.Namespace) -> int:
    from wizard.services import onboarding

    session = open_unlocked_session(args)
    mode = asyncio.run(
        onboarding.enforce(session, args.at, leave_out=tuple(args.leave_out), confirm_leave_out=args.confirm_leave_out)
    )
    warnings = onboarding.enforcement_warnings(session)
    emit(
        args,
        {"ok": True, "enforcement_mode": mode, "enforced_from": session.evidence.enforced_from, "warnings": warnings},
        "\n".join([f"enforcement {mode} from {session.evidence.enforced_from}", *(f"warning: {w}" for w in warnings)]),
    )
    return ExitCode.OK


def cmd_unenforce(args: argparse.Namespace) -> int:
    from wizard.services.recovery import recovering

    session = open_unlocked_session(args)
    # The way back: with the installed pair refused and enforcement not in force, called without it.
    found = asyncio.run(recovering(session, lambda: onboarding.remove_enforcement(session)))
    mode = found.value.mode.value
    way_back = {"note": found.note} if found.note else {}
    note = clean(f"\nnote: {found.note}") if found.note else ""
    emit(args, {"ok": True, "enforcement_mode": mode, **way_back}, f"enforcement removed: {mode}{note}")
    return ExitCode.OK
