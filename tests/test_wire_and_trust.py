"""A strict wire and nothing trusted by accident (issue 22 rules 2, 4 and 5): only 2xx is success
(HS-07), TLS 1.2 only with AEAD suites (HS-10), a key with surrounding whitespace named as such
(IN-07), a non-dumpable process (A09), live and test hosts from the environment table only
(IN-01), the --trust-ca file checked on every run, and server text that stays text in the log
(HS-11). Each test is built from the red team's reproduction."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import pytest
from conftest import record_figure

from wizard.core import rules
from wizard.core.errors import ApiError, CryptoError, InputError, JournalError, TransportError
from wizard.core.paths import Paths
from wizard.klarna import tls
from wizard.klarna.client import KlarnaClient
from wizard.sandbox.server import Fault
from wizard.services.session import Session

REPO = Path(__file__).resolve().parents[1]
KEY = "klarna_test_api_" + "W" * 28 + "IRE1"
NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="planting another user's files needs root")


def mock_client(handler, **http_options) -> KlarnaClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), **http_options)
    return KlarnaClient(http, "https://example.test", KEY, max_attempts=1)


def requests_seen(sandbox) -> int:
    """How many requests reached the sandbox since count_requests(): a zero-latency fault counts them."""
    return 1000 - sum(f.count for f in sandbox._server.faults)


def count_requests(sandbox) -> None:
    sandbox.clear_faults()
    sandbox.inject(Fault(kind="latency", operation=None, count=1000, seconds=0))


# ---------------------------------------------------------------- HS-07: only 2xx is success
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_answer_is_an_error_and_never_followed(status):
    seen = []
    entry = {"credential_id": "krn:x:1", "status": "REVOKED"}

    def handler(request):
        seen.append(request.url.path)
        if request.url.path.endswith("/revoke"):
            return httpx.Response(status, headers={"Location": "https://evil.example/steal"}, json=entry)
        return httpx.Response(200, json=entry)

    # Even a client built to follow redirects does not follow ours.
    with pytest.raises(ApiError) as caught:
        asyncio.run(mock_client(handler, follow_redirects=True).revoke_certificate("krn:x:1"))
    assert caught.value.status == status and caught.value.title == "Unexpected redirect"
    assert "evil.example" in caught.value.message and len(seen) == 1
    record_figure("wire: non-2xx answers counted as failures", 1, 1)


def test_a_revoke_answered_302_prints_an_error_and_audits_nothing(onboard, cli, sandbox, tmp_path, monkeypatch):
    from test_sandbox_rules import issue_pair

    onboard()
    spare, *_ = issue_pair(sandbox, tmp_path, "spare")
    original = tls.make_http_client

    class RedirectRevokes(httpx.AsyncBaseTransport):
        """sc_redirect.py: a revoke answered 302 with the entry as JSON, nothing revoked."""

        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and request.url.path.endswith("/revoke"):
                body = {"credential_id": spare.credential_id, "status": "REVOKED"}
                return httpx.Response(302, headers={"Location": "https://evil.example/steal"}, json=body)
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    def redirecting(**options):
        client = original(**options)
        client._transport = RedirectRevokes(client._transport)
        return client

    monkeypatch.setattr(tls, "make_http_client", redirecting)
    code, out = cli("certs", "revoke", spare.credential_id, "--profile", "p")
    assert code == 3 and out["error"]["title"] == "Unexpected redirect", out
    actions = [e["action"] for e in Session(Paths.from_env(), "p").audit.entries()]
    assert "certificate_revoked" not in actions
    monkeypatch.setattr(tls, "make_http_client", original)
    code, status = cli("status", "--profile", "p")
    assert {c["credential_id"]: c["status"] for c in status["certificates"]}[spare.credential_id] == "ACTIVE"
    record_figure("wire: non-2xx answers counted as failures", 1, 1)


# ---------------------------------------------------------------- HS-10: AEAD suites only
def test_the_client_offers_tls13_and_only_aead_ecdhe_suites_for_tls12():
    suites = tls.make_ssl_context().get_ciphers()
    tls12 = [s["name"] for s in suites if s["protocol"] == "TLSv1.2"]
    assert any(s["protocol"] == "TLSv1.3" for s in suites)
    weak = [n for n in tls12 if not (n.startswith("ECDHE-") and ("-GCM-" in n or "CHACHA20" in n))]
    assert tls12 and weak == [], tls12
    record_figure("wire: TLS 1.2 suites offered that are not ECDHE with AEAD", len(weak), len(tls12))


class OneShotTls:
    """A loopback TLS 1.2 listener with the sandbox's certificate and the given suites, answering
    each request with an empty listing."""

    def __init__(self, sandbox, ciphers: str) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.maximum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_ciphers(ciphers)
        self.context.load_cert_chain(*[str(p) for p in sandbox._state.server_credentials()])
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"https://127.0.0.1:{self.socket.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        body = b'{"credentials": []}'
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(connection, server_side=True) as wrapped:
                    wrapped.recv(65536)
                    wrapped.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            except (ssl.SSLError, OSError):
                connection.close()


async def list_with(base_url: str, ca_bundle: Path, api_key: str = KEY):
    async with tls.make_http_client(ca_bundle=ca_bundle, timeout=5) as http:
        return await KlarnaClient(http, base_url, api_key, max_attempts=1).list_certificates()


def test_a_cbc_only_server_is_refused_with_a_clear_error(sandbox):
    server = OneShotTls(sandbox, "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256")
    with pytest.raises(TransportError) as caught:
        asyncio.run(list_with(server.base_url, sandbox.ca_bundle))
    assert caught.value.title == "TLS too weak" and not caught.value.retryable
    assert "AES-GCM or ChaCha20-Poly1305" in caught.value.message and "CBC" in caught.value.message
    server.socket.close()
    record_figure("wire: CBC-only TLS 1.2 server refused", 1, 1)


def test_the_negotiated_protocol_and_suite_are_reported(sandbox):
    server = OneShotTls(sandbox, "DEFAULT")
    answer = asyncio.run(list_with(server.base_url, sandbox.ca_bundle))
    assert answer.tls_version == "TLSv1.2" and answer.tls_cipher is not None
    assert answer.tls_cipher.startswith("ECDHE-") and ("GCM" in answer.tls_cipher or "CHACHA20" in answer.tls_cipher)
    server.socket.close()
    answer = asyncio.run(list_with(sandbox.base_url, sandbox.ca_bundle, sandbox.api_key))
    assert answer.tls_version == "TLSv1.3" and (answer.tls_cipher or "").startswith("TLS_")


# ---------------------------------------------------------------- IN-07: whitespace in the key
@pytest.mark.parametrize("padding", ["\n", " ", "\t", "\r\n"], ids=["newline", "space", "tab", "crlf"])
def test_a_key_with_surrounding_whitespace_is_named_and_never_sent(onboard, cli, sandbox, monkeypatch, padding):
    onboard()
    count_requests(sandbox)
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key + padding)
    code, out = cli("status", "--profile", "p")
    assert code == 3 and "surrounding whitespace" in out["error"]["message"], out
    assert out["error"]["title"] != "Network problem" and requests_seen(sandbox) == 0
    record_figure("input: keys with surrounding whitespace refused before any request", 1, 1)


def test_input_rules_do_not_let_a_final_newline_through():
    key = "klarna_test_api_" + "k" * 20
    assert rules.api_key_environment(key) == "test" and rules.api_key_environment(key + "\n") is None
    with pytest.raises(InputError, match="surrounding whitespace"):
        rules.verify_api_key(" " + key)
    with pytest.raises(InputError):
        rules.verify_description("ok\n")
    assert not rules.valid_correlation_id("abc\n")
    from wizard.services.install import verify_label

    with pytest.raises(InputError):
        verify_label("abc\n")


# ---------------------------------------------------------------- A09: not dumpable
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_DUMPABLE is Linux's")
def test_every_command_marks_its_process_non_dumpable(tmp_path):
    script = textwrap.dedent("""
        import ctypes
        from wizard.cli.main import main
        libc = ctypes.CDLL(None)
        before = libc.prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
        main(["profiles", "list"])
        print(before, libc.prctl(3, 0, 0, 0, 0))
    """)
    env = {**os.environ, "KLARNA_MTLS_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert out.stdout.split()[-2:] == ["1", "0"], out


# ---------------------------------------------------------------- IN-01: hosts from the environment table
def configure_test_profile(paths, sandbox, name: str = "t1") -> Path:
    session = Session(paths, name)
    session.configure("test", sandbox.account_id)
    session.set_trust_ca(sandbox.ca_bundle)  # e.g. a TLS-inspecting proxy: the hostile host is trusted
    return paths.journal_path(name)


@pytest.mark.parametrize("field", ["base_url", "ca_bundle"])
def test_a_host_in_the_journal_of_a_test_profile_is_damage_and_nothing_is_sent(sandbox, paths, cli, monkeypatch, field):
    journal = configure_test_profile(paths, sandbox)
    data = json.loads(journal.read_text())
    data["settings"][field] = sandbox.base_url if field == "base_url" else str(sandbox.ca_bundle)
    journal.write_text(json.dumps(data))
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    count_requests(sandbox)
    code, out = cli("status", "--profile", "t1")
    assert code == 3 and out["error"]["title"] == "Saved settings damaged", out
    assert str(journal) in out["error"]["message"] and requests_seen(sandbox) == 0
    with pytest.raises(JournalError, match="Nothing was sent"):
        Session(paths, "t1")
    record_figure("hosts: a journal host or CA for a test profile refused, key not sent", 1, 1)


def test_live_and_test_hosts_come_from_the_environment_table_only(sandbox, paths):
    from wizard.klarna.endpoints import BASE_URLS
    from wizard.services.clients import verify_host_settings

    configure_test_profile(paths, sandbox)
    session = Session(paths, "t1")
    assert session.base_url == BASE_URLS["test"]
    session.settings.base_url = BASE_URLS["test"] + "/"  # Klarna's own host: not damage
    verify_host_settings(session.settings, "test")
    session.settings.base_url = sandbox.base_url  # changed in memory after loading
    with pytest.raises(JournalError):
        _ = session.base_url
    with pytest.raises(JournalError):
        session.clients.check_binding(sandbox.api_key)


# ---------------------------------------------------------------- --trust-ca checked on every run
def test_the_trust_ca_file_is_checked_on_every_run(sandbox, paths, cli, tmp_path, monkeypatch):
    folder = tmp_path / "corp"
    folder.mkdir(mode=0o755)
    ca = folder / "proxy-ca.pem"
    shutil.copy(sandbox.ca_bundle, ca)
    ca.chmod(0o644)
    session = Session(paths, "corp")
    session.configure("test", sandbox.account_id)
    session.set_trust_ca(ca)
    ca.chmod(0o666)  # anyone may now decide whom this profile trusts
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    code, out = cli("status", "--profile", "corp")
    assert code == 3 and out["error"]["title"] == "Unsafe trusted CA file", out
    assert "writable by group or others" in out["error"]["message"] and f"chmod go-w {ca}" in out["error"]["hint"]
    ca.chmod(0o644)
    assert Session(paths, "corp").clients.trusted_ca_bundle() == ca
    folder.chmod(0o777)  # the folder lets others swap the file
    with pytest.raises(CryptoError, match="writable by group or others"):
        Session(paths, "corp").clients.trusted_ca_bundle()
    folder.chmod(0o755)
    with pytest.raises(CryptoError, match="is writable by group or others"):
        ca.chmod(0o620)
        Session(paths, "corp").set_trust_ca(ca)
    record_figure("trust: an unsafe --trust-ca file refused on use and when chosen", 3, 3)


@needs_root
def test_a_trust_ca_file_owned_by_another_user_is_refused(sandbox, paths, cli, tmp_path, monkeypatch):
    ca = tmp_path / "proxy-ca.pem"
    shutil.copy(sandbox.ca_bundle, ca)
    session = Session(paths, "corp")
    session.configure("test", sandbox.account_id)
    session.set_trust_ca(ca)
    os.chown(ca, NOBODY, NOBODY)
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    code, out = cli("status", "--profile", "corp")
    assert code == 3 and "owned by another user" in out["error"]["message"], out
    assert "--trust-ca" in out["error"]["hint"]
    record_figure("trust: an unsafe --trust-ca file refused on use and when chosen", 1, 1)


# ---------------------------------------------------------------- HS-11: server text in the log
HOSTILE = [
    "DOCMSG \x1b]52;c;cHduZWQ=\x1b\\ TAIL",  # OSC 52: writes the clipboard of whoever cats the log
    "title \x1b]0;owned\x07 end",
    "clear \x1b[2J\x1b[H home",
    "c1 \x9b31m red \x9d0;t\x9c",
    "bidi \u202egnp.exe\u202c \u2066iso\u2069 \u200fmark",
    "bell \x07 backspace \x08\x08 nul \x00 del \x7f",
]
FORBIDDEN = ["\x1b", "\x07", "\x08", "\x00", "\x7f", "\x9b", "\x9c", "\x9d", "\u202e", "\u202c", "\u2066", "\u200f"]


@pytest.fixture
def log_file(paths):
    from wizard.core.logs import setup_logging

    logger = setup_logging(paths)
    yield lambda: [h.flush() for h in logger.handlers] and paths.log_path().read_text(encoding="utf-8")
    for handler in list(logger.handlers):
        if getattr(handler, "_klarna_mtls", False):
            logger.removeHandler(handler)
            handler.close()


def test_server_text_in_the_log_stays_text(log_file):
    def handler(request):
        return httpx.Response(400, json={"error_code": "BAD", "error_message": " | ".join(HOSTILE)})

    with pytest.raises(ApiError):
        asyncio.run(mock_client(handler).list_api_keys())
    logging.getLogger("klarna_mtls.test").warning("answer: %s", "\n".join(HOSTILE))
    text = log_file()
    found = [c for c in FORBIDDEN if c in text]
    assert found == [] and "DOCMSG" in text and "TAIL" in text and "gnp.exe" in text
    record_figure("log: hostile control, escape and bidi characters written", len(found), len(FORBIDDEN))


def test_a_newline_from_a_server_cannot_forge_a_log_record(log_file):
    forged = "refused\n2030-01-01 00:00:00,000 INFO klarna_mtls certificate revoked: all is well"
    logging.getLogger("klarna_mtls.api").warning("list_api_keys refused: %s", forged)
    lines = log_file().splitlines()
    assert not any(line.startswith("2030-01-01") for line in lines)


def test_a_key_split_by_an_escape_is_still_redacted_in_the_log(log_file):
    secret_tail = "S" * 24 + "TAIL"
    logging.getLogger("klarna_mtls.test").warning("echo: klarna_test_api_AB\x1b[0m%s", secret_tail)
    text = log_file()
    assert secret_tail not in text and "klarna_test_api_…" in text
