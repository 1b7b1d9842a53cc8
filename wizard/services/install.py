"""Installing the certificate and key, and exporting them.

Each pair goes into its own versioned folder ``<install_dir>/<label>/``; a ``current`` symlink is
flipped atomically so a runtime can point at stable paths
(``<install_dir>/current/certificate.pem`` and ``…/private-key.pem``, the file names of Klarna's
curl example), and ``previous`` keeps the pair it replaced for rollback."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from wizard.core import crypto, rules
from wizard.core.errors import CryptoError, InputError, StorageError, storage_error
from wizard.core.fsutil import atomic_write, ensure_private_dir, file_mode, fsync_dir, write_output
from wizard.klarna.endpoints import CERTIFICATES_PATH

CERT_FILE = "certificate.pem"
KEY_FILE = "private-key.pem"
CURRENT = "current"
PREVIOUS = "previous"
CERT_MODE, KEY_MODE, DIR_MODE = 0o644, 0o600, 0o700
# A label names a folder: no separators, no leading dot (temp folders), not a pointer's name.
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_K8S_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_K8S_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class InstalledPair:
    label: str
    folder: Path
    cert_path: Path
    key_path: Path
    fingerprint: str

    def modes(self) -> tuple[int, int, int]:
        """(certificate, private key, folder) permission bits."""
        return file_mode(self.cert_path), file_mode(self.key_path), file_mode(self.folder)


def label_for(fingerprint: str) -> str:
    """The default label: the first 16 hex digits of the SHA-256 fingerprint, lower case."""
    return fingerprint.replace(":", "")[:16].lower()


def verify_label(label: str) -> None:
    if not isinstance(label, str) or not _LABEL_RE.fullmatch(label) or label in (CURRENT, PREVIOUS):
        raise InputError(
            f"'{label}' is not a usable install label.",
            hint="Use letters, digits, '-', '_' or '.', e.g. the first 16 hex digits of the fingerprint.",
        )


# ---------------------------------------------------------------- install
def install_pair(
    install_dir: Path, cert_pem: bytes, key_pem: bytes, *, label: str, key_passphrase: bytes | None = None
) -> InstalledPair:
    """Write the pair into ``install_dir/label`` after proving the certificate belongs to the key.

    A new label is written in a hidden temporary folder and renamed into place, so a crash leaves
    either the whole pair or nothing. Re-installing the same certificate under its label is allowed
    (resume); reusing a label for another certificate is refused. ``current`` is not touched: see
    ``activate``."""
    verify_label(label)
    key = crypto.load_private_key(key_pem, key_passphrase)
    cert_pem = crypto.leaf_first(cert_pem, key)  # as Klarna returned it; the leaf proved ours
    cert = crypto.load_certificate(cert_pem)
    crypto.verify_cert_matches_key(cert, key)
    crypto.verify_not_ca(cert)
    fingerprint = crypto.fingerprint_sha256(cert)
    try:
        ensure_private_dir(install_dir)
    except OSError as exc:  # a file in the way, a read-only or foreign folder: say which and why
        raise storage_error(install_dir, exc, "install into") from None
    folder = install_dir / label
    if folder.is_dir():
        _refuse_other_certificate(folder, fingerprint)
        _write_pair_files(folder, cert_pem, key_pem)  # same cert: always consistent
    else:
        _write_new_folder(install_dir, folder, cert_pem, key_pem)
    return _pair(folder)


def _refuse_other_certificate(folder: Path, fingerprint: str) -> None:
    try:
        existing = _pair(folder).fingerprint
    except (CryptoError, OSError):
        existing = None  # a damaged leftover is rewritten below
    if existing is not None and existing != fingerprint:
        raise StorageError(
            f"{folder} already holds another certificate ({crypto.fingerprint_suffix(existing)}).",
            hint="Install under another label (the default is the fingerprint's first 16 hex digits).",
        )


def _write_pair_files(folder: Path, cert_pem: bytes, key_pem: bytes) -> None:
    ensure_private_dir(folder)
    atomic_write(folder / KEY_FILE, key_pem, KEY_MODE)
    atomic_write(folder / CERT_FILE, cert_pem, CERT_MODE)


def _write_new_folder(install_dir: Path, folder: Path, cert_pem: bytes, key_pem: bytes) -> None:
    staging = Path(tempfile.mkdtemp(dir=install_dir, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        os.chmod(staging, DIR_MODE)
        _write_pair_files(staging, cert_pem, key_pem)
        os.rename(staging, folder)
    except OSError as exc:
        raise StorageError(f"Could not install into {folder}: {exc.strerror}.", hint="Nothing was changed.") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    fsync_dir(install_dir)


def _pair(folder: Path) -> InstalledPair:
    cert = crypto.load_certificate((folder / CERT_FILE).read_bytes())
    return InstalledPair(folder.name, folder, folder / CERT_FILE, folder / KEY_FILE, crypto.fingerprint_sha256(cert))


# ---------------------------------------------------------------- current / previous
def activate(install_dir: Path, label: str) -> InstalledPair:
    """Point ``current`` at ``label``; the pair it pointed at becomes ``previous``."""
    verify_label(label)
    if not (install_dir / label / CERT_FILE).is_file() or not (install_dir / label / KEY_FILE).is_file():
        raise StorageError(f"No installed pair named {label} in {install_dir}.")
    old = current_pair(install_dir)
    if old is not None and old.label != label:
        _flip(install_dir, PREVIOUS, old.label)
    _flip(install_dir, CURRENT, label)
    return _pair(install_dir / label)


def _flip(install_dir: Path, name: str, target: str) -> None:
    """Replace the symlink ``name`` atomically: readers see the old target or the new, never none."""
    temp = install_dir / f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        os.symlink(target, temp)  # relative: the install folder can be moved as a whole
        os.replace(temp, install_dir / name)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise StorageError(
            f"Could not switch {install_dir / name}: {exc.strerror}.", hint="The previous pointer is unchanged."
        ) from exc
    fsync_dir(install_dir)


def _pointed_label(install_dir: Path, name: str) -> str | None:
    link = install_dir / name
    if not link.is_symlink():
        return None
    label = os.readlink(link)
    return label if _LABEL_RE.fullmatch(label) else None  # only ever one of our own folders


def current_pair(install_dir: Path) -> InstalledPair | None:
    label = _pointed_label(install_dir, CURRENT)
    if label is None or not (install_dir / label / CERT_FILE).is_file():
        return None
    return _pair(install_dir / label)


def list_pairs(install_dir: Path) -> list[InstalledPair]:
    """Every installed pair, by label; folders whose certificate cannot be read are skipped."""
    if not install_dir.is_dir():
        return []
    pairs = []
    for folder in sorted(install_dir.iterdir()):
        if folder.is_symlink() or not folder.is_dir() or not _LABEL_RE.fullmatch(folder.name):
            continue
        try:
            pairs.append(_pair(folder))
        except (CryptoError, OSError):
            continue
    return pairs


def rollback(install_dir: Path) -> InstalledPair:
    """Swap ``current`` and ``previous``."""
    label = _pointed_label(install_dir, PREVIOUS)
    if label is None or not (install_dir / label / CERT_FILE).is_file():
        raise StorageError("There is no previous pair to roll back to.")
    return activate(install_dir, label)


def verify_private_files(pair_or_path: InstalledPair | Path) -> None:
    """Refuse a key file or key folder that group or others can use, spelling out the fix.

    Accepts an installed pair, a key file, or a folder holding private-key.pem."""
    key_path, folder = _key_and_folder(pair_or_path)
    try:
        key_mode, dir_mode = file_mode(key_path), file_mode(folder)
    except OSError as exc:
        raise StorageError(f"Cannot check {key_path}: {exc.strerror}.") from exc
    if key_mode & 0o077:
        raise CryptoError(
            f"The private key {key_path} is readable by others (mode {key_mode:03o}).",
            title="Unsafe key file",
            hint=f"Run: chmod 600 {shlex.quote(str(key_path))}",
        )
    if dir_mode & 0o077:  # 0700 (or stricter): others must not even list or replace the key
        raise CryptoError(
            f"The folder {folder} is open to others (mode {dir_mode:03o}).",
            title="Unsafe key folder",
            hint=f"Run: chmod 700 {shlex.quote(str(folder))}",
        )


def _key_and_folder(pair_or_path: InstalledPair | Path) -> tuple[Path, Path]:
    if isinstance(pair_or_path, InstalledPair):
        return pair_or_path.key_path, pair_or_path.folder
    path = Path(pair_or_path)
    if path.is_dir():
        return path / KEY_FILE, path
    return path, path.parent


# ---------------------------------------------------------------- exports
def export_pem_pair(pair: InstalledPair, out_dir: Path, *, keep_out: Iterable[Path] = ()) -> tuple[Path, Path]:
    """certificate.pem (0644) and private-key.pem (0600), the names Klarna's curl example uses.

    Every export goes through fsutil.write_output: never through a link, only into folders no
    other user can change; a path the user named is also kept out of ``keep_out``
    (Session.kept_folders: the tool's own folders)."""
    kept = tuple(keep_out)
    cert_path = write_output(out_dir / CERT_FILE, pair.cert_path.read_bytes(), CERT_MODE, keep_out=kept)
    key_path = write_output(out_dir / KEY_FILE, pair.key_path.read_bytes(), KEY_MODE, keep_out=kept)
    return cert_path, key_path


def bundle_pem(pair: InstalledPair) -> bytes:
    """Certificate then key in one PEM text: what HAProxy and some clients want."""
    cert = pair.cert_path.read_bytes()
    return cert + (b"" if cert.endswith(b"\n") else b"\n") + pair.key_path.read_bytes()


def export_bundle(pair: InstalledPair, out_path: Path, *, keep_out: Iterable[Path] = ()) -> Path:
    """bundle_pem in one file (0600)."""
    return write_output(out_path, bundle_pem(pair), KEY_MODE, keep_out=keep_out)


def pkcs12_bytes(pair: InstalledPair, password: bytes, key_passphrase: bytes | None = None) -> bytes:
    """A password-protected PKCS#12 (PBES2, AES-256-CBC, SHA-256 MAC) for Java and .NET."""
    if not password:
        raise InputError("A PKCS#12 export needs a password.")
    key = crypto.load_private_key(pair.key_path.read_bytes(), key_passphrase)
    cert = crypto.load_certificate(pair.cert_path.read_bytes())
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password)
    )
    return pkcs12.serialize_key_and_certificates(b"klarna-mtls", key, cert, None, encryption)


