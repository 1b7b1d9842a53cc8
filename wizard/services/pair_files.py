"""The installed pair's files as they are on disk, described the way `openssl x509` and `openssl
pkey` would: which file, and what is wrong with it (missing, empty, not PEM, truncated, damaged, a
key where a certificate belongs, a certificate that is not the key's).

No network and no journal: what the profile's records expect is wizard/services/repair.py. A
client refuses to call Klarna without a certificate when ``current`` exists but is broken
(``current_pair_checked``): Klarna would answer a local problem with "mTLS required"."""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from pathlib import Path

from wizard.core import crypto
from wizard.core.errors import CryptoError, KeyLocked
from wizard.services.install import CERT_FILE, CURRENT, KEY_FILE, InstalledPair, current_pair

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)(?:-----END \1-----|\Z)", re.S)
_KEY_LABELS = (b"PRIVATE KEY", b"EC PRIVATE KEY", b"ENCRYPTED PRIVATE KEY")


class InstalledPairBroken(CryptoError):
    """The pair in the install folder's ``current`` is missing or unreadable: a local problem,
    restored by ``klarna-mtls repair``, never a reason to call Klarna without a certificate."""

    def __init__(self, problems: list[str], profile: str | None = None) -> None:
        where = f" --profile {profile}" if profile else ""
        super().__init__(
            " ".join(problems),
            title="Installed certificate broken",
            hint=f"Restore it from what klarna-mtls keeps: klarna-mtls repair{where}",
        )
        self.problems = problems


# ---------------------------------------------------------------- one file
def certificate_problem(path: Path) -> str | None:
    """What is wrong with the certificate file at ``path``; None when it holds a certificate."""
    data, problem = _read(path, "certificate")
    if data is None:
        return problem
    try:
        crypto.load_certificate(data)
    except CryptoError:
        trouble = _pem_trouble(data, (b"CERTIFICATE",), "a certificate")
        return f"Could not read certificate from {path}: {trouble or 'its content is not an X.509 certificate'}."
    return None


def key_problem(path: Path, passphrase: bytes | None = None) -> str | None:
    """What is wrong with the private-key file at ``path``; None when it holds a usable key.
    Raises KeyLocked when it is encrypted and ``passphrase`` is missing or wrong: that is not
    damage, and nothing can be said of the key until it is given."""
    data, problem = _read(path, "private key")
    if data is None:
        return problem
    try:
        crypto.load_private_key(data, passphrase, source=path)
    except KeyLocked:
        raise
    except CryptoError as error:
        trouble = _pem_trouble(data, _KEY_LABELS, "a private key")
        return f"Could not read private key from {path}: {trouble or error.message.rstrip('.')}."
    return None


def describe_broken_file(path: Path) -> str:
    """One sentence about a certificate or private-key file, as `openssl x509 -in` (or `openssl
    pkey -in`) would put it: what is wrong and which file, or what the file holds when it is sound."""
    path = Path(path)
    data = _peek(path)
    is_key = path.name == KEY_FILE or (
        path.name != CERT_FILE and any(b"BEGIN " + label + b"-----" in data for label in _KEY_LABELS)
    )
    if is_key:
        try:
            problem = key_problem(path)
        except KeyLocked:
            return f"{path} holds an encrypted private key; give its passphrase to check it."
        return problem or f"{path} holds a P-256 private key."
    problem = certificate_problem(path)
    if problem:
        return problem
    cert = crypto.load_certificate(path.read_bytes())
    return (
        f"{path} holds the certificate for CN={crypto.certificate_cn(cert)}, valid until "
        f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, SHA-256 …{crypto.fingerprint_suffix(crypto.fingerprint_sha256(cert))}."
    )


