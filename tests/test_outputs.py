"""Outputs never overwrite what the tool keeps (issue 22 rule 3: LO-12, FS-10, A20, FS-02) and
`export --out -` feeds a pipe (issue 24 #10). Each test is the red team's reproduction: the
command is refused with the path and the reason, and nothing is written anywhere."""

from __future__ import annotations

import base64
import io
import os
import stat
import sys
from pathlib import Path

import pytest
from conftest import record_figure

from wizard.core import crypto
from wizard.core.errors import InputError, StorageError

pytestmark = pytest.mark.e2e

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="planting another user's files needs root")
OUTPUTS = "outputs: refused, nothing written (kept folders, links, unsafe folders, planted files)"


def snapshot(*paths: Path) -> dict[Path, bytes | None]:
    """What each file holds (None when absent), to prove nothing changed."""
    return {p: (p.read_bytes() if p.exists() else None) for p in paths}


def refused(cli, *argv: str) -> dict:
    code, out = cli(*argv)
    assert code == 3 and out["ok"] is False, out
    return out["error"]


# ---------------------------------------------------------------- LO-12, FS-10: the tool's own files
def kept_targets(paths, install: Path) -> list[tuple[str, Path]]:
    state = paths.profile_state_dir("p")
    return [
        ("p12", install / "current" / "certificate.pem"),  # LO-12: the live certificate
        ("bundle", install / "current" / "private-key.pem"),
        ("k8s", paths.keys_dir("p") / "private-key.pem"),
        ("support-bundle", state / "audit.jsonl"),  # FS-10: the append-only audit log
        ("support-bundle", state / "journal.json"),  # FS-10: the journal
        ("support-bundle", paths.log_path()),
    ]


def test_no_output_lands_in_what_the_tool_keeps(onboard, cli, paths, monkeypatch):
    onboard()
    monkeypatch.setenv("KLARNA_MTLS_EXPORT_PASSWORD", "pw")
    install = paths.default_install_dir("p")
    targets = kept_targets(paths, install)
    before = snapshot(*(t for _, t in targets))
    for fmt, target in targets:
        argv = ["support-bundle"] if fmt == "support-bundle" else ["export", "--format", fmt]
        error = refused(cli, *argv, "--profile", "p", "--out", str(target))
        assert str(target) in error["message"] and "klarna-mtls keeps" in error["message"], error
    assert snapshot(*before) == before
    record_figure(OUTPUTS, len(targets), len(targets))
    code, _ = cli("status", "--profile", "p")
    assert code == 0  # the profile still works


def test_a_folder_link_into_the_profile_is_resolved_before_comparing(onboard, cli, paths, tmp_path):
    onboard()
    link = tmp_path / "reports"
    link.symlink_to(paths.profile_state_dir("p"))  # the user's own link, pointing at the state folder
    audit = paths.audit_path("p")
    before = audit.read_bytes()
    error = refused(cli, "support-bundle", "--profile", "p", "--out", str(link / "audit.jsonl"))
    assert "klarna-mtls keeps" in error["message"] and audit.read_bytes() == before
    pem_out = tmp_path / "certs-link"
    pem_out.symlink_to(paths.default_install_dir("p") / "current")
    error = refused(cli, "export", "--profile", "p", "--format", "pem", "--out", str(pem_out))
    assert "klarna-mtls keeps" in error["message"]
    record_figure(OUTPUTS, 2, 2)


# ---------------------------------------------------------------- A20, FS-02, FS-05: other users
@needs_root
def test_a_folder_link_another_user_planted_is_not_followed(onboard, cli, tmp_path):
    onboard()
    victim = tmp_path / "victim3" / "ssl"
    victim.mkdir(parents=True)
    (victim / "private-key.pem").write_bytes(b"the victim's key\n")
    shared = tmp_path / "faketmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    link = shared / "klarna-export"
    link.symlink_to(victim)
    os.lchown(link, NOBODY, NOBODY)
    before = snapshot(victim / "private-key.pem", victim / "certificate.pem", victim / "bundle.json")
    error = refused(cli, "export", "--profile", "p", "--format", "pem", "--out", str(link))
    assert "symlink owned by another user" in error["message"]
    error = refused(cli, "support-bundle", "--profile", "p", "--out", str(link / "bundle.json"))
    assert str(link) in error["message"]
    assert snapshot(*before) == before
    record_figure(OUTPUTS, 2, 2)


@needs_root
@pytest.mark.parametrize("owner,mode", [(NOBODY, 0o777), (0, 0o2775)], ids=["FS-02 other user's 0777", "A20 2775"])
def test_an_output_folder_others_can_change_is_refused(onboard, cli, tmp_path, owner, mode):
    onboard()
    folder = tmp_path / "rta-exports"
    folder.mkdir()
    os.chown(folder, owner, owner)
    os.chmod(folder, mode)
    error = refused(cli, "export", "--profile", "p", "--format", "pem", "--out", str(folder))
    assert str(folder) in error["message"] and list(folder.iterdir()) == []
    assert stat.S_IMODE(os.stat(folder).st_mode) == mode  # left as it was
    record_figure(OUTPUTS, 1, 1)


