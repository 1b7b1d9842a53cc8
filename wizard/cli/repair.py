"""`klarna-mtls repair`: put the installed pair back from what the tool keeps (the certificate as
Klarna returned it, the key it made, the install folder's versions), checked before anything is
written, then proved with a call. Exit 0 repaired (or nothing to repair), 1 restored but Klarna
could not be reached to prove it, 2 restored but Klarna does not accept it, 3 error (nothing
usable to restore from: the message says what could not be established and what to do)."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import asdict
from typing import TYPE_CHECKING

from wizard.cli.common import add_common, clean, emit, progress
from wizard.cli.session import open_unlocked_session
from wizard.core.findings import ExitCode

if TYPE_CHECKING:
    from wizard.services.repair import RepairReport


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "repair",
        help="restore the installed certificate and key from what klarna-mtls keeps, and prove them with a call",
    )
    add_common(p)
    p.set_defaults(handler=cmd_repair)


def cmd_repair(args: argparse.Namespace) -> int:
    from wizard.services.repair import repair

    session = open_unlocked_session(args)
    report = asyncio.run(repair(session, on_step=lambda line: progress(args, clean(f"repair: {line}"))))
    code = repair_exit(report)
    emit(args, {"ok": code < ExitCode.ERROR, "exit_code": code, **asdict(report)}, _text(report))
    return code


def repair_exit(report: RepairReport) -> ExitCode:
    if not report.problems or report.proved:
        return ExitCode.OK
    if report.verification is None:
        return ExitCode.WARNING  # restored, not proved: Klarna could not be reached
    return ExitCode.CRITICAL


def _text(report: RepairReport) -> str:
    return clean(report.outcome())