def export_pkcs12(
    pair: InstalledPair,
    out_path: Path,
    password: bytes,
    key_passphrase: bytes | None = None,
    *,
    keep_out: Iterable[Path] = (),
) -> Path:
    """pkcs12_bytes in one file (0600)."""
    data = pkcs12_bytes(pair, password, key_passphrase)
    return write_output(out_path, data, KEY_MODE, keep_out=keep_out)


def k8s_secret_manifest(
    pair: InstalledPair, name: str, namespace: str | None = None, key_passphrase: bytes | None = None
) -> bytes:
    """A ``kubernetes.io/tls`` Secret manifest. Kubernetes consumers need the key unencrypted, so an
    encrypted key is decrypted with ``key_passphrase`` (refused without it)."""
    _verify_k8s_names(name, namespace)
    cert_pem = pair.cert_path.read_bytes()
    key_pem = _unencrypted_key_pem(pair.key_path.read_bytes(), key_passphrase)
    lines = ["apiVersion: v1", "kind: Secret", "metadata:", f"  name: {name}"]
    if namespace:
        lines.append(f"  namespace: {namespace}")
    lines += [
        "type: kubernetes.io/tls",
        "data:",
        f"  tls.crt: {base64.b64encode(cert_pem).decode()}",
        f"  tls.key: {base64.b64encode(key_pem).decode()}",
    ]
    return ("\n".join(lines) + "\n").encode()


