"""A real TLS listener on loopback that answers like Klarna's credentials API.

Client certificates are requested (CERT_OPTIONAL) and verified against the sandbox CA during the
handshake; each connection is handled in its own thread."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from wizard.core import rules
from wizard.core.errors import InputError
from wizard.klarna.endpoints import CREDENTIAL_ID, ENDPOINTS
from wizard.sandbox import answers
from wizard.sandbox.state import SandboxError, SandboxState

_ID = r"(?P<id>[^/]+)"
Answer = tuple[int, Any]  # (HTTP status, JSON payload or None for no body)


def _route_pattern(template: str) -> re.Pattern[str]:
    """A path template of ENDPOINTS as an anchored pattern; the credential id is one segment."""
    return re.compile("^" + _ID.join(re.escape(part) for part in template.split(CREDENTIAL_ID)) + r"\Z")


# (method, path pattern) -> operation name: the client's ENDPOINTS, so both speak the same paths
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, _route_pattern(template), operation) for operation, (method, template) in ENDPOINTS.items()
]

FAULT_KINDS = ("latency", "status", "rate_limit", "malformed_json", "html_error", "reset", "drop_after_commit")
OPERATIONS = tuple(dict.fromkeys(op for _, _, op in ROUTES))
MAX_BODY_BYTES = 1_000_000  # Klarna answers 413 above 1 MB


@dataclass
class Fault:
    """One injected misbehaviour, for ``count`` matching requests (operation None = any)."""

    kind: str
    operation: str | None = None
    count: int = 1
    status: int = 503
    retry_after: float = 1.0
    seconds: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {FAULT_KINDS}")
        if self.operation == "any":
            self.operation = None
        if self.operation is not None and self.operation not in OPERATIONS:
            raise ValueError(f"unknown operation {self.operation!r}; one of {OPERATIONS} or 'any'")
        if self.count < 1:
            raise ValueError("count must be at least 1")


class _Dropped(Exception):
    """Close the connection without an answer."""

    def __init__(self, reset: bool) -> None:
        self.reset = reset


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The listen backlog (socketserver's default is 5): a burst of new connections beyond it has
    # its SYNs dropped and retried by the client after 1, 3, 7 s. A fleet check opens hundreds.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], state: SandboxState, admin_token: str) -> None:
        self.state = state
        self.admin_token = admin_token
        self.faults: list[Fault] = []
        self.faults_lock = threading.Lock()
        # Open TLS connections, so stop() can end keep-alive connections a client still holds.
        self._connections: set[ssl.SSLSocket] = set()
        self._connections_lock = threading.Lock()
        cert, key = state.server_credentials()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(cert), str(key))
        context.load_verify_locations(cafile=str(state.ca_bundle))
        context.verify_mode = ssl.CERT_OPTIONAL
        self.tls = context
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, SandboxHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake runs in the connection's own thread, so a slow client blocks no one.
        try:
            request.settimeout(30)
            # Headers and body go out in separate writes: without this, Nagle's algorithm and the
            # client's delayed ACK hold each answer back by tens of milliseconds.
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # e.g. a client certificate from another CA: refused in the handshake
        with self._connections_lock:
            self._connections.add(tls)
        try:
            super().finish_request(tls, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(tls)
            with contextlib.suppress(OSError):
                tls.close()

    def close_connections(self) -> None:
        """End every open connection: a stopped sandbox must not keep answering pooled clients."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that goes away mid-request is not the sandbox's problem

    def add_fault(self, fault: Fault) -> None:
        with self.faults_lock:
            self.faults.append(fault)

    def clear_faults(self) -> None:
        with self.faults_lock:
            self.faults.clear()

    def take_fault(self, operation: str) -> Fault | None:
        with self.faults_lock:
            for fault in self.faults:
                if fault.operation in (None, operation) and fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SandboxServer
    server_version = "klarna-mtls-sandbox"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: requests carry API keys in headers

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self) -> None:
        path = self.path.split("?", 1)[0]
        state = self.server.state
        extra_headers: dict[str, str] = {}
        try:
            body = self._read_body()
            if path.startswith("/__sandbox__/"):
                return self._admin(path, body)
            operation, params = self._route(path)
            if operation is None:
                raise SandboxError(404, "RESOURCE_ERROR", "NOT_FOUND", "No such endpoint.")
            fault = self.server.take_fault(operation)
            if fault is not None:
                self._pre_fault(fault)
            with state.lock:
                account_id, key_id = state.authenticate(self.headers.get("Authorization"))
                extra_headers = self._verification_headers(account_id)
                if state.is_enforced(account_id) and self._verification(account_id) != "VALID":
                    raise SandboxError(
                        state.options.refusal_status,
                        "ACCESS_ERROR",
                        "MTLS_REQUIRED",
                        "mTLS is enforced: this request must present a valid client certificate.",
                    )
                status, payload = self._idempotent(
                    operation, account_id, lambda: self._operate(operation, account_id, key_id, params, body)
                )
                status, payload = answers.shape(state.options, operation, status, payload)
                if self.command != "GET":  # reads only touch last_used_at: not worth an fsync
                    state.save()
                extra_headers = self._verification_headers(account_id)
            if fault is not None and fault.kind == "drop_after_commit":
                raise _Dropped(reset=False)
            if fault is not None and fault.kind == "malformed_json":
                return self._send(200, b'{"credentials": [', "application/json", extra_headers)
            self._send_json(status, payload, extra_headers)
        except SandboxError as error:
            self._send_json(error.status, error.body(), extra_headers)
        except _Dropped as dropped:
            self._drop(dropped.reset)
        except _Handled:
            raise
        except Exception:  # a sandbox bug: answer like Klarna would rather than drop the connection
            failure = SandboxError(500, "TECHNICAL_ERROR", "INTERNAL_ERROR", "The sandbox failed unexpectedly.")
            self._send_json(500, failure.body(), extra_headers)

    def _pre_fault(self, fault: Fault) -> None:
        if fault.kind == "latency":
            time.sleep(fault.seconds)
        elif fault.kind == "status":
            raise SandboxError(fault.status, "TECHNICAL_ERROR", "INTERNAL_ERROR", "Injected server error.")
        elif fault.kind == "rate_limit":
            self._send_json(
                429,
                SandboxError(429, "ACCESS_ERROR", "RATE_LIMITED", "Too many requests.").body(),
                {"Retry-After": f"{fault.retry_after:g}"},
            )
            raise _Handled()
        elif fault.kind == "html_error":
            self._send(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html", {})
            raise _Handled()
        elif fault.kind == "reset":
            raise _Dropped(reset=True)

    def _idempotent(self, operation: str, account_id: str, work: Callable[[], Answer]) -> Answer:
        key = self.headers.get("Klarna-Idempotency-Key")
        if not key or self.command not in ("POST", "PATCH"):
            return work()
        state = self.server.state
        record_key = f"{account_id}|{operation}|{self.path}|{key}"
        first = state.replay(record_key)
        if first is not None:
            return first
        status, payload = work()  # a refusal raises and is not remembered: a fixed retry may pass
        state.remember(record_key, status, payload)
        return status, payload

    def _operate(self, operation: str, account_id: str, key_id: str, params: dict[str, str], body: Any) -> Answer:
        state = self.server.state
        if operation == "list_certificates":
            entries = [state.certificate_entry(c, e) for c, e in state.account_certificates(account_id).items()]
            return 200, {"credentials": entries}
        if operation == "create_certificate":
            entry = state.issue(account_id, body)
            out = state.certificate_entry(entry["credential_id"], entry)
            return 201, out | {"secret": {"certificate": entry["pem"]}}
        if operation in ("get_certificate", "update_certificate", "revoke_certificate"):
            cid, entry = self._certificate(account_id, params["id"])
            if operation == "update_certificate":
                entry["description"] = _description(body)
            elif operation == "revoke_certificate":
                state.revoke(entry, body)
            return 200, state.certificate_entry(cid, entry)
        if operation == "get_enforcement":
            return 200, state.enforcement_state(account_id)
        if operation == "set_enforcement":
            answer = state.set_enforcement(account_id, body)
            return (204, None) if state.options.put_enforcement_answers_204 else (200, answer)
        if operation == "remove_enforcement":
            state.remove_enforcement(account_id)
            return 204, None
        if operation == "list_api_keys":
            keys = [
                state.api_key_entry(c, e) for c, e in state.data["api_keys"].items() if e["account_id"] == account_id
            ]
            return 200, {"credentials": keys}
        if operation == "create_api_key":
            cid, secret = state.mint_key(account_id, _description(body))
            return 201, state.api_key_entry(cid, state.data["api_keys"][cid]) | {"secret": {"secret": secret}}
        cid, entry = self._api_key(account_id, params["id"])
        if operation == "update_api_key":
            entry["description"] = _description(body)
        elif operation == "disable_api_key":
            entry["status"] = "DISABLED"
            return 204, None
        return 200, state.api_key_entry(cid, entry)

    def _certificate(self, account_id: str, cid: str) -> tuple[str, dict[str, Any]]:
        entry = self.server.state.data["certificates"].get(cid)
        if entry is None or entry["account_id"] != account_id:
            raise SandboxError(404, "RESOURCE_ERROR", "NOT_FOUND", "No such certificate.")
        return cid, entry

    def _api_key(self, account_id: str, cid: str) -> tuple[str, dict[str, Any]]:
        entry = self.server.state.data["api_keys"].get(cid)
        if entry is None or entry["account_id"] != account_id:
            raise SandboxError(404, "RESOURCE_ERROR", "NOT_FOUND", "No such API key.")
        return cid, entry

    # ------------------------------------------------------------------ admin
    def _admin(self, path: str, body: Any) -> None:
        """Test controls for other processes; the token is printed only by ``sandbox serve --json``."""
        if not self._admin_token_ok():
            return self._send_json(401, _admin_error("UNAUTHORIZED", "A valid admin token is required."), {})
        handler = _ADMIN_ROUTES.get((self.command, path))
        if handler is None:
            return self._send_json(404, _admin_error("NOT_FOUND", "No such sandbox control."), {})
        try:
            answer = handler(self.server, body if isinstance(body, dict) else {})
        except (TypeError, ValueError) as exc:
            return self._send_json(400, _admin_error("VALIDATION_ERROR", str(exc)), {})
        self._send_json(200, answer, {})

    def _admin_token_ok(self) -> bool:
        # X-Sandbox-Admin: <token>, or Authorization: Bearer <token>.
        given = self.headers.get("X-Sandbox-Admin") or ""
        authorization = self.headers.get("Authorization") or ""
        if not given and authorization.startswith("Bearer "):
            given = authorization[len("Bearer ") :].strip()
        return bool(given) and secrets.compare_digest(given.encode(), self.server.admin_token.encode())

    # ------------------------------------------------------------------ plumbing
    def _route(self, path: str) -> tuple[str | None, dict[str, str]]:
        for method, pattern, operation in ROUTES:
            match = pattern.match(path)
            if match and method == self.command:
                return operation, match.groupdict()
        return None, {}

    def _read_body(self) -> Any:
        """The JSON body, the raw bytes when it is not JSON, or None when empty."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise SandboxError(400, "INPUT_ERROR", "BAD_REQUEST", "Invalid Content-Length.") from None
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body would poison the next request
            raise SandboxError(413, "INPUT_ERROR", "PAYLOAD_TOO_LARGE", "The request body is over 1 MB.")
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return raw

    def _verification(self, account_id: str | None) -> str | None:
        return self.server.state.verification(account_id, self.connection.getpeercert(binary_form=True))

    def _verification_headers(self, account_id: str | None) -> dict[str, str]:
        state = self.server.state
        enforced = account_id is not None and state.is_enforced(account_id)
        return answers.verification_headers(state.options, self._verification(account_id), enforced)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header: real time, or the sandbox clock with ``date_follows_clock``."""
        state = self.server.state
        if timestamp is None and state.options.date_follows_clock:
            timestamp = state.now().timestamp()
        return super().date_time_string(timestamp)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self._send(status, data, "application/json", headers)

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("klarna-correlation-id", secrets.token_hex(16))
        partner = self.headers.get("Partner-Correlation-Id")
        if partner and rules.valid_correlation_id(partner):
            self.send_header("Partner-Correlation-Id", partner)
        for name, value in headers.items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _drop(self, reset: bool) -> None:
        self.close_connection = True
        try:
            if reset:  # RST instead of FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _Handled:
            pass
        except _Dropped as dropped:
            self._drop(dropped.reset)


def _admin_error(code: str, message: str) -> dict[str, Any]:
    return {
        "error_id": secrets.token_hex(8),
        "error_type": "INPUT_ERROR"
        if code == "VALIDATION_ERROR"
        else "ACCESS_ERROR"
        if code == "UNAUTHORIZED"
        else "RESOURCE_ERROR",
        "error_code": code,
        "error_message": message,
    }


def _admin_add_fault(server: SandboxServer, body: dict[str, Any]) -> dict[str, Any]:
    server.add_fault(Fault(**body))
    return {"ok": True}


def _admin_clear_faults(server: SandboxServer, body: dict[str, Any]) -> dict[str, Any]:
    server.clear_faults()
    return {"ok": True}


def _admin_clock(server: SandboxServer, body: dict[str, Any]) -> dict[str, Any]:
    """POST {"advance": seconds} moves the sandbox clock forward; GET reads it."""
    if "advance" in body:
        server.state.advance_clock(float(body["advance"]))
    return {"now": rules.format_utc(server.state.now())}


def _admin_mint_account(server: SandboxServer, body: dict[str, Any]) -> dict[str, Any]:
    account_id, api_key = server.state.mint_account(body.get("environment", "test"))
    return {"account_id": account_id, "api_key": api_key}


def _admin_config(server: SandboxServer, body: dict[str, Any]) -> dict[str, Any]:
    """Settings under options.py's names, each optional; a bad one changes nothing (400).
    Answers every setting now in force."""
    with server.state.lock:
        server.state.options.update(body)
        return server.state.options.as_dict()


_ADMIN_ROUTES = {
    ("POST", "/__sandbox__/faults"): _admin_add_fault,
    ("DELETE", "/__sandbox__/faults"): _admin_clear_faults,
    ("GET", "/__sandbox__/clock"): _admin_clock,
    ("POST", "/__sandbox__/clock"): _admin_clock,
    ("POST", "/__sandbox__/accounts"): _admin_mint_account,
    ("POST", "/__sandbox__/config"): _admin_config,
}


class _Handled(Exception):
    """A fault already wrote its answer."""


def _description(body: Any) -> str:
    value = body.get("description", "") if isinstance(body, dict) else None
    if isinstance(value, str):
        try:
            rules.verify_description(value)
            return value
        except InputError:
            pass
    raise SandboxError(
        400,
        "INPUT_ERROR",
        "VALIDATION_ERROR",
        "Invalid description.",
        [{"parameter": "description", "reason": "must match ^[a-zA-Z0-9\\-:;., _]{0,100}$"}],
    )


def serve_in_thread(
    state: SandboxState, host: str, port: int, admin_token: str
) -> tuple[SandboxServer, threading.Thread]:
    server = SandboxServer((host, port), state, admin_token)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="klarna-mtls-sandbox"
    )
    thread.start()
    return server, thread


__all__ = ["FAULT_KINDS", "OPERATIONS", "Fault", "SandboxServer", "serve_in_thread"]
