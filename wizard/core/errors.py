"""One error hierarchy: every error the project raises carries a title and a message a person
understands, plus what to do next. Nothing here may hold a secret."""

from __future__ import annotations

from typing import Any


class WizardError(Exception):
    """Base of every error klarna-mtls raises on purpose."""

    title = "Something went wrong"

    def __init__(self, message: str, title: str | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class InputError(WizardError):
    """A value typed or passed by the user does not follow Klarna's rules."""

    title = "Invalid input"


class CryptoError(WizardError):
    """A key, CSR or certificate is malformed or does not satisfy a rule."""

    title = "Key or certificate problem"


class KeyLocked(CryptoError):
    """The private key is encrypted and no passphrase, or a wrong one, was given. Nothing asked on
    the terminal: the front end asks (the TUI's passphrase modal, KLARNA_MTLS_KEY_PASSPHRASE)."""

    title = "Private key passphrase needed"

    def __init__(self, path: object, *, wrong: bool = False) -> None:
        if wrong:
            message = f"Wrong passphrase for the private key {path}."
        else:
            message = f"The private key {path} is encrypted, and no passphrase was given for it."
        super().__init__(
            message,
            title="Wrong key passphrase" if wrong else None,
            hint="Type the passphrase chosen when the key was made (headless: set KLARNA_MTLS_KEY_PASSPHRASE).",
        )
        self.path = path
        self.wrong = wrong


class SecretStoreError(WizardError):
    """The secret store cannot hold or return the API key."""

    title = "Secret store problem"


class JournalError(WizardError):
    """The journal cannot be read or written."""

    title = "Saved progress problem"


class StorageError(WizardError):
    """A file could not be written (full disk, permissions); prior state is intact."""

    title = "Could not write file"


_OS_REASONS = {  # errno name -> (why, what next); "{folder}" is the path's folder
    "ENOSPC": ("the disk is full", "Free some space and try again; nothing was changed."),
    "EDQUOT": ("the disk quota is used up", "Free some space and try again; nothing was changed."),
    "EACCES": ("permission denied", "Check who owns {folder} and its mode, or choose a folder you can write."),
    "EPERM": ("permission denied", "Check who owns {folder} and its mode, or choose a folder you can write."),
    "EROFS": ("the file system is read-only", "Choose a folder on a writable file system."),
    "EEXIST": ("a file is in the way where a folder is needed", "Choose a folder, or move that file away."),
    "ENOTDIR": ("part of the path is a file, not a folder", "Choose a folder, or move that file away."),
    "EISDIR": ("a folder is in the way where a file is needed", "Move that folder away, or choose another path."),
    "ENAMETOOLONG": ("the path is too long", "Choose a shorter path."),
    "ELOOP": ("the path has a symbolic link loop", "Fix the symbolic links, or choose another path."),
    "ENOENT": ("it does not exist", "Check the path, then try again."),
}
_BY_CLASS = {
    FileExistsError: "EEXIST",
    NotADirectoryError: "ENOTDIR",
    IsADirectoryError: "EISDIR",
    PermissionError: "EACCES",
    FileNotFoundError: "ENOENT",
}


def storage_error(path: object, exc: OSError, doing: str = "write") -> StorageError:
    """An OSError as a StorageError that names the path, the reason and what to do next."""
    import errno
    from pathlib import Path

    name = errno.errorcode.get(exc.errno or -1, "") or _BY_CLASS.get(type(exc), "")
    why, hint = _OS_REASONS.get(
        name, (exc.strerror or name or "an operating system error", "Nothing was changed; try again.")
    )
    where = Path(str(exc.filename)) if exc.filename else Path(str(path))
    return StorageError(f"Could not {doing} {where}: {why}.", hint=hint.format(folder=where.parent))


class TransportError(WizardError):
    """The request did not get an HTTP answer: timeout, reset, DNS, TLS. A plain TransportError
    is a connection that failed or broke with no more specific cause."""

    title = "Network problem"
    # Whether another attempt could get an answer; a failure that repeats by construction says no.
    retryable = True


class HandshakeRejected(TransportError):
    """The server refused our client certificate during the TLS handshake."""

    title = "Client certificate rejected"
    retryable = False


class UntrustedServer(TransportError):
    """The server's certificate is not trusted, or is for another host name."""

    title = "Untrusted server"
    retryable = False


class TlsTooOld(TransportError):
    """The server does not speak TLS 1.2 or newer."""

    title = "TLS too old"
    retryable = False


class ClientCertificateRequired(TransportError):
    """The server asked for a client certificate in the TLS handshake, and the call sent none."""

    title = "Client certificate required"


class ProxyFailed(TransportError):
    """The proxy taken from the environment could not reach the server."""

    title = "Proxy problem"


class RequestTimeout(TransportError):
    """The server did not accept a connection, or did not answer, in time."""

    title = "Timeout"


class ApiError(WizardError):
    """Klarna answered with an error status."""

    title = "Klarna API error"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_id: str | None = None,
        error_code: str | None = None,
        error_type: str | None = None,
        correlation_id: str | None = None,
        klarna_correlation_id: str | None = None,
        validation_errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
        title: str | None = None,
        hint: str = "",
    ) -> None:
        super().__init__(message, title=title, hint=hint)
        self.status = status
        self.error_id = error_id
        self.error_code = error_code
        self.error_type = error_type
        self.correlation_id = correlation_id
        self.klarna_correlation_id = klarna_correlation_id
        self.validation_errors = validation_errors or []
        self.retry_after = retry_after

    def ids(self) -> str:
        """The ids Klarna support asks for, ``(error_id=…, klarna-correlation-id=…, …)``, or ""."""
        ids = [
            f"{label}={value}"
            for label, value in (
                ("error_id", self.error_id),
                ("klarna-correlation-id", self.klarna_correlation_id),
                ("partner-correlation-id", self.correlation_id),
            )
            if value
        ]
        return f"({', '.join(ids)})" if ids else ""

    def __str__(self) -> str:
        text, ids = super().__str__(), self.ids()
        return f"{text} {ids}" if ids else text


