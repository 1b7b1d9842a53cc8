"""Every export format in one registry, and the one service that writes them: a new format is
one row of ``EXPORTERS`` (the CLI's ``--format`` choices and the wizard's checkboxes are built
from it). Each export first asks the gate (``Action.EXPORT``); the bytes come from ``install``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wizard.core._lazy import lazy_module
from wizard.core.errors import InputError
from wizard.core.fsutil import write_output
from wizard.core.interlocks import Action

if TYPE_CHECKING:
    from wizard.services import install
    from wizard.services.install import InstalledPair
    from wizard.services.session import Session
else:  # the CLI builds --format's choices from EXPORTERS: --help must not load cryptography
    install = lazy_module("wizard.services.install")

PEM = "pem"  # the pair itself: what the install folder holds, so the wizard offers only the others


@dataclass(frozen=True)
class ExportRequest:
    pair: InstalledPair
    password: bytes | None  # PKCS#12 only
    key_passphrase: bytes | None  # the installed key's, when it is encrypted
    name: str  # the Kubernetes Secret's
    namespace: str | None


@dataclass(frozen=True)
class Exporter:
    label: str
    file_name: str  # the default name of the file written (pem: a folder's certificate.pem, private-key.pem)
    needs_password: bool
    data: Callable[[ExportRequest], bytes]  # the export as one text or file (pem: certificate then key)


def _pkcs12(request: ExportRequest) -> bytes:
    return install.pkcs12_bytes(request.pair, request.password or b"", request.key_passphrase)


def _k8s(request: ExportRequest) -> bytes:
    return install.k8s_secret_manifest(request.pair, request.name, request.namespace, request.key_passphrase)


EXPORTERS: dict[str, Exporter] = {
    PEM: Exporter("PEM pair", "certificate.pem", False, lambda r: install.bundle_pem(r.pair)),  # install.CERT_FILE
    "bundle": Exporter("PEM bundle", "bundle.pem", False, lambda r: install.bundle_pem(r.pair)),
    "p12": Exporter("PKCS#12 (Java, .NET)", "client.p12", True, _pkcs12),
    "k8s": Exporter("Kubernetes Secret", "klarna-mtls-secret.yaml", False, _k8s),
}


Password = bytes | Callable[[], bytes] | None  # a callable is asked only once the gate has passed


def _request(
    session: Session, fmt: str, password: Password, key_passphrase: bytes | None, name: str, namespace: str | None
) -> tuple[Exporter, ExportRequest]:
    """The gate first (a pair installed here), then the format's row, then the password."""
    pair = install.current_pair(session.install_dir)
    session.require(Action.EXPORT, installed=pair is not None)
    assert pair is not None  # "installed" holds
    exporter = EXPORTERS.get(fmt)
    if exporter is None:
        raise InputError(f"No export format {fmt!r}.", hint=f"Choose one of {', '.join(EXPORTERS)}.")
    passphrase = key_passphrase if key_passphrase is not None else session.key_passphrase
    if callable(password):
        password = password() if exporter.needs_password else None
    return exporter, ExportRequest(pair, password, passphrase, name, namespace)


def export(
    session: Session,
    fmt: str,
    out: Path,
    password: Password = None,
    *,
    key_passphrase: bytes | None = None,
    name: str = "klarna-mtls",
    namespace: str | None = None,
    keep_out: tuple[Path, ...] | None = None,
) -> list[Path]:
    """Write the installed pair as ``fmt`` to ``out`` (pem: a folder; 0600 for anything with the
    key), never into the tool's own folders (``keep_out``, default ``Session.kept_folders``)."""
    exporter, request = _request(session, fmt, password, key_passphrase, name, namespace)
    kept = session.kept_folders() if keep_out is None else keep_out
    if fmt == PEM:
        return list(install.export_pem_pair(request.pair, out, keep_out=kept))
    return [write_output(out, exporter.data(request), install.KEY_MODE, keep_out=kept)]


def export_bytes(
    session: Session,
    fmt: str,
    password: Password = None,
    *,
    key_passphrase: bytes | None = None,
    name: str = "klarna-mtls",
    namespace: str | None = None,
) -> bytes:
    """The export as bytes, for standard output (pem: certificate then key), after the same gate."""
    exporter, request = _request(session, fmt, password, key_passphrase, name, namespace)
    return exporter.data(request)
