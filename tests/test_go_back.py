"""A way back: the model says what reopening an earlier stage discards, the session keeps the
certificate records, and the TUI asks before discarding (and discards nothing on cancel)."""

from __future__ import annotations

import pytest
from evidence import evidence_through, fixed_clock

from wizard.core.errors import InputError
from wizard.core.journal import Journal
from wizard.core.model import Onboarding
from wizard.core.stages import Stage
from wizard.services.session import Session


def model_at(stage: Stage) -> Onboarding:
    return Onboarding(stage, evidence_through(stage.next()), clock=fixed_clock)


def test_going_back_one_stage_from_issue_discards_only_the_certificate():
    model = model_at(Stage.ISSUE)
    said = model.discarded_by_going_back(Stage.KEY_AND_CSR)
    assert len(said) == 1 and said[0].startswith("Issue: certificate ")
    assert model.evidence.certificate_id in said[0]
    assert model.stage is Stage.ISSUE and model.evidence.certificate_id  # asking changes nothing


def test_going_back_to_key_from_enforce_lists_every_later_stage_in_order():
    model = model_at(Stage.ENFORCE)
    said = model.discarded_by_going_back(Stage.KEY_AND_CSR)
    assert [line.split(":")[0] for line in said] == ["Issue", "Install", "Verify", "Enforce"]
    assert "3 verification results" in said[2]
    assert "Klarna keeps enforcing" in said[3]


def test_nothing_recorded_later_means_nothing_discarded():
    model = Onboarding(Stage.KEY_AND_CSR, evidence_through(Stage.KEY_AND_CSR), clock=fixed_clock)
    assert model.discarded_by_going_back(Stage.CREDENTIALS) == []


def test_go_back_keeps_the_reopened_stage_and_forgets_later_ones():
    model = model_at(Stage.VERIFY)
    discarded = model.go_back(Stage.ISSUE)
    ev = model.evidence
    assert model.stage is Stage.ISSUE
    assert ev.certificate_id and ev.key_path and ev.api_call_ok_at  # the reopened stage and before
    assert ev.cert_path is None and ev.install_probe_ok_at is None and ev.verifications == []
    assert [line.split(":")[0] for line in discarded] == ["Install", "Verify"]
    assert model.blockers() == []  # unchanged, the reopened stage passes: Next goes on


@pytest.mark.parametrize("target", [Stage.ISSUE, Stage.VERIFY, Stage.DONE])
def test_only_an_earlier_stage_can_be_reopened(target):
    model = model_at(Stage.ISSUE)
    with pytest.raises(InputError):
        model.discarded_by_going_back(target)
    with pytest.raises(InputError):
        model.go_back(target)
    assert model.stage is Stage.ISSUE and model.evidence.certificate_id


def test_session_go_back_past_issue_keeps_the_certificate_record(paths):
    session = Session(paths, "back", clock=fixed_clock)
    session.state.model = Onboarding(Stage.INSTALL, evidence_through(Stage.INSTALL), clock=fixed_clock)
    cert_id = session.evidence.certificate_id
    session.save()  # a journal whose certificate records do not hold the issued certificate yet
    discarded = session.go_back(Stage.KEY_AND_CSR)
    assert discarded and cert_id in discarded[0]
    saved = Journal(paths, "back").load()
    assert saved.model.stage is Stage.KEY_AND_CSR and saved.model.evidence.certificate_id is None
    assert saved.certificates[cert_id].fingerprint == evidence_through(Stage.INSTALL).fingerprint
    assert [e["action"] for e in session.audit.entries()][-1] == "go_back"
