"""The support bundle: what Klarna support or a colleague needs to help with a profile (its stage,
certificates, enforcement, recent verification history, versions and paths), as JSON. Never a
secret: the API key appears masked, private keys not at all.

It is built from this machine's files and journal, without calling Klarna: every fact that comes
from the journal says when it was last observed (``observed_at``/``last_seen``), and the journal's
stage and enforcement are what the tool last recorded, not what Klarna says now."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from wizard import __version__
from wizard.core import crypto, rules
from wizard.services.install import current_pair
from wizard.services.session import Session


def support_bundle(session: Session) -> dict[str, Any]:
    """What Klarna support or a colleague needs; never a secret."""

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    pair = current_pair(session.install_dir)
    certificate = None
    if pair is not None:
        cert = crypto.load_certificate(pair.cert_path.read_bytes())
        certificate = {
            "fingerprint": pair.fingerprint,
            "cn": crypto.certificate_cn(cert),
            "not_after": rules.format_utc(cert.not_valid_after_utc),
            "label": pair.label,
        }
    ev = session.evidence
    return {
        "profile": session.profile,
        "environment": ev.environment,
        "account_id": ev.account_id,
        "stage": session.model.stage.value,
        "observed": "from the journal and this machine's files; Klarna was not asked (klarna-mtls status asks)",
        "api_key": ev.api_key_masked,
        "secret_backend": ev.secret_backend_name,
        "installed_certificate": certificate,
        "certificates": {
            cid: {k: v for k, v in info.to_dict().items() if k != "label"}
            for cid, info in session.state.certificates.items()
        },
        "enforcement": _enforcement(session),
        "status_history": [entry.to_dict() for entry in session.state.status_history[-50:]],
        "versions": {
            "klarna-mtls": __version__,
            "python": platform.python_version(),
            "cryptography": version("cryptography"),
            "httpx": version("httpx"),
            "textual": version("textual"),
            "keyring": version("keyring"),
        },
        "paths": {
            "install_dir": str(session.install_dir),
            "journal": str(session.journal.path),
            "audit_log": str(session.audit.path),
        },
    }


def _enforcement(session: Session) -> dict[str, Any]:
    """What the journal holds of enforcement, each fact with when it was observed: the tool's
    request (and Klarna's answer to it), and what Klarna last said when asked."""
    ev, settings = session.evidence, session.settings
    return {
        "requested": {
            "enforced_from": ev.enforced_from,
            "requested_at": ev.enforced_from_chosen_at,
            "answer": ev.enforcement_mode,
        },
        "last_observed": settings.enforcement_seen,
        "observed_at": settings.enforcement_seen_at,
        "proved_at": settings.enforcement_proved_at,
    }
