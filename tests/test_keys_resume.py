"""API keys, harder cases, end to end against the sandbox over TLS: a rotation killed at every step
(resumed by a fresh Session from the journal), lost answers, a secret store that fails, the
interlock after a resume, the CLI's refusals and exit codes, hygiene findings, and the new
secret never leaking outside the secret store."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from tests_support import name_initial_key

from wizard.core.errors import ApiError, InterlockRefused, SecretStoreError, TransportError
from wizard.core.paths import Paths
from wizard.sandbox.server import Fault
from wizard.secrets import keyring_store
from wizard.services import api_key_hygiene, api_key_rotation, api_keys, onboarding
from wizard.services.session import Session

pytestmark = pytest.mark.e2e
PROFILE = "r"


@pytest.fixture
def profile(sandbox):
    session = Session(Paths.from_env(), PROFILE)
    session.configure("sandbox", sandbox.account_id, base_url=sandbox.base_url, ca_bundle=sandbox.ca_bundle)
    store = keyring_store.KeyringStore()
    asyncio.run(onboarding.check_credentials(session, sandbox.api_key, store))
    name_initial_key(session)
    return session, store


def fresh_session(store) -> Session:
    """What a new run does: open the journal, load the profile's key from the store."""
    session = Session(Paths.from_env(), PROFILE)
    session.unlock(store.get(PROFILE))
    return session


async def _ping(session: Session) -> None:
    async with session.client() as klarna:
        await klarna.ping()


def listing(session: Session) -> dict[str, api_keys.KeyRow]:
    return {r.credential_id: r for r in asyncio.run(api_keys.list_keys(session))}


def assert_rotated(session: Session, store, old_id: str, new_id: str) -> None:
    rows = listing(session)
    assert rows[new_id].used_by_tool and rows[new_id].status == "ACTIVE"
    assert rows[old_id].status == "DISABLED"
    assert [r.credential_id for r in rows.values() if r.active] == [new_id]  # no orphan left active
    assert (
        store.get(PROFILE + api_key_rotation.PENDING) is None and store.get(PROFILE + api_key_rotation.PREVIOUS) is None
    )
    asyncio.run(_ping(fresh_session(store)))
    assert api_key_rotation.rotation_state(session) is None


@pytest.fixture
def run(capfd):
    """Run a CLI command with --json at the file-descriptor level; ``run.seen`` keeps every byte
    written to stdout and stderr, for the leak checks."""
    from wizard.cli import main

    def run(*argv: str):
        code = main([*argv, "--json"])
        out, err = capfd.readouterr()
        run.seen.append(out + err)
        lines = out.strip().splitlines()
        return code, (json.loads(lines[-1]) if lines else None)

    run.seen = []
    return run


class Crash(BaseException):
    """A process dying: not an Exception, so nothing on the way may swallow it."""


# A crash point for each place the process can die during a rotation, named by what happened last.
def _crash_before_step(step):
    def install(monkeypatch, store):
        def on_step(current):
            if current == step:
                raise Crash

        return on_step

    return install


def _crash_on_store_call(method, name_suffix, after=False):
    def install(monkeypatch, store):
        real = getattr(store, method)

        def crashing(name, *rest):
            if name.endswith(name_suffix) or (name_suffix == "" and "#" not in name):
                if after:
                    real(name, *rest)
                raise Crash
            return real(name, *rest)

        monkeypatch.setattr(store, method, crashing)
        return None

    return install


