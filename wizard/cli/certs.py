"""`klarna-mtls certs list|revoke` and `klarna-mtls rotate`: the account's certificates, revoking
one through the interlock, and a new pair verified before it replaces the current one."""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

from wizard.cli.common import add_common, clean, emit, progress, seconds
from wizard.cli.export import add_also_export, also_export, prove_also_export
from wizard.cli.session import open_unlocked_session
from wizard.cli.status import cmd_status
from wizard.core.findings import ExitCode
from wizard.services.session import Session
from wizard.services.waits import Attempt, Event, Step

if TYPE_CHECKING:
    from wizard.services.certificate_rotation import RotationProgress

REVOKE_SCOPE = (
    "the revoke interlock only knows this profile's installs on this machine; other profiles, "
    "other machines and exported copies still presenting that certificate stop working"
)
GRACE_REPORT_EVERY = 60.0  # seconds between the grace period's progress lines


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add_also_export(p)
    p.set_defaults(handler=cmd_rotate)


def cmd_revoke(args: argparse.Namespace) -> int:
    from wizard.services.revocation import revoke

    session = open_unlocked_session(args)
    status = asyncio.run(revoke(session, args.credential_id, confirm_suffix=args.confirm_suffix))
    emit(
        args,
        {"ok": True, "revoked": args.credential_id, "note": REVOKE_SCOPE, **status.to_dict()},
        clean(f"revoked {args.credential_id}") + f"\nnote: {REVOKE_SCOPE}",
    )
    return ExitCode.OK


def cmd_rotate(args: argparse.Namespace) -> int:
    from wizard.services import certificate_rotation

    session = open_unlocked_session(args)
    prove_also_export(args, session)  # a Vault copy that could not be kept current: refused before rotating

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
    retire_later = bool(grace or args.also_export)  # an exported copy is written before the old one goes

    async def rotate() -> RotationProgress:
        async with session.clients.connections():  # one connection per certificate across the steps
            return await certificate_rotation.rotate(
                session,
                retire_old=args.retire_old and not retire_later,
                verify_interval=args.poll_interval,
                on_event=show,
            )

    result = asyncio.run(rotate())
    also_export(args, session, result.old_certificate_id if args.retire_old else None)
    if (
        args.retire_old
        and retire_later
        and result.old_certificate_id
        and result.old_certificate_id != result.new_certificate_id
    ):
        _retire_after_grace(args, session, result.old_certificate_id, grace)
    emit(
        args,
        {"ok": True, **asdict(result)},
        f"rotated: {result.old_certificate_id} → {result.new_certificate_id} ({result.new_fingerprint})",
    )
    return ExitCode.OK


def _retire_after_grace(args: argparse.Namespace, session: Session, old_id: str, grace: float) -> None:
    """Wait ``grace`` seconds (services and exported copies switch meanwhile), then revoke the old
    certificate through the same interlock as `certs revoke`."""
    from wizard.services.revocation import confirm_suffix_for, revoke

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
    asyncio.run(revoke(session, old_id, confirm_suffix=confirm_suffix_for(session, old_id)))
    progress(args, f"rotate: revoked {old_id} ({REVOKE_SCOPE})")
