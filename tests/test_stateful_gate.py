"""The gate under random use (issues 11 and 21): a Hypothesis state machine drives actions through
both front ends' entry points (the CLI's ``main([...])`` and the domain calls the TUI's screens
make), interleaved with server-side events (a certificate revoked elsewhere, enforcement applied by
someone else) and with time: the clock jumps (Klarna's and this machine's together, the sandbox's
``Date`` following its clock), certificates are issued for lifetimes from 100 seconds to three years
(``certificate_lifetime_seconds``), enforcement is scheduled ahead, and runtimes join with their own
certificates. Every multi-step action (``rotate`` with or without ``--retire-old --grace``,
``enforce``, ``onboard --enforce-at``, ``keys create``, ``keys rotate``) may be killed between two
of its steps: at its n-th journal write, just before or just after it lands, or while it waits out
the grace period (``Killed``, a BaseException nothing in the tool handles, as test_crash_resume.py
kills a real process at the same boundaries); the rerun, ``rotate --abandon``, ``keys reconcile``
or any other rule comes later. The tool's grace period is time passing: the clocks move on while it
waits. Both sandbox answer modes. After every step, killed or not:

- at every moment up to the enforcement the tool scheduled (its record still standing), the
  certificate installed here and every runtime counted then are valid: none revoked, none expiring
  before the enforcement applies (issue 21, rule 1); a rotation meanwhile leaves the one it
  installed counted in its place (rule 2: never a certificate that expires sooner);
- no tool step leaves the account enforced or scheduled without a valid installed certificate: one
  that was valid (with a minute to spare) before the step still is after it, and the tool never
  enforces while none is VALID, unless a server-side event or time, not the tool, caused it;
- ``check`` is critical whenever the enforcement on or scheduled would refuse the installed
  certificate or a runtime's because it will have expired (the re-judging of rule 1);
- no key is lost: the API key the profile stores still works;
- no duplicate certificate: never two certificates for one key pair;
- a refused action changed nothing on the server.

The lock-out of red-team finding 1 (revoked elsewhere, then ``onboard --enforce-at NOW``) is the
explicit ``test_lockout_reproduction`` below, driven through the same machine, LO-01 (scheduled
after the expiry) is ``test_schedule_after_expiry_reproduction``, and a runtime's certificate revoked
elsewhere under a fresh VALID report is ``test_runtime_revoked_elsewhere_reproduction``."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from tests_support import sandbox_profile_args

from wizard.cli import main
from wizard.core import crypto, rules
from wizard.core.errors import InterlockRefused, WizardError
from wizard.core.journal import Journal, _digest
from wizard.core.paths import Paths
from wizard.sandbox import start_sandbox
from wizard.secrets import keyring_store
from wizard.services import api_keys, certificate_rotation, onboarding, revocation, rotation_endings
from wizard.services.install import current_pair
from wizard.services.session import Session

pytestmark = pytest.mark.e2e
FRONTS = st.sampled_from(["cli", "tui"])
WHICH = st.sampled_from(["current", "other"])
REFUSED = "Refused for your safety"
LIFETIMES = st.sampled_from([100, 900, 6 * 3600, 20 * 86400, 90 * 86400, 3 * 365 * 86400])  # seconds
JUMPS = st.sampled_from([1, 47, 400, 3600, 86400, 25 * 86400, 200 * 86400])  # seconds
WHEN = st.sampled_from(  # enforce from NOW (None) or this far ahead
    [None, timedelta(minutes=3), timedelta(hours=1), timedelta(days=2), timedelta(days=40), timedelta(days=90)]
)
SPARE = timedelta(minutes=1)  # a certificate this close to its expiry may run out during a step
INSTALLED = "the certificate installed here"
GRACE = "grace"  # killed while the tool waits out the grace period of rotate --retire-old --grace
Kill = tuple[int, bool] | str | None  # None: runs to its end; (n, landed): dies at its n-th journal write
KILL = st.none() | st.tuples(st.integers(1, 6), st.booleans())


class Killed(BaseException):
    """The process dies here: not an Exception, so nothing in the tool handles it (as SIGKILL)."""


def was_killed(error: BaseException) -> bool:
    if isinstance(error, BaseExceptionGroup):
        return any(was_killed(e) for e in error.exceptions)
    return isinstance(error, Killed)


@contextlib.contextmanager
def dies_at_write(n: int, landed: bool):
    """The tool dies at its ``n``-th journal write: just after it landed (between two steps) or
    just before (a step done, at Klarna too, but not recorded). Once dead it writes nothing more
    (a ``finally`` that saves dies too). The same boundaries test_crash_resume.py kills a real
    process at, in-process here so the machine's clock (Klarna's and this machine's) holds."""
    real = Journal.save
    writes = 0

    def save(journal: Journal, state) -> bool:
        nonlocal writes
        if writes >= n:
            raise Killed
        if _digest(state.to_dict()) == journal._saved:
            return False  # nothing to write: no boundary
        writes += 1
        if writes == n and not landed:
            raise Killed
        wrote = real(journal, state)
        if writes == n:
            raise Killed
        return wrote

    Journal.save = save  # type: ignore[method-assign]
    try:
        yield
    finally:
        Journal.save = real  # type: ignore[method-assign]


