"""What stays in the terminal when the TUI ends: the exit summary, or, after a crash, a report
without locals or secrets (it goes to the log too)."""

from __future__ import annotations

import contextlib
import logging
import shlex
import traceback

from wizard.core import rules
from wizard.core.errors import CryptoError
from wizard.core.logs import scrub, setup_logging
from wizard.core.paths import Paths
from wizard.services.clients import rotate_command
from wizard.services.session import Session


def crash_report(error: BaseException | None, paths: Paths) -> str:
    """What a person sees after a crash, and what the log gets: no locals, no secrets."""
    log_path = paths.log_path()
    with contextlib.suppress(Exception):  # a crash report must not fail on an unwritable log
        setup_logging(paths)  # idempotent: the report reaches the log even from a test harness
    name = type(error).__name__ if error is not None else "error"
    details = "".join(traceback.format_exception(error)) if error is not None else ""
    logging.getLogger("klarna_mtls.tui").error("the TUI stopped on an unexpected %s\n%s", name, details)
    report = scrub(
        f"klarna-mtls stopped on an unexpected {name}. Your progress is saved: run it again to resume.\n"
        f"Please report it with the log (secrets are never written there):\n  {log_path}\n\n{details}"
    )
    return rules.clean_text(report, keep_newlines=True)  # a traceback can quote a server's message


def exit_summary(session: Session, *, key_refused: str | None = None) -> str:
    """What stays in the terminal after quitting, like certbot's and gh's last lines.
    ``key_refused``: Klarna's reason when it refused the tool's API key in this run."""
    ev = session.evidence
    warning = _key_refused_lines(session, key_refused)
    if not ev.certificate_id:
        stopped = (
            f"klarna-mtls: profile '{session.profile}' stopped at {session.model.stage.label}; "
            f"run {wizard_command(session)} again to resume."
        )
        return "\n".join(rules.clean_text(line) for line in [stopped, *warning])
    lines = [
        f"klarna-mtls: profile '{session.profile}' ({ev.environment}) · stage {session.model.stage.label}",
        f"  Certificate: {ev.certificate_id}",
        f"  SHA-256: {ev.fingerprint}",
    ]
    if ev.cert_path:
        lines += [
            f"  Certificate file: {ev.cert_path}",
            f"  Private key file: {ev.installed_key_path}" + (" (encrypted)" if ev.key_encrypted else ""),
        ]
    expiry = _expiry_line(ev.certificate_pem, session.profile)
    if expiry:
        lines.append(expiry)
    seen, seen_at = session.settings.enforcement_seen, session.settings.enforcement_seen_at
    if seen:  # what Klarna said, and when: the journal's request alone is not the state
        lines.append(f"  Enforcement: {seen} (as Klarna last said, {seen_at})")
    elif ev.enforcement_mode:
        lines.append(f"  Enforcement: requested from {ev.enforced_from}, not confirmed by Klarna since")
    if ev.secret_backend_name:
        lines.append(f"  API key kept in: {ev.secret_backend_name}")
    lines += warning
    if ev.cert_path:
        lines += ["  Monitor and renew from cron, daily (crontab -e):", *cron_lines(session, indent="    ")]
    lines.append(f"  Log: {session.paths.log_path()}")
    return "\n".join(rules.clean_text(line) for line in lines)  # one line each: a server's newline forges none


def wizard_command(session: Session) -> str:
    """The command that opens this profile's wizard again (``--sandbox`` starts a sandbox profile's
    sandbox; the profile named unless it is the one chosen by default)."""
    if session.evidence.environment == "sandbox":
        default, command = "sandbox", "klarna-mtls --sandbox"
    else:
        default, command = "default", "klarna-mtls"
    return command if session.profile == default else f"{command} --profile {shlex.quote(session.profile)}"


def cron_lines(session: Session, *, indent: str) -> list[str]:
    """The crontab lines of ``klarna-mtls renew``'s one home (``renewal.cron_advice``), with what
    cron's environment needs as comments: they work as printed."""
    from wizard.services.renewal import cron_advice  # brings cryptography: only once there is a pair

    return [indent + line for line in cron_advice(session).text().splitlines()]


def _key_refused_lines(session: Session, reason: str | None) -> list[str]:
    """The tool's API key stopped working in this run: say so, and how to give it a working one."""
    if not reason:
        return []
    return [
        f"  ✗ API key: Klarna refuses the key klarna-mtls runs on ({reason.rstrip('.')}).",
        "    status, check, rotate and this wizard fail on this profile until it has a working key:",
        "    create one in Klarna's portal, then run once with it in KLARNA_API_KEY:",
        f"    KLARNA_API_KEY=… {wizard_command(session)}",
    ]


def _expiry_line(certificate_pem: str | None, profile: str) -> str:
    from wizard.core import crypto  # cryptography: loaded only when there is a certificate

    if not certificate_pem:
        return ""
    try:
        expires = crypto.load_certificate(certificate_pem).not_valid_after_utc
    except CryptoError:
        return ""
    renew = expires - rules.RENEWAL_WINDOW
    rotate = rotate_command(profile)
    return f"  Expires: {expires:%Y-%m-%d}; start the renewal ({rotate}) by {renew:%Y-%m-%d}."
