"""A client certificate refused in a TLS 1.3 handshake is REJECTED every time, never a network problem;
a server that drops every connection is a network problem, never a rejection.

In TLS 1.3 the server judges the client certificate after the client's handshake is done: the
verdict arrives at the first read as an alert, or (when the request overtook it) as a reset. Real
loopback listeners, real TLS, real httpx."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import record_figure
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from wizard.core import crypto
from wizard.core.errors import HandshakeRejected, TransportError
from wizard.klarna.client import KlarnaClient
from wizard.klarna.errors import transport_error
from wizard.klarna.probe import HandshakeProbe, handshake_probe_for
from wizard.klarna.tls import make_http_client
from wizard.services import onboarding

KEY = "klarna_test_api_" + "T" * 28 + "LS13"
ACCOUNT = "krn:partner:global:account:test:LYABCDEI"
ROUNDS = 30


# ---------------------------------------------------------------- a small PKI
def _certificate(subject_key, cn: str, issuer_key, issuer_cn: str, *, ca: bool = False, ip: str | None = None):
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """CA A signs the server and is the only CA the server trusts for clients; CA B signs ours."""
    folder = tmp_path_factory.mktemp("pki")
    ca_a, ca_b, server, client = (crypto.make_private_key() for _ in range(4))
    files = {
        "ca_a": crypto.certificate_pem(_certificate(ca_a, "CA A", ca_a, "CA A", ca=True)),
        "ca_b": crypto.certificate_pem(_certificate(ca_b, "CA B", ca_b, "CA B", ca=True)),
        "server_cert": crypto.certificate_pem(_certificate(server, "server", ca_a, "CA A", ip="127.0.0.1")),
        "server_key": crypto.make_private_key_pem(server),
        "client_cert": crypto.certificate_pem(_certificate(client, "LYABCDEI", ca_b, "CA B")),
        "client_key": crypto.make_private_key_pem(client),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(data)
        paths[name].chmod(0o600)
    return paths


# ---------------------------------------------------------------- tiny threaded TLS 1.3 listeners
class Listener:
    """Accepts on loopback; each connection is handled by ``behaviour(raw_socket)`` in a thread."""

    def __init__(self, behaviour) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"https://127.0.0.1:{self._socket.getsockname()[1]}"
        self._behaviour = behaviour
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        connection.settimeout(30)
        try:
            self._behaviour(connection)
        except (ssl.SSLError, OSError):
            pass
        finally:
            connection.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._socket.close()
        self._thread.join(timeout=30)


def server_context(pki, client_ca: str | None, verify_mode=ssl.CERT_REQUIRED) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(str(pki["server_cert"]), str(pki["server_key"]))
    if client_ca:
        context.load_verify_locations(cafile=str(pki[client_ca]))
    context.verify_mode = verify_mode
    return context


def handshake_then_read(context: ssl.SSLContext):
    def behaviour(connection: socket.socket) -> None:
        with context.wrap_socket(connection, server_side=True) as tls:  # refuses the certificate: alert
            tls.recv(4096)

    return behaviour


def respond(tls: ssl.SSLSocket) -> None:
    tls.recv(65536)
    body = b'{"credentials": []}'
    tls.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


@pytest.fixture
def listener():
    started: list[Listener] = []

    def start(behaviour) -> Listener:
        started.append(Listener(behaviour))
        return started[-1]

    yield start
    for item in started:
        item.close()


# ---------------------------------------------------------------- the figures
def _session(pki, base_url: str, tmp_path):
    from wizard.core.paths import Paths
    from wizard.services.install import activate, install_pair
    from wizard.services.session import Session

    session = Session(Paths.from_env(), "tls13")
    session.configure("sandbox", ACCOUNT, base_url=base_url, ca_bundle=pki["ca_a"], install_dir=tmp_path / "install")
    install_pair(session.install_dir, pki["client_cert"].read_bytes(), pki["client_key"].read_bytes(), label="pair")
    activate(session.install_dir, "pair")
    session.unlock(KEY)
    return session


def test_tls13_refusal_is_rejected_30_of_30(pki, listener, tmp_path):
    """onboarding.observe against a TLS 1.3 listener that requires a certificate and refuses ours."""
    server = listener(handshake_then_read(server_context(pki, "ca_a")))
    session = _session(pki, server.base_url, tmp_path)

    async def rounds() -> list[str]:
        return [(await onboarding.observe(session)).status for _ in range(ROUNDS)]

    statuses = asyncio.run(rounds())
    rejected = statuses.count("REJECTED")
    record_figure("TLS 1.3 client-certificate refusals classified REJECTED", rejected, ROUNDS)
    assert rejected == ROUNDS, statuses


def test_server_that_closes_for_everyone_is_a_network_problem(pki, listener):
    """Handshake done (certificate accepted), then the connection is closed without an answer."""
    context = server_context(pki, "ca_b", ssl.CERT_OPTIONAL)
    server = listener(lambda connection: context.wrap_socket(connection, server_side=True).close())
    outcomes = asyncio.run(_list_rounds(pki, server.base_url, 10))
    assert all(type(error) is TransportError for error in outcomes), outcomes
    assert all(error.title == "Network problem" for error in outcomes)


def test_server_that_closes_before_the_handshake_is_a_network_problem(pki, listener):
    server = listener(lambda connection: None)
    outcomes = asyncio.run(_list_rounds(pki, server.base_url, 5))
    assert all(type(error) is TransportError for error in outcomes), outcomes


def test_silent_reset_only_with_our_certificate_is_rejected(pki, listener):
    """No alert at all: the server drops connections that present our certificate and answers
    those that present none. The second probe (without the certificate) settles it."""
    context = server_context(pki, "ca_b", ssl.CERT_OPTIONAL)

    def behaviour(connection: socket.socket) -> None:
        with context.wrap_socket(connection, server_side=True) as tls:
            if not tls.getpeercert(binary_form=True):
                respond(tls)

    server = listener(behaviour)
    outcomes = asyncio.run(_list_rounds(pki, server.base_url, 2))
    assert all(isinstance(error, HandshakeRejected) for error in outcomes), outcomes


def test_a_probe_that_cannot_connect_never_reports_a_refusal(pki, listener):
    refused = socket.create_server(("127.0.0.1", 0))
    port = refused.getsockname()[1]
    refused.close()  # nothing listens there now
    probe = handshake_probe_for(ca_bundle=pki["ca_a"], client_cert=pki["client_cert"], client_key=pki["client_key"])
    assert asyncio.run(probe.refuses_certificate(f"https://127.0.0.1:{port}")) == (False, None)


async def _list_rounds(pki, base_url: str, rounds: int) -> list[Exception]:
    outcomes: list[Exception] = []
    probe = HandshakeProbe(
        handshake_probe_for(
            ca_bundle=pki["ca_a"], client_cert=pki["client_cert"], client_key=pki["client_key"]
        )._contexts
    )
    for _ in range(rounds):
        async with make_http_client(
            ca_bundle=pki["ca_a"], client_cert=pki["client_cert"], client_key=pki["client_key"], timeout=30
        ) as http:
            klarna = KlarnaClient(http, base_url, KEY, max_attempts=1, with_certificate=True, handshake_probe=probe)
            try:
                await klarna.list_certificates()
            except TransportError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(AssertionError("answered"))
    return outcomes


# ---------------------------------------------------------------- the classification itself
def _wrapped(inner: BaseException) -> httpx.ReadError:
    """httpx's shape: httpx.ReadError from httpcore.ReadError from the ssl/OS error."""
    import httpcore

    try:
        try:
            raise inner
        except BaseException as exc:
            raise httpcore.ReadError(str(exc)) from exc
    except httpcore.ReadError as exc:
        outer = httpx.ReadError(str(exc))
        outer.__cause__ = exc
        return outer


@pytest.mark.parametrize(
    "reason",
    [
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "TLSV1_ALERT_UNKNOWN_CA",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
    ],
)
def test_certificate_alerts_deep_in_the_chain_are_rejections(reason):
    alert = ssl.SSLError(1, f"[SSL: {reason}] alert (_ssl.c:2580)")
    error = transport_error(_wrapped(alert), with_certificate=True)
    assert isinstance(error, HandshakeRejected)
    assert "TLS alert" in error.message


def test_certificate_required_without_a_certificate_says_so():
    alert = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required")
    error = transport_error(_wrapped(alert), with_certificate=False)
    assert not isinstance(error, HandshakeRejected)
    assert error.title == "Client certificate required"


@pytest.mark.parametrize(
    "inner",
    [
        ConnectionResetError(104, "Connection reset by peer"),
        ssl.SSLEOFError(8, "[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol"),
        ssl.SSLError(1, "[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure"),
    ],
)
def test_resets_and_eofs_alone_are_not_rejections(inner):
    """Without a probe to settle it, an unexplained break is a network problem, not a refusal."""
    for failure in (inner, _wrapped(inner)):
        error = transport_error(failure, with_certificate=True)
        assert type(error) is TransportError and error.title == "Network problem"
