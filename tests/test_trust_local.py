"""Issue 22, the facts re-derived from local truth (rule 2) and one machine's profiles (rule 6):

- LO-06: the tool's own-key id changes only through ``keys set-own`` (or ``onboard --key-id`` while
  none is recorded) with the new key's last characters typed when it replaces a recorded id, never
  through a listing, and a proven id (the tool created it) is never replaced by a named one;
- LO-07: "installed here" is the record whose fingerprint (made at issue) is the one of
  ``current/certificate.pem``; a label that says otherwise is damage, and destructive steps stop;
- A48: another profile of the same account on this machine cannot revoke this profile's pair."""

from __future__ import annotations

import json

import pytest
from conftest import BOTH_ANSWER_MODES
from test_safety_gate import onboard_own_key, server_key_status

from wizard.core.interlocks import Action, Situation, refusals
from wizard.core.stages import Stage

pytestmark = pytest.mark.e2e


def initial_key(sandbox) -> str:
    return next(cid for cid, e in sandbox._state.data["api_keys"].items() if e["is_initial"])


def recorded_key(profile: str = "p") -> tuple[str | None, str | None]:
    from wizard.core.journal import Journal
    from wizard.core.paths import Paths

    settings = Journal(Paths.from_env(), profile).load().settings
    return settings.api_key_credential_id, settings.api_key_id_source


def typed_suffix(cli, credential_id: str, profile: str = "p") -> str:
    """What confirms a key: its last four characters as keys list shows them, else its id's last 8."""
    row = next(r for r in cli("keys", "list", "--profile", profile)[1]["keys"] if r["credential_id"] == credential_id)
    return row["masked"][-4:] if not row["masked"].endswith("????") else credential_id[-8:]


# ---------------------------------------------------------------- LO-06: the tool's own key
def test_the_naming_rule_refuses_a_swap_of_a_proven_key_and_asks_for_a_typed_replacement():
    base = Situation(stage=Stage.DONE, key_ids=frozenset({"own", "other"}), target="other", tool_key_id="own")
    told = Situation(**{**base.__dict__, "confirmation_expected": "ab12"})
    assert [r.check for r in refusals(Action.NAME_TOOL_KEY, told)] == ["confirmed"]
    assert not refusals(Action.NAME_TOOL_KEY, Situation(**{**told.__dict__, "confirmation_typed": "ab12"}))
    proven = Situation(**{**told.__dict__, "confirmation_typed": "ab12", "tool_key_proven": True})
    assert [r.check for r in refusals(Action.NAME_TOOL_KEY, proven)] == ["proven key kept"]
    gone = Situation(**{**proven.__dict__, "key_ids": frozenset({"other"})})  # the proven key left the account
    assert not refusals(Action.NAME_TOOL_KEY, gone)
    unlisted = Situation(**{**proven.__dict__, "key_ids": None})  # unknown means no
    assert "proven key kept" in [r.check for r in refusals(Action.NAME_TOOL_KEY, unlisted)]
    first = Situation(**{**base.__dict__, "tool_key_id": None})  # nothing recorded: nothing to type
    assert not refusals(Action.NAME_TOOL_KEY, first)


@BOTH_ANSWER_MODES
def test_a_listing_cannot_swap_the_proven_own_key_and_the_real_key_stays_protected(sandbox, cli_json, monkeypatch):
    """The red team's LO-06: keys list --key-id OTHER, then keys disable <the real key>."""
    out = onboard_own_key(sandbox, cli_json)
    tool_id, other = out["api_key_credential_id"], initial_key(sandbox)
    monkeypatch.delenv("KLARNA_API_KEY")  # later runs use the profile's stored key: the tool's own
    code, refused = cli_json("keys", "list", "--profile", "p", "--key-id", other)
    assert code == 3 and "keys set-own" in refused["error"]["hint"]
    assert recorded_key() == (tool_id, "created")
    code, refused = cli_json("keys", "disable", "--profile", "p", tool_id)
    assert code == 3 and "the key klarna-mtls uses" in refused["error"]["message"]
    assert server_key_status(sandbox, tool_id) == "ACTIVE"
    for argv in (("keys", "rotate", "--key-id", other), ("keys", "create", "--description", "x", "--key-id", other)):
        code, refused = cli_json(*argv[:2], "--profile", "p", *argv[2:])
        assert code == 3 and "keys set-own" in refused["error"]["hint"]
    # the one explicit way refuses it too: a proven id is never replaced by a named one
    code, refused = cli_json(
        "keys", "set-own", "--profile", "p", other, f"--confirm-suffix={typed_suffix(cli_json, other)}"
    )
    assert code == 3 and "proved" in refused["error"]["message"] and "keys rotate" in refused["error"]["hint"]
    assert recorded_key() == (tool_id, "created")