@needs_root
def test_a_file_another_user_planted_in_a_sticky_folder_is_not_replaced(onboard, cli, tmp_path):
    onboard()
    shared = tmp_path / "reports-shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    planted = shared / "bundle.json"
    planted.write_bytes(b"planted\n")
    os.chown(planted, NOBODY, NOBODY)
    error = refused(cli, "support-bundle", "--profile", "p", "--out", str(planted))
    assert "belongs to another user" in error["message"] and planted.read_bytes() == b"planted\n"
    record_figure(OUTPUTS, 1, 1)


def test_a_link_at_the_output_name_is_refused_and_its_target_untouched(onboard, cli, tmp_path):
    onboard()
    target = tmp_path / "elsewhere.pem"
    target.write_bytes(b"keep me\n")
    link = tmp_path / "bundle.pem"
    link.symlink_to(target)
    error = refused(cli, "export", "--profile", "p", "--format", "bundle", "--out", str(link))
    assert "symbolic link" in error["message"] and target.read_bytes() == b"keep me\n" and link.is_symlink()
    record_figure(OUTPUTS, 1, 1)


def test_outputs_are_created_exclusively_and_replace_only_the_users_own_file(tmp_path):
    from wizard.core.fsutil import write_output

    shared = tmp_path / "sticky"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    out = write_output(shared / "a.json", b"one", 0o600)
    assert out.read_bytes() == b"one" and stat.S_IMODE(out.stat().st_mode) == 0o600
    write_output(out, b"two", 0o600)  # our own regular file: replaced
    assert out.read_bytes() == b"two"
    (shared / "dir").mkdir()
    with pytest.raises(InputError, match="not a regular file"):
        write_output(shared / "dir", b"x", 0o600)
    with pytest.raises(InputError, match="does not name a file"):
        write_output(Path("/"), b"x", 0o600)
    with pytest.raises(InputError, match="klarna-mtls keeps"):
        write_output(tmp_path / "kept" / "new" / "x.pem", b"x", 0o600, keep_out=[tmp_path / "kept"])
    assert not (tmp_path / "kept").exists()  # not even the missing folders were made
    with pytest.raises(StorageError):
        write_output(out / "below-a-file.pem", b"x", 0o600)


# ---------------------------------------------------------------- issue 24 #10: --out -
def test_export_to_standard_output_feeds_a_pipe(onboard, cli, paths, tmp_path, monkeypatch, capsys):
    from wizard.cli import main

    onboard()
    monkeypatch.chdir(tmp_path)
    pair = paths.default_install_dir("p") / "current"
    assert main(["export", "--profile", "p", "--format", "k8s", "--out", "-", "--namespace", "pay"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("apiVersion: v1\nkind: Secret\n") and "namespace: pay" in captured.out
    tls_key = next(line for line in captured.out.splitlines() if line.startswith("  tls.key: "))
    assert base64.b64decode(tls_key.split(": ")[1]) == (pair / "private-key.pem").read_bytes()
    assert "private key included" in captured.err
    assert main(["export", "--profile", "p", "--format", "pem", "--out", "-"]) == 0
    text = capsys.readouterr().out.encode()
    crypto.verify_cert_matches_key(crypto.load_certificate(text), crypto.load_private_key(text))
    assert not (tmp_path / "-").exists()  # never a file named "-"


class FakeStdout:
    """Standard output as a terminal or a pipe, keeping the bytes written to it."""

    def __init__(self, tty: bool) -> None:
        self.buffer = io.BytesIO()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty

    def write(self, text: str) -> int:
        return self.buffer.write(text.encode())

    def flush(self) -> None:
        pass


def test_a_p12_is_never_printed_on_a_terminal(onboard, tmp_path, monkeypatch, capsys):
    from cryptography.hazmat.primitives.serialization import pkcs12

    from wizard.cli import main

    onboard()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KLARNA_MTLS_EXPORT_PASSWORD", "pw")
    monkeypatch.setattr(sys, "stdout", FakeStdout(tty=True))
    assert main(["export", "--profile", "p", "--format", "p12", "--out", "-"]) == 3
    err = capsys.readouterr().err
    assert "not printed on a terminal" in err and "> client.p12" in err and sys.stdout.buffer.getvalue() == b""
    monkeypatch.setattr(sys, "stdout", FakeStdout(tty=False))  # a pipe: the bytes go through
    assert main(["export", "--profile", "p", "--format", "p12", "--out", "-"]) == 0
    key, cert, _ = pkcs12.load_key_and_certificates(sys.stdout.buffer.getvalue(), b"pw")
    assert crypto.valid_cert_matches_key(cert, key) and not (tmp_path / "-").exists()


def test_export_help_says_the_private_key_is_printed(capsys):
    from wizard.cli import main

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "PRIVATE KEY" in " ".join(capsys.readouterr().out.split())
