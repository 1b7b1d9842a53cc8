"""`klarna-mtls renew [--all] [--deploy-hook CMD] [--retire-old --grace SECONDS]`: unattended
renewal for cron, as certbot does it.

Outside the renewal window nothing happens (one line says when it opens). Inside it, the gap-free
rotation; then the deploy hook (e.g. reloading nginx: run without a shell, the new paths in its
environment); then, with --retire-old and only when the hook succeeded, the old certificate is
revoked after the grace period, through the same journaled path as `rotate --retire-old --grace`
(a run killed during the grace is finished by the next `renew` or `rotate`). Declared
runtimes in their window are named with the commands to run on them. A hook owed by an earlier
run (killed or failed after the switch) that the person ran by hand is recorded with --hook-done
(audited), and the renewal goes on as after a hook that succeeded. Exit 0 nothing to do or
renewed, 1 warning (a failing hook, the old certificate kept, a runtime to renew), 2 critical (the
installed pair is broken, or the records disagree with it: repair it first), 3 error (the renewal failed; the current pair stays)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from wizard.cli.certs import finish_retirement
from wizard.cli.common import add_common, add_new_certificate_wait, clean, emit, progress, seconds
from wizard.cli.export import add_also_export, also_export, prove_also_export
from wizard.cli.session import open_set_up_session, unlock
from wizard.core import acceptance
from wizard.core.errors import InputError, WizardError
from wizard.core.findings import ExitCode
from wizard.core.locking import profile_lock
from wizard.core.paths import Paths
from wizard.services.session import Session
from wizard.services.waits import NEW_CERTIFICATE_LIMIT, Attempt, Event, Started, Step

if TYPE_CHECKING:
    from wizard.services.certificate_rotation import RotationProgress
    from wizard.services.renewal import RenewalPlan

DEFAULT_HOOK_TIMEOUT = 600.0


@dataclass
class Outcome:
    """One profile's renewal, as reported (JSON and text)."""

    profile: str
    action: str  # nothing | renewed | repair first | failed
    exit_code: int
    message: str
    old_certificate_id: str | None = None
    new_certificate_id: str | None = None
    new_fingerprint: str | None = None
    deploy_hook: dict[str, Any] | None = None
    retired: str | None = None
    runtimes: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verification: str | None = None  # how Klarna accepted the new certificate (rotate's verification)

    def worse(self, code: ExitCode, note: str) -> None:
        self.exit_code = max(self.exit_code, code)
        self.notes.append(note)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("renew", help="for cron: rotate once the renewal window opens, then run a deploy hook")
    add_common(p)
    p.add_argument("--all", action="store_true", help="every profile on this machine, one after another")
    p.add_argument(
        "--deploy-hook",
        metavar="CMD",
        help="run after a renewal, without a shell (e.g. 'systemctl reload nginx'); the new paths are in "
        "KLARNA_MTLS_CERT and KLARNA_MTLS_KEY",
    )
    p.add_argument("--deploy-hook-timeout", type=seconds, default=DEFAULT_HOOK_TIMEOUT, metavar="SECONDS")
    p.add_argument(
        "--hook-done",
        action="store_true",
        help="the deploy hook an earlier renewal owes was run by hand (the service reloaded): record it in "
        "the audit log and go on as after a hook that succeeded (with --retire-old, the old certificate is "
        "retired); refused when no hook is owed",
    )
    p.add_argument("--retire-old", action="store_true", help="revoke the old certificate once the hook succeeded")
    p.add_argument(
        "--grace", type=seconds, default=0.0, metavar="SECONDS", help="with --retire-old: wait this long first"
    )
    add_new_certificate_wait(p, NEW_CERTIFICATE_LIMIT)
    add_also_export(p)
    p.set_defaults(handler=cmd_renew)


def cmd_renew(args: argparse.Namespace) -> int:
    from wizard.services.renewal import parse_hook

    try:
        args.hook_argv = parse_hook(args.deploy_hook) if args.deploy_hook is not None else None
    except ValueError as exc:
        raise InputError(f"--deploy-hook cannot be read: {exc}.", hint="Quote it as one argument.") from None
    if args.hook_done and (args.all or args.deploy_hook is not None):
        raise InputError(
            "--hook-done confirms, for one profile, that you ran the deploy hook it owes yourself; "
            "it is not given with --deploy-hook or --all.",
            hint="klarna-mtls renew --profile NAME --hook-done [--retire-old --grace SECONDS]",
        )
    if args.all and args.also_export:
        raise InputError(
            "--also-export names one place, and --all renews every profile.",
            hint="Renew the profile whose pair is exported there: renew --profile NAME --also-export PLACE.",
        )
    paths = Paths.from_env()
    names = paths.profiles() if args.all else [args.profile]
    outcomes: list[Outcome] = []
    renewed: list[tuple[Outcome, Session]] = []
    with contextlib.ExitStack() as held:  # every profile stays locked until its old certificate is retired
        for name in names:
            outcome, session = _renew_one(args, paths, name, held)
            outcomes.append(outcome)
            if session is not None:
                renewed.append((outcome, session))
        _retire_all(args, renewed)
    return _report(args, outcomes)