def _read(path: Path, what: str) -> tuple[bytes | None, str]:
    """(the file's bytes, "") or (None, why it cannot be read)."""
    where = f"Could not open {what} file {path}"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return None, f"{where}: it is a link to {os.readlink(path)}, which does not exist."
        return None, f"{where}: no such file."
    except OSError as exc:
        return None, f"{where}: {exc.strerror}."
    if stat.S_ISDIR(info.st_mode):
        return None, f"{where}: it is a folder, not a file."
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"{where}: {exc.strerror}."
    if not data.strip():
        return None, f"Could not read {what} from {path}: the file is empty ({len(data)} bytes)."
    return data, ""


def _peek(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(4096)
    except OSError:
        return b""


def _pem_trouble(data: bytes, labels: tuple[bytes, ...], wanted: str) -> str | None:
    """Why ``data`` is not the PEM (or DER) of ``wanted``, in openssl's terms; None when its PEM
    block is whole (the content itself is then what is wrong)."""
    blocks = list(_PEM_BLOCK.finditer(data))
    if not blocks:
        return f"no PEM start line (-----BEGIN {labels[0].decode()}-----); its {len(data)} bytes are not {wanted}"
    ours = [b for b in blocks if b.group(1) in labels]
    if not ours:
        found = blocks[0].group(1).decode(errors="replace")
        return f"it holds a {found}, not {wanted}"
    block = ours[0]
    label = block.group(1).decode()
    if not block.group(0).rstrip().endswith(b"-----"):
        return f"the PEM is truncated: -----BEGIN {label}----- has no matching END line"
    try:
        base64.b64decode(b"".join(block.group(2).split()), validate=True)
    except (binascii.Error, ValueError):
        return f"the base64 between the BEGIN and END {label} lines is damaged"
    return None


# ---------------------------------------------------------------- the install folder
def current_problems(install_dir: Path, expected_label: str | None = None, *, judge_target: bool = True) -> list[str]:
    """What is wrong with the pair ``current`` selects, without decrypting the key: the link
    (missing while ``expected_label`` says a pair was installed, dangling, or, with
    ``judge_target``, pointing at another pair than ``expected_label``), the certificate file, the
    key file's presence. Empty when sound, or when nothing was ever installed."""
    link = install_dir / CURRENT
    if not os.path.lexists(link):
        return [f"{link} is missing: no pair is selected for use."] if expected_label else []
    if not link.is_symlink():
        return [f"{link} is not the link klarna-mtls keeps (it is a {'folder' if link.is_dir() else 'file'})."]
    target = os.readlink(link)
    folder = install_dir / target
    if not folder.is_dir():
        return [f"{link} points at {target}, which does not exist."]
    problems = []
    if judge_target and expected_label and target != expected_label:
        problems.append(f"{link} points at {target}, not at the pair in use ({expected_label}).")
    cert = certificate_problem(folder / CERT_FILE)
    if cert:
        problems.append(cert)
    _, missing_key = _read(folder / KEY_FILE, "private key")
    if missing_key:
        problems.append(missing_key)
    return problems


def current_pair_checked(
    install_dir: Path, installed_label: str | None = None, profile: str | None = None
) -> InstalledPair | None:
    """The pair in ``current``; None when nothing is installed here (no ``current`` link, and
    ``installed_label``, the records' pair, is None); InstalledPairBroken when the link exists but
    its files are missing or unreadable, or is missing although the records installed a pair. A
    ``current`` pointing at another pair is left to the callers that know the records' history."""
    problems = current_problems(install_dir, installed_label, judge_target=False)
    if problems:
        raise InstalledPairBroken(problems, profile)
    return current_pair(install_dir)


def pair_mismatch(pair: InstalledPair, passphrase: bytes | None) -> str | None:
    """Why the pair's key file is unusable or not the certificate's key; None when they belong
    together. Raises KeyLocked when the key needs a passphrase that was not given."""
    problem = key_problem(pair.key_path, passphrase)
    if problem:
        return problem
    key = crypto.load_private_key_file(pair.key_path, passphrase)
    if not crypto.valid_cert_matches_key(crypto.load_certificate(pair.cert_path.read_bytes()), key):
        return f"The certificate {pair.cert_path} does not belong to the private key {pair.key_path}."
    return None
