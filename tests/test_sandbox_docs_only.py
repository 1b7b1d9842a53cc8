"""The sandbox's docs-only answer mode sends only what Klarna documents (klarna-api.md without the
[ours] fields), over real loopback mTLS, driven with plain httpx like tests/test_sandbox.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.test_sandbox import CERTS, ENFORCEMENT, KEYS, VERIFICATION, call, create_body
from wizard.core import crypto, rules
from wizard.sandbox import start_sandbox


@pytest.fixture
def docs(tmp_path):
    with start_sandbox(tmp_path / "sandbox", enforcement_delay=0.3, answers="docs-only") as sandbox:
        yield sandbox


def _issue(sb, tmp_path):
    key = crypto.make_private_key()
    answer = call(
        sb, "POST", CERTS, json=create_body(crypto.make_csr_pem(key, rules.default_cn(sb.account_id)).decode())
    )
    cert_path, key_path = tmp_path / "c.pem", tmp_path / "k.pem"
    cert_path.write_text(answer.json()["secret"]["certificate"])
    key_path.write_bytes(crypto.make_private_key_pem(key))
    return answer, (cert_path, key_path)


def test_certificate_answers_carry_only_documented_fields(docs, tmp_path):
    created, pair = _issue(docs, tmp_path)
    assert created.status_code == 200
    body = created.json()
    assert set(body) == {"credential_id", "secret"} and set(body["secret"]) == {"certificate"}
    assert body["credential_id"].startswith("krn:")

    listing = call(docs, "GET", CERTS, pair=pair)
    assert listing.json() == {"credentials": [{"credential_id": body["credential_id"]}]}
    one = f"{CERTS}/{body['credential_id']}"
    assert call(docs, "GET", one).json() == {"credential_id": body["credential_id"]}
    assert call(docs, "POST", f"{one}/revoke", json={}).json() == {"credential_id": body["credential_id"]}


def test_the_verification_header_arrives_duplicated_and_in_lower_case(docs, tmp_path):
    _, pair = _issue(docs, tmp_path)
    answer = call(docs, "GET", CERTS, pair=pair)
    assert answer.headers[VERIFICATION] == "VALID, VALID"
    assert VERIFICATION.lower().encode() in [name for name, _ in answer.headers.raw]
    assert call(docs, "GET", CERTS).headers[VERIFICATION] == "NOT_PRESENT, NOT_PRESENT"


def test_enforcement_put_answers_204_and_get_only_the_mode(docs, tmp_path):
    _, pair = _issue(docs, tmp_path)
    put = call(docs, "PUT", ENFORCEMENT, pair=pair, json={"enforced_from": "NOW"})
    assert put.status_code == 204 and put.content == b""
    assert call(docs, "GET", ENFORCEMENT, pair=pair).json() in (
        {"enforcement_mode": "REPORTING"},
        {"enforcement_mode": "ENFORCED"},
    )


def test_api_keys_never_carry_the_key_suffix(docs):
    created = call(docs, "POST", KEYS, json={"description": "ci runner"})
    body = created.json()
    secret = body["secret"]["secret"]
    assert set(body) == {"credential_id", "description", "status", "secret"}
    for entry in call(docs, "GET", KEYS).json()["credentials"]:
        assert set(entry) <= {"credential_id", "description", "status"}
    assert secret[-4:] not in json.dumps(call(docs, "GET", KEYS).json()).replace(body["credential_id"], "")


def test_errors_keep_klarnas_shape_in_docs_only_mode(docs):
    answer = call(docs, "GET", CERTS, api_key="klarna_test_api_wrong")
    assert answer.status_code == 401 and answer.json()["error_code"] == "UNAUTHORIZED"


def test_the_mode_can_be_switched_at_run_time_and_a_bad_mode_is_refused(tmp_path):
    with start_sandbox(tmp_path / "sandbox", enforcement_delay=0.3) as sb:
        _, pair = _issue(sb, tmp_path)
        assert "fingerprint_sha256" in call(sb, "GET", CERTS, pair=pair).json()["credentials"][0]
        sb.answers = "docs-only"
        assert set(call(sb, "GET", CERTS, pair=pair).json()["credentials"][0]) == {"credential_id"}
        with pytest.raises(ValueError):
            sb.answers = "everything"
    with pytest.raises(ValueError):
        start_sandbox(tmp_path / "other", answers="nope")


def test_sandbox_serve_takes_answers_docs_only(tmp_path):
    import httpx

    command = [
        sys.executable,
        "-m",
        "wizard.cli",
        "sandbox",
        "serve",
        "--json",
        "--port",
        "0",
        "--state-dir",
        str(tmp_path / "state"),
        "--answers",
        "docs-only",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(process.stdout.readline())
        with httpx.Client(
            base_url=info["base_url"],
            verify=tls_context_from(info),
            headers={"Authorization": f"Basic {info['api_key']}"},
            timeout=10,
        ) as http:
            created = http.post(KEYS, json={"description": "probe"})
            assert created.status_code == 201 and "key_suffix" not in created.json()
    finally:
        process.terminate()
        process.wait(timeout=10)


def tls_context_from(info: dict):
    import ssl

    context = ssl.create_default_context(cafile=info["ca_bundle"])
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
