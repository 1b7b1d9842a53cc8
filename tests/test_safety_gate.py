"""The safety core end to end: the interlocks (wizard/core/interlocks.py) on every path, decisions on the
profile's own records rather than on fields only our sandbox sends, unknowns failing closed.

Run against both sandbox answer modes: "ours" (every field) and "docs-only" (only what Klarna
documents: certificate entries with just ``credential_id``, no key suffixes, PUT enforcement 204, GET
enforcement with only the mode). Each test names the issue-12/issue-11 item it pins."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from conftest import BOTH_ANSWER_MODES
from tests_support import sandbox_profile_args, session_for

from wizard.core import rules
from wizard.core.paths import Paths
from wizard.core.stages import Stage
from wizard.klarna.client import KlarnaClient
from wizard.klarna.models import EnforcementState
from wizard.services import api_key_rotation, onboarding
from wizard.services.session import Session

pytestmark = pytest.mark.e2e
DOCS_ONLY = pytest.mark.parametrize("sandbox", ["docs-only"], indirect=True)


# ---------------------------------------------------------------- helpers
def server_certificate_status(sandbox, credential_id: str) -> str:
    state = sandbox._state
    return state.certificate_status(state.data["certificates"][credential_id])


def server_key_status(sandbox, credential_id: str) -> str:
    return sandbox._state.data["api_keys"][credential_id]["status"]


def server_enforcement(sandbox) -> str:
    return sandbox._state.enforcement_state(sandbox.account_id)["enforcement_mode"]


def revoke_elsewhere(sandbox, profile: str, credential_id: str) -> None:
    """Another admin (or the portal) revokes a certificate: straight to the API, no interlock."""
    session = session_for(profile, sandbox)

    async def go():
        async with session.client() as klarna:
            await klarna.revoke_certificate(credential_id)

    asyncio.run(go())


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def onboard_own_key(sandbox, cli_json, profile: str = "p", enforce_at: str = "never") -> dict:
    """Onboard with the recommended --own-key: the tool creates, stores and runs on its own key."""
    code, out = cli_json(
        "onboard",
        "--profile",
        profile,
        "--non-interactive",
        *sandbox_profile_args(sandbox),
        "--enforce-at",
        enforce_at,
        "--poll-interval",
        "0.05",
        "--enforce-wait",
        "20",
        "--secret-store",
        "keyring",
        "--own-key",
    )
    assert code == 0, out
    return out


# ---------------------------------------------------------------- issue 12, docs-only "Done when"
@BOTH_ANSWER_MODES
def test_revoking_the_installed_certificate_is_refused_and_changes_nothing(onboard, cli, sandbox):
    result = onboard()
    code, out = cli("certs", "revoke", "--profile", "p", result["certificate_id"])
    assert code == 3 and "installed and in use here" in out["error"]["message"]
    assert server_certificate_status(sandbox, result["certificate_id"]) == "ACTIVE"


@BOTH_ANSWER_MODES
def test_disabling_the_tools_own_key_is_refused_and_changes_nothing(sandbox, cli_json, monkeypatch):
    out = onboard_own_key(sandbox, cli_json)
    tool_id = out["api_key_credential_id"]
    assert tool_id and server_key_status(sandbox, tool_id) == "ACTIVE"
    monkeypatch.delenv("KLARNA_API_KEY")  # later runs use the profile's stored key: the tool's own
    code, refused = cli_json("keys", "disable", "--profile", "p", tool_id)
    assert code == 3 and "the key klarna-mtls uses" in refused["error"]["message"]
    assert server_key_status(sandbox, tool_id) == "ACTIVE"
    code, listed = cli_json("keys", "list", "--profile", "p")
    assert [k["credential_id"] for k in listed["keys"] if k["used_by_tool"]] == [tool_id]


@DOCS_ONLY
def test_status_marks_the_installed_certificate_as_current(onboard, cli):
    result = onboard()
    code, status = cli("status", "--profile", "p")
    assert code == 0 and status["verification"] == "VALID"
    assert status["current_id"] == result["certificate_id"]
    row = next(c for c in status["certificates"] if c["credential_id"] == result["certificate_id"])
    assert row["current"] and row["installed_here"] and row["last_seen_valid"] and row["days_left"] >= 1090


@DOCS_ONLY
def test_enforce_now_works_while_the_installed_pair_is_valid_and_reads_enforced(onboard, cli, sandbox):
    onboard()
    code, out = cli("enforce", "--profile", "p", "--at", "NOW")
    assert code == 0 and out["enforcement_mode"] in ("REPORTING", "ENFORCED")
    assert wait_for(lambda: cli("status", "--profile", "p")[1]["enforcement_mode"] == "ENFORCED")


@DOCS_ONLY
def test_retiring_the_old_certificate_after_a_rotation_works(onboard, cli, sandbox):
    old = onboard()
    code, out = cli("rotate", "--profile", "p", "--retire-old", "--poll-interval", "0.05")
    assert code == 0 and out["new_certificate_id"] != old["certificate_id"]
    assert server_certificate_status(sandbox, old["certificate_id"]) == "REVOKED"
    code, status = cli("status", "--profile", "p")
    assert code == 0 and status["current_id"] == out["new_certificate_id"] and status["verification"] == "VALID"


def _client(handler) -> KlarnaClient:
    return KlarnaClient(
        httpx.AsyncClient(transport=httpx.MockTransport(handler)), "https://k.example", "klarna_test_api_" + "x" * 20
    )


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(204),
        httpx.Response(200, json={}),
        httpx.Response(200, json={"enforcement_mode": None}),
        httpx.Response(200, json={"enforcement_mode": "SOMETHING_NEW"}),
        httpx.Response(200, json=[1, 2]),
    ],
)
def test_an_unreadable_enforcement_answer_is_unknown_never_not_enabled(answer):
    state = asyncio.run(_client(lambda request: answer).get_enforcement()).value
    assert state.mode is rules.EnforcementMode.UNKNOWN and state.scheduled is None


def test_enforcement_answers_say_whether_a_time_is_set():
    assert EnforcementState.from_json({"enforcement_mode": "ENFORCED"}).mode is rules.EnforcementMode.ENFORCED
    assert EnforcementState.from_json({"enforcement_mode": "reporting"}).scheduled is None  # docs-only: not said
    assert EnforcementState.from_json({"enforcement_mode": "REPORTING", "enforced_from": None}).scheduled is False
    assert EnforcementState.from_json(
        {"enforcement_mode": "REPORTING", "enforced_from": "2030-01-01T00:00:00Z"}
    ).scheduled


# ---------------------------------------------------------------- the lock-out (issue 11)
@BOTH_ANSWER_MODES
def test_onboard_enforce_at_now_refuses_when_the_installed_certificate_was_revoked_elsewhere(
    onboard, cli_json, sandbox
):
    """Red-team finding 1: a profile stopped at ENFORCE whose certificate was revoked elsewhere
    must not enforce (that locks the account out); enforcement stays off."""
    result = onboard()
    revoke_elsewhere(sandbox, "p", result["certificate_id"])
    code, out = cli_json("onboard", "--profile", "p", "--non-interactive", "--enforce-at", "NOW", "--enforce-wait", "3")
    assert code == 3 and "No installed certificate is VALID" in out["error"]["message"]
    assert (
        server_enforcement(sandbox) == "REPORTING"
        and sandbox._state.data["accounts"][sandbox.account_id]["enforcement"] is None
    )


def test_the_tui_enforce_call_is_gated_too(onboard, sandbox):
    """The Enforce screen calls onboarding.enforce: the same gate, before any request changes anything."""
    from wizard.core.errors import InterlockRefused

    result = onboard()
    revoke_elsewhere(sandbox, "p", result["certificate_id"])
    session = session_for("p", sandbox)
    with pytest.raises(InterlockRefused, match="No installed certificate is VALID"):
        asyncio.run(onboarding.enforce(session, "NOW"))
    assert session.evidence.enforced_from is None
    assert sandbox._state.data["accounts"][sandbox.account_id]["enforcement"] is None


# ---------------------------------------------------------------- the tool's own API key (issue 12 rule 3)
@BOTH_ANSWER_MODES
def test_until_the_tools_key_is_known_disabling_needs_confirmation(onboard, cli, sandbox):
    onboard()
    other_id, _ = sandbox._state.mint_key(sandbox.account_id, "batch job")
    code, out = cli("keys", "disable", "--profile", "p", other_id)
    assert code == 3 and "does not know which API key it runs on" in out["error"]["message"]
    assert "keys set-own" in out["error"]["hint"] and server_key_status(sandbox, other_id) == "ACTIVE"
    code, out = cli("keys", "disable", "--profile", "p", other_id, "--not-the-tools-key")
    assert code == 0 and server_key_status(sandbox, other_id) == "DISABLED"


@BOTH_ANSWER_MODES
def test_key_id_names_the_tools_key_and_protects_it(onboard, cli, sandbox):
    onboard()
    initial = next(cid for cid, e in sandbox._state.data["api_keys"].items() if e["is_initial"])
    assert cli("keys", "set-own", "--profile", "p", initial)[0] == 0
    code, out = cli("keys", "disable", "--profile", "p", initial)
    assert code == 3 and "the key klarna-mtls uses" in out["error"]["message"]
    assert server_key_status(sandbox, initial) == "ACTIVE"
    code, out = cli("doctor", "--profile", "p")
    assert not any("unknown" in f["summary"] for f in out["findings"] if f["check"] == "api keys")


def test_doctor_says_the_tools_key_is_unknown_not_missing(onboard, cli):
    onboard()
    code, out = cli("doctor", "--profile", "p")
    summaries = [f["summary"] for f in out["findings"] if f["check"] == "api keys"]
    assert any("unknown" in s for s in summaries) and not any("not among" in s for s in summaries)


def test_an_environment_key_cannot_disable_the_profiles_stored_key(sandbox, cli_json, monkeypatch):
    """Red-team finding 8: KLARNA_API_KEY holding another key of the account must not unprotect the
    profile's stored key (the one cron uses)."""
    out = onboard_own_key(sandbox, cli_json)
    _, other = sandbox._state.mint_key(sandbox.account_id, "ops laptop")
    monkeypatch.setenv("KLARNA_API_KEY", other)
    code, refused = cli_json("keys", "disable", "--profile", "p", out["api_key_credential_id"])
    assert code == 3 and server_key_status(sandbox, out["api_key_credential_id"]) == "ACTIVE"


