"""The onboarding stages' two waits, built on the generic machinery in ``waits``: verification
polling (Verify stage) and the watch for enforcement to apply, ended by the proof that a call
without a client certificate is refused (Enforce stage). Each observation goes through the stage
work in ``onboarding``, which records it as evidence."""

from __future__ import annotations

import contextlib

from wizard.core.checks import VALID_IN_A_ROW
from wizard.core.diagnosis import diagnose
from wizard.core.errors import (
    CertificateRefused,
    EnforcementNotApplied,
    EnforcementNotProved,
    NotVerified,
    VerificationFailed,
    VerificationTimeout,
    WizardError,
)
from wizard.core.rules import EnforcementMode
from wizard.core.stages import Stage
from wizard.services import onboarding, waits
from wizard.services.session import Session
from wizard.services.waits import DEFAULT_LIMITS, Clock, Done, Events, Failed, PollLimits, Sleep, Step, poll

# Klarna's verdicts against a certificate it was shown: the poll ending on one of these failed;
# ending on any other status (none sent, no status, VALID not yet in a row) ran out of time.
VERDICTS_AGAINST = frozenset({"INVALID", "REJECTED"})


REFUSED = "REFUSED"  # the enforcement read refused with our certificate: enforced, and it is not accepted (yet)


def _not_applied(status: str) -> WizardError:
    if status != REFUSED:
        return EnforcementNotApplied(status)
    return WizardError(
        "mTLS is enforced, but Klarna still refuses the installed certificate.",
        title="Client certificate refused",
        hint="A certificate issued in the last 5 minutes may not be accepted yet: run klarna-mtls status "
        "shortly (or onboard again; it resumes). If it stays refused, klarna-mtls doctor explains.",
    )


def _not_verified(status: str) -> NotVerified:
    if status == "VALID":  # seen VALID, but the poll ended before enough of them in a row
        return VerificationTimeout(
            status,
            f"Klarna answered VALID, but the poll ended before {VALID_IN_A_ROW} VALID answers in a row.",
            "Run again (it resumes), or allow more polls: raise --poll-limit or --poll-attempts, "
            "or lower --poll-interval.",
        )
    diagnosis = diagnose(status)
    cause = VerificationFailed if status in VERDICTS_AGAINST else VerificationTimeout
    return cause(status, diagnosis.summary, " ".join(diagnosis.next_steps[:1]))


def poll_verification(
    session: Session,
    limits: PollLimits = DEFAULT_LIMITS,
    *,
    clock: Clock | None = None,
    sleep: Sleep | None = None,
) -> Events:
    """Verify stage: poll the installed pair until the model's VERIFY checks pass (VALID seen
    enough times in a row). Each observation is recorded as evidence by ``verify_once``."""

    async def observe() -> str:
        return (await onboarding.verify_once(session)).status

    def verified(_status: str) -> bool:
        return not session.model.blockers(Stage.VERIFY)

    task = f"Checking Klarna sees the installed certificate VALID {VALID_IN_A_ROW} times in a row"
    return poll(task, observe, verified, limits, _not_verified, clock=clock, sleep=sleep)


async def watch_enforcement(
    session: Session,
    limits: PollLimits | None = None,
    *,
    clock: Clock | None = None,
    sleep: Sleep | None = None,
) -> Events:
    """After enforcement from NOW: read the mode until ENFORCED, then prove that a call without
    a client certificate is refused. Ends with Done (proved) or Failed (not applied in time, or
    a cert-less call still accepted). A refusal of the installed certificate meanwhile (enforced,
    and a certificate issued minutes ago not accepted yet) is a reason to look again."""
    limits = limits or PollLimits.for_enforcement()
    clock = clock or waits.monotonic
    start = clock()

    async def observe() -> str:
        try:
            return str((await onboarding.read_enforcement(session)).mode.value)
        except CertificateRefused:
            return REFUSED

    def enforced(status: str) -> bool:
        return status == EnforcementMode.ENFORCED.value

    task = "Waiting for Klarna to apply enforcement"
    async with contextlib.aclosing(
        poll(task, observe, enforced, limits, _not_applied, clock=clock, sleep=sleep)
    ) as events:
        async for event in events:
            if isinstance(event, Done):
                break
            yield event
            if isinstance(event, Failed):
                return
    yield Step(task, "prove", 1, 1, "Proving a request without a client certificate is refused")
    if await onboarding.prove_enforced(session):
        yield Done(
            task,
            clock() - start,
            "ENFORCED",
            "ENFORCED. Proved: a request without a client certificate is refused.",
            result=True,
        )
        return
    yield Failed(task, clock() - start, "ENFORCED", None, EnforcementNotProved())
