"""Hypothesis fuzzing of every parser and validator in the core: whatever the input, only a
WizardError subclass with a non-empty message may escape (never TypeError, KeyError, …)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests_support import only_wizard_errors, self_signed_certificate

from wizard.core import crypto, rules
from wizard.core.evidence import Evidence
from wizard.core.flow_records import CertificateRotation
from wizard.core.journal import Journal, ProfileState
from wizard.core.model import Onboarding
from wizard.core.paths import Paths
from wizard.core.stages import Stage

NOW = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)
EXAMPLES: dict[str, int] = {}


def fuzz(n: int):
    """settings() for one fuzz test, counted into EXAMPLES so the total is asserted below."""

    def deco(fn):
        EXAMPLES[fn.__name__] = n
        return settings(
            max_examples=n,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )(fn)

    return deco


KEY = crypto.make_private_key()
CSR_PEM = crypto.make_csr_pem(KEY, "LYABCDEI")
from cryptography.hazmat.primitives import serialization  # noqa: E402

CSR_DER = crypto.load_csr(CSR_PEM).public_bytes(serialization.Encoding.DER)
KEY_PEM = crypto.make_private_key_pem(KEY)
KEY_DER = KEY.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


CERT = self_signed_certificate(KEY, now=NOW, days=1)
CERT_PEM = crypto.certificate_pem(CERT)
CERT_DER = CERT.public_bytes(serialization.Encoding.DER)

texts = st.one_of(
    st.text(max_size=120),
    st.from_regex(r"krn:partner:global:account:(live|test|prod):[A-Za-z0-9\-]{0,40}", fullmatch=True),
    st.from_regex(r"klarna_(live|test|prod)_(api|client)_[A-Za-z0-9_\-]{0,40}", fullmatch=True),
    st.from_regex(r"(0001|9999)-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}", fullmatch=True),
    st.from_regex(
        r"-?[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}[T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2})?(Z|[+-][0-9]{2}:[0-9]{2})?",
        fullmatch=True,
    ),
)


@fuzz(1500)
@given(texts)
def test_rules_text_parsers(text):
    only_wizard_errors(rules.parse_account_id, text)
    only_wizard_errors(rules.verify_api_key, text)
    only_wizard_errors(rules.verify_api_key, text, "test")
    only_wizard_errors(rules.api_key_environment, text)
    only_wizard_errors(rules.verify_cn, text)
    only_wizard_errors(rules.verify_cn, text, "krn:partner:global:account:test:LYABCDEI")
    only_wizard_errors(rules.verify_description, text)
    only_wizard_errors(rules.valid_correlation_id, text)
    masked = only_wizard_errors(rules.mask_key, text)
    redacted = only_wizard_errors(rules.redact, text)
    for shown in (masked, redacted):
        assert shown is None or isinstance(shown, str)
    assert isinstance(rules.VerificationStatus.parse(text), rules.VerificationStatus)


@fuzz(1500)
@given(
    st.one_of(texts, st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
)
def test_timestamps(text, now):
    now = now.replace(tzinfo=UTC)
    moment = only_wizard_errors(rules.parse_timestamp, text)
    if moment is not None:
        assert moment.utcoffset().total_seconds() == 0
    sent = only_wizard_errors(rules.parse_enforced_from, text, now)
    if sent is not None:
        assert sent == "NOW" or sent.endswith("Z")


@fuzz(1500)
@given(st.one_of(st.none(), st.integers(), st.lists(st.integers()), st.binary(max_size=10)))
def test_rules_non_text_inputs(value):
    # Values from a hand-edited journal or a JSON body may be of any type.
    for fn in (
        rules.parse_account_id,
        rules.verify_api_key,
        rules.api_key_environment,
        rules.verify_cn,
        rules.verify_description,
        rules.parse_timestamp,
        rules.parse_enforced_from,
    ):
        only_wizard_errors(fn, value)
    assert isinstance(rules.VerificationStatus.parse(value), rules.VerificationStatus)


def _mutate(data: bytes, draw) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.integers(0, 2))
        if not out:
            break
        i = draw(st.integers(0, len(out) - 1))
        if kind == 0:
            out[i] = draw(st.integers(0, 255))
        elif kind == 1:
            del out[i : i + draw(st.integers(1, 64))]
        else:
            out[i:i] = draw(st.binary(min_size=1, max_size=16))
    return bytes(out)


SAMPLES = [CSR_PEM, CSR_DER, KEY_PEM, KEY_DER, CERT_PEM, CERT_DER]


@st.composite
def crypto_inputs(draw):
    if draw(st.booleans()):
        return draw(st.binary(max_size=600))
    return _mutate(draw(st.sampled_from(SAMPLES)), draw)


@fuzz(2000)
@given(crypto_inputs())
def test_crypto_loaders(data):
    cert = only_wizard_errors(crypto.load_certificate, data)
    if cert is not None:
        only_wizard_errors(crypto.fingerprint_sha256, cert)
        only_wizard_errors(crypto.certificate_cn, cert)
        only_wizard_errors(crypto.verify_certificate, cert, KEY, "LYABCDEI")
        only_wizard_errors(crypto.verify_cert_matches_key, cert, KEY)
        only_wizard_errors(crypto.verify_cert_valid_at, cert, NOW)
    csr = only_wizard_errors(crypto.load_csr, data)
    if csr is not None:
        problems = only_wizard_errors(crypto.csr_problems, csr, "LYABCDEI")
        assert problems is None or all(isinstance(p, str) and p for p in problems)
        only_wizard_errors(crypto.verify_csr, csr, "LYABCDEI", KEY)
        only_wizard_errors(crypto.csr_cn, csr)
    key = only_wizard_errors(crypto.load_private_key, data)
    only_wizard_errors(crypto.load_private_key, data, b"passphrase")
    if key is not None:
        only_wizard_errors(crypto.public_key_id, key)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=10), kids, max_size=4)),
    max_leaves=12,
)
EVIDENCE_FIELDS = list(Evidence().to_dict())
evidence_like = st.dictionaries(st.sampled_from(EVIDENCE_FIELDS), json_values, max_size=8)


def _exercise(state: ProfileState) -> None:
    for stage in Stage:
        state.model.results(stage)
    state.to_dict()


@fuzz(1200)
@given(st.one_of(json_values, evidence_like), st.sampled_from([s.value for s in Stage] + ["BOGUS", 3]))
def test_profile_state_from_dict(evidence, stage):
    doc = {"schema": 1, "profile": "p", "stage": stage, "evidence": evidence}
    state = only_wizard_errors(ProfileState.from_dict, doc, "p")
    if state is not None:
        _exercise(state)


ROTATION_FIELDS = [f.name for f in dataclasses.fields(CertificateRotation) if not f.kw_only]
KEY_ROTATION_FIELDS = [
    "step",
    "old_credential_id",
    "description",
    "keep_old",
    "started_at",
    "idempotency_key",
    "new_credential_id",
]
REQUEST_FIELDS = ["name", "key_path", "public_key_id", "csr_pem", "cn", "encrypted"]
VALID_FLOWS = {
    "rotation": {"step": "issue", "folder": "f", "old_certificate_id": None, "csr_pem": "c"},
    "key_rotation": {"step": "prove", "old_credential_id": "o", "description": "d", "keep_old": False},
    "runtime_request": dict.fromkeys(REQUEST_FIELDS[:-1], "x") | {"encrypted": True},
}


def edited(name: str, fields: list[str]) -> st.SearchStrategy[dict]:
    """A valid record of flow ``name`` with up to three fields replaced by any JSON (or a step)."""
    values = st.one_of(json_values, st.sampled_from(["key", "issue", "done", "create"]))
    edits = st.dictionaries(st.sampled_from(fields), values, max_size=3)
    return edits.map(lambda edit: {name: {**VALID_FLOWS[name], **edit}})


flow_like = st.one_of(
    edited("rotation", ROTATION_FIELDS),
    edited("key_rotation", KEY_ROTATION_FIELDS),
    edited("runtime_request", REQUEST_FIELDS),
    st.dictionaries(st.just("runtime_issue"), st.dictionaries(st.text(max_size=5), json_values, max_size=2)),
    st.dictionaries(st.text(max_size=8), json_values, max_size=3),
)


@fuzz(800)
@given(flow_like)
def test_flow_records_load_or_are_journal_damage(flows):
    """A hand-edited or damaged flow record loads typed (and saves back as it loaded) or is the
    journal's damage error; never another exception."""
    doc = {"schema": 2, "profile": "p", "flows": flows}
    state = only_wizard_errors(ProfileState.from_dict, doc, "p")
    if state is not None:
        saved = state.to_dict()["flows"]
        assert ProfileState.from_dict({**doc, "flows": saved}, "p").flows == state.flows


