"""Runtime records, the readiness gate as a pure function, report parsing and signatures, and the
journal field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from tests_support import self_signed

from wizard.core import crypto, rules
from wizard.core.errors import InputError, InterlockRefused, JournalError
from wizard.core.runtimes import (
    ReadinessReport,
    RuntimeRecord,
    record_report,
    runtimes_not_ready,
    summary,
)
from wizard.services.runtime_gate import require_ready

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ACCOUNT = "krn:partner:global:account:test:LYABCDEI"
# Two runtimes' pairs: reports are signed with the key of the certificate they report on.
KEYS = [crypto.make_private_key() for _ in range(2)]
PEMS = [self_signed(key) for key in KEYS]
FP_A, FP_B = (crypto.fingerprint_sha256(crypto.load_certificate(pem)) for pem in PEMS)
KEY_OF = {FP_A: KEYS[0], FP_B: KEYS[1]}
ISSUED = {FP_A: PEMS[0], FP_B: PEMS[1]}.get  # the certificates this profile issued, by fingerprint


def _suffix(fingerprint: str) -> str:
    return fingerprint.replace(":", "")[-8:]


def report(name: str, fingerprint: str = FP_A, status: str = "VALID", age: timedelta = timedelta(hours=1)):
    at = rules.format_utc(NOW - age)  # Klarna's Date and the runtime's clock agree here
    return ReadinessReport(name, ACCOUNT, fingerprint, status, at, "0.1.0", klarna_date=at).signed_with(
        KEY_OF[fingerprint]
    )


def record(name: str, rep: ReadinessReport | None = None, fingerprint: str = FP_A) -> RuntimeRecord:
    return RuntimeRecord(name, [f"krn:cert:{name}"], fingerprint, "2029-11-29T00:00:00Z", rep)


def test_every_runtime_ready_means_no_reasons():
    assert runtimes_not_ready([record("a", report("a")), record("b", report("b"))], NOW) == []
    assert runtimes_not_ready([], NOW) == []


@pytest.mark.parametrize(
    "rec,expected",
    [
        (record("x"), "x: no readiness report yet"),
        (record("x", report("x", status="NOT_PRESENT")), "x: its latest report says NOT_PRESENT"),
        (record("x", report("x", status="REFUSED")), "x: its latest report says REFUSED"),
        (record("x", report("x", age=timedelta(hours=25))), "x: its latest report is 25 h old (limit 24 h)"),
        (record("x", report("x", age=-timedelta(hours=1))), "x: its latest report is dated in the future"),
        (
            record("x", report("x", fingerprint=FP_B)),
            f"x: its latest report is for certificate …{_suffix(FP_B)}, not its current …{_suffix(FP_A)}",
        ),
        (RuntimeRecord("x"), "x: no certificate recorded"),
    ],
)
def test_each_reason_names_the_runtime(rec, expected):
    reasons = runtimes_not_ready([rec, record("ok", report("ok"))], NOW)
    assert len(reasons) == 1 and reasons[0].startswith(expected)


def test_window_is_a_parameter_and_listed_ids_are_checked():
    rec = record("x", report("x", age=timedelta(hours=3)))
    assert runtimes_not_ready([rec], NOW, window=timedelta(hours=2))
    assert runtimes_not_ready([rec], NOW, window=timedelta(hours=4)) == []
    assert "not on the account's list" in runtimes_not_ready([rec], NOW, listed_ids={"krn:other"})[0]
    assert runtimes_not_ready([rec], NOW, listed_ids={"krn:cert:x"}) == []


def test_summary_counts_and_last_seen():
    records = {
        "a": record("a", report("a")),
        "b": record("b", report("b", status="INVALID", age=timedelta(0))),
        "c": record("c"),
    }
    assert summary(records, NOW) == f"1 of 3 runtimes VALID, last seen {rules.format_utc(NOW)}"
    assert summary({}, NOW) == "no runtimes declared"


def test_report_round_trip_and_refusals():
    rep = report("a")
    assert ReadinessReport.from_dict(json.loads(json.dumps(rep.to_dict()))) == rep
    lower = {**rep.to_dict(), "certificate_fingerprint": FP_A.replace(":", "").lower()}
    assert ReadinessReport.from_dict(lower) == rep  # the normal form is what is signed
    assert ReadinessReport.from_dict(lower).fingerprint == FP_A
    for bad in (
        {**rep.to_dict(), "kind": "x"},
        {**rep.to_dict(), "verification_status": "GREAT"},
        {**rep.to_dict(), "at": "2026-11-29T12:00:00"},
        {**rep.to_dict(), "runtime": "../etc"},
        {**rep.to_dict(), "certificate_fingerprint": "AB"},
        {**rep.to_dict(), "klarna_date": "yesterday"},
        {**rep.to_dict(), "signature": 7},
        [1, 2],
    ):
        with pytest.raises(InputError):
            ReadinessReport.from_dict(bad)


def _state_with(rec: RuntimeRecord):
    from wizard.core.journal import ProfileState

    state = ProfileState(profile="p")
    state.runtimes[rec.name] = rec
    state.certificate(rec.certificate_id).fingerprint = rec.fingerprint
    return state


def test_record_report_keeps_the_newest():
    state = _state_with(record("a"))
    assert record_report(state, report("a", age=timedelta(hours=2)), ACCOUNT, ISSUED).startswith("recorded")
    assert "older" in record_report(state, report("a", age=timedelta(hours=3)), ACCOUNT, ISSUED)
    assert state.runtimes["a"].report.at == rules.format_utc(NOW - timedelta(hours=2))
    with pytest.raises(InputError, match="is for account"):
        record_report(state, report("a"), "krn:partner:global:account:test:OTHER", ISSUED)


def test_journal_keeps_runtimes_and_reads_schema_1(paths):
    from wizard.core.journal import SCHEMA_VERSION, Journal

    journal = Journal(paths, "p")
    state = journal.load()
    state.runtimes["a"] = record("a", report("a"))
    journal.save(state)
    saved = json.loads(journal.path.read_text())
    assert saved["schema"] == SCHEMA_VERSION == 2 and saved["runtimes"]["a"]["report"]["verification_status"] == "VALID"
    assert journal.load().runtimes == state.runtimes
    # A journal written before runtimes existed still loads, with none.
    del saved["runtimes"]
    journal.path.write_text(json.dumps({**saved, "schema": 1}))
    assert journal.load().runtimes == {}


@pytest.mark.parametrize(
    "runtimes",
    [
        [],
        {"a": 1},
        {"a": {"name": "b"}},
        {"a": {"name": "a", "certificate_ids": "x"}},
        {"a": {"name": "a", "report": {"kind": "nope"}}},
    ],
)
def test_a_damaged_runtimes_entry_is_a_journal_error(paths, runtimes):
    from wizard.core.journal import Journal

    journal = Journal(paths, "p")
    journal.save(journal.load())
    data = json.loads(journal.path.read_text())
    journal.path.write_text(json.dumps({**data, "runtimes": runtimes}))
    with pytest.raises(JournalError, match="damaged"):
        journal.load()


def _live_session(paths, rec: RuntimeRecord):
    from wizard.services.session import Session

    session = Session(paths, "live", clock=lambda: NOW)
    session.evidence.environment = "live"
    session.state.runtimes[rec.name] = rec
    return session


def test_leaving_out_on_live_must_be_typed(paths):
    session = _live_session(paths, record("a"))
    with pytest.raises(InterlockRefused, match="a: no readiness report"):
        require_ready(session, {"krn:cert:a"}, klarna_now=NOW)
    with pytest.raises(InterlockRefused, match="must be typed"):
        require_ready(session, {"krn:cert:a"}, leave_out=["a"], klarna_now=NOW)
    with pytest.raises(InterlockRefused, match="must be typed"):
        require_ready(session, {"krn:cert:a"}, leave_out=["a"], confirm="b", klarna_now=NOW)
    require_ready(session, {"krn:cert:a"}, leave_out=["a"], confirm="a", klarna_now=NOW)
    actions = [e["action"] for e in session.audit.entries()]
    assert actions.count("enforcement_refused_runtimes") == 1 and actions[-1] == "enforcement_runtimes_left_out"


def test_on_a_same_second_tie_the_report_for_the_current_certificate_wins():
    """Found by the rotation e2e test: probe after install landed in the same second as the report
    for the old certificate and was dropped, so enforcement stayed refused."""
    rec = record("a", report("a", fingerprint=FP_B, age=timedelta(0)))
    state = _state_with(rec)
    state.certificate("krn:old").fingerprint = FP_B
    rec.certificate_ids.insert(0, "krn:old")
    assert record_report(state, report("a", age=timedelta(0)), ACCOUNT, ISSUED).startswith("recorded")
    assert "older" in record_report(state, report("a", fingerprint=FP_B, age=timedelta(0)), ACCOUNT, ISSUED)
    assert runtimes_not_ready([rec], NOW) == []


def test_the_gate_reads_reports_recorded_by_another_process(paths):
    """A TUI opened before `runtime report` ran in a shell must not refuse on stale records."""
    from wizard.services.session import Session

    first = Session(paths, "p", clock=lambda: NOW)
    first.state.runtimes["a"] = record("a")
    first.state.certificate("krn:cert:a").fingerprint = FP_A
    first.save()
    tui = Session(paths, "p", clock=lambda: NOW)
    shell = Session(paths, "p", clock=lambda: NOW)
    record_report(shell.state, report("a"), ACCOUNT, ISSUED)
    shell.save()
    require_ready(tui, {"krn:cert:a"}, klarna_now=NOW)  # no refusal: it read the shell's report
    assert tui.state.runtimes["a"].report is not None


def test_a_long_lived_session_does_not_overwrite_reports_recorded_by_another_process(paths):
    """Found by the TUI test: the dashboard's refresh saved its stale runtimes over a report that
    `probe` had just recorded, so enforcement stayed refused."""
    from wizard.services.session import Session

    first = Session(paths, "p", clock=lambda: NOW)
    first.state.runtimes["a"] = record("a")
    first.state.certificate("krn:cert:a").fingerprint = FP_A
    first.save()
    tui = Session(paths, "p", clock=lambda: NOW)
    shell = Session(paths, "p", clock=lambda: NOW)
    record_report(shell.state, report("a"), ACCOUNT, ISSUED)
    shell.save()
    tui.state.settings.extra["touched"] = True
    tui.save()  # an unrelated save by the long-lived session
    assert Session(paths, "p").state.runtimes["a"].report is not None
    assert tui.state.runtimes["a"].report is not None
    # A session that changes the runtimes itself still saves its change.
    del tui.state.runtimes["a"]
    tui.save()
    assert Session(paths, "p").state.runtimes == {}


# ---------------------------------------------------------------- LO-04, LO-09: time in readiness
def test_a_runtime_whose_certificate_expired_is_not_ready_whatever_its_report_says():
    """LO-04: the runtime's VALID report was an hour old, but its certificate had expired."""
    expired = RuntimeRecord("x", ["krn:cert:x"], FP_A, rules.format_utc(NOW - timedelta(minutes=1)), report("x"))
    assert runtimes_not_ready([expired], NOW) == [f"x: its certificate expired at {expired.not_after}"]
    unknown = RuntimeRecord("y", ["krn:cert:y"], FP_A, None, report("y"))
    assert "expiry is not recorded" in runtimes_not_ready([unknown], NOW)[0]
    # Judged by Klarna's clock in the gate: expired by Klarna's Date, whatever this machine says.
    assert runtimes_not_ready([expired], NOW, by_klarna_clock=True)[0].startswith("x: its certificate expired")