@BOTH_ANSWER_MODES
def test_key_rotation_keeps_knowing_the_tools_key(sandbox, cli_json, monkeypatch):
    out = onboard_own_key(sandbox, cli_json)
    monkeypatch.delenv("KLARNA_API_KEY")
    code, rotated = cli_json("keys", "rotate", "--profile", "p")
    assert code == 0 and rotated["ok"] and rotated["new_credential_id"] != out["api_key_credential_id"]
    assert server_key_status(sandbox, out["api_key_credential_id"]) == "DISABLED"
    code, refused = cli_json("keys", "disable", "--profile", "p", rotated["new_credential_id"])
    assert code == 3 and server_key_status(sandbox, rotated["new_credential_id"]) == "ACTIVE"


def test_key_rotation_refuses_to_start_while_the_tools_key_is_unknown(onboard, cli, monkeypatch, sandbox):
    onboard()
    session = session_for("p", sandbox)
    from wizard.secrets import keyring_store

    store = keyring_store.KeyringStore()
    store.set("p", sandbox.api_key)
    from wizard.core.errors import InterlockRefused

    with pytest.raises(InterlockRefused, match="does not know the credential id"):
        asyncio.run(api_key_rotation.rotate_tool_key(session, store))
    assert [e["status"] for e in sandbox._state.data["api_keys"].values()] == ["ACTIVE"]  # nothing created