def export_k8s_secret(
    pair: InstalledPair,
    out_path: Path,
    name: str,
    namespace: str | None = None,
    key_passphrase: bytes | None = None,
    *,
    keep_out: Iterable[Path] = (),
) -> Path:
    """k8s_secret_manifest in one file (0600)."""
    data = k8s_secret_manifest(pair, name, namespace, key_passphrase)
    return write_output(out_path, data, KEY_MODE, keep_out=keep_out)


def pair_fields(pair: InstalledPair, key_passphrase: bytes | None = None) -> dict[str, str]:
    """The pair as text fields for a key-value store (Vault KV version 2): the certificate as it was
    installed (as Klarna returned it), the private key unencrypted (its readers, a Vault Agent
    template or an External Secret, hand it to servers that take no passphrase), the certificate's
    SHA-256 fingerprint and its expiry (UTC). The key is checked against the certificate first."""
    cert_pem = pair.cert_path.read_bytes()
    cert = crypto.load_certificate(cert_pem)
    key_pem = _unencrypted_key_pem(pair.key_path.read_bytes(), key_passphrase, "This export")
    crypto.verify_cert_matches_key(cert, crypto.load_private_key(key_pem))
    return {
        "certificate": cert_pem.decode("ascii"),
        "private_key": key_pem.decode("ascii"),
        "fingerprint_sha256": crypto.fingerprint_sha256(cert),
        "expires_at": rules.format_utc(cert.not_valid_after_utc),
    }