def test_the_gate_judges_report_age_by_klarna_date_not_by_the_runtime_clock(paths):
    """LO-09: the runtime's own clock said the report was fresh; Klarna's Date said 3 days old."""
    stale = ReadinessReport(
        "a",
        ACCOUNT,
        FP_A,
        "VALID",
        rules.format_utc(NOW),
        "0.1.0",
        klarna_date=rules.format_utc(NOW - timedelta(days=3)),
    ).signed_with(KEYS[0])
    session = _live_session(paths, record("a", stale))
    with pytest.raises(InterlockRefused, match="a: its latest report is 3 d old"):
        require_ready(session, {"krn:cert:a"}, klarna_now=NOW)
    # A report from an older version carries no Klarna Date: it cannot be judged by Klarna's clock.
    session.state.runtimes["a"].report = ReadinessReport("a", ACCOUNT, FP_A, "VALID", rules.format_utc(NOW), "0.1.0")
    with pytest.raises(InterlockRefused, match="carries no Date from Klarna"):
        require_ready(session, {"krn:cert:a"}, klarna_now=NOW)


@pytest.mark.parametrize(
    "local_offset,expected",
    [
        (-timedelta(days=3), "this machine's clock is 3 d behind Klarna's (+259200 s"),
        (timedelta(minutes=10), "this machine's clock is 10 min ahead of Klarna's (-600 s"),
    ],
)
def test_readiness_is_not_judged_while_this_clock_is_off_klarnas(paths, local_offset, expected):
    """LO-09: the managing machine's clock 3 days slow made a 3-day-old report look fresh."""
    from wizard.services.session import Session

    session = Session(paths, "p", clock=lambda: NOW + local_offset)
    session.state.runtimes["a"] = record("a", report("a"))
    with pytest.raises(InterlockRefused) as refused:
        require_ready(session, {"krn:cert:a"}, klarna_now=NOW)
    assert f"readiness cannot be judged: {expected}" in str(refused.value) and "120 s allowed" in str(refused.value)
    with pytest.raises(InterlockRefused, match="Klarna's answer carried no Date"):
        require_ready(session, {"krn:cert:a"}, klarna_now=None)
    # Within the tolerance (120 s), it is judged; and with nothing counted, there is nothing to judge.
    require_ready(Session(paths, "q", clock=lambda: NOW + timedelta(seconds=90)), set(), klarna_now=NOW)
    in_time = Session(paths, "r", clock=lambda: NOW - timedelta(seconds=90))
    in_time.state.runtimes["a"] = record("a", report("a"))
    require_ready(in_time, {"krn:cert:a"}, klarna_now=NOW)


