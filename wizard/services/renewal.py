"""Unattended renewal, as certbot does it, and the cron lines that run it.

``renewal_plan`` says whether the installed certificate is in its renewal window (judged on the
installed file itself, with the same window as ``status``: ``rules.RENEWAL_WINDOW`` before expiry),
or whether an interrupted rotation is waiting to be resumed. ``renew`` is the certificate rotation
(new pair, seen VALID before ``current`` switches: never a gap). The deploy hook is the user's own
command, run without a shell, with the new pair's paths in its environment and without the tool's
secrets. ``runtimes_due`` names the declared runtimes in their window with what to run on them;
``cron_advice`` gives crontab lines that work as printed, with what cron's environment must hold."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from wizard.core import crypto, env_vars, rules, runtimes
from wizard.core.errors import InputError
from wizard.core.rules import clean_text
from wizard.services import certificate_rotation
from wizard.services.certificate_rotation import RotationProgress
from wizard.services.install import CERT_FILE, KEY_FILE, current_pair
from wizard.services.repair import expected_pair
from wizard.services.rotation_endings import save_flow
from wizard.services.session import Session
from wizard.services.waits import NEW_CERTIFICATE_LIMIT, Event

# What the deploy hook never inherits: this tool's secrets (a reload needs none of them).
HOOK_WITHHELD = (
    env_vars.API_KEY_ENV,
    env_vars.KEY_PASSPHRASE_ENV,
    env_vars.STORE_PASSPHRASE_ENV,
    env_vars.EXPORT_PASSWORD_ENV,
    env_vars.VAULT_TOKEN,
)
HOOK_OUTPUT_LINES = 40  # of a hook's output, the last lines are shown


@dataclass(frozen=True)
class RenewalPlan:
    due: bool
    reason: str  # one line: why (not) now
    not_after: datetime | None = None
    window_opens: datetime | None = None
    hook_owed: bool = False  # a finished renewal whose deploy hook has not run yet


def renewal_plan(session: Session) -> RenewalPlan:
    """Whether to renew now: an interrupted rotation is resumed, and a renewal whose deploy hook
    has not run (killed after the switch) is finished; otherwise the installed certificate's
    expiry decides (the caller has checked the installed pair is sound)."""
    flow = session.state.flows.rotation
    if flow is not None and flow.step != "done":
        return RenewalPlan(True, f"a rotation stopped at its '{flow.step}' step: resuming it")
    if flow is not None and flow.deploy_hook_owed:
        return RenewalPlan(
            True, f"the deploy hook after the renewal to {flow.certificate_id} has not run", hook_owed=True
        )
    pair = current_pair(session.install_dir) if expected_pair(session) else None
    if pair is None:
        return RenewalPlan(False, f"nothing to renew: onboarding is at {session.model.stage.label}")
    not_after = crypto.load_certificate(pair.cert_path.read_bytes()).not_valid_after_utc
    opens, now = not_after - rules.RENEWAL_WINDOW, session.clock()
    expiry = f"the certificate expires on {not_after:%Y-%m-%d %H:%M} UTC"
    if now < opens:
        days = (opens - now).days
        return RenewalPlan(
            False,
            f"nothing to do: the renewal window opens on {opens:%Y-%m-%d %H:%M} UTC (in {days} days); {expiry}",
            not_after,
            opens,
        )
    return RenewalPlan(True, f"in the renewal window since {opens:%Y-%m-%d %H:%M} UTC; {expiry}", not_after, opens)


async def renew(
    session: Session,
    *,
    verify_interval: float = 2.0,
    verify_limit: float = NEW_CERTIFICATE_LIMIT,
    on_event: Callable[[Event], None] | None = None,
    hook_owed: bool = False,
) -> RotationProgress:
    """The gap-free rotation (the new certificate checked for up to ``verify_limit`` seconds); the
    old certificate stays active (the caller retires it after the deploy hook and the grace period).
    ``hook_owed``: a deploy hook is journaled as owed before the switch, so a run killed before the
    hook leaves it to the next (``hook_ran`` clears it)."""
    async with session.clients.connections():  # one connection per certificate across the steps
        return await certificate_rotation.rotate(
            session, verify_interval=verify_interval, verify_limit=verify_limit, on_event=on_event, hook_owed=hook_owed
        )


def finished_renewal(session: Session) -> RotationProgress:
    """The last rotation, finished, as ``renew`` reports it: for the deploy hook it still owes."""
    flow = session.state.flows.rotation
    if flow is None or flow.step != "done":
        raise ValueError("no finished rotation")
    retired = flow.retire_old and flow.old_certificate_id not in (None, flow.certificate_id)
    accepted = certificate_rotation.accepted_as(session, flow, [])  # as the rotation's Done said it
    return RotationProgress(
        "done", flow.old_certificate_id, flow.certificate_id, flow.fingerprint, retired=retired, verification=accepted
    )


def hook_run_by_hand(session: Session) -> None:
    """The person ran the deploy hook the last renewal owes themselves (reloaded the service by
    hand; ``renew --hook-done``): recorded in the audit log as a manual confirmation, after which
    the caller goes on as after a hook that succeeded. Refused when no hook is owed: a switch made
    later, or in the same run, was never seen by that reload."""
    flow = session.state.flows.rotation
    if flow is None or flow.step != "done" or not flow.deploy_hook_owed:
        raise InputError(
            f"No deploy hook is owed for profile {session.profile}: --hook-done recorded nothing "
            "and nothing was renewed.",
            hint=f"klarna-mtls renew --profile {session.profile} renews when due and says when a hook is owed.",
        )
    session.audit.record(
        "deploy_hook_run_by_hand", certificate_id=flow.certificate_id, old_certificate_id=flow.old_certificate_id
    )


def hook_ran(session: Session) -> None:
    """The deploy hook the last rotation owed succeeded (a retirement after it clears this in its
    own journal write: ``certificate_rotation.schedule_retirement``)."""
    flow = session.state.flows.rotation
    if flow is not None and flow.deploy_hook_owed:
        flow.deploy_hook_owed = False
        save_flow(session, flow)


# ---------------------------------------------------------------- the deploy hook
@dataclass
class HookResult:
    command: str
    exit_code: int | None  # None: it could not be started, or was stopped
    ok: bool
    note: str = ""
    output: list[str] = field(default_factory=list)  # its last lines, cleaned


def deploy_environment(session: Session, progress: RotationProgress) -> dict[str, str]:
    """What the hook is told: the new pair's own files (they never change; ``current`` points at
    them until the next renewal), the profile, the new and old credential ids."""
    record = session.state.certificates.get(progress.new_certificate_id or "")
    label = record.label if record and record.label else ""
    folder = session.install_dir / label
    return {
        "KLARNA_MTLS_PROFILE": session.profile,
        "KLARNA_MTLS_CERT": str(folder / CERT_FILE),
        "KLARNA_MTLS_KEY": str(folder / KEY_FILE),
        "KLARNA_MTLS_INSTALL_DIR": str(session.install_dir),
        "KLARNA_MTLS_CREDENTIAL_ID": progress.new_certificate_id or "",
        "KLARNA_MTLS_FINGERPRINT": progress.new_fingerprint or "",
        "KLARNA_MTLS_OLD_CREDENTIAL_ID": progress.old_certificate_id or "",
    }


def parse_hook(command: str) -> list[str]:
    """The hook as argv (shlex rules, no shell); ValueError for an empty or unbalanced command."""
    argv = shlex.split(command)
    if not argv:
        raise ValueError("the deploy hook is empty")
    return argv


def run_deploy_hook(argv: list[str], environment: dict[str, str], timeout: float) -> HookResult:
    """Run the hook once, without a shell, with ``environment`` added to ours minus the tool's
    secrets; its output is kept (last lines, cleaned), its exit code reported."""
    command = shlex.join(argv)
    inherited = {k: v for k, v in os.environ.items() if k not in HOOK_WITHHELD}
    try:
        done = subprocess.run(  # the user's own command, as argv: no shell
            argv,
            env={**inherited, **environment},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return HookResult(command, None, False, f"it did not finish within {timeout:g} s and was stopped")
    except OSError as exc:
        return HookResult(command, None, False, f"it could not be started: {exc.strerror or exc}")
    text = (done.stdout + done.stderr).decode(errors="replace")
    lines = [clean_text(line) for line in text.splitlines() if line.strip()][-HOOK_OUTPUT_LINES:]
    ok = done.returncode == 0
    return HookResult(command, done.returncode, ok, "" if ok else f"it exited {done.returncode}", lines)


# ---------------------------------------------------------------- runtimes
@dataclass(frozen=True)
class RuntimeDue:
    name: str
    not_after: str
    commands: str  # what to run, and where


def runtimes_due(session: Session, now: datetime | None = None) -> list[RuntimeDue]:
    """Declared runtimes whose certificate is in its renewal window, with the commands that renew
    them (renew cannot: their keys live on their hosts)."""
    now = now or session.clock()
    p = shlex.quote(session.profile)
    out = []
    for record in sorted(session.state.runtimes.values(), key=lambda r: r.name):
        if not runtimes.in_renewal_window(record, now):
            continue
        name = shlex.quote(record.name)
        if record.source == "declared":
            commands = (
                f"give {record.name} a new pair of this profile (klarna-mtls export --profile {p} …), then record "
                f"it: klarna-mtls runtime add {name} --certificate-id NEW_ID --profile {p}"
            )
        else:
            commands = (
                f"on {record.name}'s host: klarna-mtls runtime request --name {name} --new-key; here: "
                f"klarna-mtls runtime issue --profile {p} runtime-request-{record.name}.json; there: "
                f"klarna-mtls runtime install runtime-response-{record.name}.json"
            )
        out.append(RuntimeDue(record.name, record.not_after or "", commands))
    return out


# ---------------------------------------------------------------- cron
@dataclass(frozen=True)
class CronAdvice:
    lines: tuple[str, ...]  # crontab entries, as printed
    needs: tuple[str, ...]  # what cron's environment must hold for them to work

    def text(self) -> str:
        """Ready to paste into a crontab: the needs as comments, then the entries."""
        return "\n".join([*(f"# needs: {need}" for need in self.needs), *self.lines])

    def to_dict(self) -> dict[str, Any]:
        return {"lines": list(self.lines), "needs": list(self.needs)}


def cron_advice(session: Session) -> CronAdvice:
    """Daily monitoring and renewal for this profile, as crontab lines that work as printed: the
    program by its full path (cron's PATH is short), this run's folders when they were moved, and
    what cron's environment must hold for the profile's key store."""
    prefix = "".join(
        f"{name}={shlex.quote(value)} "
        for name in (env_vars.HOME_ENV, "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME")
        if (value := os.environ.get(name))
    )
    program = shlex.quote(_program_path())
    profile = shlex.quote(session.profile)
    lines = (
        f"17 6 * * * {prefix}{program} check --profile {profile} --warn-days 60 --critical-days 14",
        f"47 5 * * * {prefix}{program} renew --profile {profile}",
    )
    return CronAdvice(lines, tuple(_cron_needs(session)))


def _program_path() -> str:
    """The console script installed beside this interpreter (the venv's bin/, which need not be on
    PATH), else the one PATH finds, else the bare name."""
    beside = Path(sys.executable).parent / "klarna-mtls"
    if beside.is_file() and os.access(beside, os.X_OK):
        return os.fspath(beside)
    return shutil.which("klarna-mtls") or "klarna-mtls"


def _cron_needs(session: Session) -> list[str]:
    backend, ev = session.evidence.secret_backend or "", session.evidence
    needs = {
        "encrypted-file": f"{env_vars.STORE_PASSPHRASE_ENV} (the encrypted file's passphrase) in cron's environment, "
        f"e.g. from a 0600 file sourced first (set -a; . FILE; set +a;), or keep the key in a keyring cron can reach",
        "keyring": "an OS keyring that cron can reach (cron runs outside your login session); on a server without "
        f"one, keep the key in the encrypted file and give cron {env_vars.STORE_PASSPHRASE_ENV}",
        "env": f"{env_vars.API_KEY_ENV} in cron's environment (the key is not stored)",
        "stdin": f"{env_vars.API_KEY_ENV} in cron's environment (check and renew read no key from standard input)",
        "sandbox": f"the sandbox at {session.settings.base_url or 'its address'} running (a rehearsal: the embedded "
        "sandbox stops with the wizard)",
    }
    out = [needs[backend]] if backend in needs else []
    if backend.startswith("vault"):
        out.append(
            f"{env_vars.VAULT_ADDR}, {env_vars.VAULT_ROLE_ID} and {env_vars.VAULT_SECRET_ID_FILE} (AppRole) in cron's environment"
        )
    if ev.key_encrypted:
        out.append(f"{env_vars.KEY_PASSPHRASE_ENV} (the private key's passphrase) in cron's environment")
    return out
