"""`klarna-mtls runtime …` and `klarna-mtls probe`: certificates per runtime, keys that never move.

On the runtime's host:   runtime request --name NAME  →  (file)  →  runtime install RESPONSE
On the managing machine: runtime issue REQUEST, runtime report FILE|DIR…, runtime add/remove/list
On any runtime (cron):   probe [--name NAME] [--cert FILE --key FILE] [--report-dir DIR]
Every request, response and report place may also be a Vault / OpenBao place, vault:MOUNT/PATH
(wizard/services/vault_exchange.py): nothing copied by hand, Vault's policies decide who writes where.
Exit codes: 0 ok, 1 warning (a report refused or skipped; an install whose certificate id Klarna
contradicts), 2 critical (not VALID), 3 error."""

from __future__ import annotations

import argparse
import asyncio
import json
import pwd
from dataclasses import asdict
from pathlib import Path
from typing import Any

from wizard.cli.common import add_common, add_new_certificate_wait, clean, emit, progress
from wizard.cli.session import key_passphrase, open_session, open_unlocked_session
from wizard.core import acceptance, runtimes
from wizard.core.diagnosis import diagnose
from wizard.core.errors import InputError
from wizard.core.findings import ExitCode
from wizard.core.runtimes import ReadinessReport
from wizard.services.session import Session
from wizard.services.waits import NEW_CERTIFICATE_LIMIT, Attempt, Event, PollLimits
from wizard.vault.place import is_vault_place, parse_place


def register(sub: Any) -> None:
    group = sub.add_parser("runtime", help="certificates per runtime; readiness reports").add_subparsers(
        dest="runtime_command", required=True
    )
    p = group.add_parser("request", help="on the runtime's host: make its key and a request file")
    add_common(p)
    p.add_argument("--name", required=True, help="the runtime's name, e.g. checkout-eu-1")
    p.add_argument("--out", help="request file or vault:MOUNT/PATH (default runtime-request-NAME.json)")
    p.add_argument("--new-key", action="store_true", help="make a new key even if a request is pending")
    for flag in ("--environment", "--account-id", "--base-url", "--ca-bundle", "--install-dir"):
        p.add_argument(flag, help="first use on this host: as for onboard")
    p.set_defaults(handler=cmd_request)
    p = group.add_parser("issue", help="on the managing machine: issue the certificate for a request file")
    add_common(p)
    p.add_argument("request", metavar="REQUEST", help="request file or vault:MOUNT/PATH")
    p.add_argument("--out", help="response file or vault:MOUNT/PATH (default runtime-response-NAME.json)")
    p.set_defaults(handler=cmd_issue)
    p = group.add_parser("install", help="on the runtime's host: install the certificate of a response file")
    add_common(p)
    p.add_argument("response", metavar="RESPONSE", help="response file or vault:MOUNT/PATH")
    p.add_argument("--api-key-stdin", action="store_true", help="read the API key from standard input")
    add_new_certificate_wait(p, NEW_CERTIFICATE_LIMIT)
    p.set_defaults(handler=cmd_install)
    p = group.add_parser("report", help="on the managing machine: record readiness reports")
    add_common(p)
    p.add_argument("sources", nargs="+", metavar="FILE|DIR|vault:MOUNT/PATH")
    p.add_argument(
        "--report-owner",
        action="append",
        default=[],
        metavar="USER",
        help="in a folder anyone can write to, also read files owned by USER (name or uid; repeatable)",
    )
    p.set_defaults(handler=cmd_report)
    p = group.add_parser("add", help="declare a runtime using a certificate this profile issued")
    add_common(p)
    p.add_argument("name")
    p.add_argument("--certificate-id", help="default: the certificate installed here")
    p.set_defaults(handler=cmd_add)
    p = group.add_parser("remove", help="stop counting a runtime (its certificate is not revoked)")
    add_common(p)
    p.add_argument("name")
    p.set_defaults(handler=cmd_remove)
    p = group.add_parser("list", help="declared runtimes and their readiness")
    add_common(p)
    p.set_defaults(handler=cmd_list)
    _register_probe(sub)