def test_onboard_key_id_cannot_replace_the_proven_own_key(sandbox, cli_json):
    out = onboard_own_key(sandbox, cli_json)
    tool_id, other = out["api_key_credential_id"], initial_key(sandbox)
    code, refused = cli_json(
        "onboard", "--profile", "p", "--non-interactive", "--environment", "sandbox",
        "--account-id", sandbox.account_id, "--base-url", sandbox.base_url, "--ca-bundle", str(sandbox.ca_bundle),
        "--enforce-at", "never", "--poll-interval", "0.05", "--key-id", other,
    )  # fmt: skip
    assert code == 3 and "proved" in refused["error"]["message"]
    assert recorded_key() == (tool_id, "created")


@BOTH_ANSWER_MODES
def test_set_own_names_the_key_once_and_a_replacement_is_typed(onboard, cli, sandbox):
    onboard()
    given = initial_key(sandbox)
    code, out = cli("keys", "set-own", "--profile", "p", given)
    assert code == 0 and recorded_key() == (given, "told")  # nothing recorded before: nothing to type
    code, out = cli("keys", "set-own", "--profile", "p", given)
    assert code == 0  # the same key again changes nothing
    other, _ = sandbox._state.mint_key(sandbox.account_id, "batch job")
    expected = typed_suffix(cli, other)
    for typed in (None, "nope"):
        code, out = cli("keys", "set-own", "--profile", "p", other, *([f"--confirm-suffix={typed}"] if typed else []))
        assert code == 3 and "must be typed" in out["error"]["message"] and "--confirm-suffix" in out["error"]["hint"]
        assert recorded_key() == (given, "told")
    code, out = cli("keys", "set-own", "--profile", "p", other, f"--confirm-suffix={expected}")
    assert code == 0 and recorded_key() == (other, "told")
    code, out = cli("keys", "disable", "--profile", "p", other)
    assert code == 3 and server_key_status(sandbox, other) == "ACTIVE"


