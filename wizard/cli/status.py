"""`klarna-mtls status` (and `certs list`): certificates, enforcement, verification and runtimes
of a profile, or of every profile with --all, as Klarna answered just now (with the time). Exit 0
ok, 1 renewal due, 2 not VALID, the records and the installed files disagreeing, or a scheduled
enforcement that would refuse a counted certificate or runtime, 3 error."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from wizard.cli.common import add_common, clean, emit
from wizard.cli.fleet import add_concurrency, each_profile, failure_code
from wizard.cli.runtime import runtime_text, runtime_view
from wizard.cli.session import open_unlocked_session
from wizard.core import acceptance
from wizard.core.errors import WizardError
from wizard.core.findings import ExitCode

if TYPE_CHECKING:
    from wizard.services.status import ProfileStatus


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="certificates, enforcement and verification of a profile")
    add_common(p)
    p.add_argument("--all", action="store_true", help="every profile, concurrently")
    add_concurrency(p)
    p.set_defaults(handler=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from wizard.services.recovery import status_recovering

    if getattr(args, "all", False):
        return _status_all(args)
    session = open_unlocked_session(args)
    try:
        found = asyncio.run(status_recovering(session))  # the way back when the installed pair is refused
    except WizardError as error:
        if failure_code(error) is not ExitCode.CRITICAL:
            raise
        return _broken_pair(args, session.profile, error)
    status = found.value
    way_back = {"note": found.note} if found.note else {}
    listed = status.listed_statuses  # the listing read just now
    emit(
        args,
        {"ok": True, **status.to_dict(), **runtime_view(session, listed), **way_back},
        _status_text(status)
        + "\n"
        + runtime_text(session, listed)
        + (clean(f"\nnote: {found.note}") if found.note else ""),
    )
    return _status_exit(status)


def _broken_pair(args: argparse.Namespace, profile: str, error: WizardError) -> int:
    """The installed pair is missing or unreadable: not VALID here, so critical (2), not an error."""
    detail = {"title": error.title, "message": error.message, "hint": error.hint}
    emit(
        args,
        {"ok": False, "profile": profile, "exit_code": ExitCode.CRITICAL, "error": detail},
        clean(f"{profile}: critical: {error}"),
    )
    return ExitCode.CRITICAL


def _status_all(args: argparse.Namespace) -> int:
    """Every profile, each with its own key only (KLARNA_API_KEY only where it is that profile's
    recorded key), each read-only when another process is writing it; each takes the way back
    (read without a certificate, with a note) when Klarna refuses its installed pair, as `status`."""
    from wizard.services.recovery import status_recovering

    payload, texts, code = [], [], ExitCode.OK
    for name, result in each_profile(args, status_recovering, "klarna-mtls status --all"):
        if isinstance(result, WizardError):
            payload.append({"profile": name, "ok": False, "error": str(result)})
            texts.append(clean(f"{name}: error: {result}"))
            code = max(code, failure_code(result))  # a broken installed pair is critical, not a tool error
        else:
            status, note = result.value, result.note
            payload.append({"ok": True, **status.to_dict(), **({"note": note} if note else {})})
            texts.append(_status_text(status) + (clean(f"\n note: {note}") if note else ""))
            code = max(code, _status_exit(status))
    emit(args, {"ok": code < ExitCode.ERROR, "profiles": payload}, "\n".join(texts) or "no profiles")
    return code


def _status_text(status: ProfileStatus) -> str:
    lines = [
        f"{status.profile} ({status.environment}) · enforcement {status.enforcement_mode}"
        f"{' from ' + status.enforced_from if status.enforced_from else ''} · {status.slots_words()}"
        f" · verification {status.verification} · key in {status.secret_backend}"
        f" · observed {status.observed_at or 'never'}"
    ]
    if status.stage_note:
        lines.append(f" note: {status.stage_note}")
    lines += [f" {status.enforcement_outlook_severity}: {line}" for line in status.enforcement_outlook]
    if status.current_damage:
        from wizard.services.repair import damage_finding

        damage = damage_finding(status.current_damage, status.profile)
        lines += [f" {damage.severity}: {damage.summary}", f"   → {damage.next_step}"]
    for c in status.certificates:
        mark = "*" if c.current else ("+" if c.installed_here else " ")
        lines.append(
            f" {mark} {c.credential_id}  …{c.fingerprint_suffix}  {c.status:8} expires {c.expires_at} "
            f"({c.days_left} days){'  RENEW' if c.in_renewal_window else ''}"
        )
    return "\n".join(clean(line) for line in lines)  # server strings: no escapes reach the terminal


def _status_exit(status: ProfileStatus) -> ExitCode:
    accepted = status.verification is None or acceptance.accepted(status.verification)
    if status.current_damage or not accepted or status.enforcement_outlook_severity == "critical":
        return ExitCode.CRITICAL
    current = status.current
    if (current and current.in_renewal_window) or status.enforcement_outlook_severity == "warning":
        return ExitCode.WARNING
    return ExitCode.OK
