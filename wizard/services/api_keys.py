"""API-key hygiene: one key per service, each described; rotation of the key this tool uses that
never leaves it without a working key; findings for the doctor.

A new key's secret is shown by Klarna once. It goes only to the secret store (or, on explicit
request, to the caller as a ``SecretValue``); never to the journal, the audit log, logs or
exceptions.

Secret-store names (all under the profile, in the profile's own store):

- ``<profile>``                    the key this tool uses;
- ``<profile>#key:<credential_id>`` a key created for another service (``create_key(store=…)``);
- ``<profile>#pending-api-key``     a rotation's new key, from creation until the switch;
- ``<profile>#previous-api-key``    the replaced key, from the switch until it is disabled.

Rotation (``rotate_tool_key``) is a small state machine persisted in the journal as
``session.state.flows.key_rotation`` (a ``flow_records.KeyRotation``: ids, idempotency key and
step only, never a secret), run by ``runners.run_steps``:

    create → prove → switch → disable_old → done

At every point the store holds a working key under ``<profile>``: the old one until ``switch``
(which happens only after the new key answered a live call), the proven new one after."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wizard.core import rules
from wizard.core.errors import ApiError, InputError, SecretStoreError, WizardError
from wizard.core.flow_records import KeyRotation, KeyRotationStep, required
from wizard.core.interlocks import Action, Refusal, Situation, refusals, require
from wizard.core.secret_value import SecretValue
from wizard.klarna.api import Answer, ApiKeyInfo
from wizard.services.lifecycle import Finding, ProfileStatus
from wizard.services.session import Session
from wizard.services.waits import Done, Event, Events, Step, StepAction, follow, run_steps

if TYPE_CHECKING:
    from wizard.secrets.base import SecretStore

PENDING = "#pending-api-key"
PREVIOUS = "#previous-api-key"
KEY_ROTATION_TASK = "Rotating the tool's API key"
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


@dataclass(frozen=True)
class KeyRow:
    """One API key as the UI shows it. Never holds the secret: ``masked`` is env + last 4."""

    credential_id: str
    description: str | None
    status: str  # ACTIVE | DISABLED | UNKNOWN
    created_at: str | None
    last_used_at: str | None
    masked: str
    is_initial: bool
    used_by_tool: bool

    @property
    def active(self) -> bool:
        return self.status == "ACTIVE"


@dataclass(frozen=True)
class RotationState:
    """Where an interrupted rotation stands, for a UI to offer "resume" (no secrets)."""

    step: str
    old_credential_id: str | None
    new_credential_id: str | None
    description: str


def stored_name(profile: str, credential_id: str) -> str:
    """The secret-store name under which ``create_key(store=…)`` keeps a service's key."""
    return f"{profile}#key:{credential_id}"


# ---------------------------------------------------------------- listing
def _masked(session: Session, suffix: str | None) -> str:
    env = rules.KEY_ENVIRONMENT.get(session.environment or "test", "test")
    return f"klarna_{env}_api_…{suffix or '????'}"


def _tool_ids(session: Session, infos: Iterable[ApiKeyInfo]) -> set[str]:
    """Which listed key is this tool's: the credential id the profile records (the key the tool
    created, rotated in, or was told with --key-id). Never guessed from a listing's fields."""
    known = session.state.tool_key_id
    return {known} if known and any(i.credential_id == known for i in infos) else set()


async def list_keys(session: Session) -> list[KeyRow]:
    """The account's keys, masked, with the one this tool uses marked (from the records)."""
    return _rows(session, await _listing(session))


async def _listing(session: Session) -> list[ApiKeyInfo]:
    async with session.client() as klarna:
        answer: Answer[list[ApiKeyInfo]] = await klarna.list_api_keys()
        return answer.value


def _rows(session: Session, infos: Iterable[ApiKeyInfo]) -> list[KeyRow]:
    tool = _tool_ids(session, infos)
    return [
        KeyRow(
            i.credential_id,
            i.description,
            i.status,
            i.created_at,
            i.last_used_at,
            _masked(session, i.key_suffix),
            i.is_initial,
            i.credential_id in tool,
        )
        for i in infos
    ]