# ---------------------------------------------------------------- an already-enforced account (rule 5)
def test_a_second_profile_on_an_enforced_account_is_told_what_the_403_means(onboard, cli_json, sandbox):
    onboard(enforce_at="NOW")
    code, out = cli_json(
        "onboard",
        "--profile",
        "second",
        "--non-interactive",
        *sandbox_profile_args(sandbox),
    )
    assert code == 3
    assert out["error"]["title"] == "mTLS required on this account"
    assert "already enforces mTLS" in out["error"]["message"]
    # Issue 24, item 9: the way that keeps the account enforced comes first; opening it is the last resort.
    hint = out["error"]["hint"]
    assert hint.startswith("Without removing enforcement")
    assert "klarna-mtls runtime request --name " in hint and "--profile second" in hint
    assert hint.index("runtime request") < hint.index("runtime issue") < hint.index("runtime install")
    assert hint.index("runtime install") < hint.index("last resort") < hint.index("klarna-mtls unenforce")


# ---------------------------------------------------------------- the model: stage read-only, journal re-checked
def test_stage_cannot_be_assigned_from_outside_the_model():
    from wizard.core.model import Onboarding

    model = Onboarding()
    with pytest.raises(AttributeError):
        model.stage = Stage.ENFORCE  # type: ignore[misc]


