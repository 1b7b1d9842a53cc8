"""The sandbox's world: accounts, API keys, certificates, enforcement, idempotency records.

Pure rules over a JSON-able dict, persisted atomically after every change. Klarna's rules come
from wizard.core.rules and wizard.core.crypto, the same code the client side uses."""

from __future__ import annotations

import hashlib
import json
import secrets
import string
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wizard.core import crypto, rules
from wizard.core.errors import CryptoError, InputError
from wizard.core.fsutil import ensure_private_dir, write_private
from wizard.sandbox.options import SandboxOptions

CA_NAME = "Klarna-Network-Clients-Sandbox-CA"


class SandboxError(Exception):
    """An answer in Klarna's error shape."""

    def __init__(
        self,
        status: int,
        error_type: str,
        code: str,
        message: str,
        validation: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.error_type, self.code, self.message = status, error_type, code, message
        self.validation = validation or []

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "error_id": secrets.token_hex(8),
            "error_type": self.error_type,
            "error_code": self.code,
            "error_message": self.message,
        }
        if self.validation:
            body["validation_errors"] = self.validation
        return body


def invalid(parameter: str, reason: str) -> SandboxError:
    return SandboxError(
        400,
        "INPUT_ERROR",
        "VALIDATION_ERROR",
        f"Invalid {parameter}: {reason}",
        [{"parameter": parameter, "reason": reason}],
    )


def _random_id(length: int = 8) -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(length))


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _custom_cn_problems(cn: str | None) -> list[str]:
    try:
        rules.verify_cn(cn or "")
    except InputError as exc:
        return [exc.message]
    return []


IDEMPOTENCY_WINDOW = timedelta(hours=24)