def _renew_one(
    args: argparse.Namespace, paths: Paths, name: str, held: contextlib.ExitStack
) -> tuple[Outcome, Session | None]:
    """Renew one profile when due; the session is returned when its old certificate may be retired."""
    from wizard.services.renewal import hook_run_by_hand, renewal_plan
    from wizard.services.repair import damage_finding, installed_pair_problems

    try:
        if args.all:  # the single-profile command holds its lock already (main.WRITERS)
            held.enter_context(profile_lock(paths, name, "klarna-mtls renew --all"))
        profile_args = argparse.Namespace(**{**vars(args), "profile": name, "bound_keys_only": args.all})
        session = open_set_up_session(profile_args)
        problems = installed_pair_problems(session)
        if problems:
            hint = f"Restore it first: klarna-mtls repair --profile {name}"
            return Outcome(name, "repair first", ExitCode.CRITICAL, f"{' '.join(problems)} {hint}"), None
        damage = session.installed_damage()  # the records and the files disagree: after a switch it no longer shows
        if damage:
            finding = damage_finding(damage, name)
            return Outcome(
                name, "repair first", ExitCode.CRITICAL, clean(f"{finding.summary} {finding.next_step}")
            ), None
        plan = renewal_plan(session)
        if args.hook_done and not plan.hook_owed:  # a confirmation for no owed hook is taken for nothing
            hook_run_by_hand(session)  # refuses, naming it
        if not plan.due:
            return _with_runtimes(session, Outcome(name, "nothing", ExitCode.OK, plan.reason)), None
        unlock(profile_args, session)
        prove_also_export(args, session)  # a Vault copy that could not be kept current: refused before renewing
        return _rotate(args, session, plan)
    except WizardError as error:
        return Outcome(name, "failed", ExitCode.ERROR, clean(str(error))), None


def _rotate(args: argparse.Namespace, session: Session, plan: RenewalPlan) -> tuple[Outcome, Session | None]:
    name = session.profile
    progress(args, clean(f"renew: {name}: {plan.reason}"))
    flow = session.state.flows.rotation
    retiring = flow is not None and flow.step == "retire"  # switched by an earlier run, its hook run if it had one
    try:  # a resumed retirement: the exported copy current before the old certificate goes (idempotent)
        if retiring and flow is not None:
            also_export(args, session, flow.old_certificate_id)
    except WizardError as error:
        return Outcome(name, "failed", ExitCode.ERROR, clean(f"{error} {error.hint}")), None
    try:
        result = _switched(args, session, plan)
    except WizardError as error:
        message = f"the renewal stopped: {error} The current pair stays in use; the next run resumes."
        return Outcome(name, "failed", ExitCode.ERROR, clean(message)), None
    flow = session.state.flows.rotation
    owed = flow is not None and flow.deploy_hook_owed
    accepted = f", {acceptance.in_words(result.verification)}" if result.verification else ""
    if retiring and not owed:  # the retirement that run journaled, finished now: nothing else is left to do
        message = f"finished the renewal to {result.new_certificate_id}{accepted}: retired {result.old_certificate_id}"
        outcome = Outcome(name, "renewed", ExitCode.OK, message, result.old_certificate_id, result.new_certificate_id)
        outcome.new_fingerprint, outcome.retired = result.new_fingerprint, result.old_certificate_id
        outcome.verification = result.verification
        return _with_runtimes(session, outcome), None
    done = "finished the renewal" if plan.hook_owed else "renewed"
    outcome = Outcome(
        name,
        "renewed",
        ExitCode.OK,
        f"{done}: {result.old_certificate_id} → {result.new_certificate_id} ({result.new_fingerprint}){accepted}",
        result.old_certificate_id,
        result.new_certificate_id,
        result.new_fingerprint,
        verification=result.verification,
    )
    retire = not result.retired and result.old_certificate_id not in (None, result.new_certificate_id)
    try:  # the exported copy first, then the hook, and only then the old certificate goes
        if not retiring:
            also_export(args, session, result.old_certificate_id if args.retire_old else None)
    except WizardError as error:
        outcome.worse(ExitCode.ERROR, clean(f"{error} {error.hint}"))
        return _with_runtimes(session, outcome), None
    retire = _deploy(args, session, result, outcome, owed, retire)
    return _with_runtimes(session, outcome), session if retire and args.retire_old else None


