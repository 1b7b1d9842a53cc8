"""The journal: atomic, versioned, secret-free, and damage is an error with a hint, never a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from evidence import evidence_through

from wizard.errors import JournalError, StorageError
from wizard.journal import AuditLog, Journal, ProfileState
from wizard.model import Onboarding, Stage
from wizard.records import InFlight


def saved_state(paths, profile="p") -> tuple[Journal, ProfileState]:
    journal = Journal(paths, profile)
    state = ProfileState(profile, Onboarding(Stage.VERIFY, evidence_through(Stage.VERIFY)))
    state.in_flight = InFlight(operation="create_certificate", idempotency_key="k-1", public_key_id="ab")
    journal.save(state)
    return journal, state


def test_round_trip_and_private_modes(paths):
    journal, state = saved_state(paths)
    loaded = journal.load()
    assert loaded.model.stage is Stage.VERIFY
    assert loaded.model.evidence == state.model.evidence
    assert loaded.in_flight == state.in_flight
    assert oct(journal.path.stat().st_mode & 0o777) == "0o600"
    assert oct(journal.path.parent.stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize(
    "content,match",
    [
        ("{not json", "not valid JSON"),
        ('{"schema": 99}', "schema 99"),
        ("[1, 2]", "not a JSON object"),
        ('{"schema": 1, "stage": "NOPE"}', "damaged"),
        ('{"schema": 1, "evidence": {"verifications": "x"}}', "damaged"),
        ('{"schema": 1, "settings": []}', "damaged"),
    ],
)
def test_damaged_journal_is_a_journal_error_and_is_left_alone(paths, content, match):
    journal = Journal(paths, "p")
    journal.path.parent.mkdir(parents=True)
    journal.path.write_text(content)
    with pytest.raises(JournalError, match=match) as caught:
        journal.load()
    assert caught.value.hint
    assert journal.path.read_text() == content


def test_full_disk_leaves_the_old_journal_and_no_temp_files(paths, monkeypatch):
    journal, state = saved_state(paths)
    before = journal.path.read_bytes()
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    state.model = Onboarding(Stage.ENFORCE, state.model.evidence)
    with pytest.raises(StorageError, match="disk is full"):
        journal.save(state)
    monkeypatch.undo()
    assert journal.path.read_bytes() == before
    assert [p.name for p in journal.path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_sigkill_mid_write_leaves_the_old_journal_readable(paths, tmp_path):
    journal, _ = saved_state(paths)
    before = journal.path.read_bytes()
    script = textwrap.dedent("""
        import os, sys, time
        from wizard.journal import Journal
        from wizard.paths import Paths
        journal = Journal(Paths.from_env(), "p")
        state = journal.load()
        real_fsync = os.fsync
        def slow_fsync(fd):
            print("writing", flush=True)
            time.sleep(30)
        os.fsync = slow_fsync
        state.settings.extra["touched"] = True  # an unchanged state is not written at all
        journal.save(state)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert journal.path.read_bytes() == before
    assert journal.load().model.stage is Stage.VERIFY


def test_no_secret_in_the_journal(paths):
    journal, state = saved_state(paths)
    text = journal.path.read_text()
    assert "klarna_test_api_" not in text.replace("klarna_test_api_…", "")
    assert "PRIVATE KEY" not in text


def test_audit_log_is_append_only_redacted_and_skips_a_torn_line(paths):
    audit = AuditLog.for_profile(paths, "p")
    audit.record("credentials_checked", note="key klarna_test_api_" + "S3cr3t" * 5 + "ZZZZ")
    audit.record("advance", to_stage="ISSUE")
    with open(audit.path, "a") as handle:
        handle.write('{"torn": ')
    entries = audit.entries()
    assert [e["action"] for e in entries] == ["credentials_checked", "advance"]
    assert "S3cr3t" not in audit.path.read_text()
    assert "klarna_test_api_…ZZZZ" in entries[0]["note"]


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 80])
def test_profile_names_cannot_escape(paths, name):
    with pytest.raises(JournalError):
        Journal(paths, name)


def test_hand_edited_evidence_type_is_a_journal_error_at_load(paths):
    # Before the fix this loaded, then blockers() crashed with TypeError on abs([]).
    journal = Journal(paths, "edited")
    journal.save(ProfileState(profile="edited"))
    doc = json.loads(journal.path.read_text())
    doc["evidence"]["clock_skew_seconds"] = []
    journal.path.write_text(json.dumps(doc))
    before = journal.path.read_bytes()
    with pytest.raises(JournalError) as caught:
        journal.load()
    assert "clock_skew_seconds" in caught.value.message and caught.value.hint
    assert journal.path.read_bytes() == before