CRASH_POINTS = {
    "after journaling, before create": _crash_before_step("create"),
    "created, before storing the secret": _crash_on_store_call("set", api_key_rotation.PENDING),
    "stored, before proving": _crash_before_step("prove"),
    "proved, before switching": _crash_before_step("switch"),
    "switch: old key saved as previous": _crash_on_store_call("set", api_key_rotation.PREVIOUS, after=True),
    "switch: profile now holds the new key": _crash_on_store_call("set", "", after=True),
    "switch: pending deleted, step not saved": _crash_on_store_call("delete", api_key_rotation.PENDING, after=True),
    "switched, before disabling the old": _crash_before_step("disable_old"),
    "old disabled, previous not deleted": _crash_on_store_call("delete", api_key_rotation.PREVIOUS),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_rotation_killed_anywhere_resumes_and_never_loses_the_working_key(profile, monkeypatch, point):
    session, store = profile
    old_id = next(r for r in listing(session).values() if r.used_by_tool).credential_id
    with monkeypatch.context() as patch, pytest.raises(Crash):
        on_step = CRASH_POINTS[point](patch, store)
        asyncio.run(api_key_rotation.rotate_tool_key(session, store, description="klarna-mtls host a", on_step=on_step))

    # Whatever was interrupted, the key stored under the profile works right now.
    resumed = fresh_session(store)
    asyncio.run(_ping(resumed))
    assert api_key_rotation.rotation_state(resumed) is not None
    # And the disable interlock still protects it.
    tool = [r for r in listing(resumed).values() if r.used_by_tool]
    assert len(tool) == 1
    with pytest.raises(InterlockRefused):
        asyncio.run(api_keys.disable_key(resumed, tool[0].credential_id))

    new_id = asyncio.run(api_key_rotation.rotate_tool_key(resumed, store))
    assert new_id != old_id
    assert_rotated(resumed, store, old_id, new_id)
    # The recorded tool key is the new one: disabling it is refused after the resume too.
    with pytest.raises(InterlockRefused):
        asyncio.run(api_keys.disable_key(fresh_session(store), new_id))


def test_lost_create_answer_is_replayed_not_duplicated(profile, sandbox):
    """The server creates the key but the answer never arrives, more times than the client
    retries. The idempotency key was journaled first, so the resumed run gets the same key."""
    session, store = profile
    old_id = next(r for r in listing(session).values() if r.used_by_tool).credential_id
    sandbox.inject(Fault(kind="drop_after_commit", operation="create_api_key", count=10))
    with pytest.raises(TransportError):
        asyncio.run(api_key_rotation.rotate_tool_key(session, store))
    sandbox.clear_faults()
    flow = session.state.flows.key_rotation
    assert flow.step == "create" and flow.idempotency_key and flow.new_credential_id is None
    created = [r for r in listing(session).values() if r.active and r.credential_id != old_id]
    assert len(created) == 1  # the server did create one

    resumed = fresh_session(store)
    new_id = asyncio.run(api_key_rotation.rotate_tool_key(resumed, store))
    assert new_id == created[0].credential_id
    assert_rotated(resumed, store, old_id, new_id)


def test_one_dropped_answer_is_recovered_within_the_call(profile, sandbox):
    session, store = profile
    sandbox.inject(Fault(kind="drop_after_commit", operation="create_api_key"))
    new_id = asyncio.run(api_key_rotation.rotate_tool_key(session, store))
    assert len([r for r in listing(session).values() if r.active]) == 1 and listing(session)[new_id].used_by_tool


def test_failed_live_proof_keeps_the_old_key_and_resumes(profile, sandbox):
    session, store = profile
    old_key = store.get(PROFILE)
    sandbox.inject(Fault(kind="status", status=503, operation="list_certificates", count=10))
    with pytest.raises(ApiError):
        asyncio.run(api_key_rotation.rotate_tool_key(session, store))
    sandbox.clear_faults()
    assert session.state.flows.key_rotation.step == "prove"
    assert store.get(PROFILE) == old_key  # not switched to an unproven key
    new_id = asyncio.run(api_key_rotation.rotate_tool_key(fresh_session(store), store))
    assert store.get(PROFILE) != old_key and listing(fresh_session(store))[new_id].used_by_tool


def test_pending_secret_lost_before_proof_is_abandoned_and_recreated(profile):
    session, store = profile

    def stop_before_prove(step):
        if step == "prove":
            raise Crash

    with pytest.raises(Crash):
        asyncio.run(api_key_rotation.rotate_tool_key(session, store, on_step=stop_before_prove))
    orphan = session.state.flows.key_rotation.new_credential_id
    store.delete(PROFILE + api_key_rotation.PENDING)  # e.g. the keyring entry was removed by hand

    with pytest.raises(SecretStoreError, match="missing"):
        asyncio.run(api_key_rotation.rotate_tool_key(fresh_session(store), store))
    resumed = fresh_session(store)
    assert api_key_rotation.rotation_state(resumed).step == "create"  # persisted, not only in memory
    new_id = asyncio.run(api_key_rotation.rotate_tool_key(resumed, store))
    rows = listing(resumed)
    assert new_id != orphan and rows[orphan].status == "DISABLED" and rows[new_id].used_by_tool


def test_create_with_a_failing_store_disables_the_key_and_keeps_no_secret(profile, monkeypatch):
    session, store = profile

    def refuse(name, value):
        raise SecretStoreError("keyring locked")

    monkeypatch.setattr(store, "set", refuse)
    with pytest.raises(SecretStoreError, match="it was disabled") as caught:
        asyncio.run(api_keys.create_key(session, "reporting job", store=store))
    assert "klarna_test_api_" not in str(caught.value)
    described = [r for r in listing(session).values() if r.description == "reporting job"]
    assert len(described) == 1 and described[0].status == "DISABLED"


def test_describe_and_disabled_key_is_refused_with_a_clear_message(profile, sandbox, run, monkeypatch):
    session, store = profile
    row, secret = asyncio.run(api_keys.create_key(session, "checkout", store=store))
    assert store.get(api_keys.stored_name(PROFILE, row.credential_id)) == secret.reveal()
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)

    code, out = run("keys", "describe", row.credential_id, "--profile", PROFILE, "--description", "checkout eu")
    assert code == 0 and out["key"]["description"] == "checkout eu"
    assert listing(session)[row.credential_id].description == "checkout eu"
    code, out = run("keys", "describe", row.credential_id, "--profile", PROFILE, "--description", "bad/chars")
    assert code == 3 and "Descriptions may hold" in out["error"]["message"]

    code, out = run("keys", "disable", row.credential_id, "--profile", PROFILE)
    assert code == 0 and out["key"]["status"] == "DISABLED"

    # A run whose key is the disabled one is refused with a message saying so.
    monkeypatch.setenv("KLARNA_API_KEY", secret.reveal())
    code, out = run("keys", "list", "--profile", PROFILE)
    assert code == 3 and "disabled" in out["error"]["message"].lower()
    assert secret.reveal() not in "".join(run.seen)


