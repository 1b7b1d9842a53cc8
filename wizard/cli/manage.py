"""Headless lifecycle commands: status, certs, rotate, enforce, unenforce, check, doctor,
export, support-bundle, profiles. All take --json; exit 0 ok, 1 warning, 2 critical, 3 error."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard.cli.common import (
    EXIT_CRITICAL,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_WARNING,
    add_common,
    clean,
    emit,
    progress,
    seconds,
)
from wizard.cli.onboard import open_session, open_unlocked_session
from wizard.core.env_vars import EXPORT_PASSWORD_ENV, KEY_PASSPHRASE_ENV
from wizard.core.errors import InputError, WizardError
from wizard.core.paths import Paths

if TYPE_CHECKING:
    from wizard.services import lifecycle
    from wizard.services.session import Session
    from wizard.services.waits import Event

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def register(sub: Subparsers) -> None:
    _register_status(sub)
    _register_certificates(sub)
    _register_enforcement(sub)
    _register_checks(sub)
    _register_exports(sub)
    _register_profiles(sub)


def _register_status(sub: Subparsers) -> None:
    """`status`."""
    p = sub.add_parser("status", help="certificates, enforcement and verification of a profile")
    add_common(p)
    p.add_argument("--all", action="store_true", help="every profile, concurrently")
    _add_concurrency(p)
    p.set_defaults(handler=cmd_status)


def _register_certificates(sub: Subparsers) -> None:
    """`certs list`, `certs revoke` and `rotate`."""
    certs = sub.add_parser("certs", help="list or revoke certificates").add_subparsers(
        dest="certs_command", required=True
    )
    p = certs.add_parser("list", help="the account's certificates")
    add_common(p)
    p.set_defaults(handler=cmd_status)
    p = certs.add_parser(
        "revoke",
        help="revoke a certificate (refused when it could lock you out of "
        "this profile's installs; other profiles and machines are not known)",
    )
    add_common(p)
    p.add_argument("credential_id")
    p.add_argument("--confirm-suffix", help="live profiles: the certificate's fingerprint suffix")
    p.set_defaults(handler=cmd_revoke)

    p = sub.add_parser("rotate", help="new key and certificate, verified before it replaces the current one")
    add_common(p)
    p.add_argument("--retire-old", action="store_true", help="revoke the old certificate afterwards")
    p.add_argument(
        "--grace",
        type=seconds,
        default=0.0,
        metavar="SECONDS",
        help="with --retire-old: wait this long before revoking, so services and exported "
        "copies still presenting the old certificate can switch",
    )
    p.add_argument("--poll-interval", type=seconds, default=2.0)
    p.set_defaults(handler=cmd_rotate)


def _register_enforcement(sub: Subparsers) -> None:
    """`enforce` and `unenforce`."""
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


def _register_checks(sub: Subparsers) -> None:
    """`check` and `doctor`."""
    p = sub.add_parser("check", help="expiry and verification, for cron and monitoring")
    add_common(p)
    p.add_argument("--warn-days", type=int, default=60)
    p.add_argument("--critical-days", type=int, default=14)
    p.add_argument("--all", action="store_true", help="every profile: one summary line, the worst exit code")
    _add_concurrency(p)
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("doctor", help="explain what is wrong and what to do")
    add_common(p)
    p.add_argument("--cert", type=Path, help="check this pair instead (e.g. copied from a failing server)")
    p.add_argument("--key", type=Path, help="the private key of --cert")
    p.set_defaults(handler=cmd_doctor)


def _register_exports(sub: Subparsers) -> None:
    """`export` and `support-bundle`."""
    p = sub.add_parser("export", help="export the installed pair")
    add_common(p)
    p.add_argument("--format", required=True, choices=("pem", "bundle", "p12", "k8s"))
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--name", default="klarna-mtls", help="k8s Secret name")
    p.add_argument("--namespace", help="k8s namespace")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("support-bundle", help="facts for support; no secrets")
    add_common(p)
    p.add_argument("--out", type=Path)
    p.set_defaults(handler=cmd_support_bundle)


def _register_profiles(sub: Subparsers) -> None:
    """`profiles list`."""
    profiles = sub.add_parser("profiles", help="profiles on this machine").add_subparsers(
        dest="profiles_command", required=True
    )
    p = profiles.add_parser("list")
    add_common(p)
    p.set_defaults(handler=cmd_profiles)


# Profiles checked at once by --all: more costs client CPU (httpcore scans every pooled connection
# per request) and buys little; fewer would leave Klarna's latency unoverlapped.
FLEET_CONCURRENCY = 4


def _add_concurrency(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency",
        type=_positive,
        default=FLEET_CONCURRENCY,
        metavar="N",
        help=f"with --all: profiles checked at once (default {FLEET_CONCURRENCY})",
    )


def _positive(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return number


def _status_text(status: lifecycle.ProfileStatus) -> str:
    lines = [
        f"{status.profile} ({status.environment}) · enforcement {status.enforcement_mode}"
        f"{' from ' + status.enforced_from if status.enforced_from else ''} · slots {status.slots_used}/10"
        f" · verification {status.verification} · key in {status.secret_backend}"
    ]
    for c in status.certificates:
        mark = "*" if c.current else ("+" if c.installed_here else " ")
        lines.append(
            f" {mark} {c.credential_id}  …{c.fingerprint_suffix}  {c.status:8} expires {c.expires_at} "
            f"({c.days_left} days){'  RENEW' if c.in_renewal_window else ''}"
        )
    return "\n".join(clean(line) for line in lines)  # server strings: no escapes reach the terminal


def _status_exit(status: lifecycle.ProfileStatus) -> int:
    from wizard.services import lifecycle

    if status.verification not in (None, "VALID"):
        return lifecycle.EXIT_CRITICAL
    current = status.current
    if current and current.in_renewal_window:
        return lifecycle.EXIT_WARNING
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from wizard.services import lifecycle

    if getattr(args, "all", False):
        return _status_all(args)
    from wizard.cli.runtime import runtime_text, runtime_view

    session = open_unlocked_session(args)
    status = asyncio.run(lifecycle.gather_status(session))
    emit(
        args,
        {"ok": True, **status.to_dict(), **runtime_view(session)},
        _status_text(status) + "\n" + runtime_text(session),
    )
    return _status_exit(status)


def _status_all(args: argparse.Namespace) -> int:
    """Every profile, each with its own key only (KLARNA_API_KEY only where it is that profile's
    recorded key), each read-only when another process is writing it."""
    from wizard.services import lifecycle

    payload, texts, code = [], [], EXIT_OK
    for name, result in _each_profile(args, lifecycle.gather_status, "klarna-mtls status --all"):
        if isinstance(result, WizardError):
            payload.append({"profile": name, "ok": False, "error": str(result)})
            texts.append(clean(f"{name}: error: {result}"))
            code = max(code, EXIT_ERROR)
        else:
            payload.append({"ok": True, **result.to_dict()})
            texts.append(_status_text(result))
            code = max(code, _status_exit(result))
    emit(args, {"ok": code < EXIT_ERROR, "profiles": payload}, "\n".join(texts) or "no profiles")
    return code


async def _gather_all(
    args: argparse.Namespace, names: list[str], held: dict[str, bool], work: Callable[[Any], Awaitable[Any]]
) -> list[Any]:
    """``work(session)`` for every profile, at most --concurrency at once, all sharing one
    connection per trust and certificate; a WizardError becomes that profile's result."""
    from wizard.klarna.api import ConnectionPool

    gate = asyncio.Semaphore(getattr(args, "concurrency", FLEET_CONCURRENCY))
    async with ConnectionPool() as pool:

        async def one(name: str) -> Any:
            async with gate:
                try:
                    session = open_unlocked_session(
                        argparse.Namespace(
                            **{**vars(args), "profile": name, "bound_keys_only": True, "read_only": not held[name]}
                        )
                    )
                    session.clients.use_connections(pool)
                    return await work(session)
                except WizardError as error:
                    return error

        return await asyncio.gather(*(one(n) for n in names))