async def test_tui_mark_own_refuses_a_proven_key_swap_and_types_a_replacement(sandbox):
    from test_tui_own_key import open_keys, pass_credentials, select
    from test_tui_own_key import settle as settle_shown

    from screens.app import make_app
    from screens.modals import ErrorModal, TypedConfirmModal

    app = make_app("own", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await pass_credentials(app, pilot)
        tool = app.session.state.tool_key_id
        assert tool is not None and app.session.settings.api_key_id_source == "created"
        screen = await open_keys(app, pilot)
        given = next(r for r in screen.rows if r.is_initial)
        await select(pilot, screen, given.credential_id)
        await pilot.press("ctrl+t")
        await settle_shown(pilot)
        assert isinstance(app.screen, ErrorModal) and "proved" in app.screen.body_text
        await pilot.press("escape")
        await settle_shown(pilot)
        assert app.session.state.tool_key_id == tool
        # a named (not proven) id: replaced only with the new key's last characters typed
        app.session.state.record_tool_key(given.credential_id, "told")
        await select(pilot, screen, tool)
        await pilot.press("ctrl+t")
        await settle_shown(pilot)
        modal = app.screen
        assert isinstance(modal, TypedConfirmModal)
        await pilot.press("escape")  # Cancel: nothing changes
        await settle_shown(pilot)
        assert app.session.state.tool_key_id == given.credential_id
        await pilot.press("ctrl+t")
        await settle_shown(pilot)
        await pilot.press(*modal.expected, "enter")
        await settle_shown(pilot)
        assert app.session.state.tool_key_id == tool and not isinstance(app.screen, ErrorModal)


# ---------------------------------------------------------------- LO-07: "installed here" from the files
def test_the_installed_id_is_the_record_with_the_files_fingerprint_and_a_moved_label_is_damage():
    from wizard.core.journal import ProfileState

    state = ProfileState("p")
    old, now = state.certificate("krn:old"), state.certificate("krn:now")
    old.fingerprint, old.installed, old.label = "AA:AA", True, "aaaa"
    now.fingerprint, now.installed, now.label = "CC:CC", True, "cccc"
    assert state.pair_identity("cccc", "CC:CC") == ("krn:now", None)
    old.label, now.label = "cccc", None  # the red team's edit: the label moved to the old record
    found, damage = state.pair_identity("cccc", "CC:CC")
    assert found == "krn:now" and damage and "krn:old" in damage and "disagree" in damage
    found, damage = state.pair_identity("cccc", "EE:EE")  # a certificate none of the records has
    assert found is None and damage and "none of the certificates" in damage
    runtime = state.certificate("krn:said")  # an id from a response file Klarna never confirmed
    runtime.fingerprint, runtime.id_unconfirmed = "EE:EE", True
    assert state.pair_identity("eeee", "EE:EE") == (None, None)  # unknown, not damage


def test_an_old_journal_derives_fingerprints_from_the_certificate_it_keeps(sandbox, onboard, tmp_path):
    """A journal written before every record kept its fingerprint: derived from the PEM it keeps;
    with nothing to derive it from, "installed here" is unknown (refused as such, not guessed)."""
    from wizard.core.journal import Journal
    from wizard.core.paths import Paths

    result = onboard()
    journal = Journal(Paths.from_env(), "p")
    data = json.loads(journal.path.read_text())
    cid = result["certificate_id"]
    fingerprint = data["certificates"][cid].pop("fingerprint")
    data["evidence"].pop("fingerprint")
    journal.path.write_text(json.dumps(data))
    state = journal.load()
    assert state.certificates[cid].fingerprint == fingerprint  # from the evidence's certificate PEM
    label = data["certificates"][cid]["label"]
    assert state.id_for_pair(label, fingerprint) == cid
    data["evidence"].pop("certificate_pem")
    journal.path.write_text(json.dumps(data))
    state = journal.load()
    assert state.certificates[cid].fingerprint is None and state.pair_identity(label, fingerprint) == (None, None)


def move_label(profile: str, to: str, away_from: str) -> None:
    """The red team's edit: the installed pair's label given to another record in journal.json."""
    from wizard.core.journal import Journal
    from wizard.core.paths import Paths

    path = Journal(Paths.from_env(), profile).path
    data = json.loads(path.read_text())
    data["certificates"][to]["label"] = data["certificates"][away_from].pop("label")
    path.write_text(json.dumps(data))


def certificate_status(sandbox, credential_id: str) -> str:
    state = sandbox._state
    return state.certificate_status(state.data["certificates"][credential_id])


def test_a_label_moved_in_the_journal_stops_revoke_and_enforce_until_repair(onboard, cli, sandbox):
    """The red team's LO-07: onboard, rotate, move the label to the old record, revoke the installed id."""
    old = onboard()["certificate_id"]
    code, rotated = cli("rotate", "--profile", "p", "--poll-interval", "0.05")
    assert code == 0, rotated
    now = cli("status", "--profile", "p")[1]["current_id"]
    assert now != old
    move_label("p", to=old, away_from=now)
    code, status = cli("status", "--profile", "p")
    assert status["current_id"] == now and "disagree" in status["current_damage"]  # the file decides
    for target in (now, old):
        code, out = cli("certs", "revoke", "--profile", "p", target)
        assert code == 3 and "disagree" in out["error"]["message"] and "repair" in out["error"]["hint"]
        assert certificate_status(sandbox, target) == "ACTIVE"
    code, out = cli("enforce", "--profile", "p", "--at", "NOW")
    assert code == 3 and "disagree" in out["error"]["message"]
    other, _ = sandbox._state.mint_key(sandbox.account_id, "batch job")
    code, out = cli("keys", "disable", "--profile", "p", other, "--not-the-tools-key")
    assert code == 3 and "disagree" in out["error"]["message"] and server_key_status(sandbox, other) == "ACTIVE"
    code, repaired = cli("repair", "--profile", "p")
    assert code == 0 and any("journal straight" in a for a in repaired["actions"]), repaired
    assert cli("status", "--profile", "p")[1]["current_damage"] is None
    code, out = cli("certs", "revoke", "--profile", "p", old)  # the old one may go now; the pair in use stays
    assert code == 0 and certificate_status(sandbox, old) == "REVOKED" and certificate_status(sandbox, now) == "ACTIVE"


def test_rotate_retire_old_is_refused_while_the_records_and_the_files_disagree(onboard, cli, sandbox):
    """The README's row: the retirement of rotate --retire-old is refused until repair. It was not:
    the retire step is judged after the switch, when the new pair is sound again, so a damaged
    profile rotated and revoked its old certificate (exit 0)."""
    old = onboard()["certificate_id"]
    assert cli("rotate", "--profile", "p", "--poll-interval", "0.05")[0] == 0
    now = cli("status", "--profile", "p")[1]["current_id"]
    move_label("p", to=old, away_from=now)
    listed = set(sandbox._state.data["certificates"])
    code, out = cli("rotate", "--profile", "p", "--retire-old", "--poll-interval", "0.05")
    assert code == 3 and "disagree" in out["error"]["message"] and "repair" in out["error"]["hint"], out
    assert set(sandbox._state.data["certificates"]) == listed  # refused before a certificate was issued
    assert certificate_status(sandbox, now) == "ACTIVE" and certificate_status(sandbox, old) == "ACTIVE"
    assert cli("repair", "--profile", "p")[0] == 0
    code, out = cli("rotate", "--profile", "p", "--retire-old", "--poll-interval", "0.05")
    assert code == 0 and out["retired"] and certificate_status(sandbox, now) == "REVOKED", out


def test_renew_says_repair_first_while_the_records_and_the_files_disagree(onboard, cli, sandbox, monkeypatch):
    """renew checked the installed files only: a damaged profile renewed and, with --retire-old,
    revoked its old certificate after the switch, where the damage no longer shows."""
    from datetime import timedelta

    from wizard.services.session import Session

    sandbox.certificate_lifetime = timedelta(days=90)
    old = onboard()["certificate_id"]
    assert cli("rotate", "--profile", "p", "--poll-interval", "0.05")[0] == 0
    now = cli("status", "--profile", "p")[1]["current_id"]
    move_label("p", to=old, away_from=now)
    sandbox.advance_clock(timedelta(days=40).total_seconds())  # the pair in use is inside its renewal window
    monkeypatch.setitem(Session.__init__.__kwdefaults__, "clock", sandbox.now)
    listed = set(sandbox._state.data["certificates"])
    code, out = cli("renew", "--profile", "p", "--retire-old", "--poll-interval", "0.05")
    assert code == 2 and out["action"] == "repair first", out
    assert "disagree" in out["message"] and "klarna-mtls repair --profile p" in out["message"]
    assert set(sandbox._state.data["certificates"]) == listed
    assert certificate_status(sandbox, now) == "ACTIVE" and certificate_status(sandbox, old) == "ACTIVE"


# ---------------------------------------------------------------- A48: every local profile's installs
def test_another_profile_of_the_account_cannot_revoke_this_profiles_installed_certificate(
    onboard, cli, sandbox, tmp_path
):
    """The red team's A48: profiles xa and xb share an account on this machine; xb revokes xa's pair."""
    from tests_support import issue_pair

    from wizard.core.journal import Journal
    from wizard.core.paths import Paths

    xa = onboard("xa")["certificate_id"]
    onboard("xb")
    code, out = cli("certs", "revoke", "--profile", "xb", xa)
    assert code == 3 and "profile xa" in out["error"]["message"] and "rotate --profile" in out["error"]["hint"]
    assert certificate_status(sandbox, xa) == "ACTIVE"
    spare = issue_pair(sandbox, tmp_path, "spare")[0].credential_id  # no profile uses it: the others allow it
    other_account, _ = sandbox.mint_account()
    elsewhere = Journal(Paths.from_env(), "xc")  # a profile of another account is not consulted
    state = elsewhere.load()
    state.model.record_profile("test", other_account)
    elsewhere.save(state)
    code, out = cli("certs", "revoke", "--profile", "xb", spare)
    assert code == 0 and certificate_status(sandbox, spare) == "REVOKED", out
    Journal(Paths.from_env(), "xa").path.write_text("{ damaged")  # unknown means no
    second = issue_pair(sandbox, tmp_path, "second")[0].credential_id
    code, out = cli("certs", "revoke", "--profile", "xb", second)
    assert code == 3 and "profile xa could not be read" in out["error"]["message"].lower()
    assert certificate_status(sandbox, second) == "ACTIVE" and certificate_status(sandbox, xa) == "ACTIVE"


def test_status_doctor_and_check_say_the_damage_and_point_at_repair(onboard, cli, sandbox, capsys):
    """A moved label is named by every report, not only status --json: what disagrees, that
    destructive steps are refused, and the repair command; check counts it critical (exit 2)."""
    from wizard.cli import main

    old = onboard()["certificate_id"]
    assert cli("rotate", "--profile", "p", "--poll-interval", "0.05")[0] == 0
    now = cli("status", "--profile", "p")[1]["current_id"]
    move_label("p", to=old, away_from=now)
    code, status = cli("status", "--profile", "p")
    assert code == 2 and "disagree" in status["current_damage"]
    code, checked = cli("check", "--profile", "p")
    damage = [f for f in checked["findings"] if "disagree" in f["summary"]]
    assert code == 2 and damage and damage[0]["severity"] == "critical", checked
    assert "refused" in damage[0]["summary"] and "klarna-mtls repair --profile p" in damage[0]["next_step"]
    code, doctored = cli("doctor", "--profile", "p")
    assert code == 2 and any(f == damage[0] for f in doctored["findings"]), doctored
    for argv in (("status",), ("check",), ("doctor",)):
        code = main([*argv, "--profile", "p"])
        text = capsys.readouterr().out
        assert code == 2 and "disagree" in text and "refused" in text, (argv, text)
        assert "klarna-mtls repair --profile p" in text, (argv, text)
    assert cli("repair", "--profile", "p")[0] == 0
    code, checked = cli("check", "--profile", "p")
    assert code == 0 and not any("disagree" in f["summary"] for f in checked["findings"]), checked
    assert cli("status", "--profile", "p")[0] == 0


async def test_the_dashboard_and_its_doctor_show_the_damage(onboard, cli, sandbox):
    """The TUI names a moved label where it names the other local problems: the dashboard's banner
    (before and whatever Klarna answers) and the doctor, with the repair command."""
    import asyncio

    from tests_support import settle

    from screens.app import make_app
    from screens.dashboard import DashboardScreen
    from screens.doctor import DoctorScreen

    old = (await asyncio.to_thread(onboard, enforce_at="NOW"))["certificate_id"]
    assert (await asyncio.to_thread(cli, "rotate", "--profile", "p", "--poll-interval", "0.05"))[0] == 0
    now = (await asyncio.to_thread(cli, "status", "--profile", "p"))[1]["current_id"]
    move_label("p", to=old, away_from=now)
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, failures_shown=True)
        assert isinstance(app.screen, DashboardScreen)
        text = str(app.screen.query_one("#offline").content)
        assert "disagree" in text and "refused" in text and "klarna-mtls repair --profile p" in text, text
        assert app.screen.query_one("#offline").has_class("-problem")
        assert app.screen.check_action("repair", ())  # r: repair sets the journal straight
        await pilot.press("d")
        await settle(pilot, failures_shown=True)
        assert isinstance(app.screen, DoctorScreen)
        shown = str(app.screen.query_one("#findings").content)
        assert "✗ records:" in shown and "disagree" in shown, shown
        assert any("klarna-mtls repair --profile p" in step for step in app.screen.next_steps)
        assert app.screen.repairable  # the doctor offers its Repair for it too


