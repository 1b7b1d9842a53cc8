"""`klarna-mtls check` (for cron, one profile or --all) and `klarna-mtls doctor`: findings, each
with a severity and what to do next; the exit code is the worst (0 ok, 1 warning, 2 critical,
3 error)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard.cli.common import add_common, clean, emit
from wizard.cli.fleet import add_concurrency, each_profile, failure_code
from wizard.cli.session import open_unlocked_session
from wizard.core.errors import InputError, WizardError
from wizard.core.findings import ExitCode
from wizard.services.session import Session

if TYPE_CHECKING:
    from wizard.core.findings import Finding


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check", help="expiry and verification, for cron and monitoring")
    add_common(p)
    p.add_argument("--warn-days", type=int, default=60)
    p.add_argument("--critical-days", type=int, default=14)
    p.add_argument("--all", action="store_true", help="every profile: one summary line, the worst exit code")
    add_concurrency(p)
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("doctor", help="explain what is wrong and what to do")
    add_common(p)
    p.add_argument("--cert", type=Path, help="check this pair instead (e.g. copied from a failing server)")
    p.add_argument("--key", type=Path, help="the private key of --cert")
    p.set_defaults(handler=cmd_doctor)


def cmd_check(args: argparse.Namespace) -> int:
    from wizard.services.doctor import cron_check

    if args.critical_days > args.warn_days:
        raise InputError("--critical-days must not exceed --warn-days.")
    if args.all:
        return _check_all(args)
    session = open_unlocked_session(args)
    code, findings = asyncio.run(cron_check(session, args.warn_days, args.critical_days))
    return _findings_out(args, findings, code)


def _check_all(args: argparse.Namespace) -> int:
    """For cron over many profiles: one summary line naming the profiles that need attention,
    and the worst exit code of them all."""
    from wizard.services.doctor import cron_check

    async def one(session: Session) -> tuple[int, list[Finding]]:
        return await cron_check(session, args.warn_days, args.critical_days)

    rows: list[dict[str, Any]] = []
    by_code: dict[int, list[str]] = {ExitCode.OK: [], ExitCode.WARNING: [], ExitCode.CRITICAL: [], ExitCode.ERROR: []}
    for name, result in each_profile(args, one, "klarna-mtls check --all"):
        if isinstance(result, WizardError):
            code = failure_code(result)  # a broken installed pair is critical, not a tool error
            row = {"profile": name, "exit_code": code, "error": str(result), "findings": []}
        else:
            code, findings = result
            row = {"profile": name, "exit_code": code, "findings": [asdict(f) for f in findings]}
        rows.append(row)
        by_code[code].append(name)
    overall = max((code for code, names in by_code.items() if names), default=ExitCode.OK)
    emit(args, {"ok": overall < ExitCode.ERROR, "exit_code": overall, "profiles": rows}, _check_summary(by_code))
    return overall


def _check_summary(by_code: dict[int, list[str]]) -> str:
    total = sum(len(names) for names in by_code.values())
    parts = [f"check --all: {total} profile{'s' if total != 1 else ''}", f"{len(by_code[ExitCode.OK])} ok"]
    for code, word in ((ExitCode.WARNING, "warning"), (ExitCode.CRITICAL, "critical"), (ExitCode.ERROR, "error")):
        names = by_code[code]
        if names:
            shown = ", ".join(names[:5]) + (f", +{len(names) - 5} more" if len(names) > 5 else "")
            parts.append(f"{len(names)} {word} ({shown})")
    return " · ".join(parts)


def cmd_doctor(args: argparse.Namespace) -> int:
    from wizard.core.findings import worst
    from wizard.services.doctor import run_doctor
    from wizard.services.pair_doctor import doctor_pair

    session = open_unlocked_session(args)
    if getattr(args, "cert", None) or getattr(args, "key", None):
        if not (args.cert and args.key):
            raise InputError("Give both --cert and --key.")
        findings = asyncio.run(doctor_pair(session, args.cert, args.key))
        return _findings_out(args, findings, worst(findings))
    findings = asyncio.run(run_doctor(session))
    return _findings_out(args, findings, worst(findings))


def _findings_out(args: argparse.Namespace, findings: Sequence[Finding], code: int) -> int:
    emit(
        args,
        {"ok": code < ExitCode.ERROR, "exit_code": code, "findings": [asdict(f) for f in findings]},
        "\n".join(
            clean(f"[{f.severity:8}] {f.check}: {f.summary}")
            + (f"\n           → {clean(f.next_step)}" if f.next_step else "")
            for f in findings
        ),
    )
    return code
