"""The way back when Klarna refuses the installed pair (expired, revoked: the TLS handshake or
Klarna refuses it). The recovery commands (``rotate``, ``status``, ``certs list``, ``unenforce``
and the TUI's dashboard and rotate) then call without a client certificate, and say so, when Klarna says
enforcement is not in force; when it is, the error says what is locked and what is left to do.

The decision is ``ClientFactory.without_certificate_after`` (one place); this module is the retry
around a recovery command's work: the work runs once as usual, and only after a refusal of the
installed pair classified as such (``refused_pair``) is it run again, once, without it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Generic, TypeVar

from wizard.core.errors import ApiError, HandshakeRejected, MtlsRequired, WizardError
from wizard.services.session import Session

if TYPE_CHECKING:
    from wizard.services.status import ProfileStatus

T = TypeVar("T")


@dataclass(frozen=True)
class Recovered(Generic[T]):
    """A recovery command's result, and the note to show when it ran without a certificate."""

    value: T
    note: str | None = None


def refused_pair(error: BaseException) -> bool:
    """Klarna refused the pair a call presented: in the TLS handshake, or with MTLS_REQUIRED to a
    call that sent one (a call without one is MtlsRequired: no pair was refused)."""
    if isinstance(error, HandshakeRejected):
        return True
    return isinstance(error, ApiError) and not isinstance(error, MtlsRequired) and error.error_code == "MTLS_REQUIRED"


async def way_back(session: Session, refusal: WizardError) -> str:
    """Call without a certificate from now on, if Klarna says enforcement is not in force (else
    the factory raises what is locked); recorded in the audit log. Returns the note to show."""
    note = await session.clients.without_certificate_after(refusal)
    session.audit.record("installed_pair_refused", called_without_certificate=True, reason=refusal.message)
    return note


async def recovering(session: Session, work: Callable[[], Awaitable[T]]) -> Recovered[T]:
    """``work()``; after a refusal of the installed pair, the way back, then ``work()`` once more."""
    try:
        return Recovered(await work())
    except (HandshakeRejected, ApiError) as error:
        if not refused_pair(error):
            raise
        note = await way_back(session, error)
    value = await work()
    _record_refused(session)
    return Recovered(value, note)


async def status_recovering(session: Session) -> Recovered[ProfileStatus]:
    """``gather_status`` as a recovery command: read without a certificate when the installed pair
    is refused, its verification then shown as REJECTED (what the installed pair gets)."""
    from wizard.services.status import gather_status

    found = await recovering(session, lambda: gather_status(session))
    if found.note is None:
        return found
    return Recovered(replace(found.value, verification="REJECTED"), found.note)


def _record_refused(session: Session) -> None:
    """The installed pair's last verification status is REJECTED: a reading made without it (the
    listing's NOT_PRESENT) does not describe it."""
    from wizard.services.install import current_pair

    pair = current_pair(session.install_dir)
    if pair is not None:
        session.state.record_status("REJECTED", pair.fingerprint, "way back")
        session.save()
