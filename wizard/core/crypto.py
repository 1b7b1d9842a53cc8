"""Keys, CSRs and certificates, P-256 and SHA-256 only.

Naming after certbot: ``make_*`` builds and returns objects or PEM bytes, ``load_*`` parses,
``valid_*`` answers a bool, ``verify_*`` returns None or raises ``CryptoError`` with a reason a
person understands."""

from __future__ import annotations

import functools
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from wizard.core.errors import CryptoError, InputError, KeyLocked
from wizard.core.fsutil import write_private

PrivateKey = ec.EllipticCurvePrivateKey


# ---------------------------------------------------------------- keys
def make_private_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


MAX_PASSPHRASE_BYTES = 1023  # OpenSSL's PEM limit: a longer passphrase could never be typed back


def make_private_key_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    if passphrase and len(passphrase) > MAX_PASSPHRASE_BYTES:
        raise InputError(
            f"The key passphrase is {len(passphrase)} bytes long; OpenSSL accepts at most {MAX_PASSPHRASE_BYTES}.",
            title="Passphrase too long",
            hint="Choose a shorter passphrase. Nothing was written.",
        )
    encryption = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def generate_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKey:
    """Make a P-256 key and persist it atomically as 0600 in a 0700 folder."""
    key = make_private_key()
    write_private(path, make_private_key_pem(key, passphrase))
    return key


def load_private_key(data: bytes, passphrase: bytes | None = None, source: object = "") -> PrivateKey:
    """Never prompts: an encrypted key without its passphrase, or with a wrong one, raises KeyLocked
    (naming ``source``, the file, when known) so the front end can ask and retry."""
    if not data or not data.strip():
        raise CryptoError("The private key file is empty.")
    try:
        if data.lstrip().startswith(b"-----"):
            key = serialization.load_pem_private_key(data, password=passphrase)
        else:
            key = serialization.load_der_private_key(data, password=passphrase)
    except TypeError as exc:
        if passphrase is None:
            raise KeyLocked(source or "file") from exc
        raise CryptoError("The private key is not encrypted; no passphrase is needed.") from exc
    except ValueError as exc:
        if passphrase is not None and b"ENCRYPTED" in data:
            raise KeyLocked(source or "file", wrong=True) from None
        raise CryptoError(
            "The private key could not be read: it is malformed or truncated.",
            hint="Check you pasted or pointed at the whole PEM file.",
        ) from exc
    except Exception as exc:  # cryptography raises a few odd types on garbage
        raise CryptoError("The private key could not be read: it is malformed.") from exc
    verify_key_type(key)
    return key  # type: ignore[return-value]


def load_private_key_file(path: Path, passphrase: bytes | None = None) -> PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CryptoError(f"Cannot read the private key at {path}: {exc.strerror}.") from exc
    return load_private_key(data, passphrase, source=path)


def verify_key_type(key: object) -> None:
    """Klarna accepts prime256v1 (P-256) keys only."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        raise CryptoError(
            "This is an RSA key; Klarna requires an elliptic-curve P-256 (prime256v1) key.",
            hint="Generate a new key with klarna-mtls.",
        )
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise CryptoError(
                f"This key uses the {key.curve.name} curve; Klarna requires P-256 (prime256v1).",
                hint="Generate a new key with klarna-mtls.",
            )
        return
    raise CryptoError(f"Unsupported key type {type(key).__name__}; Klarna requires an EC P-256 key.")


def public_key_id(key: object) -> str:
    """SHA-256 hex of the DER SubjectPublicKeyInfo: how we match keys, CSRs and certificates."""
    try:
        public = key.public_key() if hasattr(key, "public_key") else key
        der = public.public_bytes(  # type: ignore[union-attr]
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except Exception as exc:
        raise CryptoError("The public key cannot be read; Klarna requires EC P-256.") from exc
    return hashlib.sha256(der).hexdigest()


# ---------------------------------------------------------------- signatures
def make_signature(key: PrivateKey, data: bytes) -> bytes:
    """An ECDSA P-256 / SHA-256 signature (DER) of ``data``: how a runtime proves it holds the
    private key of the certificate it reports on."""
    verify_key_type(key)
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def valid_signature(cert: x509.Certificate, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is the ECDSA P-256 / SHA-256 signature of ``data`` by ``cert``'s key."""
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, ec.SECP256R1):
        return False
    try:
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


