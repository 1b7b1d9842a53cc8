"""Plain-words explanations of what the verification header (or a refused handshake) means."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnosis:
    status: str
    summary: str
    next_steps: tuple[str, ...]


DIAGNOSES: dict[str, Diagnosis] = {
    "VALID": Diagnosis(
        "VALID",
        "Klarna received an active certificate issued to your account. This runtime is ready.",
        (),
    ),
    "NOT_PRESENT": Diagnosis(
        "NOT_PRESENT",
        "The request reached Klarna without any client certificate.",
        (
            "Point your HTTP client at both files: the certificate and the private key.",
            "A TLS-terminating proxy or load balancer in between drops client certificates; "
            "configure the certificate on the hop that talks to Klarna.",
            "Check the runtime actually loads the files (path typos fail silently in some clients).",
        ),
    ),
    "ACCEPTED_UNDER_ENFORCEMENT": Diagnosis(
        "ACCEPTED_UNDER_ENFORCEMENT",
        "Klarna accepted a call made with this certificate while mTLS is ENFORCED (it sent no "
        "verification header): under enforcement it refuses every certificate it does not accept.",
        (),
    ),
    "INVALID": Diagnosis(
        "INVALID",
        "A certificate was sent, but Klarna does not accept it.",
        (
            "It may be revoked or expired: list your certificates and check its status.",
            "It may belong to another account (e.g. a test certificate against live).",
            "Install the certificate Klarna issued for this account, or issue a new one.",
        ),
    ),
    "REJECTED": Diagnosis(
        "REJECTED",
        "The server refused the client certificate during the TLS handshake.",
        (
            "The certificate was not issued by Klarna for this environment, or it has expired.",
            "Check the installed certificate and key are the pair Klarna issued (doctor does this).",
        ),
    ),
    "UNKNOWN": Diagnosis(
        "UNKNOWN",
        "Klarna's answer carried no verification status.",
        (
            "The header appears only once the account has at least one certificate.",
            "Try again in a minute; if it persists, contact Klarna support with the correlation id.",
        ),
    ),
}


def diagnose(status: str) -> Diagnosis:
    return DIAGNOSES.get(status, DIAGNOSES["UNKNOWN"])
