"""Rotating the API key this tool uses without ever leaving it without a working key.

Rotation (``rotate_tool_key``, or ``key_rotation`` for its progress events) is a small state
machine persisted in the journal as ``session.state.flows.key_rotation`` (a
``flow_records.KeyRotation``: ids, idempotency key and step only, never a secret), run by
``waits.run_steps``:

    create → prove → switch → disable_old → done

At every point the store holds a working key under ``<profile>``: the old one until ``switch``
(which happens only after the new key answered a live call), the proven new one after. Between
creation and the switch the new key waits under ``<profile>#pending-api-key``; from the switch
until it is disabled the replaced one stays under ``<profile>#previous-api-key``. ``take_own_key``
is the same flow at onboarding, keeping the given key active."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wizard.core import rules
from wizard.core.errors import ApiError, SecretStoreError, WizardError
from wizard.core.flow_records import KeyRotation, KeyRotationStep, required
from wizard.core.interlocks import Action
from wizard.services.api_keys import disable_quietly, list_key_infos, require_key_action, verify_service_description
from wizard.services.session import Session
from wizard.services.waits import Done, Event, Events, Step, StepAction, follow, run_steps

if TYPE_CHECKING:
    from wizard.secrets.base import SecretStore

PENDING = "#pending-api-key"
PREVIOUS = "#previous-api-key"
KEY_ROTATION_TASK = "Rotating the tool's API key"


@dataclass(frozen=True)
class RotationState:
    """Where an interrupted rotation stands, for a UI to offer "resume" (no secrets)."""

    step: str
    old_credential_id: str | None
    new_credential_id: str | None
    description: str


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
    verify_service_description(description)
    stored = await asyncio.to_thread(store.get, session.profile)
    if not stored:
        raise SecretStoreError(
            f"The {store.display_name} holds no API key for profile '{session.profile}'.",
            hint="Rotation replaces the stored key: store the current key first (the wizard's Credentials step).",
        )
    session.unlock(stored)  # rotate exactly the key the profile keeps, not an override
    old_id = session.state.tool_key_id
    if not keep_old:
        require_key_action(session, Action.ROTATE_API_KEY, await list_key_infos(session))
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
    await disable_quietly(session, required(flow.new_credential_id, "new_credential_id"))
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
        require_key_action(session, Action.DISABLE_API_KEY, infos, old_id)
        try:
            async with session.client() as klarna:
                await klarna.disable_api_key(old_id)
        except ApiError as error:
            if error.status != 404:  # already gone is fine; anything else is retried on resume
                raise
        session.audit.record("api_key_disabled", credential_id=old_id, reason="rotated")
    await asyncio.to_thread(store.delete, session.profile + PREVIOUS)
