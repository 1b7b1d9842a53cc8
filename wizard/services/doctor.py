"""The doctor: every check it runs, listed here (the files here, Klarna as seen now, API-key
hygiene), each finding with what to do next. A service over lifecycle and keys, so neither needs
the other to register anything."""

from __future__ import annotations

from wizard.core.errors import ApiError, CryptoError, TransportError
from wizard.services.api_keys import hygiene_findings
from wizard.services.lifecycle import DoctorCheck, Finding, doctor_local, doctor_remote, gather_status
from wizard.services.session import Session

DOCTOR_CHECKS: tuple[DoctorCheck, ...] = (doctor_local, doctor_remote, hygiene_findings)


async def run_doctor(session: Session) -> list[Finding]:
    status = None
    findings: list[Finding] = []
    try:
        status = await gather_status(session)
    except CryptoError as error:  # e.g. a key file others can read: we refuse to use it
        findings.append(Finding("remote checks", "critical", f"Skipped: {error.message}", error.hint))
    except (TransportError, ApiError) as error:
        findings.append(Finding("reachability", "error", str(error), error.hint))
    for check in DOCTOR_CHECKS:
        findings.extend(await check(session, status))
    return findings
