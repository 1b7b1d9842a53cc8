"""Every check of the model passing and failing; advance() gating; resume-safe evidence."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from evidence import NOW, evidence_through, fixed_clock

from wizard.core import rules
from wizard.core.checks import CHECKS
from wizard.core.errors import StageBlocked
from wizard.core.evidence import Evidence
from wizard.core.model import Onboarding, RotatedPair
from wizard.core.stages import ORDER, Stage

WORK = [s for s in ORDER if s is not Stage.DONE]


def model_at(stage: Stage, evidence: Evidence | None = None) -> Onboarding:
    return Onboarding(stage, evidence or evidence_through(stage.next()), clock=fixed_clock)


@pytest.mark.parametrize("stage", WORK)
def test_complete_evidence_passes_every_check(stage):
    model = model_at(stage)
    assert [r.reason for r in model.results() if not r.ok] == []


# (stage, check name, how to break the evidence)
BREAKS = [
    (Stage.CREDENTIALS, "account_id", lambda ev: setattr(ev, "account_id", "krn:partner:nope")),
    (Stage.CREDENTIALS, "account_id", lambda ev: setattr(ev, "environment", "live")),
    (Stage.CREDENTIALS, "api_key", lambda ev: setattr(ev, "api_key_environment", None)),
    (Stage.CREDENTIALS, "api_key", lambda ev: setattr(ev, "api_key_environment", "live")),
    (Stage.CREDENTIALS, "secret_store", lambda ev: setattr(ev, "secret_backend", "plaintext")),
    (Stage.CREDENTIALS, "api_call", lambda ev: setattr(ev, "api_call_ok_at", None)),
    (Stage.CREDENTIALS, "clock", lambda ev: setattr(ev, "clock_skew_seconds", 600.0)),
    (Stage.CREDENTIALS, "clock", lambda ev: setattr(ev, "clock_skew_seconds", None)),
    (Stage.KEY_AND_CSR, "key_type", lambda ev: setattr(ev, "key_curve", "secp384r1")),
    (Stage.KEY_AND_CSR, "key_type", lambda ev: setattr(ev, "key_path", None)),
    (Stage.KEY_AND_CSR, "key_file_modes", lambda ev: setattr(ev, "key_file_mode", 0o644)),
    (Stage.KEY_AND_CSR, "key_file_modes", lambda ev: setattr(ev, "key_dir_mode", 0o755)),
    (Stage.KEY_AND_CSR, "csr_rules", lambda ev: setattr(ev, "csr_pem", None)),
    (Stage.KEY_AND_CSR, "csr_rules", lambda ev: setattr(ev, "csr_pem", "-----BEGIN CERTIFICATE REQUEST-----\nxx")),
    (Stage.KEY_AND_CSR, "csr_rules", lambda ev: setattr(ev, "cn", "SOMEONEELSE")),
    (Stage.KEY_AND_CSR, "csr_matches_key", lambda ev: setattr(ev, "key_public_id", "0" * 64)),
    (Stage.ISSUE, "certificate_id", lambda ev: setattr(ev, "certificate_id", None)),
    (Stage.ISSUE, "certificate_parses", lambda ev: setattr(ev, "certificate_pem", "garbage")),
    (Stage.ISSUE, "certificate_key", lambda ev: setattr(ev, "key_public_id", "0" * 64)),
    (Stage.ISSUE, "certificate_cn", lambda ev: setattr(ev, "cn", "OTHER")),
    (Stage.ISSUE, "slots", lambda ev: setattr(ev, "active_certificates", 11)),
    (Stage.ISSUE, "slots", lambda ev: setattr(ev, "active_certificates", None)),
    (Stage.INSTALL, "install_modes", lambda ev: setattr(ev, "installed_key_mode", 0o644)),
    (Stage.INSTALL, "install_modes", lambda ev: setattr(ev, "installed_cert_mode", 0o666)),
    (Stage.INSTALL, "install_modes", lambda ev: setattr(ev, "cert_path", None)),
    (Stage.INSTALL, "install_probe", lambda ev: setattr(ev, "install_probe_ok_at", None)),
    (Stage.INSTALL, "install_probe", lambda ev: setattr(ev, "install_probe_fingerprint", "AA:BB")),
    (Stage.VERIFY, "verified", lambda ev: ev.verifications.pop()),
    (
        Stage.VERIFY,
        "verified",
        lambda ev: ev.verifications.__setitem__(1, {**ev.verifications[1], "status": "INVALID"}),
    ),
    (
        Stage.VERIFY,
        "verified",
        lambda ev: ev.verifications.__setitem__(2, {**ev.verifications[2], "fingerprint": "AA"}),
    ),
    (Stage.ENFORCE, "enforced_from", lambda ev: setattr(ev, "enforced_from", None)),
    (Stage.ENFORCE, "enforced_from", lambda ev: setattr(ev, "enforced_from", "2020-01-01T00:00:00Z")),
    (Stage.ENFORCE, "enforced_from", lambda ev: setattr(ev, "enforced_from", "2027-06-01T00:00:00Z")),
    (Stage.ENFORCE, "enforcement_answer", lambda ev: setattr(ev, "enforcement_mode", "NOT_ENABLED")),
]


@pytest.mark.parametrize("stage,name,breaker", BREAKS, ids=[f"{s.value}-{n}-{i}" for i, (s, n, _) in enumerate(BREAKS)])
def test_each_check_fails_with_a_human_reason_and_advance_changes_nothing(stage, name, breaker):
    model = model_at(stage)
    breaker(model.evidence)
    failing = {r.name: r.reason for r in model.blockers()}
    assert name in failing
    assert len(failing[name]) > 10 and not failing[name][0].islower()
    before = copy.deepcopy(model.evidence.to_dict())
    with pytest.raises(StageBlocked) as caught:
        model.advance()
    assert failing[name] in caught.value.reasons
    assert model.stage is stage
    assert model.evidence.to_dict() == before


def test_expired_certificate_blocks_issue():
    model = Onboarding(Stage.ISSUE, evidence_through(Stage.INSTALL), clock=lambda: NOW + timedelta(days=4 * 365))
    reasons = {r.name: r.reason for r in model.blockers()}
    assert "expired" in reasons["certificate_valid_now"]


def test_every_check_in_the_table_is_exercised():
    assert {n for _, n, _ in BREAKS} | {"certificate_valid_now"} == {
        c.name for checks in CHECKS.values() for c in checks if not c.warning_only
    }


def test_verification_outside_the_window_does_not_count():
    model = Onboarding(Stage.VERIFY, evidence_through(Stage.ENFORCE), clock=lambda: NOW + timedelta(hours=2))
    assert [r.name for r in model.blockers()] == ["verified"]


def test_short_lifetime_warns_but_does_not_block(monkeypatch):
    import wizard.core.checks as m

    monkeypatch.setattr(m, "SHORT_VALIDITY", timedelta(days=5000))
    model = model_at(Stage.ISSUE)
    assert model.blockers() == []
    assert [w.name for w in model.warnings()] == ["certificate_lifetime"]


def test_advance_walks_every_stage_to_done():
    model = Onboarding(Stage.CREDENTIALS, evidence_through(Stage.DONE), clock=fixed_clock)
    seen = [model.stage]
    while model.stage is not Stage.DONE:
        seen.append(model.advance())
    assert seen == list(ORDER)
    with pytest.raises(StageBlocked):
        model.advance()


def test_restart_from_clears_that_stage_and_later_only():
    model = Onboarding(Stage.ENFORCE, evidence_through(Stage.DONE), clock=fixed_clock)
    model.restart_from(Stage.KEY_AND_CSR)
    ev = model.evidence
    assert model.stage is Stage.KEY_AND_CSR
    assert ev.api_call_ok_at and ev.account_id  # credentials kept
    assert ev.key_path is None and ev.certificate_id is None and ev.verifications == []


def test_stage_numbers_for_the_header():
    assert [s.number for s in ORDER] == [1, 2, 3, 4, 5, 6, 6]


def test_evidence_round_trips_and_ignores_unknown_fields():
    ev = evidence_through(Stage.DONE)
    data = ev.to_dict() | {"from_the_future": 1}
    assert Evidence.from_dict(data) == ev


# ---------------------------------------------------------------- regressions found by fuzzing
from wizard.core.errors import JournalError  # noqa: E402


@pytest.mark.parametrize(
    "field,value",
    [
        ("clock_skew_seconds", []),
        ("clock_skew_seconds", "3"),
        ("clock_skew_seconds", float("nan")),  # NaN compared > tolerance is False: it would have passed
        ("secret_backend", []),
        ("certificate_pem", 1),
        ("csr_pem", True),
        ("key_file_mode", "600"),
        ("active_certificates", "3"),
        ("active_certificates", True),
        ("verifications", None),
        ("verifications", "0"),
        ("verifications", [None]),
        ("verifications", [{"at": 5, "status": "VALID"}]),
    ],
)
def test_evidence_with_wrong_types_is_refused_at_load(field, value):
    # Before the fix from_dict accepted these and blockers() later raised TypeError/AttributeError.
    with pytest.raises(JournalError, match=field):
        Evidence.from_dict({field: value})


def test_evidence_from_dict_refuses_a_non_object():
    with pytest.raises(JournalError):
        Evidence.from_dict(["not", "a", "dict"])


def test_evidence_from_dict_keeps_right_types_and_ignores_unknown_keys():
    ev = Evidence.from_dict(
        {
            "clock_skew_seconds": 2,
            "key_file_mode": 0o600,
            "key_encrypted": False,
            "verifications": [{"at": "2026-12-01T09:00:00Z", "status": "VALID", "fingerprint": None}],
            "from_a_newer_version": {"x": 1},
        }
    )
    assert ev.clock_skew_seconds == 2 and ev.key_file_mode == 0o600 and ev.key_encrypted is False
    assert len(ev.verifications) == 1
    Onboarding(Stage.CREDENTIALS, ev, clock=fixed_clock).results(Stage.VERIFY)


# ---------------------------------------------------------------- the recording methods
def test_recording_an_api_key_keeps_only_its_masked_form_and_environment():
    model = Onboarding(clock=fixed_clock)
    key = "klarna_test_api_" + "Q" * 28 + "wx12"
    model.record_api_key(key)
    model.record_credentials(backend="keyring", backend_name="Memory", checked_at=NOW, clock_skew_seconds=None)
    ev = model.evidence
    assert (ev.api_key_masked, ev.api_key_environment) == ("klarna_test_api_…wx12", "test")
    assert ev.clock_skew_seconds == 0.0 and ev.api_call_ok_at == rules.format_utc(NOW)  # no Date: no skew
    assert "Q" * 8 not in repr(ev.to_dict())


def test_a_rotated_pair_replaces_the_certificate_and_keeps_what_rotation_did_not_observe():
    model = model_at(Stage.VERIFY)
    before = Evidence.from_dict(model.evidence.to_dict())
    pair = RotatedPair(
        key_path="/k/new.pem",
        key_public_id="1" * 64,
        csr_pem="csr",
        cn="LYNEWCN1",
        certificate_id="krn:new",
        certificate_pem="pem",
        fingerprint="AA:BB",
        modes=(0o644, 0o600, 0o700),
        installed_fingerprint="aa:bb",
    )
    model.adopt_rotated_pair(pair)
    ev = model.evidence
    assert (ev.key_path, ev.key_public_id, ev.cn, ev.certificate_id, ev.fingerprint) == (
        "/k/new.pem",
        "1" * 64,
        "LYNEWCN1",
        "krn:new",
        "AA:BB",
    )
    assert (ev.installed_cert_mode, ev.installed_key_mode, ev.installed_dir_mode) == (0o644, 0o600, 0o700)
    assert ev.install_probe_fingerprint == "aa:bb"
    assert (ev.key_curve, ev.key_file_mode, ev.install_probe_ok_at, ev.install_dir) == (
        before.key_curve,
        before.key_file_mode,
        before.install_probe_ok_at,
        before.install_dir,
    )


def test_recorded_evidence_passes_the_checks_it_feeds():
    source = evidence_through(Stage.DONE)
    model = Onboarding(clock=fixed_clock)
    model.record_profile(source.environment, source.account_id)
    model.record_install(source.install_dir, source.cert_path, source.installed_key_path, (0o644, 0o600, 0o700))
    model.record_install_probe(NOW, source.fingerprint)
    model.record_enforcement_request("NOW", NOW)
    model.record_enforcement_mode("ENFORCED")
    ev = model.evidence
    assert (ev.environment, ev.account_id, ev.install_probe_fingerprint) == (
        source.environment,
        source.account_id,
        source.fingerprint,
    )
    assert (ev.enforced_from, ev.enforced_from_chosen_at, ev.enforcement_mode) == (
        "NOW",
        rules.format_utc(NOW),
        "ENFORCED",
    )
    assert [r.name for r in model.blockers(Stage.ENFORCE)] == []