def _situation(
    session: Session, infos: Iterable[ApiKeyInfo | KeyRow], target: str | None, confirmed: bool
) -> Situation:
    return session.situation(
        key_ids=frozenset(i.credential_id for i in infos),
        target=target,
        tool_key_id=session.state.tool_key_id,
        running_key_recorded=session.running_key_recorded,
        confirmed_not_tool_key=confirmed,
    )


def _require(
    session: Session, action: Action, infos: Iterable[ApiKeyInfo], target: str | None = None, confirmed: bool = False
) -> None:
    require(action, _situation(session, infos, target, confirmed))


# Refusals the user can lift by confirming the target is not the tool's key.
CONFIRMABLE = frozenset({"tool key known", "running key known"})


def disable_refusals(session: Session, rows: list[KeyRow], credential_id: str) -> list[Refusal]:
    """Why disabling ``credential_id`` (among the listed ``rows``) would be refused, for a UI to
    ask before it acts; a refusal whose checks are all in CONFIRMABLE asks the user to confirm."""
    return refusals(Action.DISABLE_API_KEY, _situation(session, rows, credential_id, False))


async def record_tool_key(session: Session, credential_id: str, *, source: str = "told") -> KeyRow:
    """Remember ``credential_id`` as the key this tool runs on (the user named it). It must be an
    active key of this account; the profile's stored key is assumed to be that key."""
    infos = await _listing(session)
    info = next((i for i in infos if i.credential_id == credential_id), None)
    if info is None or info.status not in ("ACTIVE", "UNKNOWN"):
        raise InputError(
            f"No active API key {credential_id} on this account.",
            hint="List the keys (klarna-mtls keys list) and copy the id of the key this tool uses.",
        )
    session.state.record_tool_key(credential_id, source)
    session.save()
    session.audit.record("api_key_identified", credential_id=credential_id, source=source)
    return _rows(session, [info])[0]


# ---------------------------------------------------------------- create, describe, disable
async def create_key(
    session: Session, description: str, *, store: SecretStore | None = None, name: str | None = None
) -> tuple[KeyRow, SecretValue[str]]:
    """Create a key for a named service. Its secret is returned once; with ``store`` it is also
    kept there under ``name`` (default ``stored_name(profile, id)``). If the store refuses, the
    new key is disabled (its secret would otherwise be lost with the key left active)."""
    _verify_service_description(description)
    session.require(Action.CREATE_API_KEY)
    if store is not None:  # a store that would refuse the key is found out before the key exists
        from wizard.secrets.resolve import prove_opens

        await asyncio.to_thread(prove_opens, store)
    async with session.client() as klarna:
        info = (await klarna.create_api_key(description, str(uuid.uuid4()))).value
    if info.secret is None:
        raise ApiError(
            "Klarna's answer held no key secret.",
            status=201,
            hint=f"Disable {info.credential_id} and create another key.",
        )
    stored_as = None
    if store is not None:
        stored_as = name or stored_name(session.profile, info.credential_id)
        try:
            await asyncio.to_thread(store.set, stored_as, info.secret.reveal())
        except SecretStoreError as error:
            await _disable_quietly(session, info.credential_id)
            raise SecretStoreError(
                f"The new key could not be stored ({error.message}); it was disabled.",
                hint="Fix the secret store, then create the key again.",
            ) from None
    session.audit.record(
        "api_key_created", credential_id=info.credential_id, description=description, stored_as=stored_as
    )
    row = KeyRow(
        info.credential_id,
        info.description,
        info.status,
        info.created_at,
        None,
        rules.mask_key(info.secret.reveal()),
        False,
        False,
    )
    return row, info.secret


async def describe_key(session: Session, credential_id: str, description: str) -> KeyRow:
    """Change a key's description (e.g. to name the service that uses it)."""
    _verify_service_description(description)
    async with session.client() as klarna:
        info = (await klarna.update_api_key(credential_id, description)).value
    session.audit.record("api_key_described", credential_id=credential_id, description=description)
    return _rows(session, [info])[0]


