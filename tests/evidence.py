"""Deterministic evidence for model tests and snapshots: keys derived from fixed seeds,
deterministic ECDSA, a fixed clock, fixed paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wizard.core import crypto
from wizard.core.evidence import Evidence
from wizard.core.stages import ORDER, Stage

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ACCOUNT = "krn:partner:global:account:test:LYABCDEI"
INSTALL = "/srv/klarna-mtls/certs"


def fixed_clock() -> datetime:
    return NOW


def _key(seed: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(seed, ec.SECP256R1())


def fixed_material():
    key, ca = _key(0x5EED), _key(0xCA)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "LYABCDEI")]))
        .sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Klarna-Network-Clients-Test-CA-2024")]))
        .public_key(key.public_key())
        .serial_number(0x1234)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW - timedelta(days=1) + timedelta(days=3 * 365))
        .sign(ca, hashes.SHA256(), ecdsa_deterministic=True)
    )
    return key, csr.public_bytes(serialization.Encoding.PEM).decode(), cert


def evidence_through(stage: Stage) -> Evidence:
    """Evidence complete for every stage before ``stage`` (so ``stage`` itself is blocked)."""
    key, csr_pem, cert = fixed_material()
    fingerprint = crypto.fingerprint_sha256(cert)
    ev = Evidence(environment="test", account_id=ACCOUNT)
    done = ORDER[: ORDER.index(stage)]
    if Stage.CREDENTIALS in done:
        ev.api_key_environment, ev.api_key_masked = "test", "klarna_test_api_…a1b2"
        ev.secret_backend, ev.secret_backend_name = "keyring", "OS keyring (Memory)"
        ev.api_call_ok_at, ev.clock_skew_seconds = "2026-12-01T08:59:00Z", 0.4
    if Stage.KEY_AND_CSR in done:
        ev.key_path, ev.key_curve = "/home/partner/.local/share/klarna-mtls/keys/snap/private-key.pem", "secp256r1"
        ev.key_public_id, ev.key_file_mode, ev.key_dir_mode = crypto.public_key_id(key), 0o600, 0o700
        ev.key_encrypted, ev.cn, ev.csr_pem = False, "LYABCDEI", csr_pem
    if Stage.ISSUE in done:
        ev.certificate_id = "krn:partner:global:account:credential:client-certificate:SNAPSHOT0001"
        ev.certificate_pem = crypto.certificate_pem(cert).decode()
        ev.fingerprint, ev.active_certificates = fingerprint, 1
    if Stage.INSTALL in done:
        ev.install_dir, ev.cert_path = INSTALL, f"{INSTALL}/current/certificate.pem"
        ev.installed_key_path = f"{INSTALL}/current/private-key.pem"
        ev.installed_cert_mode, ev.installed_key_mode, ev.installed_dir_mode = 0o644, 0o600, 0o700
        ev.install_probe_ok_at, ev.install_probe_fingerprint = "2026-12-01T08:59:30Z", fingerprint
    if Stage.VERIFY in done:
        ev.verifications = [
            {"at": f"2026-12-01T08:59:5{i}Z", "status": "VALID", "fingerprint": fingerprint} for i in range(3)
        ]
    if Stage.ENFORCE in done:
        ev.enforced_from, ev.enforced_from_chosen_at, ev.enforcement_mode = "NOW", "2026-12-01T09:00:00Z", "ENFORCED"
    return ev
