"""Creating an API key so that a lost answer is never silent: the request is journaled before it
is sent (``flows.key_creation``, a ``flow_records.KeyCreation``: description, idempotency key,
time; never a secret) and cleared once the answer and its secret are kept.

A record found at the next run means the answer was lost (the connection broke after Klarna
committed, or the process died): Klarna may hold an ACTIVE key whose secret nobody received. It
is looked for the way Klarna's listing allows, by its description and creation time
(``lost_candidates``); ``api_keys.reconcile_lost_creation`` then records it or disables it, as
the user chooses. "Nothing was created" is said only when the listing proves it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Literal

from wizard.core import rules
from wizard.core.errors import (
    ApiError,
    HandshakeRejected,
    InputError,
    TlsTooOld,
    TransportError,
    UntrustedServer,
    WizardError,
)
from wizard.core.flow_records import KeyCreation
from wizard.klarna.models import ApiKeyInfo
from wizard.services.session import Session

LostKeyChoice = Literal["record", "disable"]
LOST_KEY_CHOICES: tuple[LostKeyChoice, ...] = ("record", "disable")
# Klarna's clock and ours may differ: a key created this long before our request's time still counts.
CREATED_AT_TOLERANCE = timedelta(minutes=5)
# No request reached Klarna's API when the TLS connection itself was refused: nothing was created.
NOT_SENT = (HandshakeRejected, UntrustedServer, TlsTooOld)


async def send_create(session: Session, description: str, stored_as: str | None) -> ApiKeyInfo:
    """Ask Klarna for a new key, the request journaled first. A definite refusal clears the
    record; an unknown outcome keeps it and says what may have happened (never "nothing is lost")."""
    pending = KeyCreation(
        description=description,
        idempotency_key=str(uuid.uuid4()),
        started_at=rules.format_utc(session.clock()),
        stored_as=stored_as,
    )
    session.state.flows.key_creation = pending
    session.save()  # journaled before sending: the next run looks for the key if the answer is lost
    try:
        async with session.client() as klarna:
            return (await klarna.create_api_key(description, pending.idempotency_key)).value
    except NOT_SENT:
        finish(session)
        raise
    except ApiError as error:
        if 400 <= error.status < 500 and error.status != 429:
            finish(session)  # a definite no: nothing was created
            raise
        raise lost_answer(description, error) from None
    except TransportError as error:
        raise lost_answer(description, error) from None


def finish(session: Session) -> None:
    """The creation's outcome is known and kept: its record goes."""
    if session.state.flows.key_creation is not None:
        session.state.flows.key_creation = None
        session.save()


def lost_answer(description: str, error: WizardError) -> WizardError:
    return WizardError(
        f"Klarna's answer to creating the key '{description}' was lost ({error.message.rstrip('.')}): "
        "Klarna may have created it, and its secret was not received.",
        title="Outcome unknown",
        hint="Run keys create (or keys reconcile) again: it first looks for that key by its description "
        "and creation time, and asks you to record it (--lost-key record) or disable it (--lost-key disable).",
    )


def lost_candidates(pending: KeyCreation, infos: list[ApiKeyInfo]) -> tuple[list[ApiKeyInfo], list[ApiKeyInfo]]:
    """The keys the lost request may have created: (those described as asked and created at or
    after the request, less the clock tolerance; those described as asked whose creation time
    the listing does not give, which cannot be told apart from an older key)."""
    since = rules.parse_timestamp(pending.started_at) - CREATED_AT_TOLERANCE
    created: list[ApiKeyInfo] = []
    unknown: list[ApiKeyInfo] = []
    for info in infos:
        if info.description != pending.description or info.status not in ("ACTIVE", "UNKNOWN"):
            continue
        try:
            moment = rules.parse_timestamp(info.created_at) if info.created_at else None
        except InputError:
            moment = None
        if moment is None:
            unknown.append(info)
        elif moment >= since:
            created.append(info)
    return created, unknown


def choice_needed(pending: KeyCreation, created: list[ApiKeyInfo]) -> str:
    ids = ", ".join(f"{i.credential_id} (created {i.created_at})" for i in created)
    return (
        f"An earlier keys create ('{pending.description}', at {pending.started_at}) lost its answer, and "
        f"Klarna has {ids}: created by that request, its secret never received."
    )