def _each_profile(
    args: argparse.Namespace, work: Callable[[Any], Awaitable[Any]], purpose: str
) -> list[tuple[str, Any]]:
    """Every profile's result of ``work``, each profile locked (or read-only when another process
    writes it) for the run."""
    import contextlib

    from wizard.core.locking import try_profile_lock

    paths = Paths.from_env()
    names = paths.profiles()
    with contextlib.ExitStack() as stack:
        held = {n: stack.enter_context(try_profile_lock(paths, n, purpose)) for n in names}
        results = asyncio.run(_gather_all(args, names, held, work))
    return list(zip(names, results, strict=True))


def cmd_revoke(args: argparse.Namespace) -> int:
    from wizard.services import lifecycle

    session = open_unlocked_session(args)
    status = asyncio.run(lifecycle.revoke(session, args.credential_id, confirm_suffix=args.confirm_suffix))
    emit(
        args,
        {"ok": True, "revoked": args.credential_id, "note": REVOKE_SCOPE, **status.to_dict()},
        clean(f"revoked {args.credential_id}") + f"\nnote: {REVOKE_SCOPE}",
    )
    return EXIT_OK


REVOKE_SCOPE = (
    "the revoke interlock only knows this profile's installs on this machine; other profiles, "
    "other machines and exported copies still presenting that certificate stop working"
)


