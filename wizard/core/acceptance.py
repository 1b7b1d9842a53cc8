"""Whether Klarna accepts the certificate a call presented: the one place that decides it.

Klarna's verification header says ``VALID`` for an active certificate of the account. Klarna may
stop sending that header once mTLS is ENFORCED (its IP-restriction header does; the mTLS docs
leave it open). Under ENFORCED Klarna refuses every call without a certificate it accepts, so a 2xx
answer to a call made with our certificate, while the mode read just now is ENFORCED, proves that
Klarna accepts it: its own kind of evidence, ``ACCEPTED_UNDER_ENFORCEMENT``, shown as such and never
recorded as VALID ("last seen VALID" stays the header's). Every gate and check that asks "is the
installed pair accepted?" asks ``accepted``."""

from __future__ import annotations

VALID = "VALID"
ACCEPTED_UNDER_ENFORCEMENT = "ACCEPTED_UNDER_ENFORCEMENT"
NO_HEADER = "UNKNOWN"  # rules.VerificationStatus for an absent (or unreadable) header


def verdict(header: str, enforcement: str | None) -> str:
    """What a 2xx answer to a call made with our certificate says of it: the header's status, or,
    with no header while the enforcement mode read just now is ENFORCED, ACCEPTED_UNDER_ENFORCEMENT."""
    if header == NO_HEADER and enforcement == "ENFORCED":
        return ACCEPTED_UNDER_ENFORCEMENT
    return header


def in_words(status: str) -> str:
    """A status as a person reads it on a screen: accepted under enforcement is said so (never VALID)."""
    return "accepted under enforcement (no header)" if status == ACCEPTED_UNDER_ENFORCEMENT else status


def accepted(status: str | None) -> bool:
    """Klarna accepts the certificate: VALID, or a call with it accepted under enforcement."""
    return status in (VALID, ACCEPTED_UNDER_ENFORCEMENT)
