"""Errors say what failed, where, and what next: the host and the cause of a network failure, the
path and reason of a file problem, and every error modal names the log."""

from __future__ import annotations

import socket

import httpx
import pytest

from wizard.core.errors import TransportError
from wizard.klarna.client import KlarnaClient
from wizard.klarna.errors import transport_error
from wizard.klarna.tls import make_http_client

HOST = "api-global.test.klarna.com"


def _request() -> httpx.Request:
    return httpx.Request("GET", f"https://{HOST}/v2/account/integration/credentials/api-key")


@pytest.mark.parametrize(
    "text, cause",
    [
        ("[Errno -2] Name or service not known", "DNS"),
        ("[Errno -3] Temporary failure in name resolution", "DNS"),
        ("[Errno 111] Connection refused", "refused"),
        ("[Errno 101] Network is unreachable", "unreachable"),
    ],
)
def test_connect_errors_name_the_host_and_the_cause(text, cause):
    error = transport_error(httpx.ConnectError(text, request=_request()), with_certificate=False)
    assert f"{HOST}:443" in error.message and cause in error.message


def test_a_timeout_names_the_host_and_what_did_not_happen():
    error = transport_error(httpx.ConnectTimeout("timed out", request=_request()), with_certificate=False)
    assert error.title == "Timeout" and HOST in error.message and "connection" in error.message


def test_tls_interception_is_named():
    exc = httpx.ConnectError(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate "
        "in certificate chain (_ssl.c:1006)",
        request=_request(),
    )
    error = transport_error(exc, with_certificate=False)
    assert error.title == "Untrusted server" and "intercepting TLS" in error.message and HOST in error.message


def test_a_proxy_is_mentioned_without_its_password(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://user:s3cretpw@proxy.corp:3128")
    error = transport_error(httpx.ConnectError("[Errno 111] Connection refused", request=_request()), False)
    assert "proxy.corp:3128" in error.hint and "s3cretpw" not in error.hint


async def test_a_refused_connection_for_real_names_host_and_port_and_is_logged(caplog):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    async with make_http_client(timeout=5) as http:
        client = KlarnaClient(http, f"https://127.0.0.1:{port}", "klarna_test_api_" + "x" * 32, max_attempts=1)
        with caplog.at_level("DEBUG", logger="klarna_mtls.api"), pytest.raises(TransportError) as raised:
            await client.list_certificates()
    assert f"127.0.0.1:{port}" in raised.value.message and "refused" in raised.value.message
    assert any("list_certificates failed" in r.getMessage() for r in caplog.records)
    assert any("connectionrefusederror" in r.getMessage() for r in caplog.records if r.levelname == "DEBUG")


def _cert_and_key():
    from tests_support import self_signed

    from wizard.core import crypto

    key = crypto.make_private_key()
    return self_signed(key, days=1).encode(), crypto.make_private_key_pem(key)


@pytest.mark.parametrize("inside", [False, True])
def test_an_install_folder_that_is_a_file_names_path_and_reason(tmp_path, inside):
    from wizard.core.errors import StorageError
    from wizard.services.install import install_pair

    blocker = tmp_path / "certs"
    blocker.write_text("not a folder")
    target = blocker / "sub" if inside else blocker
    cert, key = _cert_and_key()
    with pytest.raises(StorageError) as raised:
        install_pair(target, cert, key, label="abc")
    message = raised.value.message  # fsutil's own refusal, or errors.storage_error's reason
    assert str(blocker) in message
    assert any(why in message for why in ("not a folder", "a file is in the way", "part of the path is a file"))


@pytest.mark.parametrize(
    "name, reason", [("EROFS", "read-only"), ("EACCES", "permission denied"), ("ENOSPC", "disk is full")]
)
def test_os_errors_become_messages_with_path_and_reason(name, reason):
    import errno

    from wizard.core.errors import storage_error

    error = storage_error("/srv/klarna", OSError(getattr(errno, name), "x", "/srv/klarna/current"), "install into")
    assert error.message == f"Could not install into /srv/klarna/current: {error.message.split(': ', 1)[1]}"
    assert reason in error.message and error.hint


def test_a_key_passphrase_openssl_will_not_take_has_its_own_message():
    from wizard.core import crypto
    from wizard.core.errors import InputError

    with pytest.raises(InputError) as raised:
        crypto.make_private_key_pem(crypto.make_private_key(), b"x" * 1024)
    assert "1024 bytes" in raised.value.message and "1023" in raised.value.message


def test_the_error_modal_names_the_log_and_an_os_error_its_path():
    import errno

    from screens.modals import ErrorModal

    modal = ErrorModal(
        OSError(errno.EROFS, "Read-only file system", "/mnt/ro/certs"), "/home/p/.local/state/klarna-mtls.log"
    )
    assert "/mnt/ro/certs" in modal.body_text and "read-only" in modal.body_text
    assert modal.title_text == "Could not write file" and modal.log_path