def _register_probe(sub: Any) -> None:
    p = sub.add_parser("probe", help="one call with a runtime's pair; prints a one-line JSON readiness report")
    p.add_argument("--profile", default=argparse.SUPPRESS, help="profile name")
    p.add_argument("--name", help="the runtime's name (default: the one given to runtime request)")
    p.add_argument("--cert", type=Path, help="certificate file (default: the pair installed here)")
    p.add_argument("--key", type=Path, help="private key file")
    p.add_argument(
        "--report-dir",
        help="also write the signed report to DIR/NAME.<random>.json (the older one removed), or to "
        "vault:MOUNT/PATH/NAME (a new version)",
    )
    p.add_argument("--api-key-stdin", action="store_true", help="read the API key from standard input")
    p.add_argument("--json", action="store_true", help="accepted for symmetry: the report is always one JSON line")
    for flag in ("--environment", "--account-id", "--base-url", "--ca-bundle"):
        p.add_argument(flag, help="where no profile exists yet (a container): as for onboard")
    p.set_defaults(handler=cmd_probe)


# ---------------------------------------------------------------- host side
def _configure_if_asked(args: argparse.Namespace, session: Session) -> None:
    if not (args.environment or args.account_id):
        return
    if not (args.environment and args.account_id):
        raise InputError("Give both --environment and --account-id.")
    same = (session.evidence.environment, session.evidence.account_id) == (args.environment, args.account_id)
    if same and args.base_url in (None, session.settings.base_url) and not getattr(args, "install_dir", None):
        return  # already so (a probe from cron passes the same flags every run)
    session.configure(
        args.environment,
        args.account_id,
        base_url=args.base_url or session.settings.base_url,
        ca_bundle=args.ca_bundle or session.settings.ca_bundle,
        install_dir=getattr(args, "install_dir", None) or session.settings.install_dir,
    )


def cmd_request(args: argparse.Namespace) -> int:
    from wizard.services.runtime_exchange import make_request
    from wizard.services.vault_exchange import after_a_change, prove_writable, vault_for, write_exchange_to

    session = open_session(args)
    target = args.out or f"runtime-request-{args.name}.json"
    with vault_for(target) as kv:
        prove_writable(kv, target)  # Vault refusing: refused before a key is made
        _configure_if_asked(args, session)
        session.set_key_passphrase(key_passphrase())
        request = asyncio.run(make_request(session, args.name, new_key=args.new_key))
        with after_a_change(
            f"The key for {args.name} is made and kept on this host.",
            "Run the same command again once Vault answers: it writes the same request (the key is reused).",
        ):
            out = write_exchange_to(kv, target, request, session.kept_folders())
    emit(
        args,
        {"ok": True, "request": out, "name": args.name, "public_key_id": request["public_key_id"]},
        f"wrote {out} (no secret: the key stays in this host's home)\n"
        f"next: on the managing machine, klarna-mtls runtime issue {_short(out)}",
    )
    return ExitCode.OK


def cmd_install(args: argparse.Namespace) -> int:
    from wizard.services.runtime_exchange import RESPONSE_KIND, install_response
    from wizard.services.vault_exchange import read_exchange_from, vault_for

    session = open_unlocked_session(args)
    with vault_for(args.response) as kv:
        response = read_exchange_from(kv, args.response, RESPONSE_KIND)
    limits = PollLimits.for_new_certificate(args.poll_interval, args.poll_limit)
    result = asyncio.run(install_response(session, response, limits=limits, on_event=lambda e: _proof_shown(args, e)))
    observation = result.observation
    valid = acceptance.accepted(observation.status)
    next_step = (
        "next: klarna-mtls probe --report-dir DIR|vault:MOUNT/PATH (cron)"
        if valid
        else " ".join(diagnose(observation.status).next_steps[:1])
    )
    emit(
        args,
        {
            "ok": True,
            "verification_status": observation.status,
            "fingerprint": observation.fingerprint,
            "install_dir": str(session.install_dir),
            "certificate_id": result.certificate_id,
            "certificate_id_note": result.id_note,
        },
        f"installed in {session.install_dir}/current; Klarna answered {observation.status}\n"
        f"certificate id: {result.id_note}\n{next_step}",
    )
    if not valid:
        return ExitCode.CRITICAL
    return ExitCode.WARNING if result.id_contradicted else ExitCode.OK