@fuzz(1000)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "schema",
                "profile",
                "stage",
                "evidence",
                "settings",
                "in_flight",
                "certificates",
                "status_history",
                "flows",
            ]
        ),
        json_values,
        max_size=9,
    )
)
def test_profile_state_top_level(doc):
    state = only_wizard_errors(ProfileState.from_dict, doc, "p")
    if state is not None:
        _exercise(state)


@fuzz(800)
@given(evidence_like)
def test_evidence_from_dict_and_checks(data):
    evidence = only_wizard_errors(Evidence.from_dict, data)
    if evidence is not None:
        model = Onboarding(Stage.CREDENTIALS, evidence, clock=lambda: NOW)
        for stage in Stage:
            only_wizard_errors(model.results, stage)


@fuzz(1000)
@given(
    st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        evidence_like.map(lambda e: json.dumps({"schema": 1, "stage": "VERIFY", "evidence": e}).encode()),
    )
)
def test_journal_load(tmp_path_factory, content):
    home = tmp_path_factory.mktemp("j")
    journal = Journal(Paths(home / "config", home / "state", home / "data", home / "certs"), "fuzz")
    journal.path.parent.mkdir(parents=True, exist_ok=True)
    journal.path.write_bytes(content)
    state = only_wizard_errors(journal.load)
    if state is not None:
        _exercise(state)
    assert journal.path.read_bytes() == content  # loading never rewrites a damaged file


def test_fuzz_total_is_at_least_ten_thousand():
    total = sum(EXAMPLES.values())
    assert total >= 10_000, EXAMPLES