def test_a_moved_label_does_not_hide_a_missing_current(onboard, cli, sandbox):
    """Session.installed_label spots a missing `current` (a broken install, not a new machine): it
    comes from the fingerprint recorded at issue, so a label moved off the record does not make
    the install look like none, and calls do not go out without the certificate."""
    from wizard.core.paths import Paths
    from wizard.services.install import CURRENT
    from wizard.services.session import Session

    old = onboard()["certificate_id"]
    assert cli("rotate", "--profile", "p", "--poll-interval", "0.05")[0] == 0
    session = Session(Paths.from_env(), "p")
    now, label = session.evidence.certificate_id, session.installed_label
    assert label is not None and (session.install_dir / label).is_dir()
    move_label("p", to=old, away_from=now)
    assert Session(Paths.from_env(), "p").installed_label == label  # the folder its certificate is in
    (session.install_dir / CURRENT).unlink()
    code, out = cli("status", "--profile", "p")
    assert code == 2 and "missing" in out["error"]["message"] and "repair" in out["error"]["hint"], out


async def test_the_dashboard_does_not_offer_a_revoke_another_profile_would_refuse(onboard, sandbox):
    """The offer and the revoke read the same facts (revocation.revoke_situation): xb's dashboard
    refuses xa's installed certificate at once, naming xa, instead of asking to confirm first."""
    import asyncio

    from tests_support import settle

    from screens.app import make_app
    from screens.dashboard import DashboardScreen
    from screens.modals import ConfirmModal, ErrorModal

    xa = (await asyncio.to_thread(onboard, "xa"))["certificate_id"]
    await asyncio.to_thread(onboard, "xb", enforce_at="NOW")
    app = make_app("xb", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, failures_shown=True)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        ids = [c.credential_id for c in screen.status.certificates]
        screen.query_one("#certificates").move_cursor(row=ids.index(xa))
        await pilot.press("v")
        await settle(pilot, failures_shown=True)
        assert not isinstance(app.screen, ConfirmModal)
        assert isinstance(app.screen, ErrorModal) and "profile xa" in app.screen.body_text, app.screen
    assert certificate_status(sandbox, xa) == "ACTIVE"