# ---------------------------------------------------------------- LO-05: signed reports
def _refusals_of_forged_reports() -> dict[str, tuple[ReadinessReport, object, str]]:
    from dataclasses import replace

    genuine = report("a")
    unsigned = ReadinessReport("a", ACCOUNT, FP_A, "VALID", genuine.at, "0.1.0", klarna_date=genuine.klarna_date)
    forged_key = crypto.make_private_key()
    return {
        "unsigned (an older version, or forged with the public fingerprint)": (unsigned, ISSUED, "is not signed"),
        "signed by another key": (unsigned.signed_with(forged_key), ISSUED, "signed by another key"),
        "signed by another runtime's key": (unsigned.signed_with(KEYS[1]), ISSUED, "signed by another key"),
        "NOT_PRESENT changed to VALID after signing": (
            replace(report("a", status="NOT_PRESENT"), status="VALID"),
            ISSUED,
            "bad signature",
        ),
        "a signature that is not base64": (replace(genuine, signature="%%%"), ISSUED, "bad signature"),
        "a signature of other bytes": (
            replace(genuine, signature=report("a", age=timedelta(hours=2)).signature),
            ISSUED,
            "bad signature",
        ),
        "no copy of the certificate kept": (genuine, lambda fp: None, "keeps no copy"),
        "a copy that is another certificate": (genuine, lambda fp: PEMS[1], "keeps no copy"),
    }


