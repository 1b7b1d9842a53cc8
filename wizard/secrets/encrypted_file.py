"""The API keys in one passphrase-encrypted JSON file (Argon2id, or scrypt for older files, and
AES-256-GCM), for machines whose keyring cannot be used."""

from __future__ import annotations

import base64
import binascii
import json
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from wizard.core.env_vars import STORE_PASSPHRASE_ENV
from wizard.core.errors import SecretStoreError
from wizard.core.fsutil import write_private
from wizard.secrets.base import home_relative, store_write_lock

# The file's JSON shapes: a document {"version", "kdf", "salt", "entries", "check"?}, each entry
# {"nonce", "ciphertext"} (base64), and the KDF's name and parameters.
Document = dict[str, Any]
Entry = dict[str, str]
KdfParams = dict[str, Any]
FORMAT_VERSION = 1
SCRYPT_PARAMS = {"n": 2**15, "r": 8, "p": 1}  # files written before Argon2id: still read, upgraded on write
# OWASP's Argon2id minimum (19 MiB, 2 passes, 1 lane); about 60 ms here, memory-hard against GPUs.
# Without Argon2id in this cryptography/OpenSSL, OWASP's scrypt minimum (2^17, 8, 1: 128 MiB).
CURRENT_KDF: KdfParams = {"name": "argon2id", "memory_cost": 19 * 1024, "iterations": 2, "lanes": 1}
try:
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
except ImportError:  # pragma: no cover - cryptography < 44
    CURRENT_KDF = {"name": "scrypt", "n": 2**17, "r": 8, "p": 1}
_ARGON2_BOUNDS = {"memory_cost": (19 * 1024, 256 * 1024), "iterations": (1, 10), "lanes": (1, 4)}
# A known plaintext under its own associated data tells a wrong passphrase from a tampered entry.
_CHECK_AD = b"klarna-mtls:passphrase-check"
_CHECK_PLAINTEXT = b"klarna-mtls"


class EncryptedFileStore:
    """One JSON file; Argon2id (older files: scrypt) derives an AES-256-GCM key from the passphrase, one nonce per entry,
    and the profile name is the associated data, so an entry moved to another profile is refused."""

    kind = "encrypted-file"
    persistent = True

    def __init__(self, path: Path, passphrase: bytes) -> None:
        if isinstance(passphrase, str):
            passphrase = passphrase.encode()
        if not passphrase:
            raise SecretStoreError("The encrypted file needs a passphrase.")
        self.path = path
        self.display_name = f"Encrypted file {home_relative(path)}"
        self._passphrase = passphrase
        self._derived: dict[tuple[object, ...], AESGCM] = {}

    def __repr__(self) -> str:
        return f"EncryptedFileStore({str(self.path)!r})"

    def get(self, profile: str) -> str | None:
        document = self._load()
        if document is None or profile not in document["entries"]:
            return None
        cipher = self._unlock(document)
        return self._decrypt_entry(cipher, document["entries"][profile], profile)

    def set(self, profile: str, api_key: str) -> None:
        with self._locked():  # read, change, write under one lock: no other writer's entry is lost
            document = self._current(self._load())
            cipher = self._unlock(document)
            if "check" not in document:
                document["check"] = _seal(cipher, _CHECK_PLAINTEXT, _CHECK_AD)
            document["entries"][profile] = _seal(cipher, api_key.encode(), profile.encode())
            self._save(document)

    def delete(self, profile: str) -> None:
        with self._locked():
            document = self._load()
            if document is None or profile not in document["entries"]:
                return
            self._unlock(document)  # only the passphrase holder may change the file
            document = self._current(document)
            del document["entries"][profile]
            self._save(document)

    def verify_passphrase(self) -> None:
        """Raise SecretStoreError unless this passphrase opens the file (a missing file: nothing to
        check). Callers ask before doing anything whose result must then be kept here."""
        document = self._load()
        if document is not None:
            self._unlock(document)

    def _locked(self) -> AbstractContextManager[None]:
        return store_write_lock(self.path)

    def _current(self, document: Document | None) -> Document:
        """The document under the current KDF: a file made with older parameters is re-encrypted
        (every entry opened with its old key, sealed again under a fresh salt) on its next write."""
        if document is None:
            return self._new_document()
        if document["kdf"] == CURRENT_KDF:
            return document
        old = self._unlock(document)
        fresh = self._new_document()
        new = self._cipher(fresh)
        for name, entry in document["entries"].items():
            try:
                plaintext = _open(old, entry, name.encode())
            except InvalidTag:
                raise self._damaged() from None
            fresh["entries"][name] = _seal(new, plaintext, name.encode())
        fresh["check"] = _seal(new, _CHECK_PLAINTEXT, _CHECK_AD)
        return fresh

    # -- file format
    def _new_document(self) -> Document:
        return {
            "version": FORMAT_VERSION,
            "kdf": dict(CURRENT_KDF),
            "salt": _b64(os.urandom(16)),
            "entries": {},
        }

    def _load(self) -> Document | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SecretStoreError(f"Cannot read {self.path}: {exc.strerror}.") from None
        try:
            document: Document = json.loads(raw)
        except ValueError:
            raise self._damaged() from None
        if not _valid_document(document):
            raise self._damaged()
        return document

    def _save(self, document: Document) -> None:
        write_private(self.path, json.dumps(document, indent=1, sort_keys=True).encode())

    def _damaged(self) -> SecretStoreError:
        return SecretStoreError(
            f"The encrypted secrets file {self.path} is damaged or was altered.",
            hint="Move it aside and store the API key again.",
        )

    # -- crypto
    def _unlock(self, document: Document) -> AESGCM:
        """The AES-GCM key for this file, after proving the passphrase is the right one."""
        cipher = self._cipher(document)
        proof = document.get("check")
        if proof is None:  # a file with no proof yet: any entry proves the passphrase
            proof_ad = next(iter(document["entries"]), None)
            proof = document["entries"].get(proof_ad)
            proof_ad = proof_ad.encode() if proof_ad else b""
        else:
            proof_ad = _CHECK_AD
        if proof is not None:
            try:
                _open(cipher, proof, proof_ad)
            except InvalidTag:
                raise SecretStoreError(
                    f"Wrong passphrase for the encrypted secrets file {self.path}.",
                    hint=f"Type the passphrase you chose when the key was stored (headless: {STORE_PASSPHRASE_ENV}).",
                ) from None
        return cipher

    def _cipher(self, document: Document) -> AESGCM:
        kdf = document["kdf"]
        cache_key = (document["salt"], *sorted(kdf.items()))
        if cache_key not in self._derived:  # the KDF is deliberately slow: derive once per file state
            self._derived[cache_key] = AESGCM(_kdf(kdf, _unb64(document["salt"])).derive(self._passphrase))
        return self._derived[cache_key]

    def _decrypt_entry(self, cipher: AESGCM, entry: Entry, profile: str) -> str:
        try:
            return _open(cipher, entry, profile.encode()).decode()
        except (InvalidTag, UnicodeDecodeError):
            raise SecretStoreError(
                f"The entry for profile '{profile}' in {self.path} was altered and cannot be trusted.",
                hint="Store the API key again for this profile.",
            ) from None