async def disable_key(session: Session, credential_id: str, *, not_the_tools_key: bool = False) -> KeyRow:
    """Disable a key. Refused (``interlocks``) for the key the profile records as the tool's, and
    for any key while the tool's own key id is unknown, unless the user confirms with
    ``not_the_tools_key`` that the target is not it. ``rotate_tool_key`` replaces the tool's key."""
    infos = await _listing(session)
    _require(session, Action.DISABLE_API_KEY, infos, credential_id, not_the_tools_key)
    target = _rows(session, [i for i in infos if i.credential_id == credential_id])[0]
    if target.status == "DISABLED":
        return target
    async with session.client() as klarna:
        answer = await klarna.disable_api_key(credential_id)
    session.audit.record("api_key_disabled", credential_id=credential_id)
    if answer.value is not None:
        return _rows(session, [answer.value])[0]
    return KeyRow(
        target.credential_id,
        target.description,
        "DISABLED",
        target.created_at,
        target.last_used_at,
        target.masked,
        target.is_initial,
        False,
    )


def _verify_service_description(description: str) -> None:
    rules.verify_description(description)
    if not description.strip():
        raise WizardError(
            "Describe which service the key is for.",
            title="Description needed",
            hint="E.g. 'checkout service eu'. Klarna allows letters, digits, spaces and - : ; . , _",
        )


async def _disable_quietly(session: Session, credential_id: str) -> bool:
    """Best effort, for keys whose secret we lost: a failure leaves a key that will expire
    unused after 2 months, which is recorded in the audit log for the doctor to mention."""
    try:
        async with session.client() as klarna:
            await klarna.disable_api_key(credential_id)
    except WizardError as error:
        session.audit.record("api_key_orphan_left_active", credential_id=credential_id, reason=error.title)
        return False
    session.audit.record("api_key_orphan_disabled", credential_id=credential_id)
    return True


# ---------------------------------------------------------------- rotation of the tool's key
def rotation_state(session: Session) -> RotationState | None:
    """The unfinished rotation, if any (a UI offers to resume it)."""
    flow = session.state.flows.key_rotation
    if flow is None or flow.step == "done":
        return None
    return RotationState(flow.step, flow.old_credential_id, flow.new_credential_id, flow.description)


KEY_ROTATION_WORDS: dict[KeyRotationStep, str] = {
    "create": "Create the new key and keep it in the secret store",
    "prove": "Prove the new key with a live call",
    "switch": "Switch the tool to the new key",
    "disable_old": "Disable the old key",
}


async def rotate_tool_key(
    session: Session,
    store: SecretStore,
    *,
    description: str | None = None,
    on_step: Callable[[str], None] | None = None,
    keep_old: bool = False,
    on_event: Callable[[Event], None] | None = None,
) -> str:
    """``key_rotation`` run to its end: ``on_event`` sees every event, ``on_step`` each step's
    name; returns the new key's credential id, recorded as the tool's."""

    def show(event: Event) -> None:
        if on_event:
            on_event(event)
        if isinstance(event, Step) and on_step:
            on_step(event.step)

    last = await follow(key_rotation(session, store, description=description, keep_old=keep_old), show)
    assert isinstance(last, Done) and isinstance(last.result, str)
    return last.result


async def key_rotation(
    session: Session, store: SecretStore, *, description: str | None = None, keep_old: bool = False
) -> Events:
    """create → store → prove with a live call → switch → disable the old, as progress events
    (a Step per step, then Done(result=new credential id)). Resumable from the journal at any
    step. ``store`` must be the profile's persistent store (the one holding ``<profile>``). With
    ``keep_old`` (the tool taking its own key at onboarding) the old key is left active and need
    not be known."""
    if not getattr(store, "persistent", False):
        raise SecretStoreError(
            "Rotating the tool's key needs a store that keeps keys (OS keyring or encrypted file).",
            hint="Store the API key in the keyring or the encrypted file first (the wizard's Credentials step).",
        )
    flow = session.state.flows.key_rotation
    if flow is None or flow.step == "done":
        flow = await _start_rotation(session, store, description, keep_old)
    steps: dict[KeyRotationStep, StepAction] = {
        "create": lambda: _create_pending(session, store, flow),
        "prove": lambda: _prove_pending(session, store, flow),
        "switch": lambda: _switch(session, store, flow),
        "disable_old": lambda: _disable_old(session, store, flow),
    }

    def finish(elapsed: float) -> Done:
        new_id = required(flow.new_credential_id, "new_credential_id")
        session.audit.record("api_key_rotated", old=flow.old_credential_id, new=new_id)
        kept = " and the old one stays active" if flow.keep_old else "; the old one is disabled"
        return Done(KEY_ROTATION_TASK, elapsed, message=f"The tool now uses its own new key{kept}.", result=new_id)

    events = run_steps(KEY_ROTATION_TASK, flow, steps, KEY_ROTATION_WORDS, "done", lambda: _save(session, flow), finish)
    async with contextlib.aclosing(events) as stream:
        async for event in stream:
            yield event