def test_a_report_counts_only_when_signed_by_the_key_of_the_certificate_issued_to_that_runtime():
    """LO-05: a forged VALID report (the fingerprint is public) opened the enforcement gate."""
    from conftest import record_figure

    refused = 0
    cases = _refusals_of_forged_reports()
    for label, (forged, issued, reason) in cases.items():
        state = _state_with(record("a"))
        with pytest.raises(InputError, match=reason) as error:
            record_report(state, forged, ACCOUNT, issued)
        assert state.runtimes["a"].report is None, label
        refused += 1
        if reason == "is not signed":
            assert "probe there again" in error.value.hint
    record_figure("signed readiness reports: forged or altered reports refused", refused, len(cases))
    state = _state_with(record("a"))
    assert record_report(state, report("a"), ACCOUNT, ISSUED).startswith("recorded: VALID")
    assert runtimes_not_ready(state.runtimes.values(), NOW, by_klarna_clock=True) == []


@pytest.mark.parametrize("ended", ["REVOKED", "EXPIRED"])
def test_a_runtime_whose_certificate_the_listing_marks_ended_is_not_ready_under_a_fresh_valid_report(ended):
    """The listing's status is [ours]: it refuses (REVOKED, EXPIRED), never allows; a listing
    without statuses (docs-only: UNKNOWN) leaves the fresh signed report to decide."""
    rec = record("x", report("x", age=timedelta(hours=1)))
    [reason] = runtimes_not_ready([rec], NOW, listed_ids={"krn:cert:x": ended, "krn:other": "ACTIVE"})
    assert reason == f"x: the account's list marks its certificate krn:cert:x {ended}"
    assert runtimes_not_ready([rec], NOW, listed_ids={"krn:cert:x": "UNKNOWN"}) == []
    assert runtimes_not_ready([rec], NOW, listed_ids={"krn:cert:x": "ACTIVE"}) == []
    assert "not on the account's list" in runtimes_not_ready([rec], NOW, listed_ids={"krn:other": "ACTIVE"})[0]
