"""Runtime records, the readiness gate as a pure function, report parsing and the journal field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from wizard.core import rules
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
FP_A = ":".join(["AA"] * 32)
FP_B = ":".join(["BB"] * 32)
ACCOUNT = "krn:partner:global:account:test:LYABCDEI"


def report(name: str, fingerprint: str = FP_A, status: str = "VALID", age: timedelta = timedelta(hours=1)):
    return ReadinessReport(name, ACCOUNT, fingerprint, status, rules.format_utc(NOW - age), "0.1.0")


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
            "x: its latest report is for certificate …BBBBBBBB, not its current …AAAAAAAA",
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
    assert ReadinessReport.from_dict(lower).fingerprint == FP_A
    for bad in (
        {**rep.to_dict(), "kind": "x"},
        {**rep.to_dict(), "verification_status": "GREAT"},
        {**rep.to_dict(), "at": "2026-11-29T12:00:00"},
        {**rep.to_dict(), "runtime": "../etc"},
        {**rep.to_dict(), "certificate_fingerprint": "AB"},
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
    assert record_report(state, report("a", age=timedelta(hours=2)), ACCOUNT).startswith("recorded")
    assert "older" in record_report(state, report("a", age=timedelta(hours=3)), ACCOUNT)
    assert state.runtimes["a"].report.at == rules.format_utc(NOW - timedelta(hours=2))
    with pytest.raises(InputError, match="is for account"):
        record_report(state, report("a"), "krn:partner:global:account:test:OTHER")


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
        require_ready(session, {"krn:cert:a"})
    with pytest.raises(InterlockRefused, match="must be typed"):
        require_ready(session, {"krn:cert:a"}, leave_out=["a"])
    with pytest.raises(InterlockRefused, match="must be typed"):
        require_ready(session, {"krn:cert:a"}, leave_out=["a"], confirm="b")
    require_ready(session, {"krn:cert:a"}, leave_out=["a"], confirm="a")
    actions = [e["action"] for e in session.audit.entries()]
    assert actions.count("enforcement_refused_runtimes") == 1 and actions[-1] == "enforcement_runtimes_left_out"


def test_on_a_same_second_tie_the_report_for_the_current_certificate_wins():
    """Found by the rotation e2e test: probe after install landed in the same second as the report
    for the old certificate and was dropped, so enforcement stayed refused."""
    rec = record("a", report("a", fingerprint=FP_B, age=timedelta(0)))
    state = _state_with(rec)
    state.certificate("krn:old").fingerprint = FP_B
    rec.certificate_ids.insert(0, "krn:old")
    assert record_report(state, report("a", age=timedelta(0)), ACCOUNT).startswith("recorded")
    assert "older" in record_report(state, report("a", fingerprint=FP_B, age=timedelta(0)), ACCOUNT)
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
    record_report(shell.state, report("a"), ACCOUNT)
    shell.save()
    require_ready(tui, {"krn:cert:a"})  # no refusal: it read the shell's report
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
    record_report(shell.state, report("a"), ACCOUNT)
    shell.save()
    tui.state.settings.extra["touched"] = True
    tui.save()  # an unrelated save by the long-lived session
    assert Session(paths, "p").state.runtimes["a"].report is not None
    assert tui.state.runtimes["a"].report is not None
    # A session that changes the runtimes itself still saves its change.
    del tui.state.runtimes["a"]
    tui.save()
    assert Session(paths, "p").state.runtimes == {}
