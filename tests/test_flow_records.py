"""The flows' typed records (wizard/core/flow_records.py): they read and write the JSON earlier versions
kept under the journal's "flows", so a flow half done by an earlier version resumes; a record of
the wrong shape is the journal's damage error, never a crash half-way through a flow."""

from __future__ import annotations

import asyncio
import copy
import json

import pytest
from tests_support import name_initial_key, session_for

from wizard.core.errors import JournalError
from wizard.core.flow_records import CertificateRotation, Flows, KeyRotation
from wizard.core.journal import ProfileState
from wizard.core.paths import Paths
from wizard.secrets import keyring_store
from wizard.services import (
    api_key_rotation,
    api_keys,
    certificate_rotation,
    install,
    onboarding,
    runtime_exchange,
)
from wizard.services.session import Session
from wizard.services.status import gather_status


class Killed(Exception):
    """The process dies."""


# What earlier versions wrote under "flows" (dicts filled in as each step learned something).
ROTATION_WRITTEN = {
    "step": "verify",
    "old_certificate_id": "crt-old",
    "folder": "/keys/p/rotation-1a2b3c4d",
    "key_sha256": "ab" * 32,
    "key_path": "/keys/p/rotation-1a2b3c4d/private-key.pem",
    "public_key_id": "pk-1",
    "csr_pem": "-----BEGIN CERTIFICATE REQUEST-----\n…\n-----END CERTIFICATE REQUEST-----\n",
    "cn": "partner.example",
    "idempotency_key": "0f0e-idem",
    "certificate_id": "crt-new",
    "certificate_pem": "-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----\n",
    "fingerprint": "AB:CD",
    "label": "abcd",
}
KEY_ROTATION_WRITTEN = {
    "step": "prove",
    "old_credential_id": None,
    "description": "klarna-mtls p",
    "keep_old": True,
    "started_at": "2026-11-29T10:00:00Z",
    "idempotency_key": "idem-2",
    "new_credential_id": "key-new",
}
FLOWS_WRITTEN = {
    "rotation": ROTATION_WRITTEN,
    "key_rotation": KEY_ROTATION_WRITTEN,
    "runtime_request": {
        "name": "checkout",
        "key_path": "/keys/p/runtime-checkout-1/private-key.pem",
        "public_key_id": "pk-2",
        "csr_pem": "-----BEGIN CERTIFICATE REQUEST-----\n…\n",
        "cn": "partner.example",
        "encrypted": False,
    },
    "runtime_issue": {"pk-3": {"name": "refunds", "idempotency_key": "idem-3"}},
    "a_later_flow": {"anything": [1, 2]},  # a newer version's flow: kept as it was
}


def test_records_read_and_write_exactly_the_json_of_earlier_versions():
    flows = Flows.from_dict(copy.deepcopy(FLOWS_WRITTEN))
    assert flows.rotation is not None and flows.rotation.step == "verify" and flows.rotation.label == "abcd"
    assert flows.key_rotation is not None and flows.key_rotation.keep_old is True
    assert flows.runtime_request is not None and flows.runtime_request.public_key_id == "pk-2"
    assert flows.runtime_issues["pk-3"].idempotency_key == "idem-3"
    assert flows.to_dict() == FLOWS_WRITTEN
    # A rotation just started wrote three fields; a key rotation before keep_old existed, four.
    started = {"step": "key", "old_certificate_id": None, "folder": "/keys/p/rotation-1"}
    assert CertificateRotation.from_dict(started).to_dict() == started
    older = {k: v for k, v in KEY_ROTATION_WRITTEN.items() if k != "keep_old"}
    assert KeyRotation.from_dict(older).keep_old is False