def _seal(cipher: AESGCM, plaintext: bytes, associated_data: bytes) -> Entry:
    nonce = os.urandom(12)
    return {"nonce": _b64(nonce), "ciphertext": _b64(cipher.encrypt(nonce, plaintext, associated_data))}


def _open(cipher: AESGCM, entry: Entry, associated_data: bytes) -> bytes:
    return cipher.decrypt(_unb64(entry["nonce"]), _unb64(entry["ciphertext"]), associated_data)


def _valid_document(document: object) -> bool:
    """Shape and sane KDF bounds: a tampered file must not make us run a KDF for an hour."""
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        return False
    kdf, entries = document.get("kdf"), document.get("entries")
    if not isinstance(entries, dict) or not _valid_kdf(kdf):
        return False
    sealed = list(entries.values()) + ([document["check"]] if "check" in document else [])
    return _valid_b64(document.get("salt"), min_length=16) and all(_valid_sealed(e) for e in sealed)


def _valid_kdf(kdf: object) -> bool:
    """Known KDFs within bounds: a tampered header must not make us work for minutes or take
    gigabytes (scrypt is capped at 2^17 x 8, i.e. 128 MiB; Argon2id at 256 MiB)."""
    if not isinstance(kdf, dict):
        return False
    values = [v for k, v in kdf.items() if k != "name"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return False
    if kdf.get("name") == "scrypt" and set(kdf) == {"name", "n", "r", "p"}:
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        return 2**14 <= n <= 2**17 and n & (n - 1) == 0 and 1 <= r <= 8 and 1 <= p <= 4
    if kdf.get("name") == "argon2id" and set(kdf) == {"name", *_ARGON2_BOUNDS}:
        return all(low <= int(kdf[k]) <= high for k, (low, high) in _ARGON2_BOUNDS.items())
    return False


def _kdf(kdf: KdfParams, salt: bytes) -> Argon2id | Scrypt:
    if kdf["name"] == "argon2id":
        return Argon2id(
            salt=salt, length=32, iterations=kdf["iterations"], lanes=kdf["lanes"], memory_cost=kdf["memory_cost"]
        )
    return Scrypt(salt=salt, length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"])


def _valid_sealed(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and _valid_b64(entry.get("nonce"), min_length=12, max_length=12)
        and _valid_b64(entry.get("ciphertext"), min_length=16)
    )


def _valid_b64(text: object, min_length: int, max_length: int = 1 << 20) -> bool:
    if not isinstance(text, str):
        return False
    try:
        return min_length <= len(_unb64(text)) <= max_length
    except (binascii.Error, ValueError):
        return False


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)
