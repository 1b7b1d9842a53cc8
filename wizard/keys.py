"""API-key hygiene: one key per service, each described; rotation of the key this tool uses that
never leaves it without a working key; findings for the doctor.

A new key's secret is shown by Klarna once. It goes only to the secret store (or, on explicit
request, to standard output); never to the journal, the audit log, logs or exceptions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from . import rules
from .api import SecretValue
from .errors import ApiError, InterlockRefused, SecretStoreError, WizardError
from .flow import Session
from .lifecycle import DOCTOR_CHECKS, Finding, ProfileStatus

PENDING = "#pending-api-key"  # secret-store entry of a rotation's new key, until the switch
PREVIOUS = "#previous-api-key"  # the replaced key, kept until it is disabled
GENERIC_DESCRIPTIONS = {"", "initial api key", "api key", "default", "test", "key"}


@dataclass(frozen=True)
class KeyRow:
    credential_id: str
    description: str | None
    status: str
    created_at: str | None
    last_used_at: str | None
    masked: str
    is_initial: bool
    used_by_tool: bool


def _tool_suffix(session: Session) -> str | None:
    key = session._api_key  # noqa: SLF001 - the session holds it in memory for this run
    return key[-4:] if key else None


async def list_keys(session: Session) -> list[KeyRow]:
    async with session.client() as klarna:
        answer = await klarna.list_api_keys()
    suffix = _tool_suffix(session)
    known_id = session.settings.get("api_key_credential_id")
    rows = []
    for info in answer.value:
        used = info.status == "ACTIVE" and (info.credential_id == known_id or (not known_id and info.key_suffix == suffix))
        env = rules.KEY_ENVIRONMENT.get(session.environment or "test", "test")
        rows.append(KeyRow(info.credential_id, info.description, info.status, info.created_at, info.last_used_at,
                           f"klarna_{env}_api_…{info.key_suffix or '????'}", info.is_initial, used))
    tool = [r for r in rows if r.used_by_tool]
    if len(tool) == 1 and not known_id:
        session.settings["api_key_credential_id"] = tool[0].credential_id
        session.save()
    return rows


async def create_key(session: Session, description: str, *, store=None, name: str | None = None) -> tuple[KeyRow, SecretValue]:
    """Create a key for a named service. With ``store``, its secret is kept there under ``name``."""
    rules.verify_description(description)
    if not description.strip():
        raise WizardError("Describe which service the key is for.", title="Description needed")
    async with session.client() as klarna:
        info = (await klarna.create_api_key(description, str(uuid.uuid4()))).value
    if info.secret is None:
        raise ApiError("Klarna's answer held no key secret.", status=201)
    if store is not None:
        store.set(name or f"{session.profile}#key:{info.credential_id}", info.secret.reveal())
    session.audit.record("api_key_created", credential_id=info.credential_id, description=description,
                         stored=store is not None)
    env = rules.api_key_environment(info.secret.reveal()) or "test"
    row = KeyRow(info.credential_id, info.description, info.status, info.created_at, None,
                 f"klarna_{env}_api_…{info.secret.reveal()[-4:]}", False, False)
    return row, info.secret


async def disable_key(session: Session, credential_id: str) -> None:
    rows = await list_keys(session)
    target = next((r for r in rows if r.credential_id == credential_id), None)
    if target is None:
        raise WizardError(f"No API key {credential_id} on this account.", title="Unknown key")
    if target.used_by_tool:
        raise InterlockRefused(
            "This is the key klarna-mtls uses; disabling it would leave the tool without a working key.",
            hint="Rotate the tool's key first (keys rotate): it stores and proves a replacement before disabling.",
        )
    async with session.client() as klarna:
        await klarna.disable_api_key(credential_id)
    session.audit.record("api_key_disabled", credential_id=credential_id)


ROTATION_STEPS = ("create", "prove", "switch", "disable_old", "done")


async def rotate_tool_key(session: Session, store, *, description: str | None = None, on_step=None) -> str:
    """create → store → prove with a live call → switch → disable the old. Resumable; at every
    point either the old key or the proven new key is stored and working."""
    if not store.persistent:
        raise SecretStoreError("Rotating the tool's key needs a store that keeps keys (keyring or encrypted file).")
    flow = session.state.flows.get("key_rotation")
    if not flow or flow.get("step") == "done":
        rows = await list_keys(session)
        old = next((r for r in rows if r.used_by_tool), None)
        flow = {"step": "create", "old_credential_id": old.credential_id if old else None,
                "description": description or f"klarna-mtls {session.profile}"}
        _save(session, flow)
    while flow["step"] != "done":
        step = flow["step"]
        if on_step:
            on_step(step)
        if step == "create":
            await _create_pending(session, store, flow)
        elif step == "prove":
            await _prove_pending(session, store, flow)
        elif step == "switch":
            _switch(session, store, flow)
        elif step == "disable_old":
            await _disable_old(session, store, flow)
        flow["step"] = ROTATION_STEPS[ROTATION_STEPS.index(step) + 1]
        _save(session, flow)
    session.audit.record("api_key_rotated", old=flow.get("old_credential_id"), new=flow.get("new_credential_id"))
    return flow["new_credential_id"]


def _save(session: Session, flow: dict) -> None:
    session.state.flows["key_rotation"] = flow
    session.save()


async def _create_pending(session: Session, store, flow: dict) -> None:
    pending_name = session.profile + PENDING
    if flow.get("new_credential_id") and store.get(pending_name):
        return  # created and stored before an interruption
    if flow.get("new_credential_id"):
        # Created, but the secret was lost before it was stored (Klarna shows it once): abandon
        # that key and create another. The old key was never touched, so the tool still works.
        try:
            async with session.client() as klarna:
                await klarna.disable_api_key(flow["new_credential_id"])
        except ApiError:
            pass
        session.audit.record("api_key_orphan_disabled", credential_id=flow["new_credential_id"])
        flow.pop("new_credential_id")
    async with session.client() as klarna:
        info = (await klarna.create_api_key(flow["description"], str(uuid.uuid4()))).value
    flow["new_credential_id"] = info.credential_id
    _save(session, flow)  # journaled before the secret is stored, so a crash here is detectable
    store.set(pending_name, info.secret.reveal())


async def _prove_pending(session: Session, store, flow: dict) -> None:
    new_key = store.get(session.profile + PENDING)
    if not new_key:
        flow["step"] = "create"
        raise WizardError("The new key was not found in the secret store; run rotate again to recreate it.")
    async with session.client(api_key=new_key) as klarna:
        await klarna.ping()


def _switch(session: Session, store, flow: dict) -> None:
    new_key = store.get(session.profile + PENDING)
    old_key = store.get(session.profile)
    if new_key is None:
        return  # already switched before an interruption
    if old_key and old_key != new_key:
        store.set(session.profile + PREVIOUS, old_key)
    store.set(session.profile, new_key)
    store.delete(session.profile + PENDING)
    session.unlock(new_key)
    session.settings["api_key_credential_id"] = flow["new_credential_id"]
    session.evidence.api_key_masked = rules.mask_key(new_key)


async def _disable_old(session: Session, store, flow: dict) -> None:
    old_id = flow.get("old_credential_id")
    if old_id and old_id != flow["new_credential_id"]:
        try:
            async with session.client() as klarna:
                await klarna.disable_api_key(old_id)
        except ApiError as error:
            if error.status != 404:
                raise
    store.delete(session.profile + PREVIOUS)


# ---------------------------------------------------------------- hygiene (doctor)
async def hygiene_findings(session: Session, status: ProfileStatus | None) -> list[Finding]:
    if not session.unlocked:
        return []
    out: list[Finding] = []
    try:
        rows = await list_keys(session)
        async with session.client() as klarna:
            answer = await klarna.ping()
    except WizardError as error:
        return [Finding("api keys", "warning", f"Could not list API keys: {error.message}", error.hint)]
    tool = next((r for r in rows if r.used_by_tool), None)
    if tool and tool.is_initial:
        out.append(Finding("api keys", "warning", "klarna-mtls runs on the account's initial API key.",
                           "Create a key for this tool (keys rotate) so each service has its own."))
    undescribed = [r for r in rows if r.status == "ACTIVE" and not (r.description or "").strip()]
    if undescribed:
        out.append(Finding("api keys", "warning", f"{len(undescribed)} active key(s) have no description.",
                           "Describe each key with the service that uses it."))
    if tool and (tool.description or "").strip().lower() in GENERIC_DESCRIPTIONS and not tool.is_initial:
        out.append(Finding("api keys", "warning",
                           f"The tool's key is described only as '{tool.description}': it may be shared by several services.",
                           "Give each service its own key with a description naming it."))
    key_env = session.evidence.api_key_environment
    if key_env and session.environment and rules.KEY_ENVIRONMENT[session.environment] != key_env:
        out.append(Finding("api keys", "critical", f"The stored key is a {key_env} key but the profile is {session.environment}.",
                           "Store a key from the profile's environment."))
    if answer.ip_validation:
        meaning = {"ALLOWED": "this machine's address is allowed",
                   "DENIED": "this address is not on the account's allow-list; once IP restrictions are enforced, calls will be refused",
                   "INVALID": "the address could not be validated (e.g. a proxy rewrote it)"}
        severity = "ok" if answer.ip_validation == "ALLOWED" else "warning"
        out.append(Finding("ip validation", severity,
                           f"Klarna-Ip-Validation-Status {answer.ip_validation}: {meaning.get(answer.ip_validation, 'unknown value')}.",
                           "" if severity == "ok" else "Add this machine's egress address to the allow-list in Klarna's portal."))
    if not out:
        out.append(Finding("api keys", "ok", f"{len(rows)} API key(s); the tool uses its own, described key."))
    return out


DOCTOR_CHECKS.append(hygiene_findings)