async def _start_rotation(session: Session, store: SecretStore, description: str | None, keep_old: bool) -> KeyRotation:
    description = description or f"klarna-mtls {session.profile}"
    _verify_service_description(description)
    stored = await asyncio.to_thread(store.get, session.profile)
    if not stored:
        raise SecretStoreError(
            f"The {store.display_name} holds no API key for profile '{session.profile}'.",
            hint="Rotation replaces the stored key: store the current key first (the wizard's Credentials step).",
        )
    session.unlock(stored)  # rotate exactly the key the profile keeps, not an override
    old_id = session.state.tool_key_id
    if not keep_old:
        _require(session, Action.ROTATE_API_KEY, await _listing(session))
    flow = KeyRotation(
        step="create",
        old_credential_id=old_id,
        description=description,
        keep_old=keep_old,
        started_at=rules.format_utc(session.clock()),
    )
    _save(session, flow)
    session.audit.record("api_key_rotation_started", old=old_id, keep_old=keep_old)
    return flow


async def take_own_key(
    session: Session,
    store: SecretStore,
    description: str | None = None,
    on_step: Callable[[str], None] | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> str:
    """The tool creates its own described key with the key it was given, proves it, stores it as
    the profile's key and records its id (the given key stays active for whatever else uses it)."""
    if not getattr(store, "persistent", False):
        raise SecretStoreError(
            "The tool's own key must be kept in a store that keeps keys (OS keyring or encrypted file).",
            hint="Choose --secret-store keyring or encrypted-file.",
        )
    if session.state.settings.api_key_id_source == "created":
        return session.state.tool_key_id or ""
    return await rotate_tool_key(
        session, store, description=description, on_step=on_step, keep_old=True, on_event=on_event
    )


def _save(session: Session, flow: KeyRotation) -> None:
    session.state.flows.key_rotation = flow
    session.save()


async def _create_pending(session: Session, store: SecretStore, flow: KeyRotation) -> None:
    pending = session.profile + PENDING
    if flow.new_credential_id:
        if await asyncio.to_thread(store.get, pending):
            return  # created and stored before an interruption
        # Created, but the process died before the secret reached the store. Klarna shows a
        # secret once, so that key is useless: disable it and create another. The old key was
        # never touched, so the tool kept working throughout.
        await _abandon_new_key(session, flow)
    if not flow.idempotency_key:
        flow.idempotency_key = str(uuid.uuid4())
        _save(session, flow)  # journaled before sending: a lost answer is replayed, not duplicated
    async with session.client() as klarna:
        info = (await klarna.create_api_key(flow.description, flow.idempotency_key)).value
    flow.new_credential_id = info.credential_id
    _save(session, flow)
    if info.secret is None:  # e.g. Klarna's replay of an earlier answer omits the secret
        await _abandon_new_key(session, flow)
        raise WizardError(
            "Klarna's answer held no key secret; that key was disabled.",
            title="Key not received",
            hint="Run the rotation again: it creates another key.",
        )
    await asyncio.to_thread(store.set, pending, info.secret.reveal())
    session.audit.record("api_key_rotation_created", credential_id=info.credential_id)


async def _abandon_new_key(session: Session, flow: KeyRotation) -> None:
    """Disable the new key whose secret is lost, and forget it (and its idempotency key, so the
    next create makes another key instead of replaying this one)."""
    await _disable_quietly(session, required(flow.new_credential_id, "new_credential_id"))
    flow.new_credential_id = flow.idempotency_key = None
    _save(session, flow)


async def _prove_pending(session: Session, store: SecretStore, flow: KeyRotation) -> None:
    new_key = await asyncio.to_thread(store.get, session.profile + PENDING)
    if not new_key:
        flow.step = "create"  # create again; the orphan is disabled there
        _save(session, flow)
        raise SecretStoreError(
            "The new key is missing from the secret store.",
            hint="Run the rotation again: it disables that key and creates another.",
        )
    async with session.client(api_key=new_key) as klarna:
        answer = await klarna.ping()
    session.audit.record(
        "api_key_rotation_proved", credential_id=flow.new_credential_id, correlation_id=answer.correlation_id
    )


async def _switch(session: Session, store: SecretStore, flow: KeyRotation) -> None:
    profile = session.profile
    new_key = await asyncio.to_thread(store.get, profile + PENDING)
    if new_key:
        old_key = await asyncio.to_thread(store.get, profile)
        if old_key and old_key != new_key:
            await asyncio.to_thread(store.set, profile + PREVIOUS, old_key)
        await asyncio.to_thread(store.set, profile, new_key)
        await asyncio.to_thread(store.delete, profile + PENDING)
    else:  # switched before an interruption: the store already holds the new key
        new_key = await asyncio.to_thread(store.get, profile)
    if not new_key:  # neither slot holds a key: nothing to switch to (was a TypeError)
        raise SecretStoreError(
            f"The {store.display_name} holds no API key for profile '{profile}' to switch to.",
            hint="Store the new key (or the current one) for this profile, then run the rotation again.",
        )
    session.unlock(new_key)
    new_id = required(flow.new_credential_id, "new_credential_id")
    session.state.record_tool_key(new_id, "created")
    session.model.record_api_key(new_key)
    session.audit.record("api_key_switched", credential_id=new_id, api_key=session.evidence.api_key_masked)


async def _disable_old(session: Session, store: SecretStore, flow: KeyRotation) -> None:
    old_id = flow.old_credential_id
    if old_id and old_id != flow.new_credential_id and not flow.keep_old:
        async with session.client() as klarna:  # made with the new key: one more proof
            infos = (await klarna.list_api_keys()).value
        _require(session, Action.DISABLE_API_KEY, infos, old_id)
        try:
            async with session.client() as klarna:
                await klarna.disable_api_key(old_id)
        except ApiError as error:
            if error.status != 404:  # already gone is fine; anything else is retried on resume
                raise
        session.audit.record("api_key_disabled", credential_id=old_id, reason="rotated")
    await asyncio.to_thread(store.delete, session.profile + PREVIOUS)


# ---------------------------------------------------------------- hygiene (doctor)
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
                "warning",
                "API keys not checked: the API key is not loaded.",
                "Run the doctor with the profile's key available.",
            )
        ]
    try:
        async with session.client() as klarna:
            answer = await klarna.list_api_keys()
    except WizardError as error:
        return [Finding("api keys", "warning", f"Could not list API keys: {error.message}", error.hint)]
    rows = _rows(session, answer.value)
    out = _key_findings(session, rows)
    if answer.ip_validation:
        out.append(ip_validation_finding(answer.ip_validation))
    return out