def test_the_records_of_a_journaled_retirement_a_lost_key_answer_and_unused_certificates_round_trip():
    written = {
        "rotation": {**ROTATION_WRITTEN, "step": "retire", "retire_old": True, "grace_seconds": "600",
                     "retire_at": "2026-11-29T10:10:00.250000+00:00"},
        "key_creation": {"description": "checkout eu", "idempotency_key": "idem-4", "started_at": "2026-11-29T10:00:00Z"},
        "unused_certificates": {"crt-x": {"reason": "It expires on …", "at": "2026-11-29T10:00:00Z"}},
    }  # fmt: skip
    flows = Flows.from_dict(copy.deepcopy(written))
    assert flows.rotation is not None and flows.rotation.step == "retire" and flows.rotation.retire_old
    assert flows.key_creation is not None and flows.key_creation.stored_as is None
    assert flows.unused_certificates["crt-x"].reason.startswith("It expires")
    assert flows.to_dict() == written
    document = {**ProfileState(profile="p").to_dict(), "flows": {"unused_certificates": {"crt-x": {"reason": 5}}}}
    with pytest.raises(JournalError, match="flows.unused_certificates.crt-x"):
        ProfileState.from_dict(document, "p")


def test_a_profile_state_keeps_its_flows_through_a_load_and_save():
    state = ProfileState(profile="p")
    document = {**state.to_dict(), "flows": copy.deepcopy(FLOWS_WRITTEN)}
    assert ProfileState.from_dict(document, "p").to_dict()["flows"] == FLOWS_WRITTEN


def test_a_flow_record_keeps_what_it_does_not_know_and_what_it_loaded_as_null():
    """The flow records are the journal's records (wizard/core/records.py): a newer version's field
    survives this version's save, and a null it held is written back as it was read."""
    newer = {**ROTATION_WRITTEN, "a_newer_field": {"kept": [1]}, "label": None}
    assert CertificateRotation.from_dict(copy.deepcopy(newer)).to_dict() == newer
    assert KeyRotation(step="create", description="d").to_dict() == {
        "step": "create",
        "old_credential_id": None,
        "description": "d",
        "keep_old": False,
    }


@pytest.mark.parametrize(
    ("flow", "value", "field"),
    [
        ("rotation", {**ROTATION_WRITTEN, "step": "bogus"}, "flows.rotation.step"),
        ("rotation", {**ROTATION_WRITTEN, "step": 3}, "flows.rotation.step"),
        ("rotation", {**ROTATION_WRITTEN, "folder": 5}, "flows.rotation.folder"),
        ("rotation", {**ROTATION_WRITTEN, "csr_pem": ["x"]}, "flows.rotation.csr_pem"),
        ("key_rotation", {**KEY_ROTATION_WRITTEN, "keep_old": "yes"}, "flows.key_rotation.keep_old"),
        ("key_rotation", {**KEY_ROTATION_WRITTEN, "new_credential_id": 7}, "flows.key_rotation.new_credential_id"),
        ("runtime_request", {**FLOWS_WRITTEN["runtime_request"], "name": None}, "flows.runtime_request.name"),
        ("runtime_issue", {"pk-3": "idem-3"}, "flows.runtime_issue.pk-3"),
        ("runtime_issue", {"pk-3": {"name": "refunds"}}, "flows.runtime_issue.pk-3.idempotency_key"),
    ],
)
def test_a_flow_record_of_the_wrong_shape_is_the_journals_damage_error(flow, value, field):
    document = {**ProfileState(profile="p").to_dict(), "flows": {flow: value}}
    with pytest.raises(JournalError, match="damaged") as caught:
        ProfileState.from_dict(document, "p")
    assert f"'{field}'" in caught.value.message


def test_a_hand_edited_rotation_record_is_reported_by_the_cli(onboard, paths, cli):
    onboard()
    journal = paths.journal_path("p")
    data = json.loads(journal.read_text())
    data["flows"]["rotation"] = {"step": "finished", "folder": "x"}
    journal.write_text(json.dumps(data))
    code, out = cli("rotate", "--profile", "p")
    assert code == 3 and "'flows.rotation.step' is not one of" in out["error"]["message"]