def _verify_k8s_names(name: str, namespace: str | None) -> None:
    # Validated, not quoted: a name is also what keeps the hand-written YAML well formed.
    if not isinstance(name, str) or len(name) > 253 or not _K8S_NAME_RE.fullmatch(name):
        raise InputError(
            f"'{name}' is not a valid Kubernetes Secret name.",
            hint="Use lower-case letters, digits, '-' and '.', e.g. klarna-mtls.",
        )
    if namespace is not None and (len(namespace) > 63 or not _K8S_NAMESPACE_RE.fullmatch(namespace)):
        raise InputError(
            f"'{namespace}' is not a valid Kubernetes namespace.",
            hint="Use lower-case letters, digits and '-', at most 63 characters.",
        )


def _unencrypted_key_pem(
    key_pem: bytes, key_passphrase: bytes | None, consumer: str = "A Kubernetes TLS Secret"
) -> bytes:
    if b"ENCRYPTED" not in key_pem:
        return key_pem
    if not key_passphrase:
        raise CryptoError(
            f"The private key is encrypted, and {consumer[0].lower()}{consumer[1:]} needs it unencrypted.",
            hint="Give the key passphrase (KLARNA_MTLS_KEY_PASSPHRASE) to export it.",
        )
    return crypto.make_private_key_pem(crypto.load_private_key(key_pem, key_passphrase))


# ---------------------------------------------------------------- snippets
def current_paths(install_dir: Path) -> tuple[Path, Path]:
    """The stable paths through ``current``: configure a runtime once, rotations need no edit."""
    return install_dir / CURRENT / CERT_FILE, install_dir / CURRENT / KEY_FILE


def snippets(cert_path: Path, key_path: Path, base_url: str, ca_bundle: Path | None = None) -> dict[str, str]:
    """Ready-to-paste configuration for curl, httpx, requests, Java, Node and nginx, each ending
    with the probe that proves it works (the verification header). The API key is always an
    environment variable reference, never its value. ``ca_bundle`` only where the server's CA is
    not publicly trusted (the local sandbox)."""
    base_url = base_url.rstrip("/")
    url = base_url + CERTIFICATES_PATH
    cert, key = str(cert_path), str(key_path)
    ca = str(ca_bundle) if ca_bundle else None
    return {
        "curl": _curl(cert, key, url, ca),
        "httpx": _httpx(cert, key, url, ca),
        "requests": _requests(cert, key, url, ca),
        "java": _java(url, ca),
        "node": _node(cert, key, url, ca),
        "nginx": _nginx(cert, key, base_url, ca),
    }


def snippets_for_pair(pair: InstalledPair, base_url: str, ca_bundle: Path | None = None) -> dict[str, str]:
    """Snippets for an installed pair: through the stable ``current`` paths when it is the current
    pair (rotations then need no edit), through its own folder otherwise."""
    install_dir = pair.folder.parent
    current = current_pair(install_dir)
    if current is not None and current.label == pair.label:
        return snippets(*current_paths(install_dir), base_url, ca_bundle)
    return snippets(pair.cert_path, pair.key_path, base_url, ca_bundle)


def _curl(cert: str, key: str, url: str, ca: str | None) -> str:
    q = shlex.quote
    cacert = f" --cacert {q(ca)}" if ca else ""
    # Klarna's documented form, so the files work unchanged in the docs' own check.
    return (
        f'curl --cert {q(cert)} --key {q(key)}{cacert} -H "Authorization: Basic $KLARNA_API_KEY" {q(url)} -i'
        "\n# look for: Klarna-Mtls-Verification-Status: VALID"
    )


