"""Which CA issues this account's certificates, as far as this profile can establish it: what lets
the Issue check accept a CN that Klarna assigned (``account_ca_issuer`` in the evidence, judged in
wizard/core/checks.py). Never a name taken on a file's word:

- the sandbox: the sandbox CA this profile trusts, only when its key verifies the certificate's
  signature;
- live and test: the certificate's own issuer when Klarna issued it with the CN we asked for (then
  it is plainly the account's CA), or when another certificate Klarna issued to this account (in
  its listing, or one this profile recorded) has the same issuer.

Otherwise None: not established, and an assigned CN is not accepted (unknown means no)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature

from wizard.core import crypto
from wizard.core.errors import CryptoError
from wizard.services.session import Session

if TYPE_CHECKING:
    from cryptography import x509

    from wizard.klarna.models import CertificateInfo


def account_ca_issuer(
    session: Session, certificate_pem: str, credential_id: str, listing: Iterable[CertificateInfo]
) -> str | None:
    """The issuer (RFC 4514) of the CA that issued ``certificate_pem`` when it is established to be
    this account's CA (see the module's docstring), else None."""
    leaf = crypto.load_certificate(certificate_pem)
    issuer = leaf.issuer.rfc4514_string()
    if session.environment == "sandbox":
        ca_bundle = session.ca_bundle
        return issuer if ca_bundle is not None and _signed_by_one_of(leaf, ca_bundle) else None
    if crypto.certificate_cn(leaf) == session.evidence.cn:
        return issuer
    return issuer if issuer in _other_issuers(session, credential_id, listing) else None


def _signed_by_one_of(leaf: x509.Certificate, ca_bundle: Path) -> bool:
    """Whether a CA certificate in ``ca_bundle`` issued ``leaf`` (name and signature both)."""
    try:
        authorities = crypto.load_certificates(ca_bundle.read_bytes())
    except (OSError, CryptoError):
        return False
    for authority in authorities:
        try:
            leaf.verify_directly_issued_by(authority)
        except (ValueError, TypeError, InvalidSignature):  # another name, another key type, a bad signature
            continue
        return True
    return False


def _other_issuers(session: Session, credential_id: str, listing: Iterable[CertificateInfo]) -> set[str]:
    """The issuers of the account's other certificates whose PEM is known: the listing's, and the
    ones this profile recorded (runtime certificates it issued)."""
    pems = [info.certificate_pem for info in listing if info.credential_id != credential_id]
    pems += [r.certificate_pem for cid, r in session.state.certificates.items() if cid != credential_id]
    issuers = set()
    for pem in pems:
        if not pem:
            continue
        try:
            issuers.add(crypto.load_certificate(pem).issuer.rfc4514_string())
        except CryptoError:
            continue
    return issuers
