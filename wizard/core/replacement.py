"""Whether a newly issued certificate may replace the one in use: a rotation never makes things
worse. Pure: the caller passes what it holds (the certificate Klarna answered, the key and CN the
rotation asked for, the certificate in use, the time) and gets every reason to refuse.

The onboarding checks (the certificate is a readable leaf for our key, with our CN, valid now)
and more, since a rotation replaces something that works: the new certificate comes from the
same issuer (Klarna's CA that issued the current one), does not expire before the current one,
and is not already inside the renewal window. A CN of the form Klarna documents for the CN it
picks itself (``<account suffix>-<16 hex>``) is accepted, with a note."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509

from wizard.core import crypto, rules
from wizard.core.errors import CryptoError


@dataclass(frozen=True)
class Replacement:
    """What a rotation asked for, and what it would replace."""

    certificate_pem: str  # what Klarna answered
    public_key_id: str  # of the key the rotation made
    cn: str  # the CN the CSR asked for (the profile's)
    account_id: str
    current_pem: str | None  # the certificate in use now (None: not recorded)


@dataclass(frozen=True)
class Verdict:
    reasons: list[str] = field(default_factory=list)  # each refuses the certificate
    notes: list[str] = field(default_factory=list)  # accepted, but worth saying
    cn: str | None = None  # the certificate's CN (the one to record when it is accepted)

    @property
    def accepted(self) -> bool:
        return not self.reasons


def judge(replacement: Replacement, now: datetime) -> Verdict:
    """Every reason the new certificate may not replace the current one (none: it may)."""
    try:
        cert = crypto.load_certificate(replacement.certificate_pem)
    except CryptoError:
        return Verdict(["Klarna's answer is not a readable certificate."])
    reasons: list[str] = []
    notes: list[str] = []
    try:
        crypto.verify_not_ca(cert)
        crypto.verify_key_type(cert.public_key())
    except CryptoError as exc:
        reasons.append(exc.message)
    if crypto.public_key_id(cert.public_key()) != replacement.public_key_id:
        reasons.append("The certificate is for another key than the one this rotation made.")
    _judge_cn(cert, replacement, reasons, notes)
    try:
        crypto.verify_cert_valid_at(cert, now)
    except CryptoError as exc:
        reasons.append(exc.message)
    expires = cert.not_valid_after_utc
    if now < expires <= now + rules.RENEWAL_WINDOW:  # (an expiry already past is said above)
        days = rules.RENEWAL_WINDOW.days
        reasons.append(
            f"It expires on {rules.format_utc(expires)}, inside the {days}-day renewal window: "
            "Klarna issues certificates for 3 years."
        )
    current = _current(replacement.current_pem)
    if current is not None:
        _compare(cert, current, reasons)
    return Verdict(reasons, notes, crypto.certificate_cn(cert))


def _judge_cn(cert: x509.Certificate, replacement: Replacement, reasons: list[str], notes: list[str]) -> None:
    cn = crypto.certificate_cn(cert)
    if cn == replacement.cn:
        return
    if rules.is_assigned_cn(cn, replacement.account_id):
        notes.append(
            f"Klarna gave the certificate the CN '{cn}' (the form it documents for a CN it assigns) "
            f"instead of '{replacement.cn}'; accepted."
        )
        return
    reasons.append(f"The certificate's CN is '{cn}', but this profile's CN is '{replacement.cn}'.")


def _compare(cert: x509.Certificate, current: x509.Certificate, reasons: list[str]) -> None:
    """Against the certificate in use: the same issuer, and no earlier expiry."""
    if cert.issuer != current.issuer:
        reasons.append(
            f"It was issued by '{cert.issuer.rfc4514_string()}', not by '{current.issuer.rfc4514_string()}', "
            "Klarna's CA that issued the certificate in use."
        )
    if cert.not_valid_after_utc < current.not_valid_after_utc:
        reasons.append(
            f"It expires on {rules.format_utc(cert.not_valid_after_utc)}, before the certificate it would "
            f"replace ({rules.format_utc(current.not_valid_after_utc)})."
        )


def _current(pem: str | None) -> x509.Certificate | None:
    if not pem:
        return None
    try:
        return crypto.load_certificate(pem)
    except CryptoError:
        return None