def _proof_shown(args: argparse.Namespace, event: Event) -> None:
    if isinstance(event, Attempt):
        progress(
            args,
            f"  proof call {event.n}: {event.status} ({event.elapsed:.0f} s of {event.limit:.0f} s)"
            + (
                ""
                if acceptance.accepted(event.status) or event.next_check_in is None
                else "; Klarna may take up to 5 minutes to accept a new certificate"
            ),
        )


def cmd_probe(args: argparse.Namespace) -> int:
    from wizard.services.runtime_exchange import pair_from_files
    from wizard.services.runtime_reports import probe, record

    if (args.cert is None) != (args.key is None):
        raise InputError("Give both --cert and --key, or neither (the pair installed here).")
    _configure_if_asked(args, open_session(args))  # e.g. a CronJob's fresh container
    session = open_unlocked_session(args)
    name = args.name or session.settings.runtime_name or session.profile
    pair = pair_from_files(args.cert, args.key) if args.cert else None
    report = asyncio.run(probe(session, name, pair))
    line = json.dumps(report.to_dict(), sort_keys=True)
    if args.report_dir:
        _write_report(args.report_dir, report)
    if name in session.state.runtimes:  # the managing machine probing one of its own runtimes
        try:
            record(session, report)
            session.save()
        except InputError:
            pass  # a report this profile would refuse is still printed, not recorded
    print(line, flush=True)
    return ExitCode.OK if acceptance.accepted(report.status) else ExitCode.CRITICAL


def _write_report(where: str, report: ReadinessReport) -> None:
    """The signed report into a shared folder, or a new version of vault:…/RUNTIME."""
    from wizard.services.runtime_reports import write_report
    from wizard.services.vault_exchange import vault_for, write_report_to

    if not is_vault_place(where):
        write_report(Path(where), report)
        return
    with vault_for(where) as kv:
        assert kv is not None
        write_report_to(kv, parse_place(where), report)


def _short(where: str) -> str:
    """A file by its name (it is looked for beside the command), a Vault place in full."""
    return where if is_vault_place(where) else Path(where).name


# ---------------------------------------------------------------- managing side
def cmd_issue(args: argparse.Namespace) -> int:
    from wizard.services.enforcement_timeline import enforcement_notice
    from wizard.services.runtime_exchange import REQUEST_KIND, issue_for_request
    from wizard.services.vault_exchange import (
        after_a_change,
        prove_writable,
        read_exchange_from,
        vault_for,
        write_exchange_to,
    )

    session = open_unlocked_session(args)
    with vault_for(args.request, args.out) as kv:
        request = read_exchange_from(kv, args.request, REQUEST_KIND)
        prove_writable(kv, args.out)  # Vault refusing: refused before a certificate is issued
        response = asyncio.run(issue_for_request(session, request))
        name = response["name"]
        with after_a_change(
            f"Certificate {response['certificate_id']} is issued to {name} and recorded here.",
            "Run the same command again once Vault answers: it writes the response for that certificate "
            "without issuing another.",
        ):
            out = write_exchange_to(kv, args.out or f"runtime-response-{name}.json", response, session.kept_folders())
    notice = asyncio.run(enforcement_notice(session, name))  # a scheduled enforcement it must be ready for
    emit(
        args,
        {
            "ok": True,
            "response": out,
            "name": name,
            "certificate_id": response["certificate_id"],
            "fingerprint": response["fingerprint"],
            "enforcement_notice": notice,
        },
        f"issued {response['certificate_id']} for runtime {name}; wrote {out}\n"
        f"next: on {name}, klarna-mtls runtime install {_short(out)}" + (f"\n{clean(notice)}" if notice else ""),
    )
    return ExitCode.OK


