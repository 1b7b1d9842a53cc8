"""`klarna-mtls profiles list`: the profiles on this machine, their environment, account and stage."""

from __future__ import annotations

import argparse

from wizard.cli.common import add_common, emit
from wizard.cli.session import open_session
from wizard.core.findings import ExitCode
from wizard.core.paths import Paths


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    profiles = sub.add_parser("profiles", help="profiles on this machine").add_subparsers(
        dest="profiles_command", required=True
    )
    p = profiles.add_parser("list")
    add_common(p)
    p.set_defaults(handler=cmd_profiles)


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
    return ExitCode.OK