def cmd_rotate(args: argparse.Namespace) -> int:
    from wizard.services import lifecycle

    session = open_unlocked_session(args)
    from wizard.services.waits import Attempt, Step

    def show(event: Event) -> None:
        if isinstance(event, Step):
            progress(args, f"rotate: {event.step}")
        elif isinstance(event, Attempt):
            progress(
                args,
                f"  verify attempt {event.n} of {event.max_attempts}: {event.status}"
                f" ({event.elapsed:.0f} s of {event.limit:.0f} s)",
            )

    grace = args.grace if args.retire_old else 0.0

    async def rotate() -> lifecycle.RotationProgress:
        async with session.clients.connections():  # one connection per certificate across the steps
            return await lifecycle.rotate(
                session, retire_old=args.retire_old and not grace, verify_interval=args.poll_interval, on_event=show
            )

    result = asyncio.run(rotate())
    if grace and result.old_certificate_id and result.old_certificate_id != result.new_certificate_id:
        _retire_after_grace(args, session, result.old_certificate_id, grace)
    emit(
        args,
        {"ok": True, **asdict(result)},
        f"rotated: {result.old_certificate_id} → {result.new_certificate_id} ({result.new_fingerprint})",
    )
    return EXIT_OK


GRACE_REPORT_EVERY = 60.0  # seconds between the grace period's progress lines


def _retire_after_grace(args: argparse.Namespace, session: Session, old_id: str, grace: float) -> None:
    """Wait ``grace`` seconds (services and exported copies switch meanwhile), then revoke the old
    certificate through the same interlock as `certs revoke`."""
    import time

    from wizard.services import lifecycle

    progress(args, f"rotate: the new certificate is in use; revoking {old_id} in {grace:g} s (Ctrl+C keeps it)")
    left = grace
    try:
        while left > 0:
            pause = min(left, GRACE_REPORT_EVERY)
            time.sleep(pause)
            left -= pause
            if left > 0:
                progress(args, f"rotate: {left:g} s left before revoking {old_id}")
    except KeyboardInterrupt:
        progress(
            args,
            f"rotate: interrupted; {old_id} stays active. Revoke it once its users have switched: "
            f"klarna-mtls certs revoke --profile {session.profile} {old_id}",
        )
        raise
    asyncio.run(lifecycle.revoke(session, old_id, confirm_suffix=lifecycle.confirm_suffix_for(session, old_id)))
    progress(args, f"rotate: revoked {old_id} ({REVOKE_SCOPE})")


def cmd_enforce(args: argparse.Namespace) -> int:
    from wizard.services import lifecycle

    session = open_unlocked_session(args)
    mode = asyncio.run(
        lifecycle.schedule_enforcement(
            session, args.at, leave_out=tuple(args.leave_out), confirm_leave_out=args.confirm_leave_out
        )
    )
    emit(
        args,
        {"ok": True, "enforcement_mode": mode, "enforced_from": session.evidence.enforced_from},
        f"enforcement {mode} from {session.evidence.enforced_from}",
    )
    return EXIT_OK


def cmd_unenforce(args: argparse.Namespace) -> int:
    from wizard.services import onboarding

    session = open_unlocked_session(args)
    state = asyncio.run(onboarding.remove_enforcement(session))
    emit(args, {"ok": True, "enforcement_mode": state.mode.value}, f"enforcement removed: {state.mode.value}")
    return EXIT_OK


def _findings_out(args: argparse.Namespace, findings: Sequence[lifecycle.Finding], code: int) -> int:
    emit(
        args,
        {"ok": code < EXIT_ERROR, "exit_code": code, "findings": [asdict(f) for f in findings]},
        "\n".join(
            clean(f"[{f.severity:8}] {f.check}: {f.summary}")
            + (f"\n           → {clean(f.next_step)}" if f.next_step else "")
            for f in findings
        ),
    )
    return code


def cmd_check(args: argparse.Namespace) -> int:
    from wizard.services import lifecycle

    if args.critical_days > args.warn_days:
        raise InputError("--critical-days must not exceed --warn-days.")
    if args.all:
        return _check_all(args)
    session = open_unlocked_session(args)
    code, findings = asyncio.run(lifecycle.check(session, args.warn_days, args.critical_days))
    return _findings_out(args, findings, code)


