"""The action table is the only source of refusals: the slot limit, typed confirmations on live
profiles, describing an API key, the TUI's export (issue 20, item 3)."""

from __future__ import annotations

import asyncio

import pytest
from tests_support import issue_pair, session_for

from wizard.core.interlocks import ACTIONS, Action, ActionRefused, Situation, refusals
from wizard.core.stages import Stage
from wizard.klarna.endpoints import BASE_URLS
from wizard.services import api_keys, certificate_rotation
from wizard.services.clients import ClientFactory


def test_the_slot_gate_names_each_holder_and_refuses_an_unknown_count():
    holders = tuple(f"krn:c{n} (runtime r{n}, no description)" for n in range(10))
    full = Situation(Stage.DONE, active_certificates=10, slot_holders=holders)
    found = refusals(Action.ISSUE_RUNTIME, full)
    assert [r.check for r in found] == ["slots free"]
    assert found[0].reason.startswith("All 10 certificate slots are in use: krn:c0 (runtime r0")
    assert "certs revoke" in found[0].hint
    unknown = refusals(Action.ISSUE_RUNTIME, Situation(Stage.DONE))
    assert [r.check for r in unknown] == ["slots free"] and "could not be established" in unknown[0].reason
    assert not refusals(Action.ISSUE_RUNTIME, Situation(Stage.DONE, active_certificates=9))
    for action in (Action.ISSUE, Action.ROTATE, Action.ISSUE_RUNTIME):
        assert any(g.name == "slots free" for g in ACTIONS[action].gates)


@pytest.mark.e2e
def test_rotation_into_a_full_account_is_refused_by_the_table_naming_the_holders(onboard, sandbox, tmp_path):
    onboard()
    for n in range(9):
        issue_pair(sandbox, tmp_path, f"filler{n}")
    session = session_for("p", sandbox)
    with pytest.raises(ActionRefused) as refused:
        asyncio.run(certificate_rotation.rotate(session))
    assert refused.value.action is Action.ROTATE
    assert [r.check for r in refused.value.refusals] == ["slots free"]
    assert "All 10 certificate slots are in use" in str(refused.value) and "this machine" in str(refused.value)


def test_typed_confirmations_are_gates_of_the_table():
    for action in (Action.REVOKE, Action.DISABLE_API_KEY, Action.ENFORCE):
        assert any(g.name == "confirmed" for g in ACTIONS[action].gates), action
    asked = Situation(
        Stage.DONE,
        confirmation_required=True,
        confirmation_expected="1a2b",
        confirmation_what="the key's last four characters (1a2b)",
    )
    gate = next(g for g in ACTIONS[Action.DISABLE_API_KEY].gates if g.name == "confirmed")
    assert gate.fn(asked) == "On a live profile, the key's last four characters (1a2b) must be typed to confirm."
    assert gate.fn(Situation(Stage.DONE, confirmation_required=True, confirmation_typed="x")) is not None
    from dataclasses import replace

    assert gate.fn(replace(asked, confirmation_typed="1a2b")) is None
    assert gate.fn(replace(asked, confirmation_required=False)) is None


def test_describing_a_key_has_its_row():
    assert ACTIONS[Action.DESCRIBE_API_KEY].gates == ()
    assert not refusals(Action.DESCRIBE_API_KEY, Situation(Stage.CREDENTIALS))


def _live(sandbox, monkeypatch, profile: str = "p") -> None:
    """Play the profile as live against the sandbox, as test_lifecycle's live revocation does."""
    session = session_for(profile, sandbox)
    session.evidence.environment = "live"
    monkeypatch.setitem(BASE_URLS, "live", sandbox.base_url)
    session.settings.trust_ca, session.settings.base_url, session.settings.ca_bundle = (
        session.settings.ca_bundle,
        None,
        None,
    )
    session.save()
    monkeypatch.setattr(ClientFactory, "check_binding", lambda self, key: None)  # a test key on a "live" profile


@pytest.mark.e2e
def test_keys_disable_on_a_live_profile_needs_the_typed_suffix_in_the_cli(onboard, sandbox, cli, monkeypatch):
    onboard()
    session = session_for("p", sandbox)
    row, _secret = asyncio.run(api_keys.create_key(session, "payments worker"))
    _live(sandbox, monkeypatch)
    code, out = cli("keys", "disable", "--profile", "p", row.credential_id, "--not-the-tools-key")
    assert code == 3, out
    assert "must be typed to confirm" in out["error"]["message"]
    assert "--confirm-suffix" in out["error"]["hint"]
    listed = {r.credential_id: r for r in asyncio.run(api_keys.list_keys(session_for("p", sandbox)))}
    assert listed[row.credential_id].status == "ACTIVE"
    code, out = cli(
        "keys", "disable", "--profile", "p", row.credential_id, "--not-the-tools-key", "--confirm-suffix", "0000"
    )
    assert code == 3, out
    code, out = cli(
        "keys",
        "disable",
        "--profile",
        "p",
        row.credential_id,
        "--not-the-tools-key",
        "--confirm-suffix",
        listed[row.credential_id].confirm_suffix,
    )
    assert code == 0, out
    assert out["disabled"] == row.credential_id


def test_restart_from_refuses_a_later_stage():
    from evidence import evidence_through, fixed_clock

    from wizard.core.errors import InputError
    from wizard.core.model import Onboarding

    model = Onboarding(Stage.ISSUE, evidence_through(Stage.ISSUE), clock=fixed_clock)
    with pytest.raises(InputError, match="later step"):
        model.restart_from(Stage.ENFORCE)
    assert model.stage is Stage.ISSUE
    model.restart_from(Stage.ISSUE)  # the current stage may be restarted
    assert model.stage is Stage.ISSUE


@pytest.mark.e2e
def test_the_wizards_export_goes_through_the_gate(onboard, sandbox, tmp_path):
    """The TUI's export is refused by ``Action.EXPORT``'s gate when no pair is installed here."""
    from types import SimpleNamespace

    from screens.install import EXTRA_FORMATS, InstallScreen
    from wizard.services.exports import EXPORTERS

    onboard()
    session = session_for("p", sandbox)
    screen = SimpleNamespace(session=session)
    written = InstallScreen.export(screen, list(EXTRA_FORMATS), b"export password")  # type: ignore[arg-type]
    assert [p.rsplit("/", 1)[1] for p in written] == ["bundle.pem", "client.p12", "klarna-mtls-secret.yaml"]
    assert [EXPORTERS[f].file_name for f in EXTRA_FORMATS] == ["bundle.pem", "client.p12", "klarna-mtls-secret.yaml"]
    (session.install_dir / "current").unlink()  # no pair installed here any more
    with pytest.raises(ActionRefused) as refused:
        InstallScreen.export(screen, ["bundle"], b"")  # type: ignore[arg-type]
    assert refused.value.action is Action.EXPORT and [r.check for r in refused.value.refusals] == ["installed"]