def clone_profile(source: str, target: str) -> None:
    """Another local profile of the account holding the same certificate (its journal copied)."""
    from wizard.core.paths import Paths

    paths = Paths.from_env()
    paths.journal_path(target).parent.mkdir(parents=True, exist_ok=True)
    paths.journal_path(target).write_text(paths.journal_path(source).read_text())


def test_rotate_retire_old_refuses_before_it_starts_when_another_profile_uses_the_old_certificate(
    onboard, cli, sandbox
):
    """rotate --retire-old would end refused at its retire step (the new pair in use, the flow
    left to a rerun or --abandon): it says so before a key is made or a slot spent."""
    old = onboard("xa")["certificate_id"]
    clone_profile("xa", "xb")
    issued = len(sandbox._state.data["certificates"])
    code, out = cli("rotate", "--profile", "xa", "--retire-old", "--poll-interval", "0.05")
    assert code == 3 and "profile xb" in out["error"]["message"] and old in out["error"]["message"], out
    assert "without --retire-old" in out["error"]["hint"], out
    assert len(sandbox._state.data["certificates"]) == issued  # nothing issued, nothing to abandon
    code, status = cli("status", "--profile", "xa")
    assert status["current_id"] == old
    code, out = cli("rotate", "--profile", "xa", "--poll-interval", "0.05")  # keeping the old one: allowed
    assert code == 0 and certificate_status(sandbox, old) == "ACTIVE", out