def test_a_journal_claiming_enforce_with_failing_earlier_checks_is_pulled_back(onboard, sandbox, paths):
    onboard()
    journal = paths.journal_path("p")
    data = json.loads(journal.read_text())
    data["evidence"]["install_probe_ok_at"] = None  # the install was never proved
    journal.write_text(json.dumps(data))
    session = Session(Paths.from_env(), "p")
    assert session.model.stage is Stage.INSTALL
    assert session.model.pulled_back[0] is Stage.ENFORCE
    empty = {"schema": 1, "stage": "ENFORCE", "evidence": {}}
    journal.write_text(json.dumps(empty))
    assert Session(Paths.from_env(), "p").model.stage is Stage.CREDENTIALS


def test_a_resumed_onboard_at_enforce_still_works_after_the_verify_window(onboard, cli_json, sandbox):
    """Time-windowed checks (the VALID streak) do not pull a journal back: enforcing observes anew."""
    from datetime import timedelta

    onboard()
    later = rules.utc_now() + timedelta(hours=2)
    session = Session(Paths.from_env(), "p", clock=lambda: later)
    assert session.model.stage is Stage.ENFORCE


def test_a_key_of_another_account_cannot_revoke_there(onboard, cli, sandbox, monkeypatch, tmp_path):
    """Red-team finding 16: with KLARNA_API_KEY of another account, the listing is that account's and
    the certificate installed here is not in it: destructive steps are refused."""

    onboard()
    other_account, other_key = sandbox.mint_account()
    monkeypatch.setenv("KLARNA_API_KEY", other_key)
    victim = session_for("p", sandbox)
    victim.unlock(other_key)

    async def issue_there():
        async with victim.client(with_certificate=False) as klarna:
            from wizard.core import crypto as c

            key = c.make_private_key()
            csr = c.make_csr_pem(key, rules.default_cn(other_account)).decode()
            return (await klarna.create_certificate(csr, "other service", "idem-" + other_account[-8:])).value

    theirs = asyncio.run(issue_there())
    code, out = cli("certs", "revoke", "--profile", "p", theirs.credential_id)
    assert code == 3 and "not among the account's certificates" in out["error"]["message"]
    assert server_certificate_status(sandbox, theirs.credential_id) == "ACTIVE"


@BOTH_ANSWER_MODES
def test_the_whole_journey_in_both_answer_modes(onboard, cli, sandbox):
    """Onboard to ENFORCED, status, rotate and retire, a key per service, unenforce and enforce again:
    the same outcome whether the server sends every field or only the documented ones."""
    first = onboard(enforce_at="NOW")
    assert first["stage"] == "DONE" and first["enforcement"]["mode"] in ("REPORTING", "ENFORCED")
    assert wait_for(lambda: cli("status", "--profile", "p")[1]["enforcement_mode"] == "ENFORCED")
    code, status = cli("status", "--profile", "p")
    assert code == 0 and status["current_id"] == first["certificate_id"] and status["verification"] == "VALID"
    code, rotated = cli("rotate", "--profile", "p", "--retire-old", "--poll-interval", "0.05")
    assert code == 0 and server_certificate_status(sandbox, first["certificate_id"]) == "REVOKED"
    code, status = cli("status", "--profile", "p")
    assert status["current_id"] == rotated["new_certificate_id"] and status["verification"] == "VALID"
    code, created = cli("keys", "create", "--profile", "p", "--description", "checkout eu", "--show-secret-once")
    assert code == 0 and server_key_status(sandbox, created["key"]["credential_id"]) == "ACTIVE"
    code, out = cli("unenforce", "--profile", "p")
    assert code == 0 and server_enforcement(sandbox) == "REPORTING"
    code, out = cli("enforce", "--profile", "p", "--at", "NOW")
    assert code == 0 and wait_for(lambda: server_enforcement(sandbox) == "ENFORCED")
    code, out = cli("certs", "revoke", "--profile", "p", rotated["new_certificate_id"])
    assert code == 3 and server_certificate_status(sandbox, rotated["new_certificate_id"]) == "ACTIVE"


@DOCS_ONLY
def test_an_unreadable_enforcement_state_blocks_revoking_unless_the_installed_pair_is_valid(onboard, cli, sandbox):
    """GET enforcement answering 204 (or a 404): status reads UNKNOWN and works; revoking another
    certificate is allowed only because the installed pair is VALID right now."""
    from tests_support import issue_pair

    from wizard.sandbox import answers

    onboard()
    spare, *_ = issue_pair(sandbox, sandbox.state_dir.parent, "spare")
    original = answers.docs_only

    def no_body_for_enforcement(operation, status, payload):
        return (204, None) if operation == "get_enforcement" else original(operation, status, payload)

    answers.docs_only = no_body_for_enforcement
    try:
        code, status = cli("status", "--profile", "p")
        assert code == 0 and status["enforcement_mode"] == "UNKNOWN" and status["verification"] == "VALID"
        code, out = cli("certs", "revoke", "--profile", "p", spare.credential_id)
        assert code == 0 and server_certificate_status(sandbox, spare.credential_id) == "REVOKED"
    finally:
        answers.docs_only = original


