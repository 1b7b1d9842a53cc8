"""`klarna-mtls runtime …` and `klarna-mtls probe`: certificates per runtime, keys that never move.

On the runtime's host:   runtime request --name NAME  →  (file)  →  runtime install RESPONSE
On the managing machine: runtime issue REQUEST, runtime report FILE|DIR…, runtime add/remove/list
On any runtime (cron):   probe [--name NAME] [--cert FILE --key FILE] [--report-dir DIR]
Exit codes: 0 ok, 1 warning (a report refused), 2 critical (not VALID), 3 error."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from wizard.cli.common import add_common, clean, emit
from wizard.cli.session import key_passphrase, open_session, open_unlocked_session
from wizard.core import runtimes
from wizard.core.diagnosis import diagnose
from wizard.core.errors import InputError
from wizard.core.findings import ExitCode
from wizard.core.runtimes import REPORT_KIND, ReadinessReport, record_report
from wizard.services.session import Session


def register(sub: Any) -> None:
    group = sub.add_parser("runtime", help="certificates per runtime; readiness reports").add_subparsers(
        dest="runtime_command", required=True
    )
    p = group.add_parser("request", help="on the runtime's host: make its key and a request file")
    add_common(p)
    p.add_argument("--name", required=True, help="the runtime's name, e.g. checkout-eu-1")
    p.add_argument("--out", type=Path, help="request file (default runtime-request-NAME.json)")
    p.add_argument("--new-key", action="store_true", help="make a new key even if a request is pending")
    for flag in ("--environment", "--account-id", "--base-url", "--ca-bundle", "--install-dir"):
        p.add_argument(flag, help="first use on this host: as for onboard")
    p.set_defaults(handler=cmd_request)
    p = group.add_parser("issue", help="on the managing machine: issue the certificate for a request file")
    add_common(p)
    p.add_argument("request", type=Path)
    p.add_argument("--out", type=Path, help="response file (default runtime-response-NAME.json)")
    p.set_defaults(handler=cmd_issue)
    p = group.add_parser("install", help="on the runtime's host: install the certificate of a response file")
    add_common(p)
    p.add_argument("response", type=Path)
    p.add_argument("--api-key-stdin", action="store_true", help="read the API key from standard input")
    p.set_defaults(handler=cmd_install)
    p = group.add_parser("report", help="on the managing machine: record readiness reports")
    add_common(p)
    p.add_argument("sources", nargs="+", type=Path, metavar="FILE|DIR")
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
    p.add_argument("--report-dir", type=Path, help="also write the report to DIR/NAME.json (replaced each run)")
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
    from wizard.services.runtime_exchange import make_request, write_exchange

    session = open_session(args)
    _configure_if_asked(args, session)
    session.set_key_passphrase(key_passphrase())
    request = asyncio.run(make_request(session, args.name, new_key=args.new_key))
    out = write_exchange(args.out or Path(f"runtime-request-{args.name}.json"), request)
    emit(
        args,
        {"ok": True, "request": str(out), "name": args.name, "public_key_id": request["public_key_id"]},
        f"wrote {out} (no secret: the key stays in this host's home)\n"
        f"next: on the managing machine, klarna-mtls runtime issue {out.name}",
    )
    return ExitCode.OK


def cmd_install(args: argparse.Namespace) -> int:
    from wizard.services.runtime_exchange import RESPONSE_KIND, install_response, read_exchange

    session = open_unlocked_session(args)
    observation = asyncio.run(install_response(session, read_exchange(args.response, RESPONSE_KIND)))
    valid = observation.status == "VALID"
    next_step = (
        "next: klarna-mtls probe --report-dir DIR (cron)"
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
        },
        f"installed in {session.install_dir}/current; Klarna answered {observation.status}\n{next_step}",
    )
    return ExitCode.OK if valid else ExitCode.CRITICAL


def cmd_probe(args: argparse.Namespace) -> int:
    from wizard.services.runtime_exchange import pair_from_files, probe, write_exchange

    if (args.cert is None) != (args.key is None):
        raise InputError("Give both --cert and --key, or neither (the pair installed here).")
    _configure_if_asked(args, open_session(args))  # e.g. a CronJob's fresh container
    session = open_unlocked_session(args)
    name = args.name or session.settings.runtime_name or session.profile
    pair = pair_from_files(args.cert, args.key) if args.cert else None
    report = asyncio.run(probe(session, name, pair))
    line = json.dumps(report.to_dict(), sort_keys=True)
    if args.report_dir:
        write_exchange(args.report_dir / f"{name}.json", report.to_dict())
    if name in session.state.runtimes:  # the managing machine probing one of its own runtimes
        try:
            record_report(session.state, report, session.evidence.account_id)
            session.save()
        except InputError:
            pass  # a report this profile would refuse is still printed, not recorded
    print(line, flush=True)
    return ExitCode.OK if report.status == "VALID" else ExitCode.CRITICAL


# ---------------------------------------------------------------- managing side
def cmd_issue(args: argparse.Namespace) -> int:
    from wizard.services.runtime_exchange import REQUEST_KIND, issue_for_request, read_exchange, write_exchange

    session = open_unlocked_session(args)
    response = asyncio.run(issue_for_request(session, read_exchange(args.request, REQUEST_KIND)))
    name = response["name"]
    out = write_exchange(args.out or Path(f"runtime-response-{name}.json"), response)
    emit(
        args,
        {
            "ok": True,
            "response": str(out),
            "name": name,
            "certificate_id": response["certificate_id"],
            "fingerprint": response["fingerprint"],
        },
        f"issued {response['certificate_id']} for runtime {name}; wrote {out}\n"
        f"next: on {name}, klarna-mtls runtime install {out.name}",
    )
    return ExitCode.OK


def _report_files(sources: list[Path]) -> list[Path]:
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files += sorted(p for p in source.iterdir() if p.suffix == ".json" and p.is_file())
        else:
            files.append(source)
    return files


def cmd_report(args: argparse.Namespace) -> int:
    from wizard.services.runtime_exchange import read_exchange

    session = open_session(args)
    if not session.evidence.account_id:
        raise InputError(
            f"Profile '{session.profile}' has not been set up.",
            hint="Record reports in the managing machine's profile (--profile).",
        )
    results, code = [], ExitCode.OK
    for path in _report_files(args.sources):
        try:
            report = ReadinessReport.from_dict(read_exchange(path, REPORT_KIND))
            results.append(
                {
                    "file": str(path),
                    "runtime": report.runtime,
                    "recorded": True,
                    "outcome": record_report(session.state, report, session.evidence.account_id),
                }
            )
        except InputError as error:
            results.append({"file": str(path), "recorded": False, "outcome": f"refused: {error}"})
            code = ExitCode.WARNING
    session.save()
    session.audit.record("runtime_reports", results=[{k: v for k, v in r.items() if k != "file"} for r in results])
    emit(
        args,
        {"ok": True, "exit_code": code, "reports": results, **runtime_view(session)},
        "\n".join(f"{r['file']}: {r['outcome']}" for r in results) + "\n" + runtime_text(session),
    )
    return code


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
def runtime_view(session: Session) -> dict[str, Any]:
    now = session.clock()
    return {
        "runtimes": [asdict(r) for r in runtimes.rows(session.state.runtimes, now)],
        "runtimes_summary": runtimes.summary(session.state.runtimes, now),
    }


def runtime_text(session: Session) -> str:
    now = session.clock()
    lines = [runtimes.summary(session.state.runtimes, now)]
    for row in runtimes.rows(session.state.runtimes, now):
        certificate = "…" + row.certificate_id[-12:] if row.certificate_id else "-"
        lines.append(  # names and reports come from other machines' files: one line each, as text
            clean(
                f"  {row.name:20} {certificate:13} …{row.fingerprint_suffix:8} "
                f"{row.status or 'no report':12} {row.reported_at or '':20} "
                + ("ready" if row.ready else f"NOT READY: {row.reason}")
            )
        )
    return "\n".join(lines)
