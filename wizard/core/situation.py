"""The domain's actions and the facts each is judged on (``interlocks.require``): what the caller
observed just before it, plus the profile's own records. The rules that judge them are
``wizard/core/interlocks.py``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from wizard.core.model import Onboarding
from wizard.core.stages import Stage


class Action(StrEnum):
    GENERATE_KEY = "generate a key"
    ISSUE = "issue a certificate"
    INSTALL = "install the certificate"
    POLL_VERIFICATION = "poll verification"
    ENFORCE = "enforce mTLS"
    UNENFORCE = "remove enforcement"
    ROTATE = "rotate the certificate"
    REPAIR = "repair the installed pair"
    REVOKE = "revoke a certificate"
    CREATE_API_KEY = "create an API key"
    DISABLE_API_KEY = "disable an API key"
    ROTATE_API_KEY = "rotate the tool's API key"
    EXPORT = "export the installed pair"
    ISSUE_RUNTIME = "issue a runtime's certificate"
    DESCRIBE_API_KEY = "describe an API key"
    NAME_TOOL_KEY = "name the API key klarna-mtls runs on"


@dataclass(frozen=True)
class Situation:
    """What the caller observed just before the action. ``None`` means "not established"."""

    stage: Stage
    model: Onboarding | None = None
    installed: bool | None = None  # a pair is in the install folder's `current`
    current_id: str | None = None  # its credential id, from the profile's records
    current_damage: str | None = None  # the records and the installed files disagree (which, how)
    listed_ids: frozenset[str] | None = None  # the account's certificates, as listed now
    statuses: Mapping[str, str] = field(default_factory=dict)  # listing status, or ours (retired)
    verification_now: str | None = None  # what the installed pair saw on a call just now
    enforcement: str | None = None  # ENFORCED | REPORTING | NOT_ENABLED | UNKNOWN
    enforcement_scheduled: bool | None = None  # an enforced_from is set (None: not said)
    target: str | None = None  # the credential id the action would change
    tool_key_id: str | None = None  # recorded: the API key the profile keeps and runs on
    running_key_recorded: bool | None = None  # the key in memory is that recorded key
    key_ids: frozenset[str] | None = None  # the account's API keys, as listed now
    confirmed_not_tool_key: bool = False  # the user said the target is not the tool's key
    tool_key_proven: bool = False  # the recorded id is of a key the tool created (it proved possession)
    # Facts from other services, computed by their owners before the call (e.g. declared runtimes):
    runtimes_not_ready: tuple[str, ...] = ()  # "name: why" per runtime enforcement would refuse
    target_in_use_by: tuple[str, ...] = ()  # runtimes whose current certificate is the target
    # (runtime, its newer certificate id): the target is its older one and it has not reported
    # VALID with the newer yet, so it may still present the target
    target_not_replaced_on: tuple[tuple[str, str], ...] = ()
    # Other local profiles of this account: "why" per one that has the target installed, or whose
    # installs could not be read (wizard/services/local_profiles.py)
    target_installed_by_profiles: tuple[str, ...] = ()
    # Time (the enforcement gate): this machine's clock at the observation, Klarna's Date on its
    # answer, when the enforcement asked for starts, and when each counted certificate expires
    # (the installed one from its X.509; each counted runtime's from the profile's records).
    now: datetime | None = None
    server_date: datetime | None = None
    effective_at: datetime | None = None
    current_not_after: datetime | None = None
    runtime_not_after: tuple[tuple[str, datetime | None], ...] = ()
    # Slots: the call adds a certificate (False: the steps before, whose issue asks again), the
    # ACTIVE ones listed now (Klarna's refusal: full), and "id (holder, description)" for each.
    spends_slot: bool = True
    active_certificates: int | None = None
    slot_holders: tuple[str, ...] = ()
    # A typed confirmation (required by the environment's row): expected, typed, named in a refusal.
    confirmation_required: bool = False
    confirmation_expected: str | None = None
    confirmation_typed: str | None = None
    confirmation_what: str = "the confirmation"
