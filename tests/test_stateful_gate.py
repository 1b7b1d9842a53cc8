"""The gate under random use (issue 11): a Hypothesis state machine drives actions through both
front ends' entry points (the CLI's ``main([...])`` and the domain calls the TUI's screens make),
interleaved with server-side events (a certificate revoked elsewhere, enforcement applied by someone
else, certificates expired by the sandbox clock), in both sandbox answer modes. After every step:

- the account is never enforced (or scheduled) while no installed certificate is VALID, unless a
  server-side event, not the tool, caused it;
- no key is lost: the API key the profile stores still works;
- no duplicate certificate: never two certificates for one key pair;
- a refused action changed nothing on the server.

The lock-out of red-team finding 1 (revoked elsewhere, then ``onboard --enforce-at NOW``) is the
explicit ``test_lockout_reproduction`` below, driven through the same machine."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from wizard.cli import main
from wizard.core import crypto
from wizard.core.errors import InterlockRefused, WizardError
from wizard.core.paths import Paths
from wizard.sandbox import start_sandbox
from wizard.secrets import keyring_store
from wizard.services import api_keys, certificate_rotation, onboarding, revocation
from wizard.services.install import current_pair
from wizard.services.session import Session

pytestmark = pytest.mark.e2e
FRONTS = st.sampled_from(["cli", "tui"])
WHICH = st.sampled_from(["current", "other"])
REFUSED = "Refused for your safety"


class GateMachine(RuleBasedStateMachine):
    answers = "ours"

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="gate-"))
        self._env = {k: os.environ.get(k) for k in ("KLARNA_MTLS_HOME", "KLARNA_API_KEY")}
        os.environ["KLARNA_MTLS_HOME"] = str(self.folder / "home")
        self.sandbox = start_sandbox(self.folder / "sandbox", enforcement_delay=0.2, answers=self.answers)
        self.profile = "g" + uuid.uuid4().hex[:8]
        self.sabotaged = False  # a server-side event, not the tool, broke the installed certificate
        os.environ["KLARNA_API_KEY"] = self.sandbox.api_key
        code, out = self.cli(
            "onboard",
            "--non-interactive",
            "--environment",
            "sandbox",
            "--account-id",
            self.sandbox.account_id,
            "--base-url",
            self.sandbox.base_url,
            "--ca-bundle",
            str(self.sandbox.ca_bundle),
            "--poll-interval",
            "0.05",
            "--secret-store",
            "keyring",
            "--own-key",
        )
        del os.environ["KLARNA_API_KEY"]  # from now on the profile's stored key, as cron would
        if code != 0:
            self.teardown()  # Hypothesis calls teardown only for a machine that was built
            raise AssertionError(f"onboarding failed: {out}")

    def teardown(self) -> None:
        self.sandbox.stop()
        for name, value in self._env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------ entry points
    def cli(self, *argv: str) -> tuple[int, dict]:
        """``klarna-mtls <argv> --profile <p> --json`` in-process; (exit code, the JSON answer)."""
        out, err = io.StringIO(), io.StringIO()
        args = [*argv, "--profile", self.profile, "--json"]
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

    def act(self, front: str, argv: tuple[str, ...], call) -> None:
        """One action through ``front``; a refusal must leave the server exactly as it was."""
        before = self.snapshot()
        if front == "cli":
            code, out = self.cli(*argv)
            refused = code == 3 and out.get("error", {}).get("title") == REFUSED
        else:
            refused = self.domain(call) == "refused"
        if refused:
            assert self.snapshot() == before, f"refused {argv} changed the server"

    # ------------------------------------------------------------ what the server really holds
    @property
    def state(self):
        return self.sandbox._state

    def snapshot(self) -> tuple:
        certs = {
            cid: (self.state.certificate_status(e), e.get("revoked_from"))
            for cid, e in self.state.account_certificates(self.sandbox.account_id).items()
        }
        api_keys = {cid: e["status"] for cid, e in self.state.data["api_keys"].items()}
        return certs, api_keys, self.state.data["accounts"][self.sandbox.account_id].get("enforcement")

    def certificate_ids(self, which: str) -> list[str]:
        current = self.current_server_id()
        mine = list(self.state.account_certificates(self.sandbox.account_id))
        return [c for c in mine if (c == current) == (which == "current")]

    def current_server_id(self) -> str | None:
        pair = current_pair(self.session().install_dir)
        if pair is None:
            return None
        return next(
            (
                cid
                for cid, e in self.state.account_certificates(self.sandbox.account_id).items()
                if e["fingerprint"] == pair.fingerprint
            ),
            None,
        )

    def current_active(self) -> bool:
        cid = self.current_server_id()
        return cid is not None and self.state.certificate_status(self.state.data["certificates"][cid]) == "ACTIVE"

    # ------------------------------------------------------------ the tool's actions
    @rule(front=FRONTS)
    def enforce(self, front: str) -> None:
        was_active = self.current_active()
        before = self.snapshot()
        self.act(front, ("enforce", "--at", "NOW"), lambda s: onboarding.enforce(s, "NOW"))
        if not was_active:  # the lock-out: never enforce without a VALID installed certificate
            assert self.snapshot()[2] == before[2]

    @rule()
    def onboard_enforce_now(self) -> None:
        was_active = self.current_active()
        before = self.snapshot()
        self.act(
            "cli",
            ("onboard", "--non-interactive", "--enforce-at", "NOW", "--enforce-wait", "1", "--poll-interval", "0.05"),
            None,
        )
        if not was_active:
            assert self.snapshot()[2] == before[2]

    @rule(front=FRONTS)
    def unenforce(self, front: str) -> None:
        self.act(front, ("unenforce",), lambda s: onboarding.remove_enforcement(s))

    @rule(front=FRONTS, which=WHICH)
    def revoke(self, front: str, which: str) -> None:
        for cid in self.certificate_ids(which)[:1]:
            self.act(front, ("certs", "revoke", cid), lambda s, cid=cid: revocation.revoke(s, cid))

    @rule(front=FRONTS, retire=st.booleans())
    def rotate(self, front: str, retire: bool) -> None:
        argv = ("rotate", "--poll-interval", "0.05", *(["--retire-old"] if retire else []))
        self.act(
            front,
            argv,
            lambda s: certificate_rotation.rotate(s, retire_old=retire, verify_interval=0.05, verify_attempts=10),
        )
        if self.current_active():
            self.sabotaged = False  # the tool installed a certificate that works again

    @rule()
    def create_key(self) -> None:
        self.act("cli", ("keys", "create", "--description", "batch worker", "--show-secret-once"), None)

    @rule(front=FRONTS, tool=st.booleans())
    def disable_key(self, front: str, tool: bool) -> None:
        tool_id = self.session().state.tool_key_id
        candidates = [
            cid
            for cid, e in self.state.data["api_keys"].items()
            if e["account_id"] == self.sandbox.account_id and (cid == tool_id) == tool
        ]
        for cid in candidates[:1]:
            self.act(front, ("keys", "disable", cid), lambda s, cid=cid: api_keys.disable_key(s, cid))

    @rule()
    def rotate_tool_key(self) -> None:
        self.act("cli", ("keys", "rotate"), None)

    @rule()
    def status(self) -> None:
        self.cli("status")

    # ------------------------------------------------------------ server-side events
    @rule(which=WHICH)
    def revoked_elsewhere(self, which: str) -> None:
        for cid in self.certificate_ids(which)[:1]:
            with self.state.lock:
                self.state.revoke(self.state.data["certificates"][cid], None)
                self.state.save()
            self.sabotaged = self.sabotaged or which == "current"

    @rule()
    def enforced_elsewhere(self) -> None:
        with self.state.lock:
            self.state.set_enforcement(self.sandbox.account_id, {"enforced_from": "NOW"})
            self.state.save()

    @rule()
    def certificates_expire(self) -> None:
        self.sandbox.advance_clock((self.sandbox.certificate_lifetime + timedelta(days=1)).total_seconds())
        self.sabotaged = True

    # ------------------------------------------------------------ after every step
    @invariant()
    def never_enforced_without_a_valid_installed_certificate(self) -> None:
        enforcement = self.state.data["accounts"][self.sandbox.account_id].get("enforcement")
        if enforcement is not None and not self.sabotaged:
            assert self.current_active(), "enforcement is on or scheduled and no installed certificate is VALID"

    @invariant()
    def no_key_lost(self) -> None:
        stored = keyring_store.KeyringStore().get(self.profile)
        account, _ = self.state.authenticate(f"Basic {stored}")  # raises 401 when disabled or unknown
        assert account == self.sandbox.account_id

    @invariant()
    def no_duplicate_certificate(self) -> None:
        key_ids = [
            crypto.public_key_id(crypto.load_certificate(e["pem"]).public_key())
            for e in self.state.account_certificates(self.sandbox.account_id).values()
        ]
        assert len(key_ids) == len(set(key_ids))


class DocsOnlyGateMachine(GateMachine):
    answers = "docs-only"


SETTINGS = settings(
    max_examples=8,
    stateful_step_count=8,
    deadline=None,
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
        m.revoked_elsewhere("current")
        m.onboard_enforce_now()
        m.enforce("tui")
        m.enforce("cli")
        assert m.state.data["accounts"][m.sandbox.account_id].get("enforcement") is None
        m.never_enforced_without_a_valid_installed_certificate()
        m.no_key_lost()
        m.no_duplicate_certificate()
        m.rotate("cli", True)  # the way back: a new certificate, VALID, then enforcing works
        m.enforce("cli")
        assert m.state.data["accounts"][m.sandbox.account_id].get("enforcement") is not None
        m.never_enforced_without_a_valid_installed_certificate()
    finally:
        m.teardown()
