"""Keys, CSRs and certificates: good input passes; every kind of bad input is a CryptoError."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from tests_support import self_signed_certificate

from wizard.core import crypto
from wizard.core.errors import CryptoError

CN = "LYABCDEI"


def csr_with(key, names, extensions=()):
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, hashes.SHA256())


def cert_for(public_key, *, cn=CN, days=(-1, 1095)):
    ca = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
        .public_key(public_key)
        .serial_number(1)
        .not_valid_before(now + timedelta(days=days[0]))
        .not_valid_after(now + timedelta(days=days[1]))
        .sign(ca, hashes.SHA256())
    )


def test_generated_key_is_p256_0600_in_0700_even_under_umask_0(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "keys" / "k.pem"
        key = crypto.generate_private_key(path, b"pass phrase")
    finally:
        os.umask(old)
    assert isinstance(key.curve, ec.SECP256R1)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert b"ENCRYPTED" in path.read_bytes()
    assert crypto.public_key_id(crypto.load_private_key_file(path, b"pass phrase")) == crypto.public_key_id(key)


@pytest.mark.parametrize(
    "data,match",
    [
        (b"", "empty"),
        (b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n-----END PRIVATE KEY-----\n", "malformed"),
        (b"\x00\x01garbage", "malformed"),
    ],
)
def test_bad_private_keys(data, match):
    with pytest.raises(CryptoError, match=match):
        crypto.load_private_key(data)


def test_wrong_key_types_are_refused():
    rsa_pem = rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(CryptoError, match="RSA"):
        crypto.load_private_key(rsa_pem)
    p384 = crypto.make_private_key_pem.__wrapped__ if hasattr(crypto.make_private_key_pem, "__wrapped__") else None
    p384_pem = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(CryptoError, match="secp384r1"):
        crypto.load_private_key(p384_pem)
    assert p384 is None


def test_passphrase_errors():
    pem = crypto.make_private_key_pem(crypto.make_private_key(), b"right")
    with pytest.raises(CryptoError, match="encrypted"):
        crypto.load_private_key(pem)
    with pytest.raises(CryptoError, match="Wrong passphrase"):
        crypto.load_private_key(pem, b"wrong")


def test_our_csr_passes_lint():
    key = crypto.make_private_key()
    csr = crypto.load_csr(crypto.make_csr_pem(key, CN))
    assert crypto.csr_problems(csr, CN) == []
    crypto.verify_csr(csr, CN, key)


@pytest.mark.parametrize("problem", ["extra attribute", "extension", "rsa", "p384", "wrong cn", "two cns", "other key"])
def test_csr_rule_violations(problem):
    key = crypto.make_private_key()
    cn = [x509.NameAttribute(NameOID.COMMON_NAME, CN)]
    if problem == "extra attribute":
        csr = csr_with(key, cn + [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme")])
    elif problem == "extension":
        csr = csr_with(key, cn, [x509.SubjectAlternativeName([x509.DNSName("acme.example")])])
    elif problem == "rsa":
        csr = csr_with(rsa.generate_private_key(65537, 2048), cn)
    elif problem == "p384":
        csr = csr_with(ec.generate_private_key(ec.SECP384R1()), cn)
    elif problem == "wrong cn":
        csr = csr_with(key, [x509.NameAttribute(NameOID.COMMON_NAME, "SOMEONE")])
    elif problem == "two cns":
        csr = csr_with(key, cn + cn)
    else:
        csr = csr_with(crypto.make_private_key(), cn)
    with pytest.raises(CryptoError, match="Klarna's rules"):
        crypto.verify_csr(csr, CN, key)


def test_certificate_checks():
    key = crypto.make_private_key()
    good = cert_for(key.public_key())
    crypto.verify_certificate(good, key, CN)
    with pytest.raises(CryptoError, match="does not belong"):
        crypto.verify_certificate(cert_for(crypto.make_private_key().public_key()), key, CN)
    with pytest.raises(CryptoError, match="expired"):
        crypto.verify_certificate(cert_for(key.public_key(), days=(-30, -1)), key, CN)
    with pytest.raises(CryptoError, match="not valid until"):
        crypto.verify_certificate(cert_for(key.public_key(), days=(2, 30)), key, CN)
    with pytest.raises(CryptoError, match="CN"):
        crypto.verify_certificate(cert_for(key.public_key(), cn="OTHER"), key, CN)
    with pytest.raises(CryptoError, match="malformed"):
        crypto.load_certificate(crypto.certificate_pem(good)[:200])


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is not installed")
def test_fingerprint_matches_openssl_and_openssl_csr_passes_lint(tmp_path):
    key = crypto.make_private_key()
    cert = cert_for(key.public_key())
    (tmp_path / "c.pem").write_bytes(crypto.certificate_pem(cert))
    out = subprocess.run(
        ["openssl", "x509", "-in", str(tmp_path / "c.pem"), "-noout", "-fingerprint", "-sha256"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip().split("=", 1)[1] == crypto.fingerprint_sha256(cert)
    # The docs' manual flow: openssl ecparam + openssl req -subj /CN=… passes our lint.
    subprocess.run(
        ["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", str(tmp_path / "k.pem")], check=True
    )
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-key",
            str(tmp_path / "k.pem"),
            "-out",
            str(tmp_path / "r.pem"),
            "-subj",
            f"/CN={CN}",
        ],
        check=True,
        capture_output=True,
    )
    csr = crypto.load_csr((tmp_path / "r.pem").read_bytes())
    assert crypto.csr_problems(csr, CN) == []


# ---------------------------------------------------------------- regressions found by fuzzing
EC_PUBLIC_KEY_OID = bytes.fromhex("06072a8648ce3d0201")  # id-ecPublicKey
ECDSA_SHA256_OID = bytes.fromhex("06082a8648ce3d040302")  # ecdsa-with-SHA256


def _damage_oid(der: bytes, oid: bytes) -> bytes:
    """The same DER with one algorithm OID made unknown (first arc byte zeroed)."""
    at = der.index(oid)
    return der[: at + 2] + b"\x00" + der[at + 3 :]


def _self_signed_der() -> bytes:
    certificate = self_signed_certificate(ec.generate_private_key(ec.SECP256R1()), days=1)
    return certificate.public_bytes(serialization.Encoding.DER)


def test_csr_with_unknown_key_algorithm_is_a_crypto_error():
    # Before the fix load_csr accepted it and csr_problems raised cryptography's UnsupportedAlgorithm.
    der = crypto.make_csr(crypto.make_private_key(), "LYABCDEI").public_bytes(serialization.Encoding.DER)
    with pytest.raises(CryptoError, match="public key"):
        crypto.load_csr(_damage_oid(der, EC_PUBLIC_KEY_OID))


def test_csr_with_unknown_signature_algorithm_is_a_problem_not_a_crash():
    der = crypto.make_csr(crypto.make_private_key(), "LYABCDEI").public_bytes(serialization.Encoding.DER)
    csr = crypto.load_csr(_damage_oid(der, ECDSA_SHA256_OID))
    problems = crypto.csr_problems(csr, "LYABCDEI")
    assert any("signature algorithm" in p for p in problems)
    with pytest.raises(CryptoError):
        crypto.verify_csr(csr, "LYABCDEI")


def test_certificate_with_unknown_key_algorithm_is_a_crypto_error():
    with pytest.raises(CryptoError, match="public key"):
        crypto.load_certificate(_damage_oid(_self_signed_der(), EC_PUBLIC_KEY_OID))


def test_public_key_id_of_garbage_is_a_crypto_error():
    with pytest.raises(CryptoError):
        crypto.public_key_id(object())


def _damage_cn_tag(der: bytes) -> bytes:
    """The same DER with the CN's UTF8String tag (0x0c) replaced by an invalid tag 0x00."""
    cn_oid = bytes.fromhex("0603550403")
    at = der.index(cn_oid) + len(cn_oid)
    assert der[at] == 0x0C
    return der[:at] + b"\x00" + der[at + 1 :]


def test_csr_with_malformed_subject_is_a_crypto_error():
    # Before the fix load_csr accepted it and csr_problems/csr_cn raised ValueError from the parser.
    der = crypto.make_csr(crypto.make_private_key(), "LYABCDEI").public_bytes(serialization.Encoding.DER)
    with pytest.raises(CryptoError, match="name is malformed"):
        crypto.load_csr(_damage_cn_tag(der))


def test_certificate_with_malformed_subject_is_a_crypto_error():
    with pytest.raises(CryptoError, match="name is malformed"):
        crypto.load_certificate(_damage_cn_tag(_self_signed_der()))
