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

from wizard.core.errors import JournalError, StorageError
from wizard.core.journal import AuditLog, Journal, ProfileState
from wizard.core.model import Onboarding
from wizard.core.records import InFlight
from wizard.core.stages import Stage


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
        from wizard.core.journal import Journal
        from wizard.core.paths import Paths
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


def previous_version_journal() -> dict:
    """A journal as the version before the typed records wrote it, every record kind filled in."""
    return {
        "schema": 2,
        "profile": "old",
        "stage": "VERIFY",
        "evidence": evidence_through(Stage.VERIFY).to_dict(),
        "settings": {
            "base_url": None,  # written as null when the profile had none
            "ca_bundle": None,
            "install_dir": "/srv/klarna/old",
            "trust_ca": "/etc/company/ca.pem",
            "key_file_sha256": "ab" * 32,
            "api_key_credential_id": "krn:partner:global:account:credential:api-key:k1",
            "api_key_id_source": "created",
            "enforced_from_server": "2026-12-01T09:00:00Z",
            "enforcement_proved_at": "2026-12-01T09:05:00Z",
            "runtime_name": "checkout",
            "last_status": {"at": "2026-12-01T09:06:00Z", "status": {"profile": "old", "certificates": []}},
            "a_newer_setting": {"kept": [1, "two", None]},  # from a newer version: written back as is
        },
        "in_flight": {
            "operation": "create_certificate",
            "idempotency_key": "3f2c9d4e-0000-4000-8000-000000000001",
            "public_key_id": "cd" * 32,
            "sent_at": "2026-12-01T08:59:00Z",
        },
        "certificates": {
            "krn:cert:old": {"fingerprint": "AA:BB", "issued_here": True, "retired": True, "current": False},
            "krn:cert:now": {
                "fingerprint": "CC:DD",
                "issued_here": True,
                "installed": True,
                "label": "ccdd000011112222",
                "not_after": "2029-12-01T09:00:00Z",
                "last_seen_valid": "2026-12-01T09:04:00Z",
                "a_newer_field": 7,
            },
            "krn:cert:runtime": {
                "fingerprint": "EE:FF",
                "issued_here": True,
                "runtime": "checkout",
                "public_key_id": "ef" * 32,
                "certificate_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            },
        },
        "status_history": [
            {"at": "2026-12-01T09:01:00Z", "status": "NOT_PRESENT", "fingerprint": None, "source": "verify"},
            {"at": "2026-12-01T09:04:00Z", "status": "VALID", "fingerprint": "CC:DD", "source": "verify"},
        ],
        "flows": {},
        "runtimes": {},
    }


def test_a_journal_of_the_previous_version_loads_typed_and_saves_back_unchanged(paths):
    journal = Journal(paths, "old")
    journal.path.parent.mkdir(parents=True)
    written = json.dumps(previous_version_journal(), indent=2, sort_keys=True, ensure_ascii=False).encode()
    journal.path.write_bytes(written)
    state = journal.load()
    settings, certificates = state.settings, state.certificates
    assert (settings.base_url, settings.trust_ca, settings.allow_remote_sandbox) == (None, "/etc/company/ca.pem", False)
    assert settings.last_status is not None and settings.last_status.at == "2026-12-01T09:06:00Z"
    assert state.tool_key_id == "krn:partner:global:account:credential:api-key:k1"
    assert state.retired_ids() == {"krn:cert:old"}
    assert state.id_for_pair("ccdd000011112222", "CC:DD") == "krn:cert:now" == state.id_for_pair(None, "CC:DD")
    assert state.id_for_pair("ccdd000011112222", None) is None  # a label alone decides nothing
    assert certificates["krn:cert:now"].last_seen_valid == "2026-12-01T09:04:00Z"
    assert certificates["krn:cert:runtime"].runtime == "checkout"
    assert state.in_flight is not None and state.in_flight.public_key_id == "cd" * 32
    assert [(e.status, e.fingerprint) for e in state.status_history] == [("NOT_PRESENT", None), ("VALID", "CC:DD")]
    assert state.to_dict() == previous_version_journal()
    journal.path.unlink()
    assert Journal(paths, "old").save(state)  # a fresh Journal: it writes, as after any change
    assert journal.path.read_bytes() == written


def test_the_typed_records_write_what_they_hold_and_leave_out_what_they_do_not(paths):
    journal = Journal(paths, "p")
    state = ProfileState("p")
    state.settings.install_dir = "/srv/p"
    state.certificate("krn:a").fingerprint = "AA"
    state.record_tool_key("krn:key", "told")
    assert state.record_status("VALID", "AA", "verify") and not state.record_status("VALID", "AA", "status")
    journal.save(state)
    saved = json.loads(journal.path.read_text())
    assert saved["settings"] == {
        "install_dir": "/srv/p",
        "api_key_credential_id": "krn:key",
        "api_key_id_source": "told",
    }
    assert saved["certificates"] == {"krn:a": {"fingerprint": "AA"}} and saved["in_flight"] is None
    assert [e["status"] for e in saved["status_history"]] == ["VALID"]
    state.record_tool_key(None, "")
    journal.save(state)
    assert json.loads(journal.path.read_text())["settings"] == {"install_dir": "/srv/p"}


def test_a_certificate_switched_away_from_is_saved_as_not_current(paths):
    """``current`` is ``bool | None``: False (a rotation switched away from it) is information and
    is written even by a record that was never loaded; a plain bool's False is still left out."""
    journal = Journal(paths, "p")
    state = ProfileState("p")
    state.certificate("krn:old").current = False
    state.certificate("krn:new").current = True
    journal.save(state)
    saved = json.loads(journal.path.read_text())["certificates"]
    assert saved == {"krn:old": {"current": False}, "krn:new": {"current": True}}
    assert journal.load().certificates["krn:old"].current is False


@pytest.mark.parametrize(
    "section,edit,named",
    [
        ("settings", {"allow_remote_sandbox": "yes"}, "settings.allow_remote_sandbox"),
        ("settings", {"api_key_credential_id": ["krn:key"]}, "settings.api_key_credential_id"),
        ("settings", {"install_dir": 123}, "settings.install_dir"),
        ("certificates", {"krn:cert:old": "revoked"}, "certificates.krn:cert:old"),
        ("certificates", {"krn:cert:old": {"retired": "yes"}}, "certificates.krn:cert:old.retired"),
        ("certificates", {"krn:cert:now": {"last_seen_valid": 20261201}}, "certificates.krn:cert:now.last_seen_valid"),
        ("in_flight", {"idempotency_key": 5}, "in_flight.idempotency_key"),
        ("in_flight", {"idempotency_key": None}, "in_flight.idempotency_key"),
        ("status_history", [{"at": "2026-12-01T09:01:00Z", "status": 3}], "status_history[0].status"),
        ("status_history", ["VALID"], "status_history[0]"),
    ],
)
def test_a_wrong_type_in_the_typed_records_is_damage_not_a_crash(paths, section, edit, named):
    doc = previous_version_journal()
    if isinstance(edit, list) or doc[section] is None:
        doc[section] = edit
    else:
        doc[section].update(edit)
    journal = Journal(paths, "old")
    journal.path.parent.mkdir(parents=True)
    journal.path.write_text(json.dumps(doc))
    before = journal.path.read_bytes()
    with pytest.raises(JournalError, match="is damaged") as caught:
        journal.load()
    assert f"'{named}'" in caught.value.message and caught.value.hint
    assert journal.path.read_bytes() == before


def test_an_unreadable_cached_status_is_kept_but_not_used(paths):
    doc = previous_version_journal()
    doc["settings"]["last_status"] = {"at": 5, "status": "garbled"}
    state = ProfileState.from_dict(doc, "old")
    assert state.settings.last_status is None  # only a cache: the offline view uses the records
    assert state.to_dict() == doc