def _check_all(args: argparse.Namespace) -> int:
    """For cron over many profiles: one summary line naming the profiles that need attention,
    and the worst exit code of them all."""
    from wizard.services import lifecycle

    async def one(session: Session) -> tuple[int, list[lifecycle.Finding]]:
        return await lifecycle.check(session, args.warn_days, args.critical_days)

    rows: list[dict[str, Any]] = []
    by_code: dict[int, list[str]] = {EXIT_OK: [], EXIT_WARNING: [], EXIT_CRITICAL: [], EXIT_ERROR: []}
    for name, result in _each_profile(args, one, "klarna-mtls check --all"):
        if isinstance(result, WizardError):
            code, row = EXIT_ERROR, {"profile": name, "exit_code": EXIT_ERROR, "error": str(result), "findings": []}
        else:
            code, findings = result
            row = {"profile": name, "exit_code": code, "findings": [asdict(f) for f in findings]}
        rows.append(row)
        by_code[code].append(name)
    worst = max((code for code, names in by_code.items() if names), default=EXIT_OK)
    emit(args, {"ok": worst < EXIT_ERROR, "exit_code": worst, "profiles": rows}, _check_summary(by_code))
    return worst


def _check_summary(by_code: dict[int, list[str]]) -> str:
    total = sum(len(names) for names in by_code.values())
    parts = [f"check --all: {total} profile{'s' if total != 1 else ''}", f"{len(by_code[EXIT_OK])} ok"]
    for code, word in ((EXIT_WARNING, "warning"), (EXIT_CRITICAL, "critical"), (EXIT_ERROR, "error")):
        names = by_code[code]
        if names:
            shown = ", ".join(names[:5]) + (f", +{len(names) - 5} more" if len(names) > 5 else "")
            parts.append(f"{len(names)} {word} ({shown})")
    return " · ".join(parts)


def cmd_doctor(args: argparse.Namespace) -> int:
    from wizard.services import lifecycle

    session = open_unlocked_session(args)
    if getattr(args, "cert", None) or getattr(args, "key", None):
        if not (args.cert and args.key):
            raise InputError("Give both --cert and --key.")
        from wizard.services.pair_doctor import doctor_pair

        findings = asyncio.run(doctor_pair(session, args.cert, args.key))
        return _findings_out(args, findings, lifecycle.worst(findings))
    from wizard.services.doctor import run_doctor

    findings = asyncio.run(run_doctor(session))
    return _findings_out(args, findings, lifecycle.worst(findings))


def cmd_export(args: argparse.Namespace) -> int:
    from wizard.core.interlocks import Action
    from wizard.services import install

    session = open_session(args)
    pair = install.current_pair(session.install_dir)
    session.require(Action.EXPORT, installed=pair is not None)
    assert pair is not None
    out: Path = args.out
    if args.format == "pem":
        written = [str(p) for p in install.export_pem_pair(pair, out)]
    elif args.format == "bundle":
        written = [str(install.export_bundle(pair, out))]
    elif args.format == "k8s":
        passphrase = os.environ.get(KEY_PASSPHRASE_ENV, "").encode() or None
        written = [str(install.export_k8s_secret(pair, out, args.name, args.namespace, key_passphrase=passphrase))]
    else:
        password = os.environ.get(EXPORT_PASSWORD_ENV) or _read_export_password()
        if not password:
            raise InputError(
                "A PKCS#12 export needs a password.", hint=f"Set {EXPORT_PASSWORD_ENV} or pipe it on standard input."
            )
        passphrase = os.environ.get(KEY_PASSPHRASE_ENV, "").encode() or None
        written = [str(install.export_pkcs12(pair, out, password.encode(), passphrase))]
    emit(args, {"ok": True, "format": args.format, "files": written}, "wrote " + ", ".join(written))
    return EXIT_OK


def _read_export_password() -> str:
    """On a terminal: a prompt, without echo (getpass). From a pipe: one line."""
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("PKCS#12 export password: ").strip()
    return sys.stdin.readline().strip()


def cmd_support_bundle(args: argparse.Namespace) -> int:
    from wizard.services import lifecycle

    session = open_session(args)
    bundle = lifecycle.support_bundle(session)
    if args.out:
        lifecycle.write_support_bundle(session, args.out)
    emit(args, bundle, f"support bundle for {session.profile}" + (f" written to {args.out}" if args.out else ""))
    if not args.json and not args.out:
        import json

        print(json.dumps(bundle, indent=2, sort_keys=True))
    return EXIT_OK


def cmd_profiles(args: argparse.Namespace) -> int:
    rows = []
    for name in Paths.from_env().profiles():
        session = open_session(argparse.Namespace(profile=name))
        rows.append(
            {
                "profile": name,
                "environment": session.environment,
                "account_id": session.evidence.account_id,
                "stage": session.model.stage.value,
            }
        )
    emit(
        args,
        {"ok": True, "profiles": rows},
        "\n".join(f"{r['profile']:20} {r['environment'] or '?':8} {r['stage']:12} {r['account_id']}" for r in rows)
        or "no profiles",
    )
    return EXIT_OK