class StageBlocked(WizardError):
    """advance() was refused: the current stage still has failing checks."""

    title = "Stage not complete"

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons) or "stage checks failed")
        self.reasons = list(reasons)


class InterlockRefused(WizardError):
    """A destructive action was refused because it could lock the partner out."""

    title = "Refused for your safety"


class InstalledPairRefused(WizardError):
    """Klarna refused the installed pair and the way back (a call without it) is closed (mTLS
    enforced) or could not be established: what is locked, and what is left to do. Klarna's
    refusal, not a problem with this machine's files."""

    title = "Client certificate refused"


class LockedOut(InstalledPairRefused):
    """... and mTLS is enforced: every call from this profile is refused, with the certificate or
    without one. The hint holds the steps (repair, else a runtime certificate; unenforcing last)."""

    title = "Locked out: mTLS enforced"


class MtlsRequired(ApiError):
    """A call without a client certificate was refused (403, or Klarna's mTLS refusal code answered
    401) by an account that enforces mTLS (for example a second service or machine onboarding onto
    an account already enforced). With our certificate presented, the refusal is CertificateRefused."""

    title = "mTLS required on this account"


class CertificateRefused(ApiError):
    """A call made with our client certificate was refused under enforcement (Klarna's mTLS
    refusal code, answered 401 or 403: the status is not documented): the certificate presented
    is not accepted now (revoked, expired, another account's, or issued moments ago). Not a wrong
    API key, which Klarna answers 401 with its own code."""

    title = "Client certificate refused"


class NotVerified(WizardError):
    """Verification polling ended without the installed certificate seen VALID (enough times in a
    row); the subclasses say why. ``status`` is the last status seen."""

    title = "Not verified"

    def __init__(self, status: str, summary: str, next_step: str) -> None:
        super().__init__(f"Verification did not reach VALID: last status {status}. {summary}", hint=next_step)
        self.status = status


class VerificationFailed(NotVerified):
    """Klarna judged the certificate: the last status was INVALID or REJECTED."""


class VerificationTimeout(NotVerified):
    """Time ran out without a verdict against the certificate (e.g. NOT_PRESENT, UNKNOWN, or VALID
    not yet seen enough times in a row)."""


class EnforcementNotApplied(WizardError):
    """Enforcement was scheduled, but Klarna did not report it ENFORCED within the watch."""

    title = "Enforcement not applied yet"

    def __init__(self, mode: str) -> None:
        super().__init__(
            f"Klarna has not applied enforcement yet (currently {mode}).",
            hint="Klarna takes up to 5 minutes; check later with klarna-mtls status.",
        )
        self.mode = mode


class EnforcementNotProved(WizardError):
    """Klarna reports ENFORCED, yet a request without a client certificate was still accepted."""

    title = "Enforcement not proved"

    def __init__(self) -> None:
        super().__init__(
            "Klarna answered ENFORCED, but a request without a client certificate was still accepted.",
            hint="Check again in a few minutes (klarna-mtls status).",
        )