def test_cli_refuses_to_disable_the_tools_key_and_rotates_it(profile, run):
    session, store = profile
    tool = next(r for r in listing(session).values() if r.used_by_tool)
    code, out = run("keys", "disable", tool.credential_id, "--profile", PROFILE)
    assert code == 3 and out["error"]["title"] == "Refused for your safety"
    code, out = run("keys", "rotate", "--profile", PROFILE, "--description", "klarna-mtls ci")
    assert code == 0 and out["ok"]
    rows = {r["credential_id"]: r for r in out["keys"]}
    assert rows[out["new_credential_id"]]["used_by_tool"] and rows[tool.credential_id]["status"] == "DISABLED"
    code, out = run("keys", "disable", tool.credential_id, "--profile", PROFILE)
    assert code == 0  # no longer the tool's key
    assert store.get(PROFILE) not in "".join(run.seen)


def test_cli_create_needs_a_persistent_store_unless_shown_once(profile, run, monkeypatch, sandbox):
    session, _ = profile
    session.evidence.secret_backend = "env"
    session.save()
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    code, out = run("keys", "create", "--profile", PROFILE, "--description", "batch")
    assert code == 3 and "persistent store" in out["error"]["message"]
    assert not [r for r in listing(session).values() if r.description == "batch"]  # nothing created
    code, out = run("keys", "create", "--profile", PROFILE, "--description", "batch", "--show-secret-once")
    assert code == 0 and out["secret"].startswith("klarna_test_api_") and "stored_as" not in out