# ---------------------------------------------------------------- CSRs
def make_csr(key: PrivateKey, cn: str) -> x509.CertificateSigningRequest:
    """A CSR whose subject is exactly one CN, with no extensions and no attributes."""
    verify_key_type(key)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())


def make_csr_pem(key: PrivateKey, cn: str) -> bytes:
    return make_csr(key, cn).public_bytes(serialization.Encoding.PEM)


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(data) if data.lstrip().startswith(b"-----") else x509.load_der_x509_csr(data)
    except Exception as exc:
        raise CryptoError("The CSR could not be read: it is malformed or truncated.") from exc
    _readable_public_key(csr, "CSR")
    return csr


def _readable_public_key(obj: x509.Certificate | x509.CertificateSigningRequest, what: str) -> None:
    """Refuse, at load time, a CSR or certificate whose public key or names cannot be decoded
    (the library parses them lazily), so that no later access raises a library error instead of
    a CryptoError."""
    try:
        obj.public_key()
    except Exception as exc:
        raise CryptoError(
            f"The {what}'s public key is of an unknown or damaged type; Klarna requires EC P-256."
        ) from exc
    try:
        names = [obj.subject] + ([obj.issuer] if isinstance(obj, x509.Certificate) else [])
        for name in names:
            for attribute in name:
                str(attribute.value)
    except Exception as exc:
        raise CryptoError(f"The {what}'s subject or issuer name is malformed.") from exc


def csr_problems(csr: x509.CertificateSigningRequest, expected_cn: str | None = None) -> list[str]:
    """Lint a CSR against Klarna's rules; an empty list means it passes."""
    problems: list[str] = []
    try:
        verify_key_type(csr.public_key())
    except CryptoError as exc:
        problems.append(exc.message)
    attributes = list(csr.subject)
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1:
        problems.append(f"The subject must hold exactly one CN; it holds {len(cns)}.")
    if len(attributes) != len(cns):
        extra = sorted({a.oid._name for a in attributes if a.oid != NameOID.COMMON_NAME})
        problems.append(f"The subject may hold only the CN; it also holds {', '.join(extra)}.")
    if len(cns) == 1 and expected_cn is not None and cns[0].value != expected_cn:
        problems.append(f"The CN is '{cns[0].value!s}' but should be '{expected_cn}'.")
    try:
        extensions = list(csr.extensions)
    except Exception:
        extensions = [None]
    if extensions:
        problems.append("The CSR may not request extensions.")
    if _csr_has_attributes(csr):
        problems.append("The CSR may not carry attributes.")
    try:
        signature_ok = csr.is_signature_valid
        hash_algorithm = csr.signature_hash_algorithm
    except Exception:  # an unknown signature algorithm OID
        problems.append("The CSR's signature algorithm is not supported; it must be ECDSA with SHA-256.")
        return problems
    if not signature_ok:
        problems.append("The CSR's self-signature is not valid.")
    if hash_algorithm is not None and not isinstance(hash_algorithm, hashes.SHA256):
        problems.append("The CSR must be signed with SHA-256.")
    return problems


def _csr_has_attributes(csr: x509.CertificateSigningRequest) -> bool:
    # cryptography exposes attributes only by iteration on newer versions.
    try:
        return len(list(csr.attributes)) > 0
    except Exception:
        return False


def verify_csr(csr: x509.CertificateSigningRequest, expected_cn: str | None = None, key: object | None = None) -> None:
    problems = csr_problems(csr, expected_cn)
    if key is not None and public_key_id(csr.public_key()) != public_key_id(key):
        problems.append("The CSR's public key is not the public key of our private key.")
    if problems:
        raise CryptoError("The CSR does not meet Klarna's rules: " + " ".join(problems))


def csr_cn(csr: x509.CertificateSigningRequest) -> str | None:
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if len(cns) == 1 else None


# ---------------------------------------------------------------- certificates
def load_certificate(data: bytes | str) -> x509.Certificate:
    """The leaf of what Klarna returned: its one certificate, or in a chain the first that is not
    a CA (``leaf_first`` picks by key where the key is known)."""
    return _leaf(_certificate_bytes(data))