def test_swapped_labels_are_damage_and_repair_restores_into_the_folder_of_the_fingerprint(onboard, cli, sandbox):
    """The pair in use is judged and restored by the folder its fingerprint names, never the label
    a record claims: with the two records' labels swapped, check names the damage (not a `current`
    pointing elsewhere), and repair of a deleted certificate neither moves the old pair aside nor
    writes the pair in use into the old certificate's folder."""
    from wizard.core.journal import Journal
    from wizard.core.paths import Paths
    from wizard.services.install import CURRENT, list_pairs
    from wizard.services.session import Session

    old = onboard()["certificate_id"]
    assert cli("rotate", "--profile", "p", "--poll-interval", "0.05")[0] == 0
    path = Journal(Paths.from_env(), "p").path
    data = json.loads(path.read_text())
    now = data["evidence"]["certificate_id"]
    records = data["certificates"]
    records[old]["label"], records[now]["label"] = records[now]["label"], records[old]["label"]
    path.write_text(json.dumps(data))
    code, checked = cli("check", "--profile", "p")
    summaries = " ".join(f["summary"] for f in checked["findings"])
    assert code == 2 and "disagree" in summaries and "points at" not in summaries, checked
    install_dir = Session(Paths.from_env(), "p").install_dir
    before = {p.label: p.fingerprint for p in list_pairs(install_dir)}
    (install_dir / CURRENT / "certificate.pem").resolve().unlink()
    code, repaired = cli("repair", "--profile", "p")
    assert code == 0, repaired
    assert {p.label: p.fingerprint for p in list_pairs(install_dir)} == before  # each pair in its own folder
    assert cli("status", "--profile", "p")[1]["current_id"] == now
    assert cli("check", "--profile", "p")[0] == 0