def ip_validation_finding(value: str) -> Finding:
    value = value.split(",")[0].strip().upper()
    meaning = IP_VALIDATION_MEANING.get(value, "an unknown value.")
    severity = {"ALLOWED": "ok", "DENIED": "critical", "INVALID": "warning"}.get(value, "warning")
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
        out.append(Finding("api keys", "ok", f"{len(active)} active API key(s); the tool uses its own, described key."))
    return out


def _tool_key_finding(session: Session, tool: KeyRow | None) -> Finding | None:
    """Whether the tool's own key is known, active, not the initial key and named for it."""
    known = session.state.tool_key_id
    if known is None:
        return Finding(
            "api keys",
            "warning",
            "The key this tool uses is unknown: its credential id is not recorded.",
            "Name it (keys list, then keys list --key-id <id>), or let the tool take its own key "
            "(keys rotate --key-id <id>, or onboard --own-key).",
        )
    if tool is None or not tool.active:
        return Finding(
            "api keys",
            "warning",
            f"The recorded key {known} is not among the account's active keys.",
            "Check the profile's stored key belongs to this account.",
        )
    if tool.is_initial:
        return Finding(
            "api keys",
            "warning",
            "klarna-mtls runs on the account's initial API key.",
            "Give this tool its own key (keys rotate), and each service its own described key.",
        )
    if generic(tool):
        return Finding(
            "api keys",
            "warning",
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
                "warning",
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
                "warning",
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
            "critical",
            f"The stored key is a {key_env} key but the profile is {session.environment}.",
            "Store a key from the profile's environment.",
        )
    return None
