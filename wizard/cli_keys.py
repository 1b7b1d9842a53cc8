"""`klarna-mtls keys …`: per-service API keys and rotation of the key this tool uses."""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import asdict

from . import keys
from .cli import EXIT_OK, add_common, emit, progress
from .cli_onboard import STORE_PASSPHRASE_ENV, open_unlocked_session
from .errors import InputError


def register(sub) -> None:
    group = sub.add_parser("keys", help="API keys: one per service").add_subparsers(dest="keys_command", required=True)
    p = group.add_parser("list", help="the account's API keys (masked)")
    add_common(p)
    p.set_defaults(handler=cmd_list)
    p = group.add_parser("create", help="create a key for a named service")
    add_common(p)
    p.add_argument("--description", required=True, help="the service that will use the key")
    p.add_argument("--show-secret-once", action="store_true",
                   help="print the new secret on standard output (instead of the secret store)")
    p.set_defaults(handler=cmd_create)
    p = group.add_parser("disable", help="disable a key (refused for the key this tool uses)")
    add_common(p)
    p.add_argument("credential_id")
    p.set_defaults(handler=cmd_disable)
    p = group.add_parser("rotate", help="replace the key this tool uses, proving the new one first")
    add_common(p)
    p.add_argument("--description", help="description of the tool's new key")
    p.set_defaults(handler=cmd_rotate)


def _store(session):
    from . import secrets

    kind = session.evidence.secret_backend
    if kind not in ("keyring", "encrypted-file", "sandbox"):
        raise InputError(
            f"The profile's key is not kept in a persistent store ({kind}).",
            hint="Store it in the OS keyring or the encrypted file (the wizard's Credentials step).",
        )
    passphrase = os.environ.get(STORE_PASSPHRASE_ENV, "").encode() or None
    return secrets.open_store(kind, session.paths, passphrase=passphrase)


def cmd_list(args: argparse.Namespace) -> int:
    session = open_unlocked_session(args)
    rows = asyncio.run(keys.list_keys(session))
    emit(args, {"ok": True, "keys": [asdict(r) for r in rows]},
         "\n".join(f"{'*' if r.used_by_tool else ' '} {r.credential_id}  {r.masked}  {r.status:8} {r.description or '(no description)'}"
                   for r in rows))
    return EXIT_OK


def cmd_create(args: argparse.Namespace) -> int:
    session = open_unlocked_session(args)
    store = None if args.show_secret_once else _store(session)
    name = f"{session.profile}#key:{{id}}"
    row, secret = asyncio.run(keys.create_key(session, args.description, store=store))
    payload = {"ok": True, "key": asdict(row)}
    if args.show_secret_once:
        payload["secret"] = secret.reveal()  # asked for explicitly; shown once, never stored
        emit(args, payload, f"{row.credential_id}\n{secret.reveal()}\n(shown once: store it now)")
    else:
        where = name.format(id=row.credential_id)
        payload["stored_as"] = where
        emit(args, payload, f"created {row.credential_id} ({row.masked}); secret kept in {store.display_name} as {where}")
    return EXIT_OK


def cmd_disable(args: argparse.Namespace) -> int:
    session = open_unlocked_session(args)
    asyncio.run(keys.disable_key(session, args.credential_id))
    emit(args, {"ok": True, "disabled": args.credential_id}, f"disabled {args.credential_id}")
    return EXIT_OK


def cmd_rotate(args: argparse.Namespace) -> int:
    session = open_unlocked_session(args)
    store = _store(session)
    new_id = asyncio.run(keys.rotate_tool_key(session, store, description=args.description,
                                              on_step=lambda step: progress(args, f"keys rotate: {step}")))
    emit(args, {"ok": True, "new_credential_id": new_id, "api_key": session.evidence.api_key_masked},
         f"the tool now uses {new_id} ({session.evidence.api_key_masked}); the old key is disabled")
    return EXIT_OK
