"""The domain's waits, as async iterators of typed progress events.

Every long wait in klarna-mtls is written once, here: a single network operation under a time
limit (``timed``), verification polling (``poll_verification``), the watch for enforcement to
apply, ended by the proof that a call without a certificate is refused (``watch_enforcement``),
and the resumable multi-step flows (the two rotations, whose steps live in ``lifecycle`` and
``keys``) run step by step from their journaled record (``run_steps``). The front ends only render the events and choose what to do next:

    async with aclosing(poll_verification(session, limits)) as events:
        async for event in events:
            show(event)          # Started, Waiting, Attempt, Step, then Done or Failed

Cancelling the task that iterates stops the wait at once: the operation in flight is cancelled
and nothing is left running. A ``Failed`` event is an outcome, not an exception: it carries the
diagnosis and a ``WizardError`` a front end may raise. Errors of the operation itself (network,
Klarna's refusals) propagate as exceptions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from wizard.core.diagnosis import Diagnosis, diagnose
from wizard.core.errors import TransportError, WizardError
from wizard.core.pacing import poll_delay
from wizard.core.rules import EnforcementMode
from wizard.services import onboarding

if TYPE_CHECKING:
    from wizard.services.session import Session

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

STEP_LIMIT = 60.0  # seconds a single step may take: above the client's own timeouts and retries
SETTLE_LIMIT = 300.0  # Klarna's verification states and enforcement take up to 5 minutes to settle
STOP_EARLY = frozenset({"REJECTED"})  # a refused handshake will not settle by itself


# ---------------------------------------------------------------- events
def _secs(value: float) -> str:
    return f"{value:.0f} s"


@dataclass(frozen=True)
class Started:
    """A wait begins: what is happening and how long it may take."""

    task: str
    limit: float | None

    @property
    def text(self) -> str:
        return f"{self.task}…" + (f" (gives up after {_secs(self.limit)})" if self.limit else "")


@dataclass(frozen=True)
class Waiting:
    """A single operation is still running."""

    task: str
    elapsed: float
    limit: float

    @property
    def text(self) -> str:
        return f"{self.task}… elapsed {_secs(self.elapsed)} of at most {_secs(self.limit)}"


@dataclass(frozen=True)
class Attempt:
    """One check of a polling loop and what it saw."""

    task: str
    n: int
    max_attempts: int
    status: str
    elapsed: float
    limit: float
    next_check_in: float | None  # None: this was the last check
    diagnosis: Diagnosis

    @property
    def text(self) -> str:
        then = f" · next check in {self.next_check_in:g} s" if self.next_check_in is not None else ""
        return (
            f"Attempt {self.n} of {self.max_attempts} · last status {self.status} · "
            f"elapsed {_secs(self.elapsed)} of {_secs(self.limit)}{then}"
        )


@dataclass(frozen=True)
class Step:
    """A step of a multi-step flow (a rotation) begins."""

    task: str
    step: str
    n: int
    total: int
    words: str

    @property
    def text(self) -> str:
        return f"Step {self.n} of {self.total}: {self.words}"


@dataclass(frozen=True)
class Done:
    """The wait ended well. ``result`` is what the operation returned, if anything."""

    task: str
    elapsed: float
    status: str | None = None
    message: str = ""
    result: object = None

    @property
    def text(self) -> str:
        return self.message or f"{self.task}: done in {_secs(self.elapsed)}."


@dataclass(frozen=True)
class Failed:
    """The wait ended without success: the last status, what it means, and an error to raise."""

    task: str
    elapsed: float
    status: str | None
    diagnosis: Diagnosis | None
    error: WizardError

    @property
    def text(self) -> str:
        return self.error.message


Event = Started | Waiting | Attempt | Step | Done | Failed
Events = AsyncGenerator[Event, None]  # what every runner returns (closable: aclosing)


@dataclass(frozen=True)
class PollLimits:
    """How often to check and when to give up (whichever of the two limits comes first)."""

    interval: float = 2.0
    max_attempts: int = 150
    limit: float = SETTLE_LIMIT

    @classmethod
    def for_enforcement(cls, interval: float = 5.0, limit: float = SETTLE_LIMIT + 120.0) -> PollLimits:
        """Enforcement is read at most every 5 s and at least every 0.5 s."""
        interval = min(5.0, max(0.5, interval))
        return cls(interval=interval, max_attempts=max(1, int(limit / interval) + 1), limit=limit)


DEFAULT_LIMITS = PollLimits()


# ---------------------------------------------------------------- one operation under a limit
async def timed(
    task: str,
    work: Awaitable[object],
    *,
    limit: float = STEP_LIMIT,
    tick: float = 1.0,
    clock: Clock = time.monotonic,
) -> Events:
    """Run ``work`` with a ``Waiting`` event every ``tick`` seconds; ``Done(result=…)`` at the end.
    Past ``limit`` the work is cancelled and a TransportError raised: silence never lasts."""
    yield Started(task, limit)
    job = asyncio.ensure_future(work)
    start = clock()
    try:
        while True:
            remaining = max(0.0, limit - (clock() - start))
            finished, _ = await asyncio.wait({job}, timeout=min(tick, remaining))
            elapsed = clock() - start
            if job in finished:
                yield Done(task, elapsed, result=job.result())
                return
            if elapsed >= limit:
                raise TransportError(
                    f"{task}: no answer within {_secs(limit)}.",
                    title="Timeout",
                    hint="Check the network, proxy and firewall, then try again; nothing is lost.",
                )
            yield Waiting(task, elapsed, limit)
    finally:
        await _cancel(job)


async def _cancel(job: asyncio.Future[object]) -> None:
    if not job.done():
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await job


async def run_timed(task: str, work: Awaitable[object], *, limit: float = STEP_LIMIT) -> object:
    """``timed`` without progress: the result, or the error. For callers that show nothing."""
    async with contextlib.aclosing(timed(task, work, limit=limit)) as events:
        async for event in events:
            if isinstance(event, Done):
                return event.result
    return None  # pragma: no cover - timed always ends with Done or raises


# ---------------------------------------------------------------- polling
async def poll(
    task: str,
    observe: Callable[[], Awaitable[str]],
    done: Callable[[str], bool],
    limits: PollLimits,
    failure: Callable[[str], WizardError],
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> Events:
    """The one polling loop. Observes until ``done(status)``; a status that is not yet right is
    a reason to look again (Klarna's states take minutes to settle) until the limit, except a
    refused handshake (``STOP_EARLY``)."""
    start = clock()
    yield Started(task, limits.limit)
    status = "UNKNOWN"
    for n in range(1, limits.max_attempts + 1):
        status = await observe()
        elapsed = clock() - start
        finished = done(status)
        delay = poll_delay(limits.interval, n)  # slower as the wait goes on: polite to Klarna's limits
        last = finished or status in STOP_EARLY or n >= limits.max_attempts or elapsed + delay > limits.limit
        yield Attempt(
            task,
            n,
            limits.max_attempts,
            status,
            elapsed,
            limits.limit,
            None if last else delay,
            diagnose(status),
        )
        if finished:
            yield Done(task, elapsed, status)
            return
        if last:
            break
        await sleep(delay)
    yield Failed(task, clock() - start, status, diagnose(status), failure(status))


def _not_verified(status: str) -> WizardError:
    diagnosis = diagnose(status)
    return WizardError(
        f"Verification did not reach VALID: last status {status}. {diagnosis.summary}",
        title="Not verified",
        hint=" ".join(diagnosis.next_steps[:1]),
    )


def poll_verification(
    session: Session,
    limits: PollLimits = DEFAULT_LIMITS,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> Events:
    """Verify stage: poll the installed pair until the model's VERIFY checks pass (VALID seen
    enough times in a row). Each observation is recorded as evidence by ``verify_once``."""
    from wizard.core.checks import VALID_IN_A_ROW
    from wizard.core.stages import Stage

    async def observe() -> str:
        return (await onboarding.verify_once(session)).status

    def verified(_status: str) -> bool:
        return not session.model.blockers(Stage.VERIFY)

    task = f"Checking Klarna sees the installed certificate VALID {VALID_IN_A_ROW} times in a row"
    return poll(task, observe, verified, limits, _not_verified, clock=clock, sleep=sleep)


# ---------------------------------------------------------------- enforcement
def _not_applied(status: str) -> WizardError:
    return WizardError(
        f"Klarna has not applied enforcement yet (currently {status}).",
        title="Enforcement not applied yet",
        hint="Klarna takes up to 5 minutes; check later with klarna-mtls status.",
    )


async def watch_enforcement(
    session: Session,
    limits: PollLimits | None = None,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> Events:
    """After enforcement from NOW: read the mode until ENFORCED, then prove that a call without
    a client certificate is refused. Ends with Done (proved) or Failed (not applied in time, or
    a cert-less call still accepted)."""
    limits = limits or PollLimits.for_enforcement()
    start = clock()

    async def observe() -> str:
        return str((await onboarding.read_enforcement(session)).mode.value)

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
    yield Failed(
        task,
        clock() - start,
        "ENFORCED",
        None,
        WizardError(
            "Klarna answered ENFORCED, but a request without a client certificate was still accepted.",
            title="Enforcement not proved",
            hint="Check again in a few minutes (klarna-mtls status).",
        ),
    )


# ---------------------------------------------------------------- resumable flows
S = TypeVar("S", bound=str)


class Resumable(Protocol[S]):
    """A journaled flow record: ``step`` names the step to run next."""

    step: S


# A step of a resumable flow: an action, or a wait that reports progress (its own events).
StepAction = Callable[[], Awaitable[None] | Events]


async def run_steps(
    task: str,
    record: Resumable[S],
    steps: Mapping[S, StepAction],
    words: Mapping[S, str],
    done: S,
    save: Callable[[], None],
    finish: Callable[[float], Done],
    *,
    clock: Clock = time.monotonic,
) -> Events:
    """The one loop of the resumable flows (the rotations). From ``record.step`` on, for each
    step in the order of ``steps``: a Step event, the step itself, then ``record.step`` advances
    to the next (``done`` after the last) and ``save`` journals it; a rerun resumes at the step
    that did not finish. A step that is a wait passes its events through (but its Done), and its
    Failed ends the flow as the flow's own Failed, the step not advanced. ``finish`` makes the
    closing Done; a record already done yields only that."""
    started = clock()
    order = list(steps)
    while record.step != done:
        step = record.step
        n = order.index(step)
        yield Step(task, step, n + 1, len(order), words[step])
        outcome = steps[step]()
        if isinstance(outcome, AsyncGenerator):
            async with contextlib.aclosing(outcome) as events:
                async for event in events:
                    if isinstance(event, Failed):
                        yield Failed(task, clock() - started, event.status, event.diagnosis, event.error)
                        return
                    if not isinstance(event, Done):
                        yield event
        else:
            await outcome
        record.step = order[n + 1] if n + 1 < len(order) else done
        save()
    yield finish(clock() - started)


async def follow(events: Events, show: Callable[[Event], None]) -> Event | None:
    """Hand every event to ``show`` and return the last one (Done or Failed); closes the iterator."""
    last: Event | None = None
    async with contextlib.aclosing(events) as stream:
        async for event in stream:
            show(event)
            last = event
    return last