class SandboxState:
    def __init__(self, folder: Path, *, options: SandboxOptions | None = None) -> None:
        self.folder = ensure_private_dir(folder)
        self.lock = threading.RLock()
        self.options = options or SandboxOptions()  # read on every request: a change applies at once
        self.ca_key, self.ca_cert = self._load_or_make_ca()
        self.data: dict[str, Any] = self._load()
        if not self.data.get("initial"):
            account_id, api_key = self.mint_account("test")
            self.data["initial"] = {"account_id": account_id, "api_key": api_key}
            self.save()

    # ------------------------------------------------------------------ persistence
    def _load(self) -> dict[str, Any]:
        path = self.folder / "state.json"
        if path.is_file():
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        return {"accounts": {}, "api_keys": {}, "certificates": {}, "idempotency": {}, "clock_offset": 0.0}

    def save(self) -> None:
        write_private(self.folder / "state.json", json.dumps(self.data, indent=1, sort_keys=True).encode())

    def _load_or_make_ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key_path, cert_path = self.folder / "ca-key.pem", self.folder / "ca.pem"
        if key_path.is_file() and cert_path.is_file():
            return crypto.load_private_key_file(key_path), crypto.load_certificate(cert_path.read_bytes())
        key = crypto.make_private_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_private(key_path, crypto.make_private_key_pem(key))
        write_private(cert_path, crypto.certificate_pem(cert))
        cert_path.chmod(0o644)
        return key, cert

    @property
    def ca_bundle(self) -> Path:
        return self.folder / "ca.pem"

    def server_credentials(self) -> tuple[Path, Path]:
        """A server certificate for loopback names, signed by the sandbox CA."""
        key_path, cert_path = self.folder / "server-key.pem", self.folder / "server.pem"
        if key_path.is_file() and cert_path.is_file():
            return cert_path, key_path
        key = crypto.make_private_key()
        now = datetime.now(UTC)
        import ipaddress

        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=825))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        write_private(key_path, crypto.make_private_key_pem(key))
        write_private(cert_path, crypto.certificate_pem(cert))
        return cert_path, key_path

    # ------------------------------------------------------------------ clock
    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.data.get("clock_offset", 0.0))

    def advance_clock(self, seconds: float) -> None:
        with self.lock:
            self.data["clock_offset"] = self.data.get("clock_offset", 0.0) + seconds
            self.save()

    # ------------------------------------------------------------------ accounts and keys
    def mint_account(self, environment: str = "test") -> tuple[str, str]:
        if environment not in ("live", "test"):
            raise ValueError("environment must be 'live' or 'test'")
        with self.lock:
            account_id = f"krn:partner:global:account:{environment}:{_random_id()}"
            self.data["accounts"][account_id] = {"environment": environment, "enforcement": None}
            _, key = self.mint_key(account_id, "Initial API key", initial=True)
            self.save()
            return account_id, key

    def mint_key(self, account_id: str, description: str, *, initial: bool = False) -> tuple[str, str]:
        """(credential id, key) of a new key for the account; the key itself is kept hashed."""
        environment = self.data["accounts"][account_id]["environment"]
        key = f"klarna_{environment}_api_{secrets.token_urlsafe(30)}"
        credential_id = f"krn:partner:global:account:credential:api-key:{_random_id(12)}"
        self.data["api_keys"][credential_id] = {
            "account_id": account_id,
            "key_hash": _hash(key),
            "key_suffix": key[-4:],
            "description": description,
            "status": "ACTIVE",
            "created_at": rules.format_utc(self.now()),
            "last_used_at": None,
            "is_initial": initial,
        }
        return credential_id, key

    def authenticate(self, header: str | None) -> tuple[str, str]:
        """(account_id, key credential id) for an Authorization header, else 401."""
        import base64

        if not header or not header.startswith("Basic "):
            raise SandboxError(401, "ACCESS_ERROR", "UNAUTHORIZED", "Missing API key.")
        token = header[len("Basic ") :].strip()
        candidates = [token]
        try:
            decoded = base64.b64decode(token, validate=True).decode()
            candidates.append(decoded.split(":", 1)[1] if ":" in decoded else decoded)
        except Exception:
            pass
        for candidate in candidates:
            digest = _hash(candidate)
            for credential_id, entry in self.data["api_keys"].items():
                if entry["key_hash"] == digest:
                    if entry["status"] != "ACTIVE":
                        raise SandboxError(
                            401,
                            "ACCESS_ERROR",
                            "API_KEY_DISABLED",
                            "This API key is disabled; use another active key or create a new one.",
                        )
                    entry["last_used_at"] = rules.format_utc(self.now())
                    return entry["account_id"], credential_id
        raise SandboxError(401, "ACCESS_ERROR", "UNAUTHORIZED", "The API key is not valid.")

    def api_key_entry(self, credential_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        return {
            "credential_id": credential_id,
            **{k: v for k, v in entry.items() if k not in ("key_hash", "account_id")},
        }

    # ------------------------------------------------------------------ certificates
    def certificate_status(self, entry: dict[str, Any]) -> str:
        now = self.now()
        if entry.get("revoked_from") and rules.parse_timestamp(entry["revoked_from"]) <= now:
            return "REVOKED"
        if rules.parse_timestamp(entry["expires_at"]) <= now:
            return "EXPIRED"
        return "ACTIVE"

    def certificate_entry(self, credential_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        return {
            "credential_id": credential_id,
            "description": entry["description"],
            "usage": "MTLS",
            "status": self.certificate_status(entry),
            "created_at": entry["created_at"],
            "expires_at": entry["expires_at"],
            "revoked_from": entry.get("revoked_from"),
            "certificate": entry["pem"],
            "fingerprint_sha256": entry["fingerprint"],
        }

    def account_certificates(self, account_id: str) -> dict[str, dict[str, Any]]:
        return {cid: e for cid, e in self.data["certificates"].items() if e["account_id"] == account_id}

    def issue(self, account_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise invalid("body", "must be a JSON object")
        description = body.get("description", "")
        try:
            rules.verify_description(description if isinstance(description, str) else "\x00")
        except InputError:
            raise invalid("description", "must match ^[a-zA-Z0-9\\-:;., _]{0,100}$") from None
        config: dict[str, Any] = body["config"] if isinstance(body.get("config"), dict) else {}
        if config.get("usage") != "MTLS":
            raise invalid("config.usage", "must be MTLS")
        csr_pem = config.get("certificate_signing_request")
        if not isinstance(csr_pem, str) or not csr_pem.strip():
            raise invalid("config.certificate_signing_request", "is required")
        try:
            csr = crypto.load_csr(csr_pem.encode())
        except CryptoError:
            raise invalid("config.certificate_signing_request", "is not a PEM CSR") from None
        # Strict by default (Distribution/Direct pages: CN = account suffix); the newer page's
        # custom CN of up to 64 characters only when allow_custom_cn is set; any CN when Klarna
        # assigns its own (assigned_cn).
        options = self.options
        expected = None if options.allow_custom_cn or options.assigned_cn else rules.default_cn(account_id)
        problems = crypto.csr_problems(csr, expected)
        if options.allow_custom_cn and not options.assigned_cn and not problems:
            problems = _custom_cn_problems(crypto.csr_cn(csr))
        if problems:
            raise invalid("config.certificate_signing_request", " ".join(problems))
        active = [e for e in self.account_certificates(account_id).values() if self.certificate_status(e) == "ACTIVE"]
        if len(active) >= rules.MAX_ACTIVE_CERTIFICATES:
            raise SandboxError(
                409,
                "RESOURCE_ERROR",
                "LIMIT_EXCEEDED",
                f"At most {rules.MAX_ACTIVE_CERTIFICATES} active certificates are allowed.",
            )
        cert = self._sign(csr, account_id)
        credential_id = f"krn:partner:global:account:credential:client-certificate:{_random_id(12)}"
        entry = {
            "account_id": account_id,
            "description": description,
            "pem": crypto.certificate_pem(cert).decode(),
            "fingerprint": crypto.fingerprint_sha256(cert),
            "created_at": rules.format_utc(self.now()),
            "issued_at": self.now().isoformat(),  # to the microsecond, for propagation_delay
            "expires_at": rules.format_utc(cert.not_valid_after_utc),  # the same moment as its notAfter
            "revoked_from": None,
        }
        self.data["certificates"][credential_id] = entry
        return entry | {"credential_id": credential_id}

    def _sign(self, csr: x509.CertificateSigningRequest, account_id: str) -> x509.Certificate:
        # The window starts in real time (TLS checks it) and ends when the sandbox clock says it
        # expires (``expires_at``): a certificate issued after ``advance_clock`` states the life
        # Klarna gives it, and a client reading its notAfter judges by the same clock.
        now = datetime.now(UTC)
        subject = csr.subject
        if self.options.assigned_cn:  # Klarna's default when it does not take the CSR's CN
            assigned = f"{rules.default_cn(account_id)}-{secrets.token_hex(8)}"
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, assigned)])
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.ca_cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(self.now() + self.options.certificate_lifetime)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(account_id)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )

    def verification(self, account_id: str | None, peer_der: bytes | None) -> str | None:
        """The header value, or None while the account has no certificate yet."""
        if account_id is None or not self.account_certificates(account_id):
            return None
        if not peer_der:
            return "NOT_PRESENT"
        fingerprint = x509.load_der_x509_certificate(peer_der).fingerprint(hashes.SHA256()).hex(":").upper()
        for entry in self.account_certificates(account_id).values():
            if entry["fingerprint"] == fingerprint and self.certificate_status(entry) == "ACTIVE":
                return "INVALID" if self._still_propagating(account_id, entry) else "VALID"
        return "INVALID"

    def _still_propagating(self, account_id: str, entry: dict[str, Any]) -> bool:
        """Klarna: changes take up to 5 minutes to apply. With ``propagation_delay`` an enforced
        account does not yet accept a certificate issued less than that long ago."""
        delay = self.options.propagation_delay
        if delay <= 0 or not self.is_enforced(account_id):
            return False
        issued = entry.get("issued_at")
        moment = datetime.fromisoformat(issued) if issued else rules.parse_timestamp(entry["created_at"])
        return (self.now() - moment).total_seconds() < delay

    # ------------------------------------------------------------------ idempotency
    def replay(self, record_key: str) -> tuple[int, Any] | None:
        """The first answer given for this idempotency key, within Klarna's 24 h window."""
        self._forget_old_idempotency_records()
        record = self.data["idempotency"].get(record_key)
        return (record["status"], record["body"]) if record else None

    def remember(self, record_key: str, status: int, body: Any) -> None:
        self.data["idempotency"][record_key] = {
            "status": status,
            "body": body,
            "at": rules.format_utc(self.now()),
        }

    def _forget_old_idempotency_records(self) -> None:
        horizon = self.now() - IDEMPOTENCY_WINDOW
        records = self.data["idempotency"]
        for key in [k for k, r in records.items() if "at" in r and rules.parse_timestamp(r["at"]) < horizon]:
            del records[key]

    # ------------------------------------------------------------------ enforcement
    def enforcement_state(self, account_id: str) -> dict[str, Any]:
        enforcement = self.data["accounts"][account_id].get("enforcement")
        if enforcement is None:
            mode = "REPORTING" if self.account_certificates(account_id) else "NOT_ENABLED"
            return {"enforcement_mode": mode, "enforced_from": None}
        applies = datetime.fromisoformat(enforcement["applies_at"])
        mode = "ENFORCED" if self.now() >= applies else "REPORTING"
        return {"enforcement_mode": mode, "enforced_from": enforcement["enforced_from"]}

    def set_enforcement(self, account_id: str, body: Any) -> dict[str, Any]:
        value = body.get("enforced_from") if isinstance(body, dict) else None
        if not isinstance(value, str):
            raise invalid("enforced_from", "is required: NOW or a UTC timestamp")
        try:
            normalised = rules.parse_enforced_from(value, now=self.now())
        except InputError as exc:
            raise invalid("enforced_from", exc.message) from None
        moment = self.now() if normalised == "NOW" else rules.parse_timestamp(normalised)
        self.data["accounts"][account_id]["enforcement"] = {
            "enforced_from": rules.format_utc(moment),
            # Klarna applies enforcement some time after the chosen moment (up to 5 minutes).
            "applies_at": (moment + timedelta(seconds=self.options.enforcement_delay)).isoformat(),
        }
        return self.enforcement_state(account_id)

    def revoke(self, entry: dict[str, Any], body: Any) -> None:
        """Set revoked_from (default now); a certificate already revoked keeps its first date."""
        if self.certificate_status(entry) == "REVOKED":
            return
        value = body.get("revoked_from") if isinstance(body, dict) else None
        if value is None:
            entry["revoked_from"] = rules.format_utc(self.now())
            return
        try:
            entry["revoked_from"] = rules.format_utc(rules.parse_timestamp(value))
        except InputError:
            raise invalid("revoked_from", "must be a UTC timestamp like 2026-12-01T09:00:00Z") from None

    def remove_enforcement(self, account_id: str) -> None:
        self.data["accounts"][account_id]["enforcement"] = None

    def is_enforced(self, account_id: str) -> bool:
        return bool(self.enforcement_state(account_id)["enforcement_mode"] == "ENFORCED")