def load_certificates(data: bytes | str) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, in order (or the one DER certificate)."""
    return list(_parsed_certificates(_certificate_bytes(data)))


def _certificate_bytes(data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode()
    if not data or not data.strip():
        raise CryptoError("The certificate is empty.")
    return data


# Certificates are immutable: one parse (and one check) per distinct PEM/DER. A fleet `status`
# reads the same certificate from the listing, the install folder and the journal. Errors are
# not cached.
@functools.lru_cache(maxsize=256)
def _leaf(data: bytes) -> x509.Certificate:
    certificates = _parsed_certificates(data)
    leaf = next((cert for cert in certificates if not _is_ca(cert)), certificates[0])
    _readable_public_key(leaf, "certificate")
    return leaf


@functools.lru_cache(maxsize=256)
def _parsed_certificates(data: bytes) -> tuple[x509.Certificate, ...]:
    try:
        if b"-----BEGIN" in data:
            return tuple(x509.load_pem_x509_certificates(data))
        return (x509.load_der_x509_certificate(data),)
    except Exception as exc:
        raise CryptoError(
            "The certificate could not be read: it is malformed or truncated.",
            hint="Use the PEM exactly as Klarna returned it.",
        ) from exc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False


_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def leaf_first(data: bytes, key: object) -> bytes:
    """The certificate file to install for ``key``: Klarna's bytes unchanged when the certificate
    for the key comes first, as OpenSSL and curl need; in a chain that lists it later, its PEM
    block is moved to the front and every block is kept byte for byte. DER becomes PEM.
    Raises CryptoError when no certificate in ``data`` belongs to the key."""
    certificates = load_certificates(data)
    wanted = public_key_id(key)
    matching = [i for i, cert in enumerate(certificates) if public_key_id(cert.public_key()) == wanted]
    if not matching:
        raise CryptoError(
            "The certificate does not belong to this private key.",
            hint="Install the certificate issued for this key, or issue a new one.",
        )
    _readable_public_key(certificates[matching[0]], "certificate")
    blocks = _PEM_CERTIFICATE.findall(data)
    if len(blocks) != len(certificates):  # DER, or PEM we cannot split safely: our own encoding
        leaf = certificates[matching[0]]
        return certificate_pem(leaf) + b"".join(certificate_pem(c) for c in certificates if c is not leaf)
    if matching[0] == 0:
        return data
    block = bytes(blocks[matching[0]])
    rest = data.replace(block, b"", 1).lstrip(b"\r\n")
    newline = b"\r\n" if b"\r\n" in data else b"\n"
    return block + newline + rest


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def fingerprint_sha256(cert: x509.Certificate) -> str:
    """Colon-separated upper-case SHA-256 fingerprint, as openssl prints it."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def fingerprint_suffix(fingerprint: str, length: int = 8) -> str:
    return fingerprint.replace(":", "")[-length:]


def certificate_cn(cert: x509.Certificate) -> str | None:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else None


def valid_cert_matches_key(cert: x509.Certificate, key: object) -> bool:
    return public_key_id(cert.public_key()) == public_key_id(key)


def verify_cert_matches_key(cert: x509.Certificate, key: object) -> None:
    if not valid_cert_matches_key(cert, key):
        raise CryptoError(
            "The certificate does not belong to this private key.",
            hint="Install the certificate issued for this key, or issue a new one.",
        )


def verify_not_ca(cert: x509.Certificate) -> None:
    """A client certificate is a leaf: one with CA:TRUE could sign others and is refused."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return
    if constraints.ca:
        raise CryptoError(
            "The server returned a CA certificate (CA:TRUE) instead of a client certificate.",
            hint="It was not installed. Issue the certificate again; contact Klarna support if it repeats.",
        )


def verify_cert_valid_at(cert: x509.Certificate, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    if now < cert.not_valid_before_utc:
        raise CryptoError(
            f"The certificate is not valid until {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC.",
            hint="Check this machine's clock.",
        )
    if now >= cert.not_valid_after_utc:
        raise CryptoError(
            f"The certificate expired on {cert.not_valid_after_utc:%Y-%m-%d} UTC.",
            hint="Issue a new certificate (rotate).",
        )


def verify_certificate(
    cert: x509.Certificate,
    key: object | None = None,
    expected_cn: str | None = None,
    now: datetime | None = None,
) -> None:
    verify_key_type(cert.public_key())
    if key is not None:
        verify_cert_matches_key(cert, key)
    if expected_cn is not None and certificate_cn(cert) != expected_cn:
        raise CryptoError(f"The certificate's CN is '{certificate_cn(cert)}', not '{expected_cn}'.")
    verify_cert_valid_at(cert, now)