async def tui_rotation_notes(sandbox, profile: str, old: str) -> list[str]:
    """Rotate ``profile`` in the TUI (dashboard, o, Enter): no "Retire the old certificate?" may
    follow; the notes the rotation left."""
    from tests_support import settle

    from screens.app import make_app
    from screens.modals import ConfirmModal
    from screens.rotate import RotateScreen

    app = make_app(profile, sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, failures_shown=True)
        await pilot.press("o")
        await settle(pilot, failures_shown=True)
        rotate = app.screen
        assert isinstance(rotate, RotateScreen)
        await pilot.press("enter")  # Start rotation
        await settle(pilot, failures_shown=True)
        assert rotate.result is not None and rotate.result.old_certificate_id == old
        assert not isinstance(app.screen, ConfirmModal)
        return [str(n.message) for n in app._notifications]


async def test_the_tui_rotation_does_not_offer_to_retire_what_another_profile_uses(onboard, sandbox):
    """After a rotation in the TUI, the old certificate another local profile holds is kept with a
    note naming that profile, instead of a "Retire the old certificate?" that the revoke refuses."""
    import asyncio

    old = (await asyncio.to_thread(onboard, "xa", enforce_at="NOW"))["certificate_id"]
    clone_profile("xa", "xb")
    notes = await tui_rotation_notes(sandbox, "xa", old)
    assert any("stays active" in n and "profile xb" in n for n in notes), notes
    assert certificate_status(sandbox, old) == "ACTIVE"


async def test_the_tui_rotation_does_not_offer_to_retire_while_the_records_and_the_files_disagree(
    onboard, cli, sandbox
):
    """As rotate --retire-old: the damage seen before the rotation keeps the old certificate (the
    switch makes the new pair sound, so a later look cannot see it); the note points at repair."""
    import asyncio

    first = (await asyncio.to_thread(onboard, enforce_at="NOW"))["certificate_id"]
    assert (await asyncio.to_thread(cli, "rotate", "--profile", "p", "--poll-interval", "0.05"))[0] == 0
    old = (await asyncio.to_thread(cli, "status", "--profile", "p"))[1]["current_id"]
    move_label("p", to=first, away_from=old)
    notes = await tui_rotation_notes(sandbox, "p", old)
    assert any("stays active" in n and "disagree" in n and "repair" in n for n in notes), notes
    assert certificate_status(sandbox, old) == "ACTIVE"
