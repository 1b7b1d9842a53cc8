"""`klarna-mtls certs list|revoke` and `klarna-mtls rotate`: the account's certificates, revoking
one through the interlock, and a new pair verified before it replaces the current one."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import asdict, replace
from typing import TYPE_CHECKING

from wizard.cli.common import add_common, add_new_certificate_wait, clean, emit, progress, seconds
from wizard.cli.export import add_also_export, also_export, prove_also_export
from wizard.cli.session import open_unlocked_session
from wizard.cli.status import cmd_status
from wizard.core import acceptance
from wizard.core.findings import ExitCode
from wizard.services.session import Session
from wizard.services.waits import NEW_CERTIFICATE_LIMIT, Attempt, Event, Started, Step, Waiting

if TYPE_CHECKING:
    from wizard.services.certificate_rotation import RotationProgress

REVOKE_SCOPE = (
    "the revoke interlock knows the installs of this machine's profiles of this account and this "
    "profile's declared runtimes; other machines and exported copies still presenting that certificate stop working"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    certs = sub.add_parser("certs", help="list or revoke certificates").add_subparsers(
        dest="certs_command", required=True
    )
    p = certs.add_parser("list", help="the account's certificates")
    add_common(p)
    p.set_defaults(handler=cmd_status)
    p = certs.add_parser(
        "revoke",
        help="revoke a certificate (refused when it could lock you out of this machine's "
        "installs of the account; other machines and exported copies are not known)",
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
    add_new_certificate_wait(p, NEW_CERTIFICATE_LIMIT)
    p.add_argument(
        "--abandon",
        action="store_true",
        help="end an unfinished rotation where it stands: the certificate in use stays, one issued "
        "for the rotation is recorded as unused (revoke it with certs revoke), and the next rotate "
        "starts afresh",
    )
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
    if args.abandon:
        return _abandon(args, session)
    flow = session.state.flows.rotation
    if flow is not None and flow.step != "done":
        progress(args, f"rotate: resuming the unfinished rotation at '{flow.step}' (rotate --abandon ends it)")
    prove_also_export(args, session)  # a Vault copy that could not be kept current: refused before rotating
    retire_later = bool(args.retire_old and args.also_export)  # the exported copy is written before the old one goes
    resuming_retirement = flow is not None and flow.step == "retire"
    if resuming_retirement and flow is not None:  # switched already: the copy current before the old one goes
        also_export(args, session, flow.old_certificate_id)

    async def rotate() -> RotationProgress:
        async with session.clients.connections():  # one connection per certificate across the steps
            return await certificate_rotation.rotate(
                session,
                retire_old=args.retire_old and not retire_later,
                grace=args.grace if args.retire_old and not retire_later else 0.0,
                verify_interval=args.poll_interval,
                verify_limit=args.poll_limit,
                on_event=lambda event: _show(args, session, event),
            )

    try:
        result = asyncio.run(rotate())
    except KeyboardInterrupt:
        _interrupted(args, session)
        raise
    for note in result.notes:
        progress(args, clean(f"rotate: note: {note}"))
    if not resuming_retirement:
        also_export(args, session, result.old_certificate_id if args.retire_old else None)
    if retire_later and not result.retired and result.old_certificate_id not in (None, result.new_certificate_id):
        retire_after_grace(args, session, result.old_certificate_id, args.grace)
        result = replace(result, retired=True)
    retired = f"; revoked {result.old_certificate_id}" if result.retired else ""
    accepted = f", {acceptance.in_words(result.verification)}" if result.verification else ""
    emit(
        args,
        {"ok": True, **asdict(result)},
        f"rotated: {result.old_certificate_id} → {result.new_certificate_id} ({result.new_fingerprint})"
        f"{accepted}{retired}",
    )
    return ExitCode.OK


def _show(args: argparse.Namespace, session: Session, event: Event, command: str = "rotate") -> None:
    from wizard.services.certificate_rotation import GRACE_TASK

    old = session.state.flows.rotation.old_certificate_id if session.state.flows.rotation else None
    if isinstance(event, Step):
        progress(args, f"{command}: {event.step}")
    elif isinstance(event, Attempt):
        progress(
            args,
            f"  verify attempt {event.n} of {event.max_attempts}: {event.status}"
            f" ({event.elapsed:.0f} s of {event.limit:.0f} s){_settling(event)}",
        )
    elif isinstance(event, Started) and event.task == GRACE_TASK:
        progress(
            args,
            f"{command}: the new certificate is in use; revoking {old} in {event.limit:g} s "
            f"(Ctrl+C pauses; the next {command} finishes it, rotate --abandon keeps the old certificate)",
        )
    elif isinstance(event, Waiting) and event.task == GRACE_TASK:
        progress(args, f"{command}: {event.limit - event.elapsed:g} s left before revoking {old}")


def _settling(event: Attempt) -> str:
    """Said while a new certificate is not accepted yet and another check follows."""
    waiting = not acceptance.accepted(event.status) and event.next_check_in is not None
    return (
        "; Klarna may take up to 5 minutes to accept a new certificate, the current pair stays in use"
        if waiting
        else ""
    )


def _interrupted(args: argparse.Namespace, session: Session, command: str = "rotate") -> None:
    """Ctrl+C: what stands now, above all an old certificate whose retirement is journaled."""
    flow = session.state.flows.rotation
    if flow is None or flow.step != "retire" or not flow.old_certificate_id:
        return
    old = flow.old_certificate_id
    progress(
        args,
        f"{command}: interrupted; {old} stays active for now. klarna-mtls {command} --profile {session.profile} "
        f"finishes retiring it (after what is left of the grace period); rotate --abandon keeps it; or revoke "
        f"it yourself once its users have switched: klarna-mtls certs revoke --profile {session.profile} {old}",
    )


def _abandon(args: argparse.Namespace, session: Session) -> int:
    from wizard.services.rotation_endings import abandon_rotation

    ended = asyncio.run(abandon_rotation(session))
    emit(args, {"ok": True, **asdict(ended)}, clean(ended.message))
    return ExitCode.OK


def retire_after_grace(
    args: argparse.Namespace, session: Session, old_id: str, grace: float, *, command: str = "rotate"
) -> None:
    """Revoke the old certificate ``grace`` seconds from now (services and exported copies switch
    meanwhile), through the revoke interlock. For a retirement that waited on something outside
    the rotation (an exported copy, a deploy hook): it is journaled now as the rotation's retire
    step, so a run killed or interrupted during the grace period is finished by the next
    ``rotate`` or ``renew``, after what is left of it."""
    from wizard.services import certificate_rotation

    certificate_rotation.schedule_retirement(session, old_id, grace)
    finish_retirement(args, session, old_id, command=command)


def finish_retirement(args: argparse.Namespace, session: Session, old_id: str, *, command: str = "rotate") -> None:
    """The retirement journaled by ``schedule_retirement``: what is left of its grace, then the revoke."""
    from wizard.services import certificate_rotation

    try:
        asyncio.run(certificate_rotation.rotate(session, on_event=lambda event: _show(args, session, event, command)))
    except KeyboardInterrupt:
        _interrupted(args, session, command)
        raise
    progress(args, f"{command}: retired {old_id} ({REVOKE_SCOPE})")
