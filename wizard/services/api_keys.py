"""API-key hygiene: one key per service, each described; listing, creating, describing and
disabling keys through the interlocks; findings for the doctor. Rotating the key this tool uses is
``api_key_rotation``.

A new key's secret is shown by Klarna once. It goes only to the secret store (or, on explicit
request, to the caller as a ``SecretValue``); never to the journal, the audit log, logs or
exceptions.

Secret-store names (all under the profile, in the profile's own store):

- ``<profile>``                    the key this tool uses;
- ``<profile>#key:<credential_id>`` a key created for another service (``create_key(store=…)``);
- ``<profile>#pending-api-key``     a rotation's new key, from creation until the switch;
- ``<profile>#previous-api-key``    the replaced key, from the switch until it is disabled."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wizard.core import rules
from wizard.core.errors import ApiError, InputError, InterlockRefused, SecretStoreError, WizardError
from wizard.core.interlocks import Action, Refusal, Situation, refusals, require
from wizard.core.secret_value import SecretValue
from wizard.klarna.models import Answer, ApiKeyInfo
from wizard.services import api_key_creation as creation
from wizard.services.api_key_creation import LostKeyChoice
from wizard.services.session import Session

if TYPE_CHECKING:
    from wizard.secrets.base import SecretStore


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

    @property
    def confirm_suffix(self) -> str:
        """What a live disable is typed with: the key's last 4 characters, else its id's last 8."""
        tail = self.masked[-4:]
        return self.credential_id[-8:] if tail == "????" and self.credential_id else tail

    @property
    def confirm_what(self) -> str:
        """``confirm_suffix`` in words, as a refusal names what is to be typed."""
        expected = self.confirm_suffix
        return (
            f"the key's last four characters ({expected})"
            if len(expected) == 4
            else "the last 8 characters of the key's id"
        )


def stored_name(profile: str, credential_id: str) -> str:
    """The secret-store name under which ``create_key(store=…)`` keeps a service's key."""
    return f"{profile}#key:{credential_id}"


# ---------------------------------------------------------------- listing
def _masked(session: Session, suffix: str | None) -> str:
    env = rules.KEY_ENVIRONMENT.get(session.environment or "test", "test")
    return f"klarna_{env}_api_…{suffix or '????'}"


def _tool_ids(session: Session, infos: Iterable[ApiKeyInfo]) -> set[str]:
    """Which listed key is this tool's: the credential id the profile records (the key the tool
    created, rotated in, or was told with keys set-own). Never guessed from a listing's fields."""
    known = session.state.tool_key_id
    return {known} if known and any(i.credential_id == known for i in infos) else set()


async def list_keys(session: Session) -> list[KeyRow]:
    """The account's keys, masked, with the one this tool uses marked (from the records)."""
    return key_rows(session, await list_key_infos(session))


async def list_key_infos(session: Session) -> list[ApiKeyInfo]:
    """The account's keys as Klarna lists them (for the interlocks' facts; never a secret)."""
    async with session.client() as klarna:
        answer: Answer[list[ApiKeyInfo]] = await klarna.list_api_keys()
        return answer.value


def key_rows(session: Session, infos: Iterable[ApiKeyInfo]) -> list[KeyRow]:
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
    session: Session, infos: Iterable[ApiKeyInfo | KeyRow], target: str | None, confirmed: bool, **facts: Any
) -> Situation:
    return session.situation(
        key_ids=frozenset(i.credential_id for i in infos),
        target=target,
        tool_key_id=session.state.tool_key_id,
        running_key_recorded=session.running_key_recorded,
        confirmed_not_tool_key=confirmed,
        tool_key_proven=session.settings.api_key_id_source == "created",
        current_damage=session.installed_damage(),
        **facts,
    )


def require_key_action(
    session: Session, action: Action, infos: Iterable[ApiKeyInfo], target: str | None = None, confirmed: bool = False
) -> None:
    require(action, _situation(session, infos, target, confirmed))


# Refusals the user can lift by confirming the target is not the tool's key.
CONFIRMABLE = frozenset({"tool key known", "running key known"})


def disable_refusals(session: Session, rows: list[KeyRow], credential_id: str) -> list[Refusal]:
    """Why disabling ``credential_id`` (among the listed ``rows``) would be refused, for a UI to
    ask before it acts; a refusal whose checks are all in CONFIRMABLE asks the user to confirm."""
    found = refusals(Action.DISABLE_API_KEY, _situation(session, rows, credential_id, False))
    return [r for r in found if r.check != "confirmed"]  # asked for after, by the UI