def _httpx(cert: str, key: str, url: str, ca: str | None) -> str:
    cafile = f"cafile={ca!r}" if ca else ""
    return (
        "import os, ssl, httpx\n"
        f"ctx = ssl.create_default_context({cafile})\n"
        f"ctx.load_cert_chain({cert!r}, {key!r})\n"
        "client = httpx.Client(verify=ctx, headers={'Authorization': 'Basic ' + os.environ['KLARNA_API_KEY']})\n"
        f"print(client.get({url!r}).headers['Klarna-Mtls-Verification-Status'])  # VALID"
    )


def _requests(cert: str, key: str, url: str, ca: str | None) -> str:
    verify = repr(ca) if ca else "True"
    return (
        "import os, requests\n"
        f"r = requests.get({url!r}, cert=({cert!r}, {key!r}), verify={verify},\n"
        "                 headers={'Authorization': 'Basic ' + os.environ['KLARNA_API_KEY']})\n"
        "print(r.headers['Klarna-Mtls-Verification-Status'])  # VALID"
    )


def _java(url: str, ca: str | None) -> str:
    trust = ""
    if ca:
        trust = (
            "keytool -importcert -noprompt -alias klarna-ca -file "
            + shlex.quote(ca)
            + " -keystore trust.p12 -storetype PKCS12 -storepass:env KLARNA_MTLS_TRUST_PASSWORD\n"
        )
    trust_props = (
        " \\\n     -Djavax.net.ssl.trustStore=trust.p12 -Djavax.net.ssl.trustStoreType=PKCS12"
        ' -Djavax.net.ssl.trustStorePassword="$KLARNA_MTLS_TRUST_PASSWORD"'
        if ca
        else ""
    )
    return (
        "# export: KLARNA_MTLS_EXPORT_PASSWORD=… klarna-mtls export --format p12 --out client.p12\n"
        "keytool -list -storetype PKCS12 -keystore client.p12 -storepass:env KLARNA_MTLS_EXPORT_PASSWORD\n"
        + trust
        + "java -Djavax.net.ssl.keyStore=client.p12 -Djavax.net.ssl.keyStoreType=PKCS12 \\\n"
        '     -Djavax.net.ssl.keyStorePassword="$KLARNA_MTLS_EXPORT_PASSWORD"' + trust_props + " \\\n"
        "     -jar your-service.jar\n"
        f"# your service sends Authorization: Basic $KLARNA_API_KEY to {url}\n"
        "# and should log the Klarna-Mtls-Verification-Status response header: VALID"
    )


def _node(cert: str, key: str, url: str, ca: str | None) -> str:
    ca_option = f", ca: fs.readFileSync({ca!r})" if ca else ""
    return (
        "const https = require('https'); const fs = require('fs');\n"
        f"const agent = new https.Agent({{ cert: fs.readFileSync({cert!r}), key: fs.readFileSync({key!r}){ca_option} }});\n"
        f"https.get({url!r}, {{ agent, headers: {{ Authorization: 'Basic ' + process.env.KLARNA_API_KEY }} }},\n"
        "  res => console.log(res.headers['klarna-mtls-verification-status']));  // VALID"
    )


def _nginx(cert: str, key: str, base_url: str, ca: str | None) -> str:
    # nginx has no default trust store: proxy_ssl_verify needs an explicit CA file.
    trusted = ca or "/etc/ssl/certs/ca-certificates.crt"
    return (
        "location /klarna/ {\n"
        f"    proxy_pass {base_url}/;\n"
        f"    proxy_ssl_certificate     {cert};\n"
        f"    proxy_ssl_certificate_key {key};\n"
        "    proxy_ssl_server_name on;\n"
        "    proxy_ssl_verify on;\n"
        f"    proxy_ssl_trusted_certificate {trusted};\n"
        "    proxy_ssl_protocols TLSv1.2 TLSv1.3;\n"
        "}\n"
        '# probe: curl -i -H "Authorization: Basic $KLARNA_API_KEY" '
        f"http://localhost/klarna{CERTIFICATES_PATH}  (look for VALID)"
    )
