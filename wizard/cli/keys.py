"""`klarna-mtls keys …`: per-service API keys and rotation of the key this tool uses.

`keys create` keeps the new secret in the profile's secret store as ``<profile>#key:<credential_id>``
(``--store``, the default), or prints it on standard output only with ``--show-secret-once``.
Exit codes as elsewhere: 0 ok, 1 warning, 2 critical, 3 error (a refused interlock is an error)."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import asdict
from typing import TYPE_CHECKING

from wizard.cli.common import add_common, clean, emit, progress
from wizard.cli.session import open_unlocked_session
from wizard.core.errors import InputError, SecretStoreError
from wizard.core.findings import ExitCode
from wizard.services.session import Session
from wizard.services.waits import Event, Step

if TYPE_CHECKING:
    from wizard.secrets.base import SecretStore
    from wizard.services.api_keys import KeyRow


def add_key_id(parser: argparse.ArgumentParser) -> None:
    """--key-id once named the tool's key on any keys command (a listing could swap it): now
    refused there, pointing at keys set-own, so an old script stops instead of being ignored."""
    parser.add_argument("--key-id", help=argparse.SUPPRESS)


LOST_KEY_HELP = (
    "when an earlier keys create lost its answer: what to do with the key it made (found by its "
    "description and creation time; its secret was never received): record it (it stays active) or disable it"
)


def add_lost_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lost-key", choices=("record", "disable"), help=LOST_KEY_HELP)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("keys", help="API keys: one per service").add_subparsers(dest="keys_command", required=True)
    p = group.add_parser("list", help="the account's API keys (masked); * marks the one this tool uses")
    add_common(p)
    add_key_id(p)
    p.set_defaults(handler=cmd_list)

    p = group.add_parser("create", help="create a key for a named service")
    add_common(p)
    p.add_argument("--description", required=True, help="the service that will use the key")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--store",
        action="store_true",
        help="keep the secret in the profile's secret store as <profile>#key:<id> (default)",
    )
    where.add_argument(
        "--show-secret-once",
        action="store_true",
        help="print the new secret on standard output instead (Klarna shows it only once)",
    )
    add_lost_key(p)
    add_key_id(p)
    p.set_defaults(handler=cmd_create)
    _register_reconcile(group)
    _register_set_own(group)

    p = group.add_parser("describe", help="change a key's description")
    add_common(p)
    p.add_argument("credential_id")
    p.add_argument("--description", required=True)
    p.set_defaults(handler=cmd_describe)

    p = group.add_parser("disable", help="disable a key (refused for the key this tool uses)")
    add_common(p)
    p.add_argument("credential_id")
    add_key_id(p)
    p.add_argument(
        "--not-the-tools-key",
        action="store_true",
        help="confirm the key is not the one klarna-mtls runs on (needed while that key's id is unknown)",
    )
    p.add_argument("--confirm-suffix", help="live profiles: the key's last four characters (as keys list shows)")
    p.set_defaults(handler=cmd_disable)

    p = group.add_parser("rotate", help="replace the key this tool uses, proving the new one first (resumable)")
    add_common(p)
    p.add_argument("--description", help="description of the tool's new key (default: klarna-mtls <profile>)")
    add_key_id(p)
    p.set_defaults(handler=cmd_rotate)


def _register_set_own(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = group.add_parser(
        "set-own", help="name the key this tool runs on (replacing a recorded one: type its last four characters)"
    )
    add_common(p)
    p.add_argument("credential_id")
    p.add_argument(
        "--confirm-suffix", help="when another key is recorded: the new key's last four characters (as keys list shows)"
    )
    p.set_defaults(handler=cmd_set_own)


def _register_reconcile(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = group.add_parser(
        "reconcile", help="settle a keys create whose answer was lost: record or disable the key it made"
    )
    add_common(p)
    add_lost_key(p)
    p.set_defaults(handler=cmd_reconcile)


def _store(session: Session) -> SecretStore:
    """The profile's own persistent store (the one the wizard put the key in)."""
    from wizard.secrets.resolve import open_profile_store, recorded_store

    try:
        return open_profile_store(recorded_store(session.evidence), session.paths)
    except SecretStoreError as error:
        raise InputError(error.message, hint=f"{error.hint} Or use --show-secret-once.") from None


def open_keys_session(args: argparse.Namespace) -> Session:
    """An unlocked session. The tool's key is named by keys set-own only, never as a side effect."""
    if getattr(args, "key_id", None):
        raise InputError(
            f"keys {args.keys_command} no longer names the key klarna-mtls runs on; nothing was changed.",
            hint=f"klarna-mtls keys set-own {args.key_id} --profile {args.profile} "
            "(replacing a recorded key asks for the new key's last four characters with --confirm-suffix).",
        )
    return open_unlocked_session(args)


def _line(row: KeyRow) -> str:
    mark = "*" if row.used_by_tool else " "
    initial = " (initial)" if row.is_initial else ""
    return clean(
        f"{mark} {row.credential_id}  {row.masked}  {row.status:8}  "
        f"{row.description or '(no description)'}{initial}  last used {row.last_used_at or 'never'}"
    )


