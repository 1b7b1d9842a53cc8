"""Files and TLS fail closed: permissive umask, unreadable-by-others keys, old TLS, untrusted
server certificates, wrong host names, and no way to switch verification off."""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import ssl
import threading

import pytest

from wizard.core.errors import InputError, TransportError
from wizard.core.paths import Paths
from wizard.klarna import tls
from wizard.klarna.client import KlarnaClient
from wizard.klarna.tls import make_http_client
from wizard.services.session import Session

pytestmark = pytest.mark.e2e


async def list_once(base_url, ca_bundle=None):
    async with make_http_client(ca_bundle=ca_bundle, timeout=5) as http:
        return await KlarnaClient(http, base_url, "klarna_test_api_" + "x" * 30, max_attempts=1).list_certificates()


def test_untrusted_server_certificate_fails_closed(sandbox):
    with pytest.raises(TransportError) as caught:
        asyncio.run(list_once(sandbox.base_url))  # system trust does not know the sandbox CA
    assert caught.value.title == "Untrusted server" and "never turns server verification off" in caught.value.hint


def test_wrong_host_name_fails_closed(tmp_path):
    from wizard.sandbox import start_sandbox

    # The sandbox's certificate names 127.0.0.1 only.
    with start_sandbox(tmp_path / "sb", host="127.0.0.2") as sb, pytest.raises(TransportError) as caught:
        asyncio.run(list_once(sb.base_url, sb.ca_bundle))
    assert caught.value.title == "Untrusted server"


def test_tls_1_1_only_server_fails_closed(sandbox):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.load_cert_chain(*[str(p) for p in sandbox._state.server_credentials()])
    except (ssl.SSLError, ValueError) as exc:
        pytest.skip(f"this OpenSSL cannot even offer TLS 1.1 ({exc})")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_one():
        conn, _ = listener.accept()
        try:
            context.wrap_socket(conn, server_side=True).recv(10)
        except (ssl.SSLError, OSError):
            pass
        finally:
            conn.close()

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    with pytest.raises(TransportError):
        asyncio.run(list_once(f"https://127.0.0.1:{port}", sandbox.ca_bundle))
    listener.close()


def test_verification_cannot_be_turned_off():
    for factory in (tls.make_ssl_context, tls.make_http_client):
        names = set(inspect.signature(factory).parameters)
        assert not names & {"verify", "insecure", "check_hostname", "cert_reqs"}
    context = tls.make_ssl_context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(
    "environment,account",
    [("test", "krn:partner:global:account:test:LYABCDEI"), ("live", "krn:partner:global:account:live:LYABCDEI")],
)
def test_live_and_test_profiles_refuse_a_custom_ca_or_host(environment, account):
    session = Session(Paths.from_env(), "p")
    with pytest.raises(InputError, match="only allowed for the sandbox"):
        session.configure(environment, account, base_url="https://evil.example", ca_bundle="/tmp/ca.pem")


def test_key_files_private_under_a_permissive_umask(sandbox, onboard):
    old = os.umask(0)
    try:
        result = onboard()
    finally:
        os.umask(old)
    paths = Paths.from_env()
    for key in (paths.keys_dir("p") / "private-key.pem", result["key_path"]):
        assert oct(os.stat(key).st_mode & 0o777) == "0o600"
        assert oct(os.stat(os.path.dirname(os.path.realpath(key))).st_mode & 0o777) == "0o700"
