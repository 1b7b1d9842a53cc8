"""The domain's runners against the real sandbox over mTLS: events in order, the keep-polling rule
(a first INVALID is Klarna settling, not a verdict), limits, REJECTED stopping early, the
enforcement watch with its proof, both rotations as events, and cancellation."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from tests_support import name_initial_key, session_for

from wizard.core import crypto, errors
from wizard.core.errors import TransportError
from wizard.core.paths import Paths
from wizard.core.stages import Stage
from wizard.secrets import keyring_store, simple_stores
from wizard.services import (
    api_key_rotation,
    api_keys,
    certificate_rotation,
    install,
    onboarding,
    onboarding_waits,
    waits,
)
from wizard.services.session import Session

pytestmark = pytest.mark.e2e


class FakeTime:
    """A clock that moves only when the runner sleeps: limits without waiting for them."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def collect(events) -> list:
    out = []
    async with contextlib.aclosing(events) as stream:
        async for event in stream:
            out.append(event)
    return out


def kinds(events) -> list[str]:
    return [type(e).__name__ for e in events]


@pytest.fixture
def verifying(sandbox):
    """A profile at the Verify stage whose pair `good` is VALID, with a second pair `revoked`
    installed beside it and revoked at Klarna, so that pair reads INVALID."""
    session = Session(Paths.from_env(), "v")
    session.configure("sandbox", sandbox.account_id, base_url=sandbox.base_url, ca_bundle=sandbox.ca_bundle)

    async def walk() -> str:
        await onboarding.check_credentials(session, sandbox.api_key, simple_stores.EnvStore())
        session.advance()
        await onboarding.generate_key(session)
        session.advance()
        await onboarding.issue_certificate(session)
        session.advance()
        await onboarding.install(session)
        session.advance()
        key = crypto.make_private_key()
        csr = crypto.make_csr_pem(key, session.evidence.cn).decode()
        async with session.client() as klarna:
            other = (await klarna.create_certificate(csr, "klarna-mtls other", "idem-other")).value
            await klarna.revoke_certificate(other.credential_id)
        pem = other.certificate_pem if isinstance(other.certificate_pem, bytes) else other.certificate_pem.encode()
        install.install_pair(session.install_dir, pem, crypto.make_private_key_pem(key, None), label="revokedpair00001")
        return install.current_pair(session.install_dir).label

    good = asyncio.run(walk())
    assert session.model.stage is Stage.VERIFY
    return session, good, "revokedpair00001"


def test_a_first_invalid_keeps_polling_until_valid(verifying):
    """The partner fixes the install while Klarna still answers INVALID: polling goes on and
    ends VALID (the old loops stopped at the first INVALID)."""
    session, good, revoked = verifying
    install.activate(session.install_dir, revoked)
    limits = waits.PollLimits(interval=0.05, max_attempts=50, limit=60)

    async def run() -> list:
        seen = []
        async with contextlib.aclosing(onboarding_waits.poll_verification(session, limits)) as events:
            async for event in events:
                seen.append(event)
                if isinstance(event, waits.Attempt) and event.status == "INVALID":
                    install.activate(session.install_dir, good)  # the fix, right after a change
        return seen

    events = asyncio.run(run())
    assert kinds(events) == ["Started", "Attempt", "Attempt", "Attempt", "Attempt", "Done"]
    attempts = [e for e in events if isinstance(e, waits.Attempt)]
    assert [a.status for a in attempts] == ["INVALID", "VALID", "VALID", "VALID"]
    assert [a.n for a in attempts] == [1, 2, 3, 4]
    assert all(a.max_attempts == 50 and a.limit == 60 for a in attempts)
    assert attempts[0].next_check_in == 0.05 and attempts[-1].next_check_in is None
    assert "revoked or expired" in attempts[0].diagnosis.next_steps[0]
    assert not session.model.blockers(Stage.VERIFY)


def test_invalid_that_persists_stops_at_the_limit_with_a_diagnosis(verifying):
    session, _, revoked = verifying
    install.activate(session.install_dir, revoked)
    fake = FakeTime()
    limits = waits.PollLimits(interval=10, max_attempts=100, limit=30)
    events = asyncio.run(
        collect(onboarding_waits.poll_verification(session, limits, clock=fake.clock, sleep=fake.sleep))
    )
    attempts = [e for e in events if isinstance(e, waits.Attempt)]
    assert [a.elapsed for a in attempts] == [0, 10, 20, 30]  # every check within the limit
    assert {a.status for a in attempts} == {"INVALID"}
    failed = events[-1]
    assert isinstance(failed, waits.Failed) and failed.status == "INVALID"
    assert failed.error.title == "Not verified" and "INVALID" in failed.error.message
    assert failed.diagnosis.status == "INVALID"


