"""The doctor's API-key hygiene checks: the tool's own key known and working, descriptions that
name their service, no generic keys, the profile's environment. Findings only; no action."""

from __future__ import annotations

from wizard.core import rules
from wizard.core.errors import WizardError
from wizard.core.findings import Finding, Severity
from wizard.services.api_keys import KeyRow, key_rows
from wizard.services.session import Session
from wizard.services.status import ProfileStatus

# Descriptions that name no service: a key described like this is likely shared or forgotten.
GENERIC_DESCRIPTIONS = {
    "",
    "initial api key",
    "initial key",
    "api key",
    "apikey",
    "key",
    "default",
    "test",
    "main",
    "prod",
    "production",
    "shared",
    "all",
    "general",
}

IP_VALIDATION_MEANING = {
    "ALLOWED": "this machine's address is on the account's allow-list.",
    "DENIED": "this machine's address is not on the account's allow-list; calls are only reported "
    "now, but once IP restrictions are enforced they will be refused.",
    "INVALID": "Klarna could not validate the caller's address (for example a proxy or NAT "
    "rewrote it, or the allow-list entry is malformed).",
}


async def hygiene_findings(session: Session, status: ProfileStatus | None) -> list[Finding]:
    """Doctor extension: API-key hygiene and the IP-validation header.

    "Shared key" heuristic (Klarna does not say who calls with a key): the tool's key is the
    account's initial key, or is described generically (``GENERIC_DESCRIPTIONS``: no service
    named); and any other active key that has been used but names no service."""
    if not session.unlocked:
        return [
            Finding(
                "api keys",
                Severity.WARNING,
                "API keys not checked: the API key is not loaded.",
                "Run the doctor with the profile's key available.",
            )
        ]
    try:
        async with session.client() as klarna:
            answer = await klarna.list_api_keys()
    except WizardError as error:
        return [Finding("api keys", Severity.WARNING, f"Could not list API keys: {error.message}", error.hint)]
    rows = key_rows(session, answer.value)
    out = _key_findings(session, rows)
    if answer.ip_validation:
        out.append(ip_validation_finding(answer.ip_validation))
    return out


def ip_validation_finding(value: str) -> Finding:
    value = value.split(",")[0].strip().upper()
    meaning = IP_VALIDATION_MEANING.get(value, "an unknown value.")
    severities = {"ALLOWED": Severity.OK, "DENIED": Severity.CRITICAL, "INVALID": Severity.WARNING}
    severity = severities.get(value, Severity.WARNING)
    hint = {
        "DENIED": "Add this machine's egress address to the account's IP allow-list in Klarna's portal.",
        "INVALID": "Check proxies between this machine and Klarna, and the allow-list entries.",
    }.get(value, "")
    return Finding("ip validation", severity, f"Klarna-Ip-Validation-Status {value}: {meaning}", hint)


def generic(row: KeyRow) -> bool:
    """True when a key's description names no service (empty, "API key", "default", …)."""
    return (row.description or "").strip().lower() in GENERIC_DESCRIPTIONS


def _key_findings(session: Session, rows: list[KeyRow]) -> list[Finding]:
    active = [r for r in rows if r.active]
    tool = next((r for r in rows if r.used_by_tool), None)
    out = [f for f in (_tool_key_finding(session, tool),) if f is not None]
    out += _description_findings(active, tool)
    environment = _environment_finding(session)
    if environment is not None:
        out.append(environment)
    if not out:
        out.append(
            Finding("api keys", Severity.OK, f"{len(active)} active API key(s); the tool uses its own, described key.")
        )
    return out


def _tool_key_finding(session: Session, tool: KeyRow | None) -> Finding | None:
    """Whether the tool's own key is known, active, not the initial key and named for it."""
    known = session.state.tool_key_id
    if known is None:
        return Finding(
            "api keys",
            Severity.WARNING,
            "The key this tool uses is unknown: its credential id is not recorded.",
            "Name it (keys list, then keys set-own <id>), or let the tool take its own key "
            "(keys rotate, or onboard --own-key).",
        )
    if tool is None or not tool.active:
        return Finding(
            "api keys",
            Severity.WARNING,
            f"The recorded key {known} is not among the account's active keys.",
            "Check the profile's stored key belongs to this account.",
        )
    if tool.is_initial:
        return Finding(
            "api keys",
            Severity.WARNING,
            "klarna-mtls runs on the account's initial API key.",
            "Give this tool its own key (keys rotate), and each service its own described key.",
        )
    if generic(tool):
        return Finding(
            "api keys",
            Severity.WARNING,
            f"The tool's key is described as '{tool.description or ''}', naming no service: "
            "it may be shared by several services.",
            "Give each service its own key whose description names it (keys create).",
        )
    return None


def _description_findings(active: list[KeyRow], tool: KeyRow | None) -> list[Finding]:
    """Active keys with no description, and used keys whose description names no service."""
    out: list[Finding] = []
    undescribed = [r for r in active if not (r.description or "").strip()]
    if undescribed:
        out.append(
            Finding(
                "api keys",
                Severity.WARNING,
                f"{len(undescribed)} active key(s) have no description.",
                "Describe each key with the service that uses it, or disable it.",
            )
        )
    used_unnamed = [
        r for r in active if r is not tool and r.last_used_at and (r.description or "").strip() and generic(r)
    ]
    if used_unnamed:
        ids = ", ".join(r.credential_id for r in used_unnamed[:3])
        out.append(
            Finding(
                "api keys",
                Severity.WARNING,
                f"{len(used_unnamed)} key(s) in use have a generic description ({ids}): "
                "possibly shared between services.",
                "Create one key per service and disable the shared one once nothing uses it.",
            )
        )
    return out


def _environment_finding(session: Session) -> Finding | None:
    """A stored key from another environment than the profile's (e.g. a live key on a test profile)."""
    custody = session.custody
    key_env = custody.api_key_environment() if custody.unlocked else session.evidence.api_key_environment
    if key_env and session.environment and rules.KEY_ENVIRONMENT[session.environment] != key_env:
        return Finding(
            "api keys",
            Severity.CRITICAL,
            f"The stored key is a {key_env} key but the profile is {session.environment}.",
            "Store a key from the profile's environment.",
        )
    return None