def _switched(args: argparse.Namespace, session: Session, plan: RenewalPlan) -> RotationProgress:
    """The rotation run (or resumed) to its switch; a renewal whose hook is owed was switched already."""
    from wizard.services.renewal import finished_renewal, renew

    if plan.hook_owed:  # switched by an earlier run that died before its deploy hook
        return finished_renewal(session)
    show = functools.partial(_show, args, session.profile)
    hooked = args.hook_argv is not None
    return asyncio.run(
        renew(
            session, verify_interval=args.poll_interval, verify_limit=args.poll_limit, on_event=show, hook_owed=hooked
        )
    )


def _deploy(
    args: argparse.Namespace, session: Session, result: RotationProgress, outcome: Outcome, owed: bool, retire: bool
) -> bool:
    """The deploy hook (given, or owed by an earlier run); whether the old certificate may still go."""
    from wizard.services.renewal import deploy_environment, hook_ran, hook_run_by_hand, run_deploy_hook

    if owed and args.hook_done:  # reloaded by hand: audited, then as after a hook that succeeded
        hook_run_by_hand(session)
        outcome.message += "; its deploy hook recorded as run by hand (--hook-done)"
    elif owed and not args.hook_argv:  # the service may still hold the old pair: it is not retired
        outcome.worse(
            ExitCode.WARNING,
            f"a deploy hook is owed for the switch to {result.new_certificate_id} (an earlier run stopped before "
            f"it); the old certificate is kept: run klarna-mtls renew --profile {session.profile} --deploy-hook "
            "CMD, or, once you have reloaded the service yourself, renew --hook-done",
        )
        return False
    elif args.hook_argv:
        hook = run_deploy_hook(args.hook_argv, deploy_environment(session, result), args.deploy_hook_timeout)
        outcome.deploy_hook = asdict(hook)
        for line in hook.output:
            progress(args, f"  hook: {line}")
        if not hook.ok:
            outcome.worse(ExitCode.WARNING, f"deploy hook `{hook.command}`: {hook.note}; the old certificate is kept")
            return False
    if not (retire and args.retire_old):  # else cleared in the retirement's own journal write (none owed: a no-op)
        hook_ran(session)
    return retire


def _show(args: argparse.Namespace, name: str, event: Event) -> None:
    from wizard.services.certificate_rotation import GRACE_TASK

    if isinstance(event, Step):
        progress(args, f"renew: {name}: {event.step}")
    elif isinstance(event, Attempt):
        progress(args, f"  verify attempt {event.n} of {event.max_attempts}: {event.status}")
    elif isinstance(event, Started) and event.task == GRACE_TASK:  # a retirement an earlier run journaled
        progress(args, f"renew: {name}: revoking the old certificate in {event.limit:g} s (what is left of the grace)")


def _with_runtimes(session: Session, outcome: Outcome) -> Outcome:
    from wizard.services.renewal import runtimes_due

    for due in runtimes_due(session):
        outcome.runtimes.append(asdict(due))
        outcome.worse(ExitCode.WARNING, f"runtime {due.name} expires on {due.not_after[:10]}: {due.commands}")
    return outcome


def _retire_all(args: argparse.Namespace, renewed: list[tuple[Outcome, Session]]) -> None:
    """The old certificates, after one grace period counted from when the last of them was
    replaced, each through the revoke interlock. All are journaled first, as their rotations'
    retire steps with the same end of grace, so a run killed during the wait leaves every one of
    them to the next run, which waits only what is left."""
    from wizard.services.certificate_rotation import schedule_retirement

    scheduled: list[tuple[Outcome, Session]] = []
    for outcome, session in renewed:
        try:
            schedule_retirement(session, outcome.old_certificate_id or "", args.grace)
        except WizardError as error:
            outcome.worse(ExitCode.WARNING, clean(f"{outcome.old_certificate_id} was not retired: {error}"))
            continue
        scheduled.append((outcome, session))
    for outcome, session in scheduled:
        old = outcome.old_certificate_id or ""
        try:
            finish_retirement(args, session, old, command="renew")
        except WizardError as error:
            outcome.worse(ExitCode.WARNING, clean(f"{old} was not retired: {error}"))
            continue
        outcome.retired = old


def _report(args: argparse.Namespace, outcomes: list[Outcome]) -> int:
    code = max((ExitCode(o.exit_code) for o in outcomes), default=ExitCode.OK)
    rows = [asdict(o) for o in outcomes]
    payload: dict[str, Any] = {"ok": code < ExitCode.ERROR, "exit_code": code}
    payload |= {"profiles": rows} if args.all else rows[0]
    emit(args, payload, "\n".join(_text(o) for o in outcomes) or "renew --all: no profiles")
    return code


def _text(outcome: Outcome) -> str:
    lines = [f"{outcome.profile}: {outcome.message}"]
    if outcome.deploy_hook and outcome.deploy_hook["ok"]:
        lines.append(f"  deploy hook `{outcome.deploy_hook['command']}` exited 0")
    if outcome.retired:
        lines.append(f"  retired {outcome.retired}")
    lines += [f"  warning: {note}" for note in outcome.notes]
    return "\n".join(clean(line) for line in lines)