def dies(kill: Kill) -> contextlib.AbstractContextManager:
    if kill is None:
        return contextlib.nullcontext()
    return dies_in_grace() if kill == GRACE else dies_at_write(*kill)


@contextlib.contextmanager
def dies_in_grace():
    """The tool dies during the grace period of rotate --retire-old --grace."""
    waiting = certificate_rotation.grace_pause

    async def pause(seconds: float) -> None:
        raise Killed

    certificate_rotation.grace_pause = pause
    try:
        yield
    finally:
        certificate_rotation.grace_pause = waiting


@dataclass
class Scheduled:
    """An enforcement the tool set: the server's record then, and the certificates it counted."""

    record: dict
    applies_at: datetime
    counted: dict[str, str]  # credential id -> what it is ("installed here", "runtime NAME")
    exempt: str | None = None  # why the invariant no longer holds it (an event, not the tool)


class GateMachine(RuleBasedStateMachine):
    answers = "ours"

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="gate-"))
        self._env = {k: os.environ.get(k) for k in ("KLARNA_MTLS_HOME", "KLARNA_API_KEY")}
        os.environ["KLARNA_MTLS_HOME"] = str(self.folder / "home")
        self.sandbox = start_sandbox(
            self.folder / "sandbox", enforcement_delay=0.2, answers=self.answers, date_follows_clock=True
        )
        self._clock_patch()
        self.profile = "g" + uuid.uuid4().hex[:8]
        self.sabotaged = False  # a server-side event or time, not the tool, broke the installed certificate
        self.scheduled: Scheduled | None = None  # the enforcement the tool set last
        self.runtimes: dict[str, str] = {}  # runtime name -> its host's profile
        self.added = 0  # runtimes added so far (each gets a new name)
        # Docs-only: runtime certificates revoked elsewhere, which a listing without statuses cannot
        # show; until the runtime's signed report is 24 h old the gate cannot know (the README's limit).
        self.unknowable: set[str] = set()

    @initialize(lifetime=LIFETIMES)
    def onboard(self, lifetime: int) -> None:
        """Onboard with a certificate of ``lifetime`` seconds (later ones live 3 years unless a step
        says otherwise), on the tool's own key."""
        self.sandbox.configure(certificate_lifetime_seconds=lifetime)
        os.environ["KLARNA_API_KEY"] = self.sandbox.api_key
        try:
            code, out = self.cli(
                "onboard",
                "--non-interactive",
                *sandbox_profile_args(self.sandbox),
                "--poll-interval",
                "0.05",
                "--secret-store",
                "keyring",
                "--own-key",
            )
        finally:
            del os.environ["KLARNA_API_KEY"]  # from now on the profile's stored key, as cron would
            self.sandbox.certificate_lifetime = rules.CERTIFICATE_VALIDITY
        assert code == 0, f"onboarding failed: {out}"

    def _clock_patch(self) -> None:
        """This machine's clock follows the sandbox's: every Session (the CLI opens its own) and
        ``rules.utc_now`` read real time plus the jumps made so far."""
        self._session_clock = Session.__init__.__kwdefaults__["clock"]
        self._utc_now = rules.utc_now
        self._grace_pause = certificate_rotation.grace_pause
        Session.__init__.__kwdefaults__["clock"] = self.now
        rules.utc_now = self.now

        async def grace_passes(seconds: float) -> None:  # the tool waits: the clocks move on
            self.sandbox.advance_clock(seconds)

        certificate_rotation.grace_pause = grace_passes

    def now(self) -> datetime:
        return self.sandbox.now()

    def teardown(self) -> None:
        Session.__init__.__kwdefaults__["clock"] = self._session_clock
        rules.utc_now = self._utc_now
        certificate_rotation.grace_pause = self._grace_pause
        self.sandbox.stop()
        for name, value in self._env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------ entry points
    def cli(self, *argv: str, profile: str | None = None) -> tuple[int, dict]:
        """``klarna-mtls <argv> --profile <p> --json`` in-process; (exit code, the JSON answer)."""
        out, err = io.StringIO(), io.StringIO()
        args = [*argv, "--profile", profile or self.profile, "--json"]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
        lines = out.getvalue().strip().splitlines()
        return code, (json.loads(lines[-1]) if lines else {})

    def session(self) -> Session:
        """What the TUI holds: the profile's session with the stored key loaded."""
        session = Session(Paths.from_env(), self.profile)
        session.unlock(keyring_store.KeyringStore().get(self.profile))
        return session

    def domain(self, call) -> str:
        """Run a domain call the way a screen's worker does; 'refused', 'error' or 'ok'."""
        try:
            asyncio.run(call(self.session()))
        except InterlockRefused:
            return "refused"
        except WizardError:
            return "error"
        return "ok"

    def act(self, front: str, argv: tuple[str, ...], call, kill: Kill = None) -> bool:
        """One tool action through ``front``, killed at ``kill`` if given; True when it was. A refusal leaves the server exactly as it was; no action, finished or killed, leaves
        the account enforced without the valid installed certificate it had; an action that sets
        enforcement counts only certificates that outlast it; one that installs a certificate
        leaves the scheduled enforcement counting it (rotation's rule 2: never one that expires
        sooner)."""
        before, record, valid = self.snapshot(), self.enforcement(), self.installed_valid(SPARE)
        installed, refused, killed = self.current_server_id(), False, False
        try:
            with dies(kill):
                if front == "cli":
                    code, out = self.cli(*argv)
                    refused = code == 3 and out.get("error", {}).get("title") == REFUSED
                else:
                    refused = self.domain(call) == "refused"
        except BaseException as error:
            if not was_killed(error):
                raise
            killed = True
        what = f"{argv}{' (killed)' if killed else ''}"
        if refused:
            assert self.snapshot() == before, f"refused {what} changed the server"
        if self.enforcement() is not None and valid:
            assert self.installed_valid(), f"{what} left the account enforced without a valid installed certificate"
        if self.current_server_id() != installed and self.current_active():
            self.sabotaged = False  # the tool installed a certificate that works again
            if self.scheduled:  # the scheduled enforcement now counts it, and it must outlast it too
                kept = {cid: what for cid, what in self.scheduled.counted.items() if what != INSTALLED}
                self.scheduled.counted = {self.current_server_id() or "none installed": INSTALLED, **kept}
        if self.enforcement() not in (None, record):
            self.scheduled = self.counted_now()
            self.assert_outlasted(self.scheduled, f"{what} set enforcement")
        return killed

    # ------------------------------------------------------------ what the server really holds
    @property
    def state(self):
        return self.sandbox._state

    def entries(self) -> dict[str, dict]:
        return self.state.account_certificates(self.sandbox.account_id)

    def snapshot(self) -> tuple:
        """The server's own records (never a status computed from the clock, which moves)."""
        certs = {cid: (e.get("revoked_from"), e["expires_at"]) for cid, e in self.entries().items()}
        api_keys = {cid: e["status"] for cid, e in self.state.data["api_keys"].items()}
        return certs, api_keys, self.enforcement()

    def enforcement(self) -> dict | None:
        return self.state.data["accounts"][self.sandbox.account_id].get("enforcement")

    def certificate_ids(self, which: str) -> list[str]:
        current = self.current_server_id()
        return [c for c in self.entries() if (c == current) == (which == "current")]

    def server_id(self, install_dir: Path) -> str | None:
        pair = current_pair(install_dir)
        if pair is None:
            return None
        return next((cid for cid, e in self.entries().items() if e["fingerprint"] == pair.fingerprint), None)

    def current_server_id(self) -> str | None:
        return self.server_id(self.session().install_dir)

    def valid_until(self, cid: str | None) -> datetime | None:
        """When Klarna stops accepting ``cid`` (revoked or expired), by the server's records."""
        if cid is None:
            return None
        entry = self.state.data["certificates"][cid]
        ends = [rules.parse_timestamp(entry["expires_at"])]
        if entry.get("revoked_from"):
            ends.append(rules.parse_timestamp(entry["revoked_from"]))
        return min(ends)

    def expires(self, cid: str | None) -> datetime | None:
        """When ``cid`` expires by the server's records (what the tool's records hold too)."""
        entry = self.state.data["certificates"].get(cid or "")
        return rules.parse_timestamp(entry["expires_at"]) if entry else None

    def installed_valid(self, spare: timedelta = timedelta(0)) -> bool:
        until = self.valid_until(self.current_server_id())
        return until is not None and until > self.now() + spare

    def current_active(self) -> bool:
        return self.installed_valid()

    def counted_now(self) -> Scheduled:
        record = self.enforcement() or {}
        counted = {self.current_server_id() or "none installed": INSTALLED}
        for name, host in self.runtimes.items():
            cid = self.server_id(Session(Paths.from_env(), host).install_dir)
            counted[cid or f"none for {name}"] = f"runtime {name}"
        applies_at = datetime.fromisoformat(record["applies_at"]).astimezone(UTC)
        return Scheduled(dict(record), applies_at, counted)

    def assert_outlasted(self, scheduled: Scheduled, why: str) -> None:
        for cid, what in scheduled.counted.items():
            if cid in self.unknowable and what != INSTALLED:
                continue
            until = self.valid_until(cid if cid in self.state.data["certificates"] else None)
            assert until is not None and until >= scheduled.applies_at, (
                f"{why}: {what} ({cid}) is valid until {until}, enforcement applies at {scheduled.applies_at}"
            )

    # ------------------------------------------------------------ the tool's actions
    @rule(front=FRONTS, ahead=WHEN, kill=KILL)
    def enforce(self, front: str, ahead: timedelta | None = None, kill: Kill = None) -> None:
        """Enforce from NOW (``ahead`` None) or a time ahead."""
        was_active = self.current_active()
        before = self.snapshot()
        when = "NOW" if ahead is None else rules.format_utc(self.now() + ahead)
        self.act(front, ("enforce", "--at", when), lambda s: onboarding.enforce(s, when), kill)
        if not was_active:  # the lock-out: never enforce without a VALID installed certificate
            assert self.snapshot()[2] == before[2]

    @rule(ahead=WHEN, kill=KILL)
    def onboard_enforce(self, ahead: timedelta | None = None, kill: Kill = None) -> None:
        """``onboard --enforce-at`` NOW or a time ahead."""
        was_active = self.current_active()
        before = self.snapshot()
        when = "NOW" if ahead is None else rules.format_utc(self.now() + ahead)
        argv = ("onboard", "--non-interactive", "--enforce-at", when, "--enforce-wait", "1", "--poll-interval", "0.05")
        self.act("cli", argv, None, kill)
        if not was_active:
            assert self.snapshot()[2] == before[2]

    def onboard_enforce_now(self) -> None:
        self.onboard_enforce()

    @rule(front=FRONTS)
    def unenforce(self, front: str) -> None:
        self.act(front, ("unenforce",), lambda s: onboarding.remove_enforcement(s))

    @rule(front=FRONTS, which=WHICH)
    def revoke(self, front: str, which: str) -> None:
        for cid in self.certificate_ids(which)[:1]:
            self.act(front, ("certs", "revoke", cid), lambda s, cid=cid: revocation.revoke(s, cid))

    @rule(front=FRONTS, retire=st.booleans(), grace=st.sampled_from([0, 900]), kill=KILL | st.just(GRACE))
    def rotate(self, front: str, retire: bool, grace: int = 0, kill: Kill = None) -> None:
        """A rotation (or the rerun of one killed earlier); with ``retire`` the old certificate is
        revoked ``grace`` seconds after the switch, the clocks moving on while the tool waits."""
        extra = ["--retire-old", "--grace", str(grace)] if retire else []
        self.act(
            front,
            ("rotate", "--poll-interval", "0.05", *extra),
            lambda s: certificate_rotation.rotate(
                s, retire_old=retire, grace=grace, verify_interval=0.05, verify_attempts=10
            ),
            kill,
        )

    @rule(front=FRONTS)
    def abandon_rotation(self, front: str) -> None:
        """Every flow can be abandoned: an unfinished rotation ends where it stands."""
        self.act(front, ("rotate", "--abandon"), lambda s: rotation_endings.abandon_rotation(s))

    @rule(kill=KILL)
    def create_key(self, kill: Kill = None) -> None:
        self.act("cli", ("keys", "create", "--description", "batch worker", "--show-secret-once"), None, kill)

    @rule(choice=st.sampled_from(["record", "disable"]))
    def reconcile_keys(self, choice: str) -> None:
        """A keys create whose answer was lost (killed) is settled: the key it made recorded or disabled."""
        self.act("cli", ("keys", "reconcile", "--lost-key", choice), None)

    @rule(front=FRONTS, tool=st.booleans())
    def disable_key(self, front: str, tool: bool) -> None:
        """Disable the tool's key (refused) or another one; never the key the runtimes' hosts are
        given (the account's first, standing for their own services' keys: the machine's setup)."""
        tool_id = self.session().state.tool_key_id
        _, hosts = self.state.authenticate(f"Basic {self.sandbox.api_key}")
        candidates = [
            cid
            for cid, e in self.state.data["api_keys"].items()
            if e["account_id"] == self.sandbox.account_id and (cid == tool_id) == tool and cid != hosts
        ]
        for cid in candidates[:1]:
            self.act(front, ("keys", "disable", cid), lambda s, cid=cid: api_keys.disable_key(s, cid))

    @rule(kill=KILL)
    def rotate_tool_key(self, kill: Kill = None) -> None:
        self.act("cli", ("keys", "rotate"), None, kill)

    @rule()
    def status(self) -> None:
        self.cli("status")

    @rule()
    def check(self) -> None:
        """The scheduled enforcement re-judged: critical whenever it would refuse a certificate
        that will have expired (or is revoked) by the time it applies, when the tool can know when."""
        record = self.enforcement()
        must = False
        if record is not None:
            applies_at = datetime.fromisoformat(record["applies_at"]).astimezone(UTC)
            applied = applies_at <= self.now()
            knowable = self.answers == "ours" or applied or (self.scheduled and self.scheduled.record == record)
            moment = max(applies_at, self.now())
            installed = self.valid_until(self.current_server_id())  # revoked or expired: verification says so
            # a runtime's certificate revoked elsewhere too, where the listing says so ("ours")
            until = self.valid_until if self.answers == "ours" else self.expires
            runtimes = [until(self.server_id(Session(Paths.from_env(), h).install_dir)) for h in self.runtimes.values()]
            ends = [installed, *runtimes]
            must = bool(knowable) and any(end is None or end < moment for end in ends)
        code, out = self.cli("check")
        if must:
            assert code == 2, f"check did not see the scheduled enforcement refuse a counted certificate: {out}"

    @precondition(lambda self: len(self.runtimes) < 2)
    @rule(lifetime=LIFETIMES)
    def add_runtime(self, lifetime: int) -> None:
        """A runtime joins: request on its host, issue here (for ``lifetime`` seconds), install there,
        probe and report. Its host is another profile in the same home, with the account's key."""
        name = f"rt{self.added}"
        self.added += 1
        host = f"{self.profile}-{name}"
        request, response = self.folder / f"request-{name}.json", self.folder / f"response-{name}.json"
        os.environ["KLARNA_API_KEY"] = self.sandbox.api_key
        try:
            flags = sandbox_profile_args(self.sandbox)
            code, out = self.cli("runtime", "request", "--name", name, "--out", str(request), *flags, profile=host)
            assert code == 0, out
            self.sandbox.configure(certificate_lifetime_seconds=lifetime)
            try:
                del os.environ["KLARNA_API_KEY"]  # the managing profile runs on its stored key
                code, out = self.cli("runtime", "issue", str(request), "--out", str(response))
            finally:
                os.environ["KLARNA_API_KEY"] = self.sandbox.api_key
                self.sandbox.certificate_lifetime = rules.CERTIFICATE_VALIDITY
            if code != 0:
                return  # e.g. no free slot: refused, nothing to install
            assert self.cli("runtime", "install", str(response), profile=host)[0] in (0, 2)
            self.runtimes[name] = host
        finally:
            os.environ.pop("KLARNA_API_KEY", None)
        self.probe_runtimes()

    @precondition(lambda self: bool(self.runtimes))
    @rule()
    def probe_runtimes(self) -> None:
        """Each runtime's probe (cron there), then ``runtime report`` here."""
        reports = self.folder / "reports"
        os.environ["KLARNA_API_KEY"] = self.sandbox.api_key
        try:
            for name, host in self.runtimes.items():
                self.cli("probe", "--name", name, "--report-dir", str(reports), profile=host)
        finally:
            os.environ.pop("KLARNA_API_KEY", None)
        self.cli("runtime", "report", str(reports))

    # ------------------------------------------------------------ server-side events and time
    @rule(which=WHICH)
    def revoked_elsewhere(self, which: str) -> None:
        for cid in self.certificate_ids(which)[:1]:
            with self.state.lock:
                self.state.revoke(self.state.data["certificates"][cid], None)
                self.state.save()
            self.sabotaged = self.sabotaged or which == "current"
            if which == "other" and self.answers == "docs-only":
                self.unknowable.add(cid)
            if self.scheduled and cid in self.scheduled.counted:
                self.scheduled.exempt = self.scheduled.exempt or f"{cid} revoked elsewhere"

    @rule()
    def enforced_elsewhere(self) -> None:
        with self.state.lock:
            self.state.set_enforcement(self.sandbox.account_id, {"enforced_from": "NOW"})
            self.state.save()

    @rule(seconds=JUMPS)
    def time_passes(self, seconds: int) -> None:
        """Klarna's clock and this machine's move together (the sandbox's Date follows its clock)."""
        self.sandbox.advance_clock(seconds)
        if not self.current_active():
            self.sabotaged = True  # time, not the tool: a rotation was due

    @rule(lifetime=LIFETIMES)
    def lifetime_changes(self, lifetime: int) -> None:
        """The certificates issued from now on (rotations) live ``lifetime`` seconds."""
        self.sandbox.configure(certificate_lifetime_seconds=lifetime)

    @rule()
    def certificates_expire(self) -> None:
        until = self.valid_until(self.current_server_id())
        if until is not None:
            self.time_passes(max(1, int((until - self.now()).total_seconds()) + 1))

    # ------------------------------------------------------------ after every step
    @invariant()
    def never_enforced_without_a_valid_installed_certificate(self) -> None:
        if self.enforcement() is not None and not self.sabotaged:
            assert self.current_active(), "enforcement is on or scheduled and no installed certificate is VALID"

    @invariant()
    def the_scheduled_enforcement_is_outlasted(self) -> None:
        """At every moment up to the enforcement the tool scheduled, the certificates it counted
        are valid (the record still standing, and no event or rotation excusing it)."""
        scheduled = self.scheduled
        if scheduled and scheduled.exempt is None and self.enforcement() == scheduled.record:
            self.assert_outlasted(scheduled, "the scheduled enforcement")

    @invariant()
    def no_key_lost(self) -> None:
        stored = keyring_store.KeyringStore().get(self.profile)
        account, _ = self.state.authenticate(f"Basic {stored}")  # raises 401 when disabled or unknown
        assert account == self.sandbox.account_id

    @invariant()
    def no_duplicate_certificate(self) -> None:
        key_ids = [
            crypto.public_key_id(crypto.load_certificate(e["pem"]).public_key()) for e in self.entries().values()
        ]
        assert len(key_ids) == len(set(key_ids))


