"""hvac's and requests' exceptions as this package's errors: one class per cause, naming the place,
Vault's reason and what to do next.

Vault's reason is server text: cleaned for a terminal and scrubbed of any secret registered with the
log filter before it is shown. The exceptions themselves are never chained or quoted whole."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from wizard.core.env_vars import VAULT_ADDR, VAULT_CACERT, VAULT_ROLE_ID, VAULT_SECRET_ID_FILE
from wizard.core.logs import scrub
from wizard.core.rules import clean_text
from wizard.vault.errors import (
    VaultCasConflict,
    VaultError,
    VaultInvalidToken,
    VaultPermissionDenied,
    VaultRefused,
    VaultSealed,
    VaultTlsError,
    VaultUnreachable,
)

_MAX_REASON = 300
_MULTI_ERROR_RE = re.compile(r"^\s*\d+ errors? occurred:\s*")
_TLS_REASON_RE = re.compile(r"\[SSL: [A-Z_]+\] ([^'\"()]+)")
_NETWORK_REASONS = (
    ("refused", "connection refused"),
    ("timed out", "timed out"),
    ("Name or service not known", "unknown host name"),
    ("name resolution", "unknown host name"),
    ("nodename nor servname", "unknown host name"),
    ("reset", "connection reset"),
    ("aborted", "connection closed"),
)
SIGN_IN_AGAIN_HINT = "Sign in again (vault login / bao login), or set VAULT_TOKEN to a current token."


@dataclass(frozen=True)
class Attempt:
    """What was being done, for the message: ``verb`` ("read", "write", "list", "sign in at"), the
    place (or the address), the policy rule that allows it, and the check-and-set version sent."""

    verb: str
    place: str
    policy: str = ""
    cas: int | None = None


def translate(
    exc: Exception, attempt: Attempt, address: str, token_policies: Callable[[], list[str] | None]
) -> VaultError:
    """The VaultError for ``exc``. ``token_policies`` tells a refused token (None) from a valid
    token whose policies do not allow the attempt; it is only asked on a 403."""
    import hvac.exceptions as hv
    import requests.exceptions as rq

    if isinstance(exc, rq.SSLError):
        return _tls_error(exc, address, attempt)
    if isinstance(exc, (rq.ConnectionError, rq.Timeout)):
        return _unreachable(exc, address, attempt)
    if not isinstance(exc, hv.VaultError):
        return VaultRefused(
            f"Vault's answer could not be read when asked to {attempt.verb} {attempt.place} ({type(exc).__name__}).",
            hint=f"Check that {VAULT_ADDR} ({address}) is a Vault or OpenBao server.",
            place=attempt.place,
        )
    reason = vault_reason(exc)
    if attempt.verb == "sign in at" and isinstance(exc, (hv.InvalidRequest, hv.Forbidden, hv.InvalidPath)):
        return VaultInvalidToken(
            f"Vault at {address} refused the AppRole sign-in: {reason}.",
            hint=f"Check {VAULT_ROLE_ID}, the secret id in {VAULT_SECRET_ID_FILE} (it may have expired or been "
            "used up) and that AppRole is enabled at auth/approle.",
            place=attempt.place,
            reason=reason,
        )
    if isinstance(exc, (hv.VaultDown, hv.VaultNotInitialized)):
        return VaultSealed(
            f"Vault at {address} could not {attempt.verb} {attempt.place}: {reason}.",
            hint="Ask a Vault operator to unseal it (vault/bao operator unseal), then run again; nothing was changed.",
            place=attempt.place,
            reason=reason,
        )
    if isinstance(exc, hv.Unauthorized) or (isinstance(exc, hv.Forbidden) and token_policies() is None):
        return invalid_token(address, attempt, reason)
    if isinstance(exc, hv.Forbidden):
        return VaultPermissionDenied(
            f"Vault refused to {attempt.verb} {attempt.place}: {reason}.",
            hint=f"The token's policies must allow {attempt.policy}; ask a Vault operator for it.",
            place=attempt.place,
            reason=reason,
        )
    if isinstance(exc, hv.InvalidRequest) and any("check-and-set" in str(e) for e in exc.errors or []):
        return cas_conflict(attempt, reason)
    return VaultRefused(
        f"Vault refused to {attempt.verb} {attempt.place}: {reason}.", place=attempt.place, reason=reason
    )


def invalid_token(address: str, attempt: Attempt, reason: str) -> VaultInvalidToken:
    return VaultInvalidToken(
        f"Vault at {address} did not accept the token when asked to {attempt.verb} {attempt.place} "
        "(unknown, expired or revoked).",
        hint=SIGN_IN_AGAIN_HINT,
        place=attempt.place,
        reason=reason,
    )


def cas_conflict(attempt: Attempt, reason: str) -> VaultCasConflict:
    if attempt.cas:
        what = f"Someone else wrote {attempt.place} after version {attempt.cas} was read"
    else:
        what = f"Someone else created {attempt.place} meanwhile"
    return VaultCasConflict(
        f"{what}: Vault refused to overwrite it (check-and-set).",
        hint=f"Nothing was overwritten. Look at what is there now (bao kv get {attempt.place.removeprefix('vault:')}),"
        " then run again to write on top of it.",
        place=attempt.place,
        reason=reason,
    )


def vault_reason(exc: Exception) -> str:
    """Vault's own words for a refusal, one line, safe to show."""
    lines = []  # Vault joins several errors as "2 errors occurred:\n\t* one\n\t* two"
    for error in getattr(exc, "errors", None) or []:
        for line in _MULTI_ERROR_RE.sub("", str(error)).splitlines():
            if line.strip():
                lines.append(line.strip().removeprefix("* "))
    text = scrub(clean_text("; ".join(lines))).strip(" ;")
    return text[:_MAX_REASON] or "no reason given"


def _tls_error(exc: Exception, address: str, attempt: Attempt) -> VaultTlsError:
    found = _TLS_REASON_RE.search(str(exc))
    reason = scrub(clean_text(found.group(1))).strip() if found else "the TLS handshake failed"
    return VaultTlsError(
        f"Could not verify Vault's certificate at {address} ({reason}) when asked to {attempt.verb} {attempt.place}.",
        hint=f"Set {VAULT_CACERT} to the CA file that signed the server's certificate; "
        "verification is never turned off (VAULT_SKIP_VERIFY is not honoured).",
        place=attempt.place,
        reason=reason,
    )


def _unreachable(exc: Exception, address: str, attempt: Attempt) -> VaultUnreachable:
    import requests.exceptions as rq

    text = str(exc)
    reason = next((words for needle, words in _NETWORK_REASONS if needle in text), "")
    reason = reason or ("timed out" if isinstance(exc, rq.Timeout) else type(exc).__name__)
    if isinstance(exc, rq.ReadTimeout) and attempt.verb == "write":
        hint = f"The write may or may not have been applied: read {attempt.place} back before running again."
    else:
        hint = f"Check {VAULT_ADDR} and that the server runs and is reachable from here; nothing was changed."
    return VaultUnreachable(
        f"Vault at {address} did not answer ({reason}) when asked to {attempt.verb} {attempt.place}.",
        hint=hint,
        place=attempt.place,
        reason=reason,
    )
