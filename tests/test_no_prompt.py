"""No library ever prompts on the terminal: an encrypted private key without its passphrase ends
with the project's own message, never OpenSSL's ``Enter PEM pass phrase:`` (which read the tty and
froze every later launch)."""

from __future__ import annotations

import os
import pty
import select
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wizard.core.errors import CryptoError, KeyLocked
from wizard.klarna.tls import make_ssl_context

PASSPHRASE = "correct horse battery"
ROOT = Path(__file__).resolve().parent.parent


def run_in_pty(
    argv: list[str], env: dict[str, str], timeout: float = 90.0, keys: bytes = b""
) -> tuple[int | None, str]:
    """Run ``argv`` with a pseudo-terminal as its controlling terminal (OpenSSL's prompt opens
    /dev/tty); returns (exit status or None when it had to be killed, everything it printed)."""
    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is stdin, stdout, stderr and the controlling terminal
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, *argv], env)
    output, deadline, status = b"", time.monotonic() + timeout, None
    sent = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            output += chunk
            if not chunk:
                break
        if keys and not sent and b"Enter PEM pass phrase" in output:
            break  # the old behaviour: stop waiting, it would hang for ever
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(code)
            break
    if status is None:
        status = _reap(pid, time.monotonic() + 10)
    os.close(fd)
    return status, output.decode("utf-8", "replace")


def _reap(pid: int, deadline: float) -> int | None:
    """The child's exit status once it ends (output closed first), or None after killing it."""
    while time.monotonic() < deadline:
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(code)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


@pytest.fixture
def encrypted_profile(onboard, monkeypatch):
    """A sandbox profile onboarded headlessly with an encrypted private key."""
    monkeypatch.setenv("KLARNA_MTLS_KEY_PASSPHRASE", PASSPHRASE)
    onboard("locked")
    monkeypatch.delenv("KLARNA_MTLS_KEY_PASSPHRASE")
    return "locked"


def test_cli_with_an_encrypted_key_and_no_passphrase_exits_with_a_message(encrypted_profile):
    env = {k: v for k, v in os.environ.items() if k != "KLARNA_MTLS_KEY_PASSPHRASE"}
    status, output = run_in_pty(["-m", "wizard.cli", "status", "--profile", encrypted_profile], env)
    assert "Enter PEM pass phrase" not in output
    assert status == 3, output
    assert "encrypted" in output and "KLARNA_MTLS_KEY_PASSPHRASE" in output


@pytest.mark.parametrize("command", [["doctor"], ["check"], ["export", "--format", "k8s"]])
def test_every_command_that_loads_the_key_ends_without_a_prompt(encrypted_profile, command, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KLARNA_MTLS_KEY_PASSPHRASE"}
    extra = ["--out", str(tmp_path / "out")] if command[0] == "export" else []
    status, output = run_in_pty(["-m", "wizard.cli", *command, "--profile", encrypted_profile, *extra], env)
    assert "Enter PEM pass phrase" not in output
    assert status is not None and status != 0, output  # ended by itself, and not as a success
    assert "passphrase" in output.lower(), output


def test_cli_with_the_passphrase_in_the_environment_works(encrypted_profile):
    env = dict(os.environ, KLARNA_MTLS_KEY_PASSPHRASE=PASSPHRASE)
    status, output = run_in_pty(["-m", "wizard.cli", "status", "--profile", encrypted_profile], env)
    assert "Enter PEM pass phrase" not in output
    assert status == 0, output


def _pair(tmp_path, encrypted: bool = True):
    from tests_support import write_self_signed_pair

    return write_self_signed_pair(tmp_path, cn="x", passphrase=PASSPHRASE.encode() if encrypted else None)


def test_wrong_passphrase_is_the_projects_own_error(tmp_path):
    cert, key = _pair(tmp_path)
    with pytest.raises(KeyLocked) as raised:
        make_ssl_context(client_cert=cert, client_key=key, key_passphrase=b"not it")
    assert raised.value.wrong and str(key) in raised.value.message
    assert isinstance(
        make_ssl_context(client_cert=cert, client_key=key, key_passphrase=PASSPHRASE.encode()), ssl.SSLContext
    )


def test_a_passphrase_openssl_will_not_take_is_a_wrong_passphrase(tmp_path):
    cert, key = _pair(tmp_path)
    with pytest.raises(KeyLocked):
        make_ssl_context(client_cert=cert, client_key=key, key_passphrase=b"x" * 2000)


def test_a_certificate_for_another_key_is_not_called_a_wrong_passphrase(tmp_path):
    cert, _ = _pair(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, key = _pair(other)
    with pytest.raises(CryptoError) as raised:
        make_ssl_context(client_cert=cert, client_key=key, key_passphrase=PASSPHRASE.encode())
    assert not isinstance(raised.value, KeyLocked) and "belong together" in str(raised.value)


def test_no_passphrase_in_process_raises_without_reading_a_terminal(tmp_path):
    """Run where OpenSSL's prompt could only read a closed stdin, with a timeout: never a prompt."""
    cert, key = _pair(tmp_path)
    code = (
        "from pathlib import Path; from wizard.klarna.tls import make_ssl_context; from wizard.core.errors import KeyLocked\n"
        f"try:\n make_ssl_context(client_cert=Path({str(cert)!r}), client_key=Path({str(key)!r}))\n"
        "except KeyLocked as e: print('LOCKED', e.message)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        start_new_session=True,
    )
    assert "LOCKED" in done.stdout and "no passphrase was given" in done.stdout
    assert "pass phrase" not in done.stdout + done.stderr


def _wait_for(fd: int, needle: bytes, seen: bytearray, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in seen:
            return True
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return needle in seen
            if not chunk:
                return needle in seen
            seen.extend(chunk)
    return needle in seen


def test_the_tui_in_a_real_pty_asks_for_the_passphrase_and_prints_a_summary_on_quit(encrypted_profile):
    """The real program on a real terminal: no OpenSSL prompt; the passphrase modal; the stage;
    after ctrl+q, a summary stays in the terminal."""
    import fcntl
    import struct
    import termios

    env = {k: v for k, v in os.environ.items() if k != "KLARNA_MTLS_KEY_PASSPHRASE"}
    env.update(TERM="xterm-256color", COLUMNS="80", LINES="24")
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "wizard.cli", "--profile", encrypted_profile], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    seen = bytearray()
    try:
        assert _wait_for(fd, b"passphrase", seen), seen.decode("utf-8", "replace")[-2000:]
        assert b"Enter PEM pass phrase" not in seen
        os.write(fd, PASSPHRASE.encode() + b"\r")
        assert _wait_for(fd, b"Resumed at Enforce", seen), seen.decode("utf-8", "replace")[-2000:]
        os.write(fd, b"\x11")  # ctrl+q
        _wait_for(fd, b"critical-days", seen, timeout=30)
    finally:
        status = _reap(pid, time.monotonic() + 30)
        os.close(fd)
    text = seen.decode("utf-8", "replace")
    assert status == 0, text[-2000:]
    tail = text[text.rfind("klarna-mtls: profile") :]
    for expected in (
        "Certificate: krn:",
        "Private key file:",
        "(encrypted)",
        "Expires:",
        "start the renewal",
        "klarna-mtls check --profile locked",
    ):
        assert expected in tail, tail
    assert PASSPHRASE not in text
