"""`klarna-mtls onboard`: the whole onboarding, headless, resumable, one progress line per stage."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

from wizard.cli.common import add_common, emit, positive_int, progress, seconds
from wizard.cli.session import add_secret_store, key_passphrase, load_api_key, open_session, prove_secret_store
from wizard.core import rules
from wizard.core.checks import VALID_IN_A_ROW
from wizard.core.errors import InputError
from wizard.core.findings import ExitCode
from wizard.core.stages import Stage
from wizard.services import onboarding
from wizard.services.clients import rotate_command
from wizard.services.enforcement_timeline import observe_and_recheck
from wizard.services.onboarding_waits import poll_verification, watch_enforcement
from wizard.services.session import Session
from wizard.services.waits import (
    Attempt,
    Done,
    Event,
    Failed,
    PollLimits,
    follow,
)

if TYPE_CHECKING:
    from wizard.klarna.models import EnforcementState
    from wizard.secrets.base import SecretStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("onboard", help="run the whole onboarding without the TUI")
    add_common(p)
    p.add_argument(
        "--non-interactive",
        action="store_true",
        help="no effect, kept for scripts: onboard never prompts, except for an API key read from "
        "standard input (--api-key-stdin) when that is a terminal (typed without echo)",
    )
    p.add_argument("--environment", choices=rules.ENVIRONMENTS)
    p.add_argument("--account-id")
    p.add_argument("--base-url", help="sandbox only")
    p.add_argument("--ca-bundle", help="sandbox only: CA PEM to trust")
    p.add_argument(
        "--trust-ca",
        metavar="FILE",
        help="live/test only: trust this CA file instead of the bundled roots (a TLS-inspecting "
        "proxy); 'bundled' goes back to the bundled roots. Shown by doctor",
    )
    p.add_argument(
        "--allow-remote-sandbox",
        action="store_true",
        help="sandbox only: allow a base URL that is not on this machine (still https)",
    )
    p.add_argument("--install-dir")
    p.add_argument("--enforce-at", default="never", help="NOW, an ISO-8601 time, or never (default)")
    add_secret_store(p)
    p.add_argument("--api-key-stdin", action="store_true", help="read the API key from standard input")
    tool_key = p.add_mutually_exclusive_group()
    tool_key.add_argument(
        "--own-key",
        action="store_true",
        help="recommended: create this tool's own described API key with the given key, prove it, "
        "keep it in the secret store and run on it (the given key stays active)",
    )
    tool_key.add_argument("--key-id", help="the credential id of the API key you give this tool (keys list shows ids)")
    p.add_argument("--poll-interval", type=seconds, default=2.0)
    p.add_argument("--poll-attempts", type=positive_int, default=150)
    p.add_argument(
        "--poll-limit",
        type=seconds,
        default=300.0,
        help="seconds to keep checking verification (Klarna settles within 5 minutes)",
    )
    p.add_argument("--enforce-wait", type=seconds, default=420.0, help="seconds to wait for ENFORCED after NOW")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.poll_interval > args.poll_limit:
        raise InputError(
            f"--poll-interval {args.poll_interval:g} s is longer than --poll-limit {args.poll_limit:g} s: "
            f"verification needs {VALID_IN_A_ROW} VALID answers in a row within the limit.",
            hint="Lower --poll-interval or raise --poll-limit.",
        )
    session = _configured_session(args)
    try:
        return asyncio.run(onboard(args, session))
    except KeyboardInterrupt:
        progress(args, _interrupted_words(session))
        raise  # main exits 130


def _interrupted_words(session: Session) -> str:
    """Ctrl+C: what stands now, from the journal; above all an enforcement that still applies
    although the run that asked for it has stopped."""
    ev, settings, p = session.evidence, session.settings, session.profile
    resume = f"klarna-mtls onboard --profile {p} resumes where it stopped."
    if not ev.enforced_from:
        return f"onboard: interrupted; no enforcement was requested. {resume}"
    when = settings.enforced_from_server or (
        ev.enforced_from_chosen_at if ev.enforced_from.upper() == "NOW" else ev.enforced_from
    )
    unenforce = f"`klarna-mtls unenforce --profile {p}`"
    if settings.enforcement_seen == "ENFORCED":
        return f"onboard: interrupted; mTLS is enforced (from {when}); {unenforce} removes it. {resume}"
    if not ev.enforcement_mode:  # asked, and the answer was not seen
        return (
            f"onboard: interrupted; enforcement may be scheduled for {when} (the request was sent, its answer "
            f"not seen): klarna-mtls status --profile {p} says; {unenforce} cancels it. {resume}"
        )
    return (
        f"onboard: interrupted; enforcement is still scheduled for {when} (Klarna applies it up to 5 minutes "
        f"later); {unenforce} cancels it. {resume}"
    )


async def onboard(args: argparse.Namespace, session: Session) -> int:
    enforce_at = args.enforce_at.strip()
    if enforce_at.lower() != "never":
        rules.parse_enforced_from(enforce_at)  # refuse a bad time before doing any work
    api_key, store = load_api_key(args, session)
    session.unlock(api_key, key_passphrase())
    if session.state.in_flight:
        progress(args, "resuming: a certificate request was in flight; reconciling with Klarna")

    async with session.clients.connections():  # one connection per trust and certificate, across stages
        pulled = session.model.pulled_back_note()
        if pulled:
            progress(args, f"resuming {pulled}")
        if session.model.stage is not Stage.CREDENTIALS:
            await _tool_key(args, session, store)
        if session.model.stage in (Stage.ENFORCE, Stage.DONE):
            await _recheck_enforcement(args, session, enforce_at)
        while session.model.stage is not Stage.DONE:
            stage = session.model.stage
            if stage is Stage.ENFORCE and enforce_at.lower() == "never":
                break
            await _do_stage(args, session, stage, api_key, store, enforce_at)
            session.advance()
            progress(args, f"[{stage.number}/6] {stage.value}: done")
            _show_notes(args, session, stage)
            if stage is Stage.CREDENTIALS:
                await _tool_key(args, session, store)
        observed = None
        if session.model.stage in (Stage.ENFORCE, Stage.DONE):  # printed as Klarna says it now
            observed, _ = await observe_and_recheck(session)

    reached = session.model.stage
    payload = _summary(session, observed)
    mode = f"; enforcement {payload['enforcement']['mode']} (observed now)" if observed else ""
    lines = [f"onboarding reached {reached.value} for profile '{session.profile}'{mode}", *_summary_text(payload)]
    emit(args, payload, "\n".join(lines))
    return ExitCode.OK


def _summary_text(payload: dict[str, Any]) -> list[str]:
    """What the TUI's exit summary says, for a headless run: the pair, where it is, and the cron
    lines that keep it healthy (with what cron's environment needs)."""
    if not payload["certificate_id"]:
        return []
    lines = [
        f"  certificate {payload['certificate_id']} (…{(payload['fingerprint'] or '')[-16:]})",
        f"  installed: {payload['cert_path']} and {payload['key_path']}",
        f"  verification: {payload['verification_status'] or 'not seen yet'}",
    ]
    if payload["expires_at"]:
        rotate = rotate_command(payload["profile"])
        lines.append(
            f"  expires: {payload['expires_at'][:10]}; start the renewal ({rotate}) by {payload['renew_by'][:10]}"
        )
    enforcement = payload["enforcement"]
    if enforcement["mode"]:
        since = f" from {enforcement['enforced_from']}" if enforcement["enforced_from"] else ""
        lines.append(f"  enforcement: {enforcement['mode']}{since} (observed now)")
    else:
        lines.append("  enforcement: not requested (--enforce-at never)")
    if payload.get("cron"):
        lines.append("  daily monitoring and renewal (crontab -e):")
        lines += [f"    # needs: {need}" for need in payload["cron"]["needs"]]
        lines += [f"    {line}" for line in payload["cron"]["lines"]]
    return lines


def _configured_session(args: argparse.Namespace) -> Session:
    """The profile, configured from the arguments when they are given (or refused when it is new)."""
    session = open_session(args)
    prove_secret_store(args, session)  # a Vault place this token may not write: refused before anything changes
    if args.environment or args.account_id:
        if not (args.environment and args.account_id):
            raise InputError("Give both --environment and --account-id.")
        same = (session.evidence.environment, session.evidence.account_id) == (args.environment, args.account_id)
        if not same or args.base_url or args.install_dir:
            session.configure(
                args.environment,
                args.account_id,
                base_url=args.base_url or session.settings.base_url,
                ca_bundle=args.ca_bundle or session.settings.ca_bundle,
                install_dir=args.install_dir or session.settings.install_dir,
                allow_remote_sandbox=args.allow_remote_sandbox or session.settings.allow_remote_sandbox,
            )
    elif not session.evidence.account_id:
        raise InputError("This profile is new.", hint="Give --environment and --account-id.")
    if args.trust_ca:
        session.set_trust_ca(None if args.trust_ca == "bundled" else args.trust_ca)
    return session


async def _recheck_enforcement(args: argparse.Namespace, session: Session, enforce_at: str) -> None:
    """The journal's Enforce record is a cache: Klarna's state now decides whether the Enforce
    stage is done (after `unenforce`, or a removal elsewhere, it is open again and runs)."""
    observed, reopened = await observe_and_recheck(session)
    if reopened:
        progress(args, f"  {reopened}")
    elif session.evidence.enforcement_mode and enforce_at.lower() != "never":
        said = observed.mode.value + (f" from {observed.enforced_from}" if observed.enforced_from else "")
        progress(
            args,
            f"  enforcement already requested (Klarna now says {said}); --enforce-at {enforce_at} is not sent "
            "again: klarna-mtls enforce --at changes it",
        )


def _show_notes(args: argparse.Namespace, session: Session, stage: Stage) -> None:
    """The stage's checks that passed by accepting something worth knowing (a CN Klarna assigned)."""
    for result in session.model.results(stage):
        if result.noted:
            progress(args, f"  note: {result.reason}")


async def _tool_key(args: argparse.Namespace, session: Session, store: SecretStore) -> None:
    """--key-id records the key's id (as keys set-own does, without a confirmation: replacing
    another recorded id is refused); --own-key makes the tool take its own key (once)."""
    from wizard.services import api_key_rotation, api_keys

    if args.key_id:
        await api_keys.record_tool_key(session, args.key_id)
        progress(args, f"  recorded {args.key_id} as the key klarna-mtls runs on")
    elif args.own_key:
        new_id = await api_key_rotation.take_own_key(
            session, store, on_step=lambda step: progress(args, f"  own key: {step}")
        )
        progress(args, f"  klarna-mtls now runs on its own key {new_id} (kept in {store.display_name})")


async def _do_stage(
    args: argparse.Namespace, session: Session, stage: Stage, api_key: str, store: SecretStore, enforce_at: str
) -> None:
    from wizard.core.stages import Stage

    if not session.model.blockers(stage):
        return  # resumed after the work was done but before the stage advanced
    if stage is Stage.CREDENTIALS:
        await onboarding.check_credentials(session, api_key, store)
    elif stage is Stage.KEY_AND_CSR:
        if session.key_path.exists():
            await onboarding.use_existing_key(session, passphrase=session.key_passphrase)
        else:
            await onboarding.generate_key(session, passphrase=session.key_passphrase)
    elif stage is Stage.ISSUE:
        await onboarding.issue_certificate(session)
    elif stage is Stage.INSTALL:
        await onboarding.install(session, args.install_dir)
    elif stage is Stage.VERIFY:
        await _verify(args, session)
    elif stage is Stage.ENFORCE:
        if not session.evidence.enforcement_mode:
            mode = await onboarding.enforce(session, enforce_at)
            progress(args, f"  enforcement requested from {session.evidence.enforced_from}: {mode}")
        if enforce_at.upper() == "NOW":
            await _wait_enforced(args, session)


async def _verify(args: argparse.Namespace, session: Session) -> None:
    limits = PollLimits(interval=args.poll_interval, max_attempts=args.poll_attempts, limit=args.poll_limit)

    def show(event: Event) -> None:
        if isinstance(event, Attempt):
            progress(
                args,
                f"  verify attempt {event.n} of {event.max_attempts}: {event.status}"
                f" ({event.elapsed:.0f} s of {event.limit:.0f} s)",
            )

    last = await follow(poll_verification(session, limits), show)
    if isinstance(last, Failed):
        raise last.error


async def _wait_enforced(args: argparse.Namespace, session: Session) -> None:
    """Klarna applies enforcement up to 5 minutes after the chosen time: watch, then prove it."""

    def show(event: Event) -> None:
        if isinstance(event, Attempt):
            progress(
                args, f"  enforcement check {event.n}: {event.status} ({event.elapsed:.0f} s of {event.limit:.0f} s)"
            )

    limits = PollLimits.for_enforcement(args.poll_interval, args.enforce_wait)
    last = await follow(watch_enforcement(session, limits), show)
    if isinstance(last, Done):
        progress(args, "  proved: a request without a client certificate is refused")
    elif isinstance(last, Failed) and last.status == "ENFORCED":
        progress(args, "  warning: a request without a client certificate was still accepted")
    else:
        progress(args, "  enforcement not applied yet; Klarna takes up to 5 minutes")


def _summary(session: Session, observed: EnforcementState | None) -> dict[str, Any]:
    """What onboarding reached; the enforcement as Klarna answered just now (None before Enforce)."""
    ev = session.evidence
    last = ev.verifications[-1]["status"] if ev.verifications else None
    enforcement: dict[str, Any] = {"mode": None, "enforced_from": None, "observed_at": None}
    if observed is not None:
        enforcement = {
            "mode": observed.mode.value,
            "enforced_from": observed.enforced_from or ev.enforced_from,
            "observed_at": rules.format_utc(session.clock()),
        }
    return {
        "ok": True,
        "profile": session.profile,
        "stage": session.model.stage.value,
        "certificate_id": ev.certificate_id,
        "fingerprint": ev.fingerprint,
        "cert_path": ev.cert_path,
        "key_path": ev.installed_key_path,
        "verification_status": last,
        **_expiry(ev.certificate_pem),
        "enforcement": enforcement,
        "api_key_credential_id": session.state.tool_key_id,
        "cron": _cron(session),
    }


def _expiry(certificate_pem: str | None) -> dict[str, str | None]:
    """When the certificate expires, and when its renewal window opens (as status marks RENEW)."""
    if not certificate_pem:
        return {"expires_at": None, "renew_by": None}
    from wizard.core import crypto

    expires = crypto.load_certificate(certificate_pem).not_valid_after_utc
    return {"expires_at": rules.format_utc(expires), "renew_by": rules.format_utc(expires - rules.RENEWAL_WINDOW)}


def _cron(session: Session) -> dict[str, Any] | None:
    """The crontab lines once a pair is installed (renewal.py: they work as printed)."""
    from wizard.services.renewal import cron_advice

    return cron_advice(session).to_dict() if session.evidence.cert_path else None