async def record_tool_key(session: Session, credential_id: str, *, confirm_suffix: str | None = None) -> KeyRow:
    """Remember ``credential_id`` as the key this tool runs on (the user named it: ``keys set-own``,
    ``onboard --key-id``, ctrl+t). It must be an active key of this account; the profile's stored key
    is assumed to be that key. Replacing an id already recorded needs the new key's last characters
    (``confirm_suffix``), and a proven id (the tool created it) is never replaced: the interlock's
    ``NAME_TOOL_KEY`` row. Naming the recorded key again changes nothing."""
    infos = await list_key_infos(session)
    info = next((i for i in infos if i.credential_id == credential_id), None)
    if info is None or info.status not in ("ACTIVE", "UNKNOWN"):
        raise InputError(
            f"No active API key {credential_id} on this account.",
            hint="List the keys (klarna-mtls keys list) and copy the id of the key this tool uses.",
        )
    row = key_rows(session, [info])[0]
    facts = name_key_facts(row, confirm_suffix)
    require(Action.NAME_TOOL_KEY, _situation(session, infos, credential_id, False, **facts))
    if credential_id != session.state.tool_key_id:
        replaced = session.state.tool_key_id
        session.state.record_tool_key(credential_id, "told")
        session.save()
        session.audit.record("api_key_identified", credential_id=credential_id, source="told", replaced=replaced)
    return key_rows(session, [info])[0]


def name_key_facts(row: KeyRow, typed: str | None) -> dict[str, Any]:
    """The typed confirmation of naming ``row`` the tool's key (asked only when it would replace
    the recorded id): the key's last four characters, as a live ``keys disable`` asks."""
    return {
        "confirmation_expected": row.confirm_suffix,
        "confirmation_typed": typed,
        "confirmation_what": row.confirm_what,
    }


def naming_needs_confirmation(session: Session, credential_id: str) -> bool:
    """Whether naming ``credential_id`` the tool's key would replace an id already recorded."""
    recorded = session.state.tool_key_id
    return recorded is not None and recorded != credential_id


def naming_refusals(session: Session, rows: list[KeyRow], credential_id: str) -> list[Refusal]:
    """Why naming ``credential_id`` the tool's key would be refused, but for the typed
    confirmation a UI asks for next (``naming_needs_confirmation``)."""
    found = refusals(Action.NAME_TOOL_KEY, _situation(session, rows, credential_id, False))
    return [r for r in found if r.check != "confirmed"]


# ---------------------------------------------------------------- create, describe, disable
async def create_key(
    session: Session,
    description: str,
    *,
    store: SecretStore | None = None,
    name: str | None = None,
    lost_key: LostKeyChoice | None = None,
) -> tuple[KeyRow, SecretValue[str]]:
    """Create a key for a named service. Its secret is returned once; with ``store`` it is also
    kept there under ``name`` (default ``stored_name(profile, id)``). If the store refuses, the
    new key is disabled (its secret would otherwise be lost with the key left active). An earlier
    create whose answer was lost is reconciled first (``reconcile_lost_creation``, ``lost_key``)."""
    verify_service_description(description)
    session.require(Action.CREATE_API_KEY)
    if store is not None:  # a store that would refuse the key is found out before the key exists
        from wizard.secrets.resolve import prove_opens

        await asyncio.to_thread(prove_opens, store)
    await reconcile_lost_creation(session, lost_key, store)
    info = await creation.send_create(session, description, name)
    if info.secret is None:
        creation.finish(session)
        raise ApiError(
            "Klarna's answer held no key secret.",
            status=201,
            hint=f"Disable {info.credential_id} and create another key.",
        )
    stored_as = await _keep_secret(session, info, store, name)
    session.audit.record(
        "api_key_created", credential_id=info.credential_id, description=description, stored_as=stored_as
    )
    creation.finish(session)
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


async def _keep_secret(session: Session, info: ApiKeyInfo, store: SecretStore | None, name: str | None) -> str | None:
    """Keep the new secret in ``store`` (its name returned); if the store refuses, the key is disabled."""
    if store is None or info.secret is None:
        return None
    stored_as = name or stored_name(session.profile, info.credential_id)
    try:
        await asyncio.to_thread(store.set, stored_as, info.secret.reveal())
    except SecretStoreError as error:
        await disable_quietly(session, info.credential_id)
        creation.finish(session)
        raise SecretStoreError(
            f"The new key could not be stored ({error.message}); it was disabled.",
            hint="Fix the secret store, then create the key again.",
        ) from None
    return stored_as