def test_a_rotation_record_missing_what_an_earlier_step_learned_is_damage_not_a_crash(onboard, sandbox):
    onboard()
    session = session_for("p", sandbox)
    session.state.flows.rotation = CertificateRotation(step="issue", folder="x", public_key_id="pk")
    session.save()
    with pytest.raises(JournalError, match=r"no 'csr_pem'"):
        asyncio.run(certificate_rotation.rotate(session_for("p", sandbox), verify_interval=0.05))


# ---------------------------------------------------------------- resumed from an earlier version
def rewrite_as_written_before(paths, name: str, fields: list[str]) -> None:
    """The journal as an earlier version left it: exactly ``fields`` in flows[name]."""
    journal = paths.journal_path("p")
    data = json.loads(journal.read_text())
    record = data["flows"][name]
    assert sorted(record) == sorted(fields)
    data["flows"][name] = {key: record[key] for key in fields}
    journal.write_text(json.dumps(data, indent=2))


STARTED = ["step", "old_certificate_id", "folder"]
KEY_MADE = [*STARTED, "key_sha256", "key_path", "public_key_id", "csr_pem", "cn"]
ISSUED = [*KEY_MADE, "idempotency_key", "certificate_id", "certificate_pem", "fingerprint"]
INSTALLED = [*ISSUED, "label"]
ROTATION_KILLED_BEFORE = {
    "key": STARTED,
    "issue": KEY_MADE,
    "install": ISSUED,
    "verify": INSTALLED,
    "switch": INSTALLED,
}


@pytest.mark.parametrize("step", list(ROTATION_KILLED_BEFORE))
def test_a_certificate_rotation_half_done_by_an_earlier_version_resumes(onboard, sandbox, paths, step):
    old = onboard()

    def die(at: str) -> None:
        if at == step:
            raise Killed

    with pytest.raises(Killed):
        asyncio.run(certificate_rotation.rotate(session_for("p", sandbox), verify_interval=0.05, on_step=die))
    rewrite_as_written_before(paths, "rotation", ROTATION_KILLED_BEFORE[step])
    resumed = session_for("p", sandbox)
    assert install.current_pair(resumed.install_dir).fingerprint == old["fingerprint"]  # nothing switched yet

    steps: list[str] = []
    result = asyncio.run(certificate_rotation.rotate(resumed, verify_interval=0.05, on_step=steps.append))
    order = list(certificate_rotation.ROTATION_WORDS)
    assert steps == order[order.index(step) :]
    status = asyncio.run(gather_status(resumed))
    assert status.slots_used == 2 and status.current.credential_id == result.new_certificate_id
    assert result.old_certificate_id == old["certificate_id"]


CREATE = ["step", "old_credential_id", "description", "keep_old", "started_at"]
CREATED = [*CREATE, "idempotency_key", "new_credential_id"]
KEY_ROTATION_KILLED_BEFORE = {"create": CREATE, "prove": CREATED, "switch": CREATED, "disable_old": CREATED}


@pytest.fixture
def key_profile(sandbox):
    session = Session(Paths.from_env(), "p")
    session.configure("sandbox", sandbox.account_id, base_url=sandbox.base_url, ca_bundle=sandbox.ca_bundle)
    store = keyring_store.KeyringStore()
    asyncio.run(onboarding.check_credentials(session, sandbox.api_key, store))
    old_id = name_initial_key(session)
    return store, old_id


def resumed_key_session(store) -> Session:
    session = Session(Paths.from_env(), "p")
    session.unlock(store.get("p"))
    return session