def test_new_secrets_never_leave_the_secret_store(profile, sandbox, run, capfd, caplog, isolated_home, monkeypatch):
    caplog.set_level(logging.DEBUG)
    session, store = profile
    asyncio.run(api_key_rotation.rotate_tool_key(session, store))
    rotated = store.get(PROFILE)
    monkeypatch.setenv("KLARNA_API_KEY", rotated)
    code, out = run("keys", "create", "--profile", PROFILE, "--description", "payments worker", "--store")
    assert code == 0
    created = store.get(out["stored_as"])
    code, listed = run("keys", "list", "--profile", PROFILE)
    assert code == 0
    secrets_made = [rotated, created]
    assert all(s and s.startswith("klarna_test_api_") for s in secrets_made)
    seen = "".join(run.seen) + "".join(capfd.readouterr()) + caplog.text + repr(session)
    files = [p for p in isolated_home.rglob("*") if p.is_file()]
    assert session.paths.audit_path(PROFILE) in files and session.journal.path in files
    for secret in secrets_made:
        assert secret not in seen
        assert secret[-12:] not in seen  # not even a long tail: masks show 4 characters
        for path in files:
            assert secret.encode() not in path.read_bytes(), path


def test_hygiene_findings_follow_the_keys(profile, sandbox):
    session, store = profile
    findings = asyncio.run(api_key_hygiene.hygiene_findings(session, None))
    assert any("initial API key" in f.summary for f in findings)

    asyncio.run(api_key_rotation.rotate_tool_key(session, store, description="klarna-mtls host a"))
    assert [f.severity for f in asyncio.run(api_key_hygiene.hygiene_findings(session, None))] == ["ok"]

    _, shared = asyncio.run(api_keys.create_key(session, "default"))

    async def another_service_calls():
        async with session.client(api_key=shared.reveal()) as klarna:
            await klarna.ping()  # the generically described key is in use somewhere

    asyncio.run(another_service_calls())
    summaries = " ".join(f.summary for f in asyncio.run(api_key_hygiene.hygiene_findings(session, None)))
    assert "possibly shared" in summaries

    asyncio.run(api_key_rotation.rotate_tool_key(session, store, description="API key"))
    summaries = " ".join(f.summary for f in asyncio.run(api_key_hygiene.hygiene_findings(session, None)))
    assert "may be shared by several services" in summaries


def test_hygiene_flags_a_key_from_another_environment(profile):
    session, _ = profile
    session.unlock("klarna_live_api_" + "A" * 32)
    findings = asyncio.run(api_key_hygiene.hygiene_findings(session, None))
    # The live key is refused by the sandbox (a listing failure), or flagged as the wrong environment.
    text = " ".join(f.summary for f in findings)
    assert "live key but the profile is sandbox" in text or "Could not list API keys" in text


@pytest.mark.parametrize(
    "value, severity, words",
    [
        ("ALLOWED", "ok", "allow-list"),
        ("DENIED", "critical", "will be refused"),
        ("INVALID", "warning", "could not validate"),
        ("DENIED, DENIED", "critical", "not on the account's allow-list"),
    ],
)
def test_ip_validation_header_is_explained(value, severity, words):
    finding = api_key_hygiene.ip_validation_finding(value)
    assert finding.severity == severity and words in finding.summary and finding.check == "ip validation"


def test_doctor_includes_key_hygiene(profile):
    from wizard.services.doctor import run_doctor

    session, _ = profile
    findings = asyncio.run(run_doctor(session))
    assert any(f.check == "api keys" and "initial API key" in f.summary for f in findings)


def test_switch_with_no_key_in_either_slot_refuses_and_records_nothing():
    """A resumed switch finding neither the pending key nor the profile's key must stop with a
    clear error, not record the new id as the tool's with no key loaded."""
    session = Session(Paths.from_env(), "empty")
    store = keyring_store.KeyringStore()
    with pytest.raises(SecretStoreError, match="holds no API key"):
        asyncio.run(api_key_rotation._switch(session, store, {"step": "switch", "new_credential_id": "key-new"}))
    assert session.state.tool_key_id is None and not session.unlocked