def cmd_report(args: argparse.Namespace) -> int:
    from wizard.services.runtime_reports import record
    from wizard.services.vault_exchange import collect_reports, vault_for

    session = open_session(args)
    if not session.evidence.account_id:
        raise InputError(
            f"Profile '{session.profile}' has not been set up.",
            hint="Record reports in the managing machine's profile (--profile).",
        )
    results, code = [], ExitCode.OK
    with vault_for(*args.sources) as kv:
        reports = collect_reports(kv, args.sources, [_uid(user) for user in args.report_owner])
    for found in reports:
        if found.data is None:
            results.append({"file": str(found.path), "recorded": False, "outcome": found.problem})
            code = ExitCode.WARNING
            continue
        try:
            report = ReadinessReport.from_dict(found.data)
            outcome = record(session, report)
            results.append({"file": str(found.path), "runtime": report.runtime, "recorded": True, "outcome": outcome})
        except InputError as error:
            results.append({"file": str(found.path), "recorded": False, "outcome": f"refused: {error}"})
            code = ExitCode.WARNING
    session.save()
    session.audit.record("runtime_reports", results=[{k: v for k, v in r.items() if k != "file"} for r in results])
    emit(
        args,
        {"ok": True, "exit_code": code, "reports": results, **runtime_view(session)},
        "\n".join(f"{r['file']}: {r['outcome']}" for r in results) + "\n" + runtime_text(session),
    )
    return code


def _uid(user: str) -> int:
    """A user named by --report-owner: a uid, or a name on this machine."""
    if user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise InputError(f"No user named {user[:40]} on this machine.", hint="Give the user's uid instead.") from None


def cmd_add(args: argparse.Namespace) -> int:
    from wizard.services.runtime_exchange import declare

    session = open_session(args)
    record = declare(session, args.name, args.certificate_id)
    emit(
        args,
        {"ok": True, "runtime": record.to_dict()},
        f"runtime {record.name} declared with {record.certificate_id}; it counts for enforcement once it reports VALID",
    )
    return ExitCode.OK


def cmd_remove(args: argparse.Namespace) -> int:
    session = open_session(args)
    record = session.state.runtimes.pop(args.name, None)
    if record is None:
        raise InputError(f"No runtime named {args.name} in this profile.")
    session.save()
    session.audit.record("runtime_removed", runtime=args.name, certificate_id=record.certificate_id)
    emit(
        args,
        {"ok": True, "removed": args.name},
        f"runtime {args.name} no longer counted; its certificate {record.certificate_id} is still active "
        "(revoke it with certs revoke once nothing uses it)",
    )
    return ExitCode.OK


def cmd_list(args: argparse.Namespace) -> int:
    session = open_session(args)
    view = runtime_view(session)
    emit(args, {"ok": True, **view}, runtime_text(session))
    return ExitCode.OK if all(r["ready"] for r in view["runtimes"]) else ExitCode.WARNING


# ---------------------------------------------------------------- shown by status and list
def runtime_view(session: Session, listed: runtimes.Listing | None = None) -> dict[str, Any]:
    """The runtimes' rows; ``listed``: the account's listing read just now (status), if any."""
    now = session.clock()
    return {
        "runtimes": [asdict(r) for r in runtimes.rows(session.state.runtimes, now, listed)],
        "runtimes_summary": runtimes.summary(session.state.runtimes, now, listed),
    }


def runtime_text(session: Session, listed: runtimes.Listing | None = None) -> str:
    now = session.clock()
    lines = [runtimes.summary(session.state.runtimes, now, listed)]
    for row in runtimes.rows(session.state.runtimes, now, listed):
        certificate = "…" + row.certificate_id[-12:] if row.certificate_id else "-"
        lines.append(  # names and reports come from other machines' files: one line each, as text
            clean(
                f"  {row.name:20} {certificate:13} …{row.fingerprint_suffix:8} "
                f"{row.status or 'no report':12} {row.reported_at or '':20} "
                + ("ready" if row.ready else f"NOT READY: {row.reason}")
            )
        )
    return "\n".join(lines)