@pytest.mark.parametrize(
    "status,cause",
    [
        ("INVALID", errors.VerificationFailed),
        ("REJECTED", errors.VerificationFailed),
        ("NOT_PRESENT", errors.VerificationTimeout),
        ("UNKNOWN", errors.VerificationTimeout),
        ("VALID", errors.VerificationTimeout),  # seen, but not enough times in a row
    ],
)
def test_not_verified_names_its_cause_under_one_title(status, cause):
    """Klarna's verdict against the certificate and running out of time are two errors; the
    person reading either sees the same title and message."""
    error = onboarding_waits._not_verified(status)
    assert type(error) is cause and error.status == status
    assert error.title == "Not verified" and error.message.startswith(
        f"Verification did not reach VALID: last status {status}."
    )


def test_max_attempts_is_a_limit_too(verifying):
    session, _, revoked = verifying
    install.activate(session.install_dir, revoked)
    fake = FakeTime()
    limits = waits.PollLimits(interval=1, max_attempts=2, limit=300)
    events = asyncio.run(
        collect(onboarding_waits.poll_verification(session, limits, clock=fake.clock, sleep=fake.sleep))
    )
    assert kinds(events) == ["Started", "Attempt", "Attempt", "Failed"]


def test_a_rejected_handshake_stops_at_once():
    """A refused handshake will not settle by itself: the one status that stops polling early.
    (Scripted statuses: the sandbox's refusal surfaces as an alert or a reset depending on a
    TLS 1.3 race, so REJECTED cannot be produced from it deterministically.)"""
    statuses = iter(["NOT_PRESENT", "INVALID", "REJECTED", "VALID"])
    fake = FakeTime()

    async def observe() -> str:
        return next(statuses)

    def failure(status: str):
        return TransportError(f"stopped at {status}")

    limits = waits.PollLimits(interval=1, max_attempts=50, limit=60)
    events = asyncio.run(
        collect(waits.poll("t", observe, lambda s: s == "VALID", limits, failure, clock=fake.clock, sleep=fake.sleep))
    )
    assert kinds(events) == ["Started", "Attempt", "Attempt", "Attempt", "Failed"]
    assert [e.status for e in events[1:4]] == ["NOT_PRESENT", "INVALID", "REJECTED"]  # kept going twice
    assert events[3].next_check_in is None and events[-1].error.message == "stopped at REJECTED"
    assert events[-1].diagnosis.status == "REJECTED"


def test_enforcement_watch_ends_with_the_proof(onboard, sandbox):
    onboard()
    session = session_for("p", sandbox)
    assert asyncio.run(onboarding.enforce(session, "NOW")) == "REPORTING"
    limits = waits.PollLimits.for_enforcement(0.05, 30)
    assert limits.interval == 0.5  # never hammered faster than every 0.5 s
    events = asyncio.run(collect(onboarding_waits.watch_enforcement(session, limits)))
    names = kinds(events)
    assert names[0] == "Started" and names[-2:] == ["Step", "Done"]
    statuses = [e.status for e in events if isinstance(e, waits.Attempt)]
    assert statuses[-1] == "ENFORCED" and set(statuses[:-1]) <= {"REPORTING"}
    assert events[-1].result is True and "Proved" in events[-1].text
    assert session.settings.enforcement_proved_at


def test_enforcement_not_applied_within_the_limit_fails_softly(onboard, sandbox):
    onboard()
    sandbox.enforcement_delay = 3600
    session = session_for("p", sandbox)
    asyncio.run(onboarding.enforce(session, "NOW"))
    fake = FakeTime()
    limits = waits.PollLimits.for_enforcement(5, 20)
    events = asyncio.run(
        collect(onboarding_waits.watch_enforcement(session, limits, clock=fake.clock, sleep=fake.sleep))
    )
    assert kinds(events) == ["Started"] + ["Attempt"] * 5 + ["Failed"]
    assert events[-1].status == "REPORTING" and events[-1].error.title == "Enforcement not applied yet"
    assert not session.settings.enforcement_proved_at


def test_certificate_rotation_events_in_order(onboard, sandbox):
    onboard()
    session = session_for("p", sandbox)
    limits = waits.PollLimits(interval=0.05, max_attempts=50, limit=60)
    events = asyncio.run(collect(certificate_rotation.rotation(session, limits=limits)))
    steps = [e.step for e in events if isinstance(e, waits.Step)]
    assert steps == ["key", "issue", "install", "verify", "switch"]
    assert [e.n for e in events if isinstance(e, waits.Step)] == [1, 2, 3, 4, 5]
    verify_at = next(i for i, e in enumerate(events) if isinstance(e, waits.Step) and e.step == "verify")
    assert isinstance(events[verify_at + 1], waits.Started)
    assert isinstance(events[verify_at + 2], waits.Attempt) and events[verify_at + 2].status == "VALID"
    done = events[-1]
    assert isinstance(done, waits.Done) and isinstance(done.result, certificate_rotation.RotationProgress)
    assert done.result.new_fingerprint == install.current_pair(session.install_dir).fingerprint


