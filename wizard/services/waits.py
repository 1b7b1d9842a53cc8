"""The domain's generic wait machinery, as async iterators of typed progress events.

Every long wait in klarna-mtls is built from these: a single network operation under a time limit
(``timed``), the one polling loop (``poll``), and the resumable multi-step flows (the two
rotations, whose steps live in ``certificate_rotation`` and ``api_key_rotation``) run step by step
from their journaled record (``run_steps``). The stage-specific waits built on them (verification
polling, the enforcement watch) live in ``onboarding_waits``. The front ends only render the
events and choose what to do next:

    async with aclosing(poll_verification(session, limits)) as events:
        async for event in events:
            show(event)          # Started, Waiting, Attempt, Step, then Done or Failed

Cancelling the task that iterates stops the wait at once: the operation in flight is cancelled
and nothing is left running. A ``Failed`` event is an outcome, not an exception: it carries the
diagnosis and a ``WizardError`` a front end may raise. Errors of the operation itself (network,
Klarna's refusals) propagate as exceptions. Nothing here knows a stage or a service."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from wizard.core.diagnosis import Diagnosis, diagnose
from wizard.core.errors import TransportError, WizardError
from wizard.core.pacing import poll_delay

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

STEP_LIMIT = 60.0  # seconds a single step may take: above the client's own timeouts and retries
SETTLE_LIMIT = 300.0  # Klarna's verification states and enforcement take up to 5 minutes to settle
# A certificate issued a moment ago may be refused or read INVALID on an enforced account for up
# to Klarna's 5 minutes; the pair in use stays meanwhile, so waiting twice that costs nothing.
NEW_CERTIFICATE_LIMIT = 2 * SETTLE_LIMIT
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

    @classmethod
    def for_new_certificate(cls, interval: float = 2.0, limit: float = NEW_CERTIFICATE_LIMIT) -> PollLimits:
        """A new certificate's first acceptance: checks until ``limit``, however many that takes."""
        return cls(interval=interval, max_attempts=max(1, int(limit / interval) + 1), limit=limit)


DEFAULT_LIMITS = PollLimits()
NEW_CERTIFICATE_LIMITS = PollLimits.for_new_certificate()


def monotonic() -> float:
    """The polls' clock (a module function: a test moves it with the sandbox's clock)."""
    return time.monotonic()


async def pause(seconds: float) -> None:
    """A poll's pause between checks (a module function: a test moves the sandbox clock instead)."""
    await asyncio.sleep(seconds)


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


# ---------------------------------------------------------------- polling
async def poll(
    task: str,
    observe: Callable[[], Awaitable[str]],
    done: Callable[[str], bool],
    limits: PollLimits,
    failure: Callable[[str], WizardError],
    *,
    clock: Clock | None = None,
    sleep: Sleep | None = None,
) -> Events:
    """The one polling loop. Observes until ``done(status)``; a status that is not yet right is
    a reason to look again (Klarna's states take minutes to settle) until the limit, except a
    refused handshake (``STOP_EARLY``). Time is ``monotonic`` and ``pause`` unless given."""
    clock, sleep = clock or monotonic, sleep or pause
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