@pytest.mark.parametrize("step", list(KEY_ROTATION_KILLED_BEFORE))
def test_a_key_rotation_half_done_by_an_earlier_version_resumes(key_profile, paths, step):
    store, old_id = key_profile

    def die(at: str) -> None:
        if at == step:
            raise Killed

    with pytest.raises(Killed):
        asyncio.run(api_key_rotation.rotate_tool_key(resumed_key_session(store), store, on_step=die))
    rewrite_as_written_before(paths, "key_rotation", KEY_ROTATION_KILLED_BEFORE[step])
    resumed = resumed_key_session(store)
    assert api_key_rotation.rotation_state(resumed).step == step

    steps: list[str] = []
    new_id = asyncio.run(api_key_rotation.rotate_tool_key(resumed, store, on_step=steps.append))
    order = list(api_key_rotation.KEY_ROTATION_WORDS)
    assert steps == order[order.index(step) :]
    rows = {r.credential_id: r for r in asyncio.run(api_keys.list_keys(resumed_key_session(store)))}
    assert rows[new_id].used_by_tool and rows[old_id].status == "DISABLED"
    assert api_key_rotation.rotation_state(resumed) is None


def test_a_key_rotation_from_before_keep_old_was_journaled_resumes_and_disables_the_old(key_profile, paths):
    store, old_id = key_profile

    def die(at: str) -> None:
        if at == "switch":
            raise Killed

    with pytest.raises(Killed):
        asyncio.run(api_key_rotation.rotate_tool_key(resumed_key_session(store), store, on_step=die))
    rewrite_as_written_before(paths, "key_rotation", CREATED)
    journal = paths.journal_path("p")
    data = json.loads(journal.read_text())
    del data["flows"]["key_rotation"]["keep_old"]
    journal.write_text(json.dumps(data))
    new_id = asyncio.run(api_key_rotation.rotate_tool_key(resumed_key_session(store), store))
    rows = {r.credential_id: r for r in asyncio.run(api_keys.list_keys(resumed_key_session(store)))}
    assert rows[new_id].used_by_tool and rows[old_id].status == "DISABLED"


def test_runtime_exchange_records_of_an_earlier_version_resume(onboard, sandbox, paths, monkeypatch):
    """The host's request and the manager's issue in flight, both as an earlier version journaled
    them: the host keeps its key, and the issue reuses its idempotency key (no second slot)."""
    onboard()
    host = Session(Paths.from_env(), "host")
    host.configure("sandbox", sandbox.account_id, base_url=sandbox.base_url, ca_bundle=sandbox.ca_bundle)
    request = asyncio.run(runtime_exchange.make_request(host, "checkout"))
    host_journal = paths.journal_path("host")
    record = json.loads(host_journal.read_text())["flows"]["runtime_request"]
    assert sorted(record) == ["cn", "csr_pem", "encrypted", "key_path", "name", "public_key_id"]
    again = asyncio.run(runtime_exchange.make_request(Session(Paths.from_env(), "host"), "checkout"))
    assert again["public_key_id"] == request["public_key_id"]  # the saved request, not a new key

    # The manager journaled the issue and sent it, then died before the answer was recorded.
    manager = session_for("p", sandbox)
    pending = {"name": "checkout", "idempotency_key": "idem-from-before"}
    journal = paths.journal_path("p")
    data = json.loads(journal.read_text())
    data["flows"]["runtime_issue"] = {request["public_key_id"]: pending}
    journal.write_text(json.dumps(data))

    async def sent_before_the_crash() -> str:
        async with manager.client() as klarna:
            answer = await klarna.create_certificate(request["csr"], "klarna-mtls runtime checkout", "idem-from-before")
        return answer.value.credential_id

    first = asyncio.run(sent_before_the_crash())
    resumed = session_for("p", sandbox)
    response = asyncio.run(runtime_exchange.issue_for_request(resumed, request))
    assert response["certificate_id"] == first
    assert resumed.state.flows.runtime_issues == {}
    assert "runtime_issue" not in json.loads(journal.read_text())["flows"]
    installed = asyncio.run(runtime_exchange.install_response(session_for("host", sandbox), response))
    assert installed.observation.status == "VALID" and installed.certificate_id == first