async def reconcile_lost_creation(
    session: Session, choice: LostKeyChoice | None, store: SecretStore | None = None
) -> str | None:
    """An earlier create whose answer was lost (still journaled): the key it may have made is
    looked for by description and creation time, then recorded or disabled as ``choice`` says
    (refused without a choice). Returns what was found and done; None when nothing was pending."""
    pending = session.state.flows.key_creation
    if pending is None:
        return None
    created, unknown = creation.lost_candidates(pending, await list_key_infos(session))
    for info in list(created):
        if await _secret_kept(session, pending.stored_as, info.credential_id, store):
            created.remove(info)  # the create finished but for its record: nothing was lost
    if unknown and choice != "record":
        ids = ", ".join(i.credential_id for i in unknown)
        raise InterlockRefused(
            f"An earlier keys create ('{pending.description}') lost its answer, and the creation time of "
            f"{ids}, described the same, is not given: whether that request created it cannot be told.",
            hint="Check keys list; keys reconcile --lost-key record forgets the lost request and changes nothing.",
        )
    if created and choice is None:
        raise InterlockRefused(
            creation.choice_needed(pending, created),
            hint="Run again with --lost-key disable (nothing can use it) or --lost-key record (keep it active).",
        )
    for info in created:
        if choice == "disable":  # ours by the journal: not the key this tool runs on (the gate still checks);
            # --lost-key disable names this very key, so it is the typed confirmation too
            row = key_rows(session, [info])[0]
            await disable_key(session, info.credential_id, not_the_tools_key=True, confirm_suffix=row.confirm_suffix)
        else:
            session.audit.record("api_key_created", credential_id=info.credential_id, secret_received=False)
    creation.finish(session)
    if not created:
        return f"The earlier keys create ('{pending.description}') created no key that is still active."
    ids = ", ".join(i.credential_id for i in created)
    return f"The key the earlier keys create made ({ids}) was {'disabled' if choice == 'disable' else 'recorded'}."


async def _secret_kept(session: Session, stored_as: str | None, credential_id: str, store: SecretStore | None) -> bool:
    """Whether the secret of ``credential_id`` reached ``store`` before its creation was recorded."""
    name = stored_as or stored_name(session.profile, credential_id)
    secret: str | None = await asyncio.to_thread(store.get, name) if store is not None else None
    if secret:
        session.audit.record("api_key_created", credential_id=credential_id, stored_as=name, reconciled=True)
    return bool(secret)


async def describe_key(session: Session, credential_id: str, description: str) -> KeyRow:
    """Change a key's description (e.g. to name the service that uses it)."""
    verify_service_description(description)
    session.require(Action.DESCRIBE_API_KEY, target=credential_id)
    async with session.client() as klarna:
        info = (await klarna.update_api_key(credential_id, description)).value
    session.audit.record("api_key_described", credential_id=credential_id, description=description)
    return key_rows(session, [info])[0]


async def disable_key(
    session: Session, credential_id: str, *, not_the_tools_key: bool = False, confirm_suffix: str | None = None
) -> KeyRow:
    """Disable a key. Refused (``interlocks``) for the key the profile records as the tool's, and
    for any key while the tool's own key id is unknown, unless the user confirms with
    ``not_the_tools_key`` that the target is not it; on live profiles unless ``confirm_suffix`` is
    the key's (``KeyRow.confirm_suffix``). ``rotate_tool_key`` replaces the tool's key."""
    infos = await list_key_infos(session)
    listed = key_rows(session, [i for i in infos if i.credential_id == credential_id])
    expected, what = (
        (listed[0].confirm_suffix, listed[0].confirm_what)
        if listed
        else (None, "the last 8 characters of the key's id")
    )
    facts = session.confirmation(expected, confirm_suffix, what)
    require(Action.DISABLE_API_KEY, _situation(session, infos, credential_id, not_the_tools_key, **facts))
    target = listed[0]
    if target.status == "DISABLED":
        return target
    async with session.client() as klarna:
        answer = await klarna.disable_api_key(credential_id)
    session.audit.record("api_key_disabled", credential_id=credential_id)
    if answer.value is not None:
        return key_rows(session, [answer.value])[0]
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


def key_refusal(error: BaseException) -> str | None:
    """Klarna's reason when ``error`` is Klarna refusing the API key itself (401: disabled or
    unknown; an mTLS refusal may be a 401 too, and is not one), else None."""
    if isinstance(error, ApiError) and error.status == 401 and error.error_code != "MTLS_REQUIRED":
        return error.message
    return None


async def running_key_refused(session: Session) -> str | None:
    """Klarna's reason when it now refuses the API key loaded for this run, None when that key
    still answers. Any other failure is raised: it says nothing about the key. A front end asks
    after disabling a key it could not prove was not the tool's."""
    try:
        async with session.client() as klarna:
            await klarna.ping()
    except ApiError as error:
        reason = key_refusal(error)
        if reason is None:
            raise
        return reason
    return None


def verify_service_description(description: str) -> None:
    rules.verify_description(description)
    if not description.strip():
        raise WizardError(
            "Describe which service the key is for.",
            title="Description needed",
            hint="E.g. 'checkout service eu'. Klarna allows letters, digits, spaces and - : ; . , _",
        )


async def disable_quietly(session: Session, credential_id: str) -> bool:
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