def cmd_list(args: argparse.Namespace) -> int:
    from wizard.services import api_keys

    session = open_keys_session(args)
    rows = asyncio.run(api_keys.list_keys(session))
    known = session.state.tool_key_id is not None
    emit(
        args,
        {"ok": True, "keys": [asdict(r) for r in rows], "tool_key_known": known},
        "\n".join(
            [_line(r) for r in rows]
            + [
                "* = the key this tool uses"
                if known
                else "the key this tool uses is unknown: name it with keys set-own <id>"
            ]
        ),
    )
    return ExitCode.OK


def cmd_create(args: argparse.Namespace) -> int:
    from wizard.services import api_keys

    session = open_keys_session(args)
    store = None if args.show_secret_once else _store(session)
    if session.state.flows.key_creation is not None:
        progress(args, "keys create: an earlier keys create lost its answer; looking for the key it made first")
        said = asyncio.run(api_keys.reconcile_lost_creation(session, args.lost_key, store))
        progress(args, clean(f"keys create: {said}"))
    row, secret = asyncio.run(api_keys.create_key(session, args.description, store=store))
    payload = {"ok": True, "key": asdict(row)}
    if store is None:  # --show-secret-once
        payload["secret"] = secret.reveal()  # asked for explicitly: the one place it is shown
        emit(
            args,
            payload,
            f"created {row.credential_id}\n{secret.reveal()}\n(shown once and stored nowhere: keep it now)",
        )
    else:
        payload["stored_as"] = api_keys.stored_name(session.profile, row.credential_id)
        emit(
            args,
            payload,
            f"created {row.credential_id} ({row.masked}); "
            f"secret kept in {store.display_name} as {payload['stored_as']}",
        )
    return ExitCode.OK


def cmd_set_own(args: argparse.Namespace) -> int:
    from wizard.services import api_keys

    session = open_keys_session(args)
    row = asyncio.run(api_keys.record_tool_key(session, args.credential_id, confirm_suffix=args.confirm_suffix))
    emit(
        args,
        {"ok": True, "key": asdict(row), "tool_key_id": row.credential_id},
        clean(f"klarna-mtls runs on {row.credential_id} ({row.masked})"),
    )
    return ExitCode.OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    from wizard.secrets.resolve import open_profile_store
    from wizard.services import api_keys

    session = open_keys_session(args)
    try:
        store: SecretStore | None = open_profile_store(session.evidence.secret_backend, session.paths)
    except SecretStoreError:
        store = None  # only to see whether a secret was kept after all
    said = asyncio.run(api_keys.reconcile_lost_creation(session, args.lost_key, store))
    said = said or "No keys create is waiting for its answer; nothing to do."
    emit(args, {"ok": True, "message": said}, clean(said))
    return ExitCode.OK


def cmd_describe(args: argparse.Namespace) -> int:
    from wizard.services import api_keys

    session = open_keys_session(args)
    row = asyncio.run(api_keys.describe_key(session, args.credential_id, args.description))
    emit(args, {"ok": True, "key": asdict(row)}, _line(row))
    return ExitCode.OK


def cmd_disable(args: argparse.Namespace) -> int:
    from wizard.services import api_keys

    session = open_keys_session(args)
    row = asyncio.run(
        api_keys.disable_key(
            session, args.credential_id, not_the_tools_key=args.not_the_tools_key, confirm_suffix=args.confirm_suffix
        )
    )
    emit(args, {"ok": True, "key": asdict(row), "disabled": row.credential_id}, f"disabled {row.credential_id}")
    return ExitCode.OK


def _show_step(args: argparse.Namespace, event: Event) -> None:
    if isinstance(event, Step):
        progress(args, f"keys rotate: {event.step}")


def cmd_rotate(args: argparse.Namespace) -> int:
    from wizard.services import api_key_rotation, api_keys

    session = open_keys_session(args)
    store = _store(session)
    resumed = api_key_rotation.rotation_state(session)
    if resumed:
        progress(args, f"keys rotate: resuming an interrupted rotation at '{resumed.step}'")
    new_id = asyncio.run(
        api_key_rotation.rotate_tool_key(
            session, store, description=args.description, on_event=lambda event: _show_step(args, event)
        )
    )
    rows = asyncio.run(api_keys.list_keys(session))
    tool = next((r for r in rows if r.used_by_tool), None)
    ok = tool is not None and tool.credential_id == new_id
    emit(
        args,
        {
            "ok": ok,
            "new_credential_id": new_id,
            "api_key": session.evidence.api_key_masked,
            "keys": [asdict(r) for r in rows],
        },
        f"the tool now uses {new_id} ({session.evidence.api_key_masked}); the old key is disabled"
        if ok
        else f"rotation finished but {new_id} is not listed as the tool's key: run keys list",
    )
    return ExitCode.OK if ok else ExitCode.WARNING