def test_api_key_rotation_events_in_order(sandbox):
    session = Session(Paths.from_env(), "k")
    session.configure("sandbox", sandbox.account_id, base_url=sandbox.base_url, ca_bundle=sandbox.ca_bundle)
    store = keyring_store.KeyringStore()
    asyncio.run(onboarding.check_credentials(session, sandbox.api_key, store))
    name_initial_key(session)
    events = asyncio.run(collect(api_key_rotation.key_rotation(session, store, description="klarna-mtls host a")))
    assert [e.step for e in events if isinstance(e, waits.Step)] == ["create", "prove", "switch", "disable_old"]
    done = events[-1]
    assert isinstance(done, waits.Done) and isinstance(done.result, str)
    tool = [r for r in asyncio.run(api_keys.list_keys(session)) if r.used_by_tool]
    assert [r.credential_id for r in tool] == [done.result]
    assert store.get("k") != sandbox.api_key  # the tool now runs on the new key


def test_a_silent_network_gives_progress_then_times_out(onboard, sandbox, blackhole):
    onboard()
    session = session_for("p", sandbox)
    session.settings.base_url = blackhole
    seen = []

    async def run() -> None:
        events = waits.timed("Testing the API key", onboarding.observe(session), limit=1.0, tick=0.1)
        await waits.follow(events, seen.append)

    with pytest.raises(TransportError) as caught:
        asyncio.run(run())
    assert caught.value.title == "Timeout" and "no answer within 1 s" in caught.value.message
    assert isinstance(seen[0], waits.Started) and seen[0].limit == 1.0
    waiting = [e for e in seen if isinstance(e, waits.Waiting)]
    assert waiting and all(w.limit == 1.0 for w in waiting)
    assert [w.elapsed for w in waiting] == sorted(w.elapsed for w in waiting)


def test_cancelling_stops_the_operation_in_flight(verifying, blackhole):
    """Cancelling the consumer cancels the request hanging on the black hole: the task ends
    cancelled, not with the client's own timeout 20 s later."""
    session = verifying[0]
    session.settings.base_url = blackhole
    before = list(session.evidence.verifications)

    async def run() -> None:
        started = asyncio.Event()

        def show(event) -> None:
            started.set()

        limits = waits.PollLimits(interval=0.05, max_attempts=50, limit=60)
        task = asyncio.create_task(waits.follow(onboarding_waits.poll_verification(session, limits), show))
        await asyncio.wait_for(started.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    asyncio.run(run())
    assert session.evidence.verifications == before  # nothing half-recorded


def test_cancelling_between_checks_stops_polling(verifying):
    session, _, revoked = verifying
    install.activate(session.install_dir, revoked)

    async def run() -> int:
        first = asyncio.Event()

        def show(event) -> None:
            if isinstance(event, waits.Attempt):
                first.set()

        limits = waits.PollLimits(interval=3600, max_attempts=50, limit=7200)  # sleeps "for ever"
        task = asyncio.create_task(waits.follow(onboarding_waits.poll_verification(session, limits), show))
        await asyncio.wait_for(first.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return len(session.evidence.verifications)

    assert asyncio.run(run()) == 1


def test_run_steps_resumes_at_the_record_s_step_and_a_failed_wait_ends_the_flow_unadvanced():
    """The one loop both rotations use: a Step per step (numbered in the whole flow), the record
    advanced and saved after each, a wait's events passed through, its Failed the flow's own."""
    from dataclasses import dataclass

    from wizard.core.errors import WizardError

    @dataclass
    class Record:
        step: str

    ran, saved = [], []
    outcome = {"status": "VALID"}

    async def act(name: str) -> None:
        ran.append(name)

    async def wait() -> waits.Events:
        yield waits.Started("Waiting for it", None)
        if outcome["status"] == "VALID":
            yield waits.Done("Waiting for it", 0.0, "VALID")
        else:
            yield waits.Failed("Waiting for it", 0.0, "INVALID", None, WizardError("not yet"))

    def run(record: Record) -> list:
        steps = {"a": lambda: act("a"), "b": wait, "c": lambda: act("c")}
        words = {"a": "First", "b": "Wait", "c": "Last"}
        finish = lambda elapsed: waits.Done("Flow", elapsed, message="finished")  # noqa: E731
        events = waits.run_steps("Flow", record, steps, words, "done", lambda: saved.append(record.step), finish)
        return asyncio.run(collect(events))

    record = Record("b")  # resumed after step a
    outcome["status"] = "INVALID"
    events = run(record)
    assert [type(e).__name__ for e in events] == ["Step", "Started", "Failed"]
    assert (events[0].n, events[0].total, events[0].text) == (2, 3, "Step 2 of 3: Wait")
    assert events[-1].task == "Flow" and events[-1].error.message == "not yet"
    assert record.step == "b" and saved == [] and ran == []  # not advanced past the failed wait

    outcome["status"] = "VALID"
    events = run(record)
    assert [type(e).__name__ for e in events] == ["Step", "Started", "Step", "Done"]
    assert [e.step for e in events if isinstance(e, waits.Step)] == ["b", "c"]
    assert events[-1].message == "finished" and ran == ["c"] and saved == ["c", "done"]
    assert [type(e).__name__ for e in run(record)] == ["Done"]  # a finished record only finishes
