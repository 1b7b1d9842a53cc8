"""The handshake probe: settles whether an ambiguous failure (a reset or an EOF after a TLS 1.3
handshake) was the server refusing our client certificate, with fresh connections that send
nothing."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx

from wizard.core.errors import WizardError
from wizard.klarna.errors import CERTIFICATE_ALERTS, tls_reason
from wizard.klarna.tls import make_ssl_context


class HandshakeProbe:
    """Settles an ambiguous failure with fresh TLS connections that send nothing, so no reset can
    overtake the server's alert: first with the certificate, then (if the connection just
    closed) without it. ``contexts(True)``/``contexts(False)`` build the two client contexts."""

    def __init__(
        self, contexts: Callable[[bool], ssl.SSLContext], *, verdict_wait: float = 3.0, connect_timeout: float = 5.0
    ) -> None:
        self._contexts = contexts
        self._verdict_wait = verdict_wait
        self._connect_timeout = connect_timeout

    async def refuses_certificate(self, base_url: str) -> tuple[bool, str | None]:
        """(True, alert) when the server refuses the certificate; (False, None) when it does not or
        when that cannot be settled (unknown is never a refusal)."""
        with_certificate = await self._outcome(base_url, True)
        if with_certificate in CERTIFICATE_ALERTS:
            return True, with_certificate
        if with_certificate != "closed":
            return False, None
        # The connection closed with no word. Without the certificate, a server that waits for the
        # request or asks for a certificate shows that our certificate made the difference.
        without = await self._outcome(base_url, False)
        return without == "open" or without in CERTIFICATE_ALERTS, None

    async def _outcome(self, base_url: str, with_certificate: bool) -> str:
        """An alert reason, "closed" (EOF, reset or another TLS failure), "open" (the server waits
        for a request) or "unknown" (no connection at all)."""
        url = httpx.URL(base_url)
        try:
            context = await asyncio.to_thread(self._contexts, with_certificate)
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(url.host, url.port or 443, ssl=context, server_hostname=url.host),
                self._connect_timeout,
            )
        except (OSError, TimeoutError, WizardError) as exc:
            return _probe_failure(exc)
        try:
            data = await asyncio.wait_for(reader.read(1), self._verdict_wait)
            return "open" if data else "closed"
        except TimeoutError:
            return "open"
        except OSError as exc:
            return _probe_failure(exc)
        finally:
            writer.close()


def handshake_probe_for(
    *, ca_bundle: Path | None, client_cert: Path, client_key: Path, key_passphrase: bytes | None = None
) -> HandshakeProbe:
    """The probe for a client made by make_http_client with the same trust and client pair."""

    def contexts(with_certificate: bool) -> ssl.SSLContext:
        if not with_certificate:
            return make_ssl_context(ca_bundle=ca_bundle)
        return make_ssl_context(
            ca_bundle=ca_bundle, client_cert=client_cert, client_key=client_key, key_passphrase=key_passphrase
        )

    return HandshakeProbe(contexts)


def _probe_failure(exc: BaseException) -> str:
    reason = tls_reason(exc)
    if reason in CERTIFICATE_ALERTS:
        return reason
    if isinstance(exc, (ConnectionRefusedError, socket.gaierror, TimeoutError, WizardError)):
        return "unknown"
    return "closed"
