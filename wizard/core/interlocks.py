"""The gate: every domain action, the stages it may run in and the checks that must hold *now*.

Each action function (``onboarding.enforce``, ``revocation.revoke``, ``api_keys.disable_key``, …)
observes the world into a ``Situation`` and calls ``require(action, situation)``, which raises
``ActionRefused`` with every reason before anything changes. The lock-out rules live here only:

- never enforce without an installed certificate, recorded as ours, seen VALID now and still valid
  when the enforcement has surely applied (its start plus ``timeline.ENFORCEMENT_MARGIN``), nor
  while this machine's clock is off Klarna's ``Date``, nor while a declared runtime is not ready or
  its current certificate expires before then (leaving one out on purpose is typed on live);
- never revoke the installed certificate, nor any other while enforcement is on, scheduled or
  unknown unless the installed one is VALID now, nor one a declared runtime or another local
  profile of the account may still present;
- never disable the API key the profile records as the tool's, nor any key while the tool's own
  key id is not known (the user may confirm the target is not the tool's key);
- never replace the recorded id of the tool's key without the new key's last characters typed,
  nor a proven one (the tool created it) with one that is not;
- never issue a certificate into a full account, or one whose count is unknown;
- where the environment's row asks for it, never revoke, disable a key or leave a runtime out
  without the typed confirmation, whatever the front end;
- never revoke, enforce or disable while the records and the installed files disagree (damage).

"Installed here", "current" and "the tool's key" come from the profile's own records; fields only
our sandbox sends never decide. Unknown means no: a fact not established (``None``) fails the check
that needs it, saying what is missing and how to proceed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wizard.core import acceptance, rules, timeline
from wizard.core.errors import InterlockRefused
from wizard.core.situation import Action as Action  # re-exported: the actions and the facts it judges
from wizard.core.situation import Situation as Situation
from wizard.core.stages import ORDER, Stage

GONE = ("REVOKED", "EXPIRED")


@dataclass(frozen=True)
class Refusal:
    check: str
    reason: str
    hint: str


CheckFn = Callable[[Situation], "str | None"]


@dataclass(frozen=True)
class Gate:
    name: str
    fn: CheckFn  # None when it holds, else why not
    hint: str


@dataclass(frozen=True)
class Rule:
    stages: frozenset[Stage]
    settled_before: Stage | None  # every check of the stages before this one must hold
    gates: tuple[Gate, ...] = ()


class ActionRefused(InterlockRefused):
    """``require`` refused an action; ``reasons`` lists every failing check."""

    def __init__(self, action: Action, refusals: list[Refusal]) -> None:
        reasons = [r.reason for r in refusals]
        super().__init__(f"Refusing to {action.value}: " + " ".join(reasons), hint=refusals[0].hint)
        self.action = action
        self.refusals = refusals
        self.reasons = reasons


# ---------------------------------------------------------------- facts → reasons
def enforcement_possibly_on(situation: Situation) -> bool:
    """On, scheduled, or not known to be off (unknown means on)."""
    mode = situation.enforcement
    if mode == "NOT_ENABLED":
        return False
    if mode == "REPORTING":
        return situation.enforcement_scheduled is not False
    return True  # ENFORCED, UNKNOWN or not read


def _installed(s: Situation) -> str | None:
    if s.installed is None:
        return "Whether a certificate is installed here could not be established."
    return None if s.installed else "No certificate is installed here."


def _current_recorded(s: Situation) -> str | None:
    if s.installed and s.current_id is None:
        return (
            "The certificate installed here is not in this profile's records (or its id, from a runtime-response "
            "file, was never confirmed by Klarna), so its credential id is unknown."
        )
    return None


def _current_listed(s: Situation) -> str | None:
    if s.current_id is None:
        return None
    if s.listed_ids is None:
        return "The account's certificates could not be listed."
    if s.current_id not in s.listed_ids:
        return (
            f"The certificate installed here ({s.current_id}) is not among the account's certificates: "
            "the API key may belong to another account."
        )
    return None


def _current_alive(s: Situation) -> str | None:
    status = s.statuses.get(s.current_id or "", "UNKNOWN")
    return f"The certificate installed here is {status}." if status in GONE else None


def _valid_now(s: Situation) -> str | None:
    if acceptance.accepted(s.verification_now):  # VALID, or accepted under enforcement (no header)
        return None
    seen = s.verification_now or "not observed"
    return f"No installed certificate is VALID right now ({seen}); enforcing would refuse your own calls."


def _clock_agrees(s: Situation) -> str | None:
    if s.now is None:
        return "This machine's time at the observation was not recorded."
    return timeline.skew_reason(s.server_date, s.now)


def _start_known(s: Situation) -> str | None:
    if s.now is None or s.effective_at is None:
        return "When the enforcement would start could not be established."
    return None


def _current_lasts(s: Situation) -> str | None:
    if s.now is None or s.effective_at is None or not s.installed:
        return None  # refused already, for a better reason
    label = f"The certificate installed here ({s.current_id or 'not recorded'})"
    return timeline.lasting_reason(label, s.current_not_after, s.now, s.effective_at)


def _runtimes_last(s: Situation) -> str | None:
    if s.now is None or s.effective_at is None:
        return None
    reasons = [
        timeline.lasting_reason(f"The current certificate of runtime {name}", not_after, s.now, s.effective_at)
        for name, not_after in s.runtime_not_after
    ]
    return " ".join(r for r in reasons if r) or None


def _target_listed(s: Situation) -> str | None:
    if s.listed_ids is None:
        return "The account's certificates could not be listed."
    return None if s.target in s.listed_ids else f"No certificate {s.target} on this account."


def _target_alive(s: Situation) -> str | None:
    status = s.statuses.get(s.target or "", "UNKNOWN")
    return f"Certificate {s.target} is already {status}." if status in GONE else None


def _not_current(s: Situation) -> str | None:
    if s.target is not None and s.target == s.current_id:
        return "It is the certificate installed and in use here. Rotate first, then retire the old one."
    return None


def _enforcement_safe(s: Situation) -> str | None:
    if not enforcement_possibly_on(s) or acceptance.accepted(s.verification_now):
        return None
    mode = s.enforcement or "not read"
    return (
        f"mTLS enforcement is on, scheduled or unknown ({mode}) and no installed certificate is VALID "
        f"right now ({s.verification_now or 'not observed'}): this may be the last certificate that works."
    )


def _runtimes_ready(s: Situation) -> str | None:
    if not s.runtimes_not_ready:
        return None
    return f"Runtimes not ready for enforcement: {'; '.join(s.runtimes_not_ready)}."


def _target_unused(s: Situation) -> str | None:
    reasons = [
        f"Certificate {s.target} is the current certificate of runtime {name}. Give {name} its new pair first "
        f"(runtime request --new-key there, runtime issue here, runtime install there; or runtime add {name} "
        f"--certificate-id NEW once it uses another), or runtime remove {name} if it no longer calls Klarna."
        for name in s.target_in_use_by
    ]
    reasons += [
        f"Runtime {name} may still use certificate {s.target}: it has not reported VALID with its newer "
        f"certificate {newer} yet. Install that one there, run probe, then runtime report here."
        for name, newer in s.target_not_replaced_on
    ]
    return " ".join(reasons) or None


def _key_listed(s: Situation) -> str | None:
    if s.key_ids is None:
        return "The account's API keys could not be listed."
    return None if s.target in s.key_ids else f"No API key {s.target} on this account."


def _not_tool_key(s: Situation) -> str | None:
    if s.target is not None and s.target == s.tool_key_id:
        return "This is the key klarna-mtls uses (the profile's stored key); disabling it would leave the tool without a working key."
    return None


def _tool_key_known(s: Situation) -> str | None:
    if s.confirmed_not_tool_key:
        return None
    if s.tool_key_id is None:
        return "klarna-mtls does not know which API key it runs on, so it cannot tell that this is not that key."
    if s.key_ids is not None and s.tool_key_id not in s.key_ids:
        return (
            f"The key recorded as klarna-mtls's own ({s.tool_key_id}) is not among this account's keys, "
            "so the key it runs on here is unknown."
        )
    return None


def _running_key_known(s: Situation) -> str | None:
    if s.target == s.tool_key_id:
        return None  # refused already, for a better reason
    if s.tool_key_id is not None and s.running_key_recorded is False and not s.confirmed_not_tool_key:
        return "The API key loaded for this run is not the profile's recorded key, and its id is unknown."
    return None


def _tool_key_recorded(s: Situation) -> str | None:
    if s.tool_key_id is None:
        return "klarna-mtls does not know the credential id of the key it runs on."
    if s.key_ids is not None and s.tool_key_id not in s.key_ids:
        return f"The recorded key {s.tool_key_id} is not among the account's API keys."
    if s.running_key_recorded is False:
        return "The profile's stored key is not the key recorded as the tool's."
    return None


def _proven_key_kept(s: Situation) -> str | None:
    replaces = s.tool_key_id is not None and s.target != s.tool_key_id
    if not (replaces and s.tool_key_proven):
        return None
    if s.key_ids is None:
        return "The account's API keys could not be listed."
    if s.tool_key_id not in s.key_ids:
        return None  # the proven key is gone from the account: there is nothing left to protect
    return (
        f"The key recorded as klarna-mtls's own ({s.tool_key_id}) is one the tool created and proved it holds; "
        f"naming {s.target} instead would replace a proven id with one nothing proves."
    )


def _replacement_confirmed(s: Situation) -> str | None:
    if s.tool_key_id is None or s.target == s.tool_key_id:
        return None  # nothing recorded is replaced
    if s.confirmation_expected is None:
        return "What to type to confirm could not be established."
    if s.confirmation_typed == s.confirmation_expected:
        return None
    return (
        f"{s.target} would replace {s.tool_key_id} as the key klarna-mtls runs on: "
        f"{s.confirmation_what} must be typed to confirm."
    )


def _slots_free(s: Situation) -> str | None:
    if s.spends_slot and s.active_certificates is None:
        return "How many of the account's certificate slots are in use could not be established."
    if not s.spends_slot or (s.active_certificates or 0) < rules.MAX_ACTIVE_CERTIFICATES:
        return None
    held = ": " + "; ".join(s.slot_holders) if s.slot_holders else ""
    return f"All {rules.MAX_ACTIVE_CERTIFICATES} certificate slots are in use{held}."


def _confirmed(s: Situation) -> str | None:
    if s.confirmation_required and s.confirmation_expected is None:
        return "What to type to confirm could not be established."
    if not s.confirmation_required or s.confirmation_typed == s.confirmation_expected:
        return None
    return f"On a live profile, {s.confirmation_what} must be typed to confirm."


# ---------------------------------------------------------------- the table
_CURRENT_HINT = "Rotate (klarna-mtls rotate) so the tool installs and records a certificate it issued, then try again."
_NAME_KEY_HINT = (
    "Name the key klarna-mtls runs on with keys set-own <credential id> (keys list shows the ids), "
    "or confirm with --not-the-tools-key that the target is not that key."
)
G_INSTALLED = Gate("installed", _installed, "Finish onboarding: install the certificate here first.")
G_CURRENT_RECORDED = Gate("current recorded", _current_recorded, _CURRENT_HINT)
G_CURRENT_SOUND = Gate(
    "installed pair sound",
    lambda s: s.current_damage,
    "klarna-mtls repair checks the installed pair against the records made at issue and puts it back; "
    "until then nothing is revoked, enforced or disabled.",
)
G_CURRENT_LISTED = Gate(
    "current listed", _current_listed, "Check the API key belongs to this profile's account (klarna-mtls doctor)."
)
G_CURRENT_ALIVE = Gate("current alive", _current_alive, "Rotate first: klarna-mtls rotate.")
G_RUNTIMES = Gate(
    "runtimes ready",
    _runtimes_ready,
    "Enforcement would refuse their calls. Probe them until VALID, or leave them out explicitly "
    "(enforce --leave-out NAME).",
)
G_VALID_NOW = Gate(
    "valid now", _valid_now, "Install a certificate and see it VALID first (klarna-mtls doctor explains why it is not)."
)
G_CLOCK = Gate(
    "clock agrees",
    _clock_agrees,
    "Fix this machine's clock (NTP: timedatectl set-ntp true, or w32tm /resync), then try again.",
)
G_START_KNOWN = Gate("start known", _start_known, "Give NOW or a UTC time (e.g. 2026-12-01T09:00:00Z).")
G_CURRENT_LASTS = Gate(
    "current lasts",
    _current_lasts,
    "Rotate first (klarna-mtls rotate) so the installed certificate outlasts the start, or choose an earlier time.",
)
G_RUNTIMES_LAST = Gate(
    "runtimes last",
    _runtimes_last,
    "Rotate that runtime first (runtime request --new-key there, runtime issue here, runtime install there), "
    "choose an earlier time, or leave it out explicitly (enforce --leave-out NAME).",
)

G_SLOTS = Gate("slots free", _slots_free, "Revoke one no runtime uses any more (certs revoke ID), then issue again.")
G_CONFIRMED_REVOKE = Gate("confirmed", _confirmed, "klarna-mtls certs revoke ID --confirm-suffix SUFFIX.")
G_CONFIRMED_DISABLE = Gate("confirmed", _confirmed, "klarna-mtls keys disable ID --confirm-suffix SUFFIX.")
G_CONFIRMED_LEAVE_OUT = Gate(
    "confirmed",
    _confirmed,
    "Their calls will be refused once enforcement applies. Confirm with --confirm-leave-out NAMES (comma-separated).",
)

ALL_STAGES = frozenset(ORDER)
_LATE = frozenset({Stage.VERIFY, Stage.ENFORCE, Stage.DONE})

ACTIONS: dict[Action, Rule] = {
    Action.GENERATE_KEY: Rule(frozenset({Stage.KEY_AND_CSR}), Stage.KEY_AND_CSR),
    Action.ISSUE: Rule(frozenset({Stage.ISSUE}), Stage.ISSUE, (G_SLOTS,)),
    Action.ISSUE_RUNTIME: Rule(ALL_STAGES, None, (G_SLOTS,)),
    Action.INSTALL: Rule(frozenset({Stage.INSTALL}), Stage.INSTALL),
    Action.POLL_VERIFICATION: Rule(frozenset({Stage.VERIFY}), Stage.VERIFY),
    Action.ENFORCE: Rule(
        frozenset({Stage.ENFORCE, Stage.DONE}),
        Stage.VERIFY,
        (
            G_INSTALLED,
            G_CURRENT_SOUND,
            G_CURRENT_RECORDED,
            G_CURRENT_LISTED,
            G_CURRENT_ALIVE,
            G_VALID_NOW,
            G_CLOCK,
            G_START_KNOWN,
            G_CURRENT_LASTS,
            G_RUNTIMES_LAST,
            G_RUNTIMES,
            G_CONFIRMED_LEAVE_OUT,
        ),
    ),
    Action.UNENFORCE: Rule(ALL_STAGES, None),
    Action.ROTATE: Rule(_LATE, Stage.VERIFY, (G_SLOTS,)),
    Action.REPAIR: Rule(_LATE, Stage.VERIFY),  # a pair was installed: its own checks are the files'
    Action.REVOKE: Rule(
        ALL_STAGES,
        None,
        (
            G_CURRENT_SOUND,
            Gate("target listed", _target_listed, "List the certificates (klarna-mtls certs list) and copy the id."),
            Gate("target active", _target_alive, "Nothing to revoke."),
            G_CURRENT_RECORDED,
            Gate("not current", _not_current, "klarna-mtls rotate installs and verifies a replacement first."),
            G_CURRENT_LISTED,
            Gate(
                "enforcement",
                _enforcement_safe,
                "Install another certificate and see it VALID first (klarna-mtls rotate), or remove enforcement.",
            ),
            Gate("target unused", _target_unused, "klarna-mtls runtime list shows each runtime's certificate."),
            Gate(
                "other profiles",
                lambda s: " ".join(f"{r[0].upper()}{r[1:]}." for r in s.target_installed_by_profiles) or None,
                "Rotate that profile first (klarna-mtls rotate --profile NAME); one that cannot be read: repair or "
                "remove its journal (klarna-mtls profiles list).",
            ),
            G_CONFIRMED_REVOKE,
        ),
    ),
    Action.CREATE_API_KEY: Rule(ALL_STAGES, None),
    Action.DISABLE_API_KEY: Rule(
        ALL_STAGES,
        None,
        (
            G_CURRENT_SOUND,
            Gate("key listed", _key_listed, "List the keys (klarna-mtls keys list) and copy the id."),
            Gate(
                "not the tool's key",
                _not_tool_key,
                "Rotate the tool's key first (keys rotate): it stores and proves a replacement before disabling.",
            ),
            Gate("tool key known", _tool_key_known, _NAME_KEY_HINT),
            Gate(
                "running key known",
                _running_key_known,
                "Run without KLARNA_API_KEY (the profile's stored key is used), or confirm with --not-the-tools-key.",
            ),
            G_CONFIRMED_DISABLE,
        ),
    ),
    Action.ROTATE_API_KEY: Rule(
        ALL_STAGES,
        None,
        (
            Gate(
                "tool key recorded",
                _tool_key_recorded,
                "Name the key klarna-mtls runs on: keys set-own <credential id> (keys list shows the ids).",
            ),
        ),
    ),
    Action.DESCRIBE_API_KEY: Rule(ALL_STAGES, None),
    Action.NAME_TOOL_KEY: Rule(
        ALL_STAGES,
        None,
        (
            Gate("key listed", _key_listed, "List the keys (klarna-mtls keys list) and copy the id."),
            Gate(
                "proven key kept",
                _proven_key_kept,
                "klarna-mtls keys rotate replaces the tool's own key, proving the new one before the switch.",
            ),
            Gate("confirmed", _replacement_confirmed, "klarna-mtls keys set-own ID --confirm-suffix SUFFIX."),
        ),
    ),
    Action.EXPORT: Rule(ALL_STAGES, None, (G_INSTALLED,)),
}


def refusals(action: Action, situation: Situation) -> list[Refusal]:
    """Every reason ``action`` may not run now (empty when it may)."""
    rule = ACTIONS[action]
    out: list[Refusal] = []
    if situation.stage not in rule.stages:
        allowed = ", ".join(s.label for s in ORDER if s in rule.stages)
        out.append(
            Refusal(
                "stage",
                f"It belongs to {allowed}, and this profile is at {situation.stage.label}.",
                "Finish the earlier onboarding steps first (klarna-mtls onboard or the wizard).",
            )
        )
    out.extend(_unsettled(rule, situation))
    for gate in rule.gates:
        reason = gate.fn(situation)
        if reason:
            out.append(Refusal(gate.name, reason, gate.hint))
    return out


def _unsettled(rule: Rule, situation: Situation) -> list[Refusal]:
    if rule.settled_before is None:
        return []
    if situation.model is None:
        return [Refusal("earlier stages", "The profile's progress could not be read.", "")]
    reasons = situation.model.unsettled_before(rule.settled_before)
    return [Refusal("earlier stages", r, "Resume onboarding: the stage named above comes first.") for r in reasons]


def require(action: Action, situation: Situation) -> None:
    """Raise ``ActionRefused`` naming every failing check; return when ``action`` may run."""
    found = refusals(action, situation)
    if found:
        raise ActionRefused(action, found)


def require_check(action: Action, check: str, situation: Situation) -> None:
    """Judge one of ``action``'s table checks alone, for a service that has established only its
    own facts (the runtimes service before the account is looked at). Actions call ``require``."""
    gate = next(g for g in ACTIONS[action].gates if g.name == check)
    reason = gate.fn(situation)
    if reason:
        raise ActionRefused(action, [Refusal(gate.name, reason, gate.hint)])
