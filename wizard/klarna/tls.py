"""TLS for every call to Klarna: the client contexts (TLS 1.3, or TLS 1.2 with forward-secret AEAD
suites only; server verification always on; a client key that never prompts), the cache that
shares one context per trust and certificate, the pool that keeps one HTTP client open per event
loop and TLS identity, and what a connection negotiated (for the doctor)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from wizard.core.env_vars import NO_PROXY_ENVS, PROXY_ENVS
from wizard.core.errors import CryptoError, KeyLocked

USER_AGENT = "klarna-mtls"
# TLS 1.2 suites offered: ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 only, never CBC
# (MAC-then-encrypt), RSA key transport or finite-field DHE. TLS 1.3 suites are all AEAD.
TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
    )
)
ACCEPTED_SUITES = "TLS 1.3, or TLS 1.2 with ECDHE and AES-GCM or ChaCha20-Poly1305"


def make_ssl_context(
    *,
    ca_bundle: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    key_passphrase: bytes | None = None,
) -> ssl.SSLContext:
    """TLS 1.3, or TLS 1.2 with the AEAD suites of TLS12_CIPHERS; server verification always on:
    the bundled root set (certifi) for Klarna's hosts, or only the sandbox CA. Nothing from the environment decides trust: SSL_CERT_FILE and
    SSL_CERT_DIR are not read, and SSLKEYLOGFILE never receives TLS secrets.

    The key is loaded with a password callback, never ``password=None``: OpenSSL would otherwise
    prompt ``Enter PEM pass phrase:`` on the terminal and hang the TUI or a cron job. An encrypted
    key without its passphrase, or with a wrong one, raises KeyLocked for the front end to ask."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # not create_default_context: it reads env
    try:
        context.load_verify_locations(cafile=str(ca_bundle) if ca_bundle else trusted_roots())
    except (ssl.SSLError, OSError) as exc:
        raise CryptoError(
            f"The CA bundle {ca_bundle or trusted_roots()} could not be read.",
            title="CA bundle missing",
            hint="Check the file exists and holds PEM certificates; for the sandbox, restart it "
            "(klarna-mtls sandbox serve) and pass its --ca-bundle again.",
        ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if client_cert and client_key:
        load_client_pair(context, client_cert, client_key, key_passphrase)
    return context


def load_client_pair(context: ssl.SSLContext, cert: Path, key: Path, passphrase: bytes | None) -> None:
    """``load_cert_chain`` that never prompts; maps every failure to a WizardError."""
    asked: list[bool] = []

    def password() -> bytes:
        asked.append(True)
        if not passphrase:
            raise KeyLocked(key)
        return passphrase

    try:
        context.load_cert_chain(str(cert), str(key), password=password)
    except KeyLocked:
        raise
    except (ssl.SSLError, ValueError) as exc:
        if asked and getattr(exc, "reason", None) != "KEY_VALUES_MISMATCH":
            raise KeyLocked(key, wrong=True) from None  # OpenSSL refused the passphrase (or its length)
        raise CryptoError(
            f"The client certificate {cert} and key {key} could not be loaded together.",
            hint="Check both files belong together (klarna-mtls doctor).",
        ) from exc
    except OSError as exc:
        raise CryptoError(
            f"Cannot read the client certificate or key ({exc.filename or key}): {exc.strerror}.",
            hint="Check the install folder (klarna-mtls doctor).",
        ) from exc


def make_http_client(
    *,
    ca_bundle: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    key_passphrase: bytes | None = None,
    timeout: float = 20.0,
) -> httpx.AsyncClient:
    """An HTTP client on the shared TLS context for this trust and client pair; never redirects."""
    context = shared_ssl_context(
        ca_bundle=ca_bundle, client_cert=client_cert, client_key=client_key, key_passphrase=key_passphrase
    )
    return httpx.AsyncClient(
        verify=context,
        # The environment may choose a proxy (HTTPS_PROXY, NO_PROXY); never the trust: with an
        # SSLContext given, httpx reads neither SSL_CERT_FILE nor SSL_CERT_DIR.
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
    )


@dataclass(frozen=True)
class NegotiatedTls:
    """What one connection negotiated: the protocol (``TLSv1.3``) and the cipher suite."""

    protocol: str
    cipher: str | None

    def __str__(self) -> str:
        return f"{self.protocol} ({self.cipher})" if self.cipher else self.protocol


def negotiated_tls(response: httpx.Response) -> NegotiatedTls | None:
    """The protocol and suite of the connection that carried ``response`` (None when unknown,
    e.g. a test transport). The doctor names both, so a weak suite is visible."""
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    try:
        ssl_object = stream.get_extra_info("ssl_object")
    except Exception:  # a transport without extra info
        return None
    if ssl_object is None or not ssl_object.version():
        return None
    cipher = ssl_object.cipher()
    return NegotiatedTls(ssl_object.version(), cipher[0] if cipher else None)


def trusted_roots() -> str:
    """The CA set live and test trust: certifi's bundled roots (shown by `doctor`)."""
    import certifi

    return certifi.where()


def environment_proxy() -> str | None:
    """The proxy httpx takes from the environment (it only carries TLS: it cannot read it);
    NO_PROXY still applies per host. Shown by `doctor`."""
    if next((os.environ[name] for name in NO_PROXY_ENVS if name in os.environ), "").strip() == "*":
        return None
    for name in PROXY_ENVS:
        if os.environ.get(name):
            return os.environ[name]
    return None


# One SSLContext per (trust, certificate) pair: building one parses the CA bundle (the whole system
# store for Klarna's hosts) and loads the key, the largest per-profile cost of a fleet `status`.
_CONTEXTS: OrderedDict[tuple[object, ...], ssl.SSLContext] = OrderedDict()
_CONTEXTS_LOCK = threading.Lock()
_CONTEXTS_MAX = 64
_PASSPHRASE_SALT = secrets.token_bytes(16)  # the cache key never holds a passphrase, nor its plain hash


def _file_identity(path: Path | None) -> tuple[str, int, int, int] | None:
    if path is None:
        return None
    stat = os.stat(path)  # follows links: a replaced file is a new identity
    return (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


def tls_identity(
    *, ca_bundle: Path | None, client_cert: Path | None, client_key: Path | None, key_passphrase: bytes | None
) -> tuple[object, ...]:
    """What makes two TLS contexts interchangeable: the files (path, inode, size, mtime) and the
    passphrase (salted digest). Raises OSError when a file is missing."""
    tag = hashlib.blake2b(key_passphrase, key=_PASSPHRASE_SALT, digest_size=16).digest() if key_passphrase else None
    return (_file_identity(ca_bundle), _file_identity(client_cert), _file_identity(client_key), tag)


def shared_ssl_context(
    *,
    ca_bundle: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    key_passphrase: bytes | None = None,
) -> ssl.SSLContext:
    """make_ssl_context, cached while the CA bundle, certificate and key files are unchanged."""

    def made() -> ssl.SSLContext:
        return make_ssl_context(
            ca_bundle=ca_bundle, client_cert=client_cert, client_key=client_key, key_passphrase=key_passphrase
        )

    try:
        identity = tls_identity(
            ca_bundle=ca_bundle, client_cert=client_cert, client_key=client_key, key_passphrase=key_passphrase
        )
    except OSError:
        return made()  # a missing file fails there, with its own message
    with _CONTEXTS_LOCK:
        context = _CONTEXTS.get(identity)
        if context is not None:
            _CONTEXTS.move_to_end(identity)
            return context
    context = made()
    with _CONTEXTS_LOCK:
        _CONTEXTS[identity] = context
        while len(_CONTEXTS) > _CONTEXTS_MAX:
            _CONTEXTS.popitem(last=False)
    return context


class ConnectionPool:
    """HTTP clients kept open for a run, one per (event loop, TLS identity): each step and each
    profile with the same trust and certificate reuses one keep-alive connection instead of a new
    handshake. Bound to no session, so `status --all` shares one across profiles."""

    def __init__(self, *, timeout: float = 20.0) -> None:
        self._timeout = timeout
        self._clients: dict[object, tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]] = {}

    def client(self, **tls: Any) -> httpx.AsyncClient:
        """An open client for these TLS options (ca_bundle, client_cert, client_key, key_passphrase)."""
        loop = asyncio.get_running_loop()
        try:
            identity: object = tls_identity(**tls)
        except OSError:
            identity = object()  # a missing file: make_http_client says so
        held = self._clients.get(identity)
        if held is not None and held[0] is loop and not held[1].is_closed:
            return held[1]
        client = make_http_client(timeout=self._timeout, **tls)
        self._clients[identity] = (loop, client)
        return client

    @property
    def size(self) -> int:
        return len(self._clients)

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        held, self._clients = list(self._clients.values()), {}
        for owner, client in held:
            if owner is loop:
                await client.aclose()

    async def __aenter__(self) -> ConnectionPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