async def test_the_tui_enforce_stage_refuses_after_a_revocation_elsewhere(onboard, sandbox):
    """Red-team finding 1 through the Enforce screen itself: Enforce…, confirm, and the refusal is shown
    with its reason; nothing is scheduled on the server."""
    from screens.app import make_app
    from screens.modals import ConfirmModal, ErrorModal

    result = await asyncio.to_thread(onboard)
    await asyncio.to_thread(revoke_elsewhere, sandbox, "p", result["certificate_id"])
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(3):
            await pilot.pause()
            await app.workers.wait_for_complete()
        assert type(app.screen).__name__ == "EnforceScreen"
        await pilot.click("#enforce")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.click("#confirm")
        for _ in range(3):
            await pilot.pause()
            await app.workers.wait_for_complete()
        assert isinstance(app.screen, ErrorModal) and app.screen.title_text == "Refused for your safety"
        assert "No installed certificate is VALID" in app.screen.body_text
    assert sandbox._state.data["accounts"][sandbox.account_id]["enforcement"] is None


def test_facts_from_other_services_are_judged_by_the_same_table():
    """Declared runtimes (another service computes them) enter the gate as facts, not as a second gate."""
    from wizard.core.interlocks import Action, Situation, refusals

    ready = Situation(
        Stage.DONE,
        installed=True,
        current_id="a",
        listed_ids=frozenset({"a", "b"}),
        verification_now="VALID",
        enforcement="NOT_ENABLED",
        target="b",
    )
    assert refusals(Action.REVOKE, ready) == []
    from dataclasses import replace

    busy = replace(ready, target_in_use_by=("checkout-eu",))
    assert [r.check for r in refusals(Action.REVOKE, busy)] == ["target unused"]
    lagging = replace(ready, runtimes_not_ready=("batch (NOT_PRESENT)",))
    assert "batch (NOT_PRESENT)" in refusals(Action.ENFORCE, lagging)[-1].reason


def test_a_tool_key_recorded_for_another_account_does_not_unlock_disabling(onboard, cli, sandbox, monkeypatch):
    """The recorded id is forgotten when the profile moves to another account, and a recorded id that
    is not among the account's keys counts as unknown: unknown means no."""
    onboard()
    initial = next(cid for cid, e in sandbox._state.data["api_keys"].items() if e["is_initial"])
    cli("keys", "set-own", "--profile", "p", initial)
    account, key = sandbox.mint_account()
    session = session_for("p", sandbox)
    session.configure("sandbox", account, base_url=sandbox.base_url, ca_bundle=sandbox.ca_bundle)
    assert session.state.tool_key_id is None
    session.state.record_tool_key(initial, "told")  # a stale record, as a hand-edited journal might hold
    session.save()
    monkeypatch.setenv("KLARNA_API_KEY", key)
    other = next(cid for cid, e in sandbox._state.data["api_keys"].items() if e["account_id"] == account)
    code, out = cli("keys", "disable", "--profile", "p", other)
    assert code == 3 and "not among this account's keys" in out["error"]["message"]
    assert server_key_status(sandbox, other) == "ACTIVE"


def test_the_403_hints_way_works_as_printed_and_keeps_the_account_enforced(
    onboard, cli_json, sandbox, tmp_path, monkeypatch
):
    """Issue 24, item 9: the commands the hint leads with give the new profile a certificate
    Klarna accepts, and enforcement is never lifted on the way."""
    onboard(enforce_at="NOW")
    code, out = cli_json("onboard", "--profile", "second", "--non-interactive", *sandbox_profile_args(sandbox))
    assert code == 3 and out["error"]["title"] == "mTLS required on this account"
    monkeypatch.chdir(tmp_path)  # the request and response files are written here
    assert cli_json("runtime", "request", "--name", "second", "--profile", "second")[0] == 0
    assert cli_json("runtime", "issue", "runtime-request-second.json", "--profile", "p")[0] == 0
    code, out = cli_json("runtime", "install", "runtime-response-second.json", "--profile", "second")
    assert code in (0, 1), out  # 1: the certificate id is "unconfirmed" on Klarna's documented answers
    code, status = cli_json("status", "--profile", "second")
    assert status["verification"] == "VALID" and status["enforcement_mode"] == "ENFORCED", status
