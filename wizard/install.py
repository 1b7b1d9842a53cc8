"""Installing the certificate and key, and exporting them.

Each pair goes into its own versioned folder; a `current` symlink is flipped atomically so a
runtime can point at stable paths, and the previous pair stays for rollback."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from . import crypto
from .errors import CryptoError, StorageError
from .fsutil import atomic_write, ensure_private_dir, file_mode, write_private

CERT_FILE = "certificate.pem"
KEY_FILE = "private-key.pem"
CURRENT = "current"
PREVIOUS = "previous"


@dataclass(frozen=True)
class InstalledPair:
    label: str
    folder: Path
    cert_path: Path
    key_path: Path
    fingerprint: str

    def modes(self) -> tuple[int, int, int]:
        return file_mode(self.cert_path), file_mode(self.key_path), file_mode(self.folder)


def install_pair(
    install_dir: Path, cert_pem: bytes, key_pem: bytes, *, label: str, key_passphrase: bytes | None = None
) -> InstalledPair:
    """Write the pair into install_dir/label after proving they belong together."""
    cert = crypto.load_certificate(cert_pem)
    key = crypto.load_private_key(key_pem, key_passphrase)
    crypto.verify_cert_matches_key(cert, key)
    if not label or "/" in label or label in (CURRENT, PREVIOUS, ".", ".."):
        raise CryptoError(f"'{label}' is not a usable install label.")
    ensure_private_dir(install_dir)
    folder = ensure_private_dir(install_dir / label)
    atomic_write(folder / CERT_FILE, crypto.certificate_pem(cert), 0o644)
    write_private(folder / KEY_FILE, key_pem)
    return _pair(folder)


def _pair(folder: Path) -> InstalledPair:
    cert = crypto.load_certificate((folder / CERT_FILE).read_bytes())
    return InstalledPair(folder.name, folder, folder / CERT_FILE, folder / KEY_FILE, crypto.fingerprint_sha256(cert))


def _flip(install_dir: Path, name: str, target: str) -> None:
    temp = install_dir / f".{name}.{os.getpid()}.tmp"
    try:
        if temp.is_symlink():
            temp.unlink()
        os.symlink(target, temp)
        os.replace(temp, install_dir / name)  # atomic: readers see old or new, never neither
    except OSError as exc:
        raise StorageError(f"Could not switch {install_dir / name}: {exc.strerror}.") from exc


def activate(install_dir: Path, label: str) -> InstalledPair:
    """Point `current` at label; the pair it pointed at becomes `previous`."""
    if not (install_dir / label / CERT_FILE).is_file():
        raise StorageError(f"No installed pair named {label} in {install_dir}.")
    old = current_pair(install_dir)
    if old is not None and old.label != label:
        _flip(install_dir, PREVIOUS, old.label)
    _flip(install_dir, CURRENT, label)
    return _pair(install_dir / label)


def current_pair(install_dir: Path) -> InstalledPair | None:
    link = install_dir / CURRENT
    if not link.is_symlink() or not (link / CERT_FILE).is_file():
        return None
    return _pair(install_dir / os.readlink(link))


def list_pairs(install_dir: Path) -> list[InstalledPair]:
    if not install_dir.is_dir():
        return []
    return [
        _pair(p) for p in sorted(install_dir.iterdir())
        if p.is_dir() and not p.is_symlink() and (p / CERT_FILE).is_file()
    ]


def rollback(install_dir: Path) -> InstalledPair:
    link = install_dir / PREVIOUS
    if not link.is_symlink():
        raise StorageError("There is no previous pair to roll back to.")
    return activate(install_dir, os.readlink(link))


def verify_private_files(pair: InstalledPair) -> None:
    """Refuse a key file others can read, spelling out the fix."""
    key_mode = file_mode(pair.key_path)
    if key_mode & 0o077:
        raise CryptoError(
            f"The private key {pair.key_path} is readable by others (mode {key_mode:o}).",
            title="Unsafe key file",
            hint=f"Run: chmod 600 {pair.key_path}",
        )
    dir_mode = file_mode(pair.folder)
    if dir_mode & 0o077:
        raise CryptoError(
            f"The folder {pair.folder} is open to others (mode {dir_mode:o}).",
            title="Unsafe key folder",
            hint=f"Run: chmod 700 {pair.folder}",
        )


# ---------------------------------------------------------------- exports
def export_pem_pair(pair: InstalledPair, out_dir: Path) -> tuple[Path, Path]:
    ensure_private_dir(out_dir)
    atomic_write(out_dir / CERT_FILE, pair.cert_path.read_bytes(), 0o644)
    write_private(out_dir / KEY_FILE, pair.key_path.read_bytes())
    return out_dir / CERT_FILE, out_dir / KEY_FILE


def export_bundle(pair: InstalledPair, out_path: Path) -> Path:
    write_private(out_path, pair.cert_path.read_bytes() + pair.key_path.read_bytes())
    return out_path


def export_pkcs12(pair: InstalledPair, out_path: Path, password: bytes, key_passphrase: bytes | None = None) -> Path:
    if not password:
        raise CryptoError("A PKCS#12 export needs a password.")
    key = crypto.load_private_key(pair.key_path.read_bytes(), key_passphrase)
    cert = crypto.load_certificate(pair.cert_path.read_bytes())
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password)
    )
    data = pkcs12.serialize_key_and_certificates(b"klarna-mtls", key, cert, None, encryption)
    write_private(out_path, data)
    return out_path


def export_k8s_secret(pair: InstalledPair, out_path: Path, name: str, namespace: str | None = None) -> Path:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    lines = ["apiVersion: v1", "kind: Secret", "metadata:", f"  name: {name}"]
    if namespace:
        lines.append(f"  namespace: {namespace}")
    lines += ["type: kubernetes.io/tls", "data:", f"  tls.crt: {b64(pair.cert_path)}", f"  tls.key: {b64(pair.key_path)}"]
    write_private(out_path, ("\n".join(lines) + "\n").encode())
    return out_path


def snippets(cert_path: Path, key_path: Path, base_url: str, ca_bundle: Path | None = None) -> dict[str, str]:
    """Ready-to-paste configuration; the API key is always an environment variable reference."""
    url = f"{base_url}/v2/account/integration/credentials/client-certificate"
    cacert = f" --cacert {ca_bundle}" if ca_bundle else ""
    verify = f'"{ca_bundle}"' if ca_bundle else "True"
    return {
        "curl": (
            f'curl -i --cert {cert_path} --key {key_path}{cacert} \\\n'
            f'  -H "Authorization: Basic $KLARNA_API_KEY" \\\n  {url}'
        ),
        "httpx": (
            "import os, ssl, httpx\n"
            f"ctx = ssl.create_default_context({'cafile=' + repr(str(ca_bundle)) if ca_bundle else ''})\n"
            f"ctx.load_cert_chain({str(cert_path)!r}, {str(key_path)!r})\n"
            "client = httpx.Client(verify=ctx, headers={'Authorization': 'Basic ' + os.environ['KLARNA_API_KEY']})\n"
            f"print(client.get({url!r}).headers['Klarna-Mtls-Verification-Status'])"
        ),
        "requests": (
            "import os, requests\n"
            f"r = requests.get({url!r}, cert=({str(cert_path)!r}, {str(key_path)!r}), verify={verify},\n"
            "                 headers={'Authorization': 'Basic ' + os.environ['KLARNA_API_KEY']})\n"
            "print(r.headers['Klarna-Mtls-Verification-Status'])"
        ),
        "java": (
            "# klarna-mtls export --format p12 --out client.p12   (password from KLARNA_MTLS_EXPORT_PASSWORD)\n"
            "java -Djavax.net.ssl.keyStore=client.p12 -Djavax.net.ssl.keyStoreType=PKCS12 \\\n"
            "     -Djavax.net.ssl.keyStorePassword=\"$KLARNA_MTLS_EXPORT_PASSWORD\" -jar your-service.jar"
        ),
        "node": (
            "const https = require('https'); const fs = require('fs');\n"
            f"const agent = new https.Agent({{ cert: fs.readFileSync('{cert_path}'), key: fs.readFileSync('{key_path}')"
            + (f", ca: fs.readFileSync('{ca_bundle}')" if ca_bundle else "") + " });\n"
            f"https.get('{url}', {{ agent, headers: {{ Authorization: 'Basic ' + process.env.KLARNA_API_KEY }} }},\n"
            "  res => console.log(res.headers['klarna-mtls-verification-status']));"
        ),
        "nginx": (
            "location /klarna/ {\n"
            f"    proxy_pass {base_url}/;\n"
            f"    proxy_ssl_certificate     {cert_path};\n"
            f"    proxy_ssl_certificate_key {key_path};\n"
            "    proxy_ssl_server_name on;\n"
            "    proxy_ssl_verify on;\n"
            "}"
        ),
    }