class DocsOnlyGateMachine(GateMachine):
    answers = "docs-only"


SETTINGS = settings(
    max_examples=10,
    stateful_step_count=12,
    deadline=None,
    derandomize=True,  # the same runs every time: a failure reproduces, a pass is not luck
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TestGateOurs = GateMachine.TestCase
TestGateOurs.settings = SETTINGS
TestGateDocsOnly = DocsOnlyGateMachine.TestCase
TestGateDocsOnly.settings = SETTINGS


@pytest.mark.parametrize("machine", [GateMachine, DocsOnlyGateMachine])
def test_lockout_reproduction(machine):
    """Red-team finding 1 as a named sequence: the installed certificate is revoked elsewhere, then
    onboarding is resumed with --enforce-at NOW (and the TUI's enforce call is tried too): both are
    refused, enforcement stays off, and the invariants hold after every step."""
    m = machine()
    try:
        m.onboard(3 * 365 * 86400)
        m.revoked_elsewhere("current")
        m.onboard_enforce_now()
        m.enforce("tui")
        m.enforce("cli")
        assert m.enforcement() is None
        m.never_enforced_without_a_valid_installed_certificate()
        m.no_key_lost()
        m.no_duplicate_certificate()
        m.rotate("cli", True)  # the way back: a new certificate, VALID, then enforcing works
        m.enforce("cli")
        assert m.enforcement() is not None
        m.never_enforced_without_a_valid_installed_certificate()
    finally:
        m.teardown()


@pytest.mark.parametrize("machine", [GateMachine, DocsOnlyGateMachine])
def test_schedule_after_expiry_reproduction(machine):
    """LO-01 and LO-10 through the machine: onboarded with a 900-second certificate, enforcement 40
    days out is refused from both front ends; three minutes out is accepted; time passes beyond the
    expiry, ``check`` is critical, and the invariants hold."""
    m = machine()
    try:
        m.onboard(900)
        for front in ("cli", "tui"):
            m.enforce(front, timedelta(days=40))  # after the 900 s: refused
        assert m.enforcement() is None
        m.enforce("cli", timedelta(minutes=3))  # 900 s outlast 3 min plus the 7-min margin
        assert m.enforcement() is not None and m.scheduled is not None
        m.the_scheduled_enforcement_is_outlasted()
        m.time_passes(400)
        m.check()
        m.certificates_expire()  # after it applied: time, not the tool, locks out; check says so
        m.check()
        m.never_enforced_without_a_valid_installed_certificate()
    finally:
        m.teardown()


@pytest.mark.parametrize("machine", [GateMachine, DocsOnlyGateMachine])
def test_runtime_timeline_reproduction(machine):
    """LO-04 and LO-10 for runtimes through the machine: a runtime whose certificate lives 100 s
    counts, so enforcing NOW or in two days is refused (its certificate would be expired when it
    applies); once it is removed, enforcement an hour out is accepted, and a runtime that joins
    after that with a 100-second certificate makes ``check`` critical."""
    m = machine()
    try:
        m.onboard(3 * 365 * 86400)
        m.add_runtime(100)
        m.enforce("cli")
        m.enforce("tui", timedelta(days=2))
        assert m.enforcement() is None
        assert m.cli("runtime", "remove", "rt0")[0] == 0
        del m.runtimes["rt0"]
        m.enforce("cli", timedelta(hours=1))
        assert m.enforcement() is not None
        m.add_runtime(100)  # joins after the enforcement was scheduled: no gate on that path
        code, out = m.cli("check")
        assert code == 2 and any("runtime rt1" in f["summary"] for f in out["findings"]), out
        m.check()
        m.the_scheduled_enforcement_is_outlasted()
    finally:
        m.teardown()


def all_invariants(m: GateMachine) -> None:
    m.never_enforced_without_a_valid_installed_certificate()
    m.the_scheduled_enforcement_is_outlasted()
    m.no_key_lost()
    m.no_duplicate_certificate()


@pytest.mark.parametrize("machine", [GateMachine, DocsOnlyGateMachine])
def test_kills_between_steps_reproduction(machine):
    """RS-01, RS-04 and rule 5 through the machine, every kill point in turn: ``enforce --at`` and
    ``onboard --enforce-at`` two days out are killed at their journal write; then, with enforcement
    scheduled two days out, ``rotate --retire-old --grace 900`` is killed at each journal write of
    its run (just before and just after it lands) and in its grace period, ``keys rotate`` and
    ``keys create`` at each of theirs; each kill is followed by the rerun (``keys reconcile`` for a
    lost create). The invariants hold after every step; in the end one certificate is active, the
    one installed here, which the scheduled enforcement counts, and the profile's key works."""
    m = machine()
    try:
        m.onboard(3 * 365 * 86400)
        two_days = rules.format_utc(m.now() + timedelta(days=2))
        onboard = ("onboard", "--non-interactive", "--enforce-at", two_days, "--enforce-wait", "1")
        for argv in (("enforce", "--at", two_days), (*onboard, "--poll-interval", "0.05")):
            for kill in ((1, False), (1, True)):
                assert m.act("cli", argv, None, kill), f"{argv} was not killed at {kill}"
                all_invariants(m)
                m.unenforce("cli")
        m.enforce("cli", timedelta(days=2))
        assert m.enforcement() is not None and m.scheduled is not None
        fired = 0
        for kill in [*((n, landed) for n in range(1, 12) for landed in (False, True)), GRACE]:
            before = m.snapshot()[0]
            fired += m.act("cli", ("rotate", "--poll-interval", "0.05", "--retire-old", "--grace", "900"), None, kill)
            all_invariants(m)
            m.rotate("cli", True, 900)  # the rerun finishes the killed rotation (or, if none was left, rotates)
            all_invariants(m)
            active = [cid for cid, e in m.entries().items() if m.valid_until(cid) > m.now()]
            assert active == [m.current_server_id()], f"after {kill}: {active} active, {before} before"
            assert m.scheduled.counted.get(active[0]) == INSTALLED and m.enforcement() == m.scheduled.record
        assert fired >= 21, f"only {fired} of the rotation's kill points were reached"  # its ten writes and the grace
        fired = 0
        for kill in ((n, landed) for n in range(1, 8) for landed in (False, True)):
            fired += m.act("cli", ("keys", "rotate"), None, kill)
            all_invariants(m)
            m.rotate_tool_key()
            all_invariants(m)
            fired += m.act("cli", ("keys", "create", "--description", "batch worker", "--show-secret-once"), None, kill)
            all_invariants(m)
            m.reconcile_keys("disable")  # refused when the key it made cannot be told (docs-only: no creation time)
            m.reconcile_keys("record")  # then recorded: the lost request forgotten, nothing changed
            m.create_key()  # a create after the lost one was settled
            all_invariants(m)
        assert fired >= 18, f"only {fired} of the key flows' kill points were reached"  # 7 writes and 2
        code, out = m.cli("keys", "reconcile")
        assert code == 0 and "nothing to do" in out["message"], out
    finally:
        m.teardown()


def names_rt0(check: dict, severity: str) -> bool:
    return any("rt0" in f["check"] + f["summary"] and f["severity"] == severity for f in check["findings"])


@pytest.mark.parametrize("machine", [GateMachine, DocsOnlyGateMachine])
def test_runtime_revoked_elsewhere_reproduction(machine):
    """A declared runtime's certificate revoked elsewhere while its VALID report is under 24 h old:
    with the listing's statuses ("ours"), ``enforce --at NOW`` is refused from both front ends
    naming the runtime, ``check`` is critical while enforcement is on and a warning once it is off,
    and ``status`` shows the runtime not ready. Docs-only, where the revoked certificate is listed
    with no status, the fresh signed report is the documented limit: enforcing is refused once it
    is over 24 h old."""
    m = machine()
    try:
        m.onboard(3 * 365 * 86400)
        m.enforce("cli")
        assert m.enforcement() is not None
        m.add_runtime(3 * 365 * 86400)
        assert "rt0" in m.runtimes
        [runtime_cid] = m.certificate_ids("other")
        m.revoked_elsewhere("other")
        record = m.enforcement()
        if m.answers == "docs-only":  # the limit: nothing the listing says tells it was revoked
            m.time_passes(25 * 3600)
            record = m.enforcement()
        for front in ("cli", "tui"):
            m.enforce(front)  # refused: the invariants' check that it counted only valid ones holds
            assert m.enforcement() == record
        code, out = m.cli("enforce", "--at", "NOW")
        assert code == 3 and "rt0" in out["error"]["message"], out
        why = runtime_cid if m.answers == "ours" else "old"
        assert why in out["error"]["message"], out
        code, out = m.cli("check")
        assert code == 2 and names_rt0(out, "critical"), out
        code, status = m.cli("status")
        [row] = status["runtimes"]
        assert code == 2 and not row["ready"] and why in row["reason"], status
        m.unenforce("cli")
        code, out = m.cli("check")
        assert code == 1 and names_rt0(out, "warning"), out
        all_invariants(m)
    finally:
        m.teardown()
