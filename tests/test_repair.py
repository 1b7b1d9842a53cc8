"""`klarna-mtls repair` (issue 24, items 3 and 4): a deleted or corrupted installed file is restored
from what the tool keeps, checked before it is written, proved with a call; never "unenforce".
And the broken file described as `openssl x509` would."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests_support import issue_pair, session_for

from wizard.core import crypto
from wizard.core.errors import ApiError
from wizard.klarna.client import KlarnaClient

pytestmark = pytest.mark.e2e


def install_dir(paths, profile: str = "p") -> Path:
    return Path(json.loads(paths.journal_path(profile).read_text())["settings"]["install_dir"])


def current_file(paths, name: str = "certificate.pem", profile: str = "p") -> Path:
    """The real file behind install_dir/current/NAME (in the pair's versioned folder)."""
    return (install_dir(paths, profile) / "current").resolve() / name


def fingerprint_of(path: Path) -> str:
    return crypto.fingerprint_sha256(crypto.load_certificate(path.read_bytes()))


@pytest.mark.parametrize("damage", ["deleted", "corrupted"])
def test_repair_brings_a_broken_certificate_back_to_valid_on_an_enforced_account(onboard, cli, paths, damage):
    done = onboard(enforce_at="NOW")
    cert = current_file(paths)
    if damage == "deleted":
        cert.unlink()
    else:
        cert.write_text("garbage\n")
    code, out = cli("status", "--profile", "p")
    assert code == 2 and str(cert) in out["error"]["message"], out  # critical, named file by file
    assert "unenforce" not in json.dumps(out) and "klarna-mtls repair --profile p" in out["error"]["hint"]
    code, out = cli("repair", "--profile", "p")
    assert code == 0, out
    assert out["proved"] and out["verification"] == "VALID" and out["certificate_id"] == done["certificate_id"]
    assert any(str(cert) in problem for problem in out["problems"])
    assert any("the journal (as Klarna returned it)" in action for action in out["actions"]), out["actions"]
    assert fingerprint_of(cert) == done["fingerprint"]
    if damage == "corrupted":  # moved aside, never deleted
        [aside] = out["moved_aside"]
        assert Path(aside).parent == cert.parent and Path(aside).read_text() == "garbage\n"
    else:
        assert out["moved_aside"] == []
    assert cli("check", "--profile", "p")[0] == 0
    code, out = cli("repair", "--profile", "p")
    assert code == 0 and out["problems"] == [] and out["actions"] == []  # sound: nothing to do


def test_a_removed_current_link_is_a_broken_install_not_a_new_machine(onboard, cli, paths):
    done = onboard(enforce_at="NOW")
    link = install_dir(paths) / "current"
    link.unlink()
    code, out = cli("status", "--profile", "p")
    assert code == 2 and f"{link} is missing" in out["error"]["message"], out
    assert "unenforce" not in json.dumps(out)
    code, out = cli("repair", "--profile", "p")
    assert code == 0 and out["proved"], out
    assert any("pointed" in action and str(link) in action for action in out["actions"]), out["actions"]
    assert fingerprint_of(link / "certificate.pem") == done["fingerprint"]


def test_repair_moves_a_foreign_certificate_aside_and_never_installs_an_unchecked_one(
    onboard, cli, paths, sandbox, tmp_path
):
    done = onboard()
    cert = current_file(paths)
    _, foreign, _ = issue_pair(sandbox, tmp_path, "foreign")  # a real certificate of this account, not ours
    cert.write_bytes(foreign.read_bytes())
    code, out = cli("repair", "--profile", "p")
    assert code == 0, out
    assert any("not the one recorded at issue" in problem for problem in out["problems"])
    [aside] = out["moved_aside"]
    assert Path(aside).read_bytes() == foreign.read_bytes()
    assert fingerprint_of(cert) == done["fingerprint"]


def test_repair_restores_a_deleted_key_from_the_keys_folder(onboard, cli, paths):
    onboard()
    key = current_file(paths, "private-key.pem")
    key.unlink()
    code, out = cli("repair", "--profile", "p")
    assert code == 0 and out["proved"], out
    assert any("key from the keys folder" in action for action in out["actions"]), out["actions"]
    assert key.stat().st_mode & 0o777 == 0o600


def test_repair_falls_back_to_the_previous_pair_only_once_klarna_accepts_it(onboard, cli, paths, sandbox):
    first = onboard(enforce_at="NOW")
    code, rotated = cli("rotate", "--profile", "p", "--poll-interval", "0.05")
    assert code == 0, rotated
    session = session_for("p", sandbox)
    os.unlink(current_file(paths, "private-key.pem"))
    os.unlink(session.evidence.key_path)  # the new key is gone everywhere: the pair cannot be rebuilt
    code, out = cli("repair", "--profile", "p")
    assert code == 0, out
    assert out["certificate_id"] == first["certificate_id"] and out["proved"]
    assert any("back to the previous pair" in action for action in out["actions"]), out["actions"]
    code, status = cli("status", "--profile", "p")
    assert code == 0 and status["current_id"] == first["certificate_id"], status
    assert session_for("p", sandbox).evidence.certificate_id == first["certificate_id"]


def test_repair_restores_a_previous_pair_klarna_answers_valid_for_when_enforcement_cannot_be_read(
    onboard, cli, paths, sandbox, monkeypatch
):
    """The proof reads the enforcement mode as every other place does (session.acceptance_of): a VALID
    header needs none, and an endpoint answering 404 reads UNKNOWN, not "the previous pair is refused"."""
    first = onboard(enforce_at="NOW")
    code, rotated = cli("rotate", "--profile", "p", "--poll-interval", "0.05")
    assert code == 0, rotated
    os.unlink(current_file(paths, "private-key.pem"))
    os.unlink(session_for("p", sandbox).evidence.key_path)  # the pair in use cannot be rebuilt

    async def not_found(self, *args, **kwargs):
        raise ApiError("Not found.", status=404)

    monkeypatch.setattr(KlarnaClient, "get_enforcement", not_found)
    code, out = cli("repair", "--profile", "p")
    assert code == 0 and out["certificate_id"] == first["certificate_id"], out
    assert any("back to the previous pair" in action and "seen VALID" in action for action in out["actions"]), out


def test_repair_with_nothing_to_restore_from_says_what_to_do_and_changes_nothing(onboard, cli, paths, sandbox):
    onboard(enforce_at="NOW")
    key = current_file(paths, "private-key.pem")
    key.unlink()
    os.unlink(session_for("p", sandbox).evidence.key_path)
    before = sorted(p.name for p in key.parent.iterdir())
    code, out = cli("repair", "--profile", "p")
    assert code == 3
    message = out["error"]["message"] + out["error"]["hint"]
    assert "cannot be restored" in message and "klarna-mtls rotate --profile p" in message
    assert "unenforce" not in message
    assert sorted(p.name for p in key.parent.iterdir()) == before


# ---------------------------------------------------------------- the broken file, in words
@pytest.fixture
def files(tmp_path):
    key = crypto.make_private_key()
    from tests_support import self_signed

    cert = self_signed(key).encode()
    return tmp_path, cert, crypto.make_private_key_pem(key)


@pytest.mark.parametrize(
    "content,expected",
    [
        (None, "no such file"),
        (b"", "the file is empty"),
        (b"garbage\n", "no PEM start line"),
        ("truncated", "the PEM is truncated"),
        ("key", "it holds a PRIVATE KEY, not a certificate"),
        ("base64", "the base64 between the BEGIN and END CERTIFICATE lines is damaged"),
    ],
)
def test_a_broken_certificate_is_described_as_openssl_would(files, content, expected):
    from wizard.services.pair_files import describe_broken_file

    folder, cert, key = files
    data = {"truncated": cert[:200], "key": key, "base64": cert.replace(b"M", b"#", 3)}.get(content, content)
    path = folder / "certificate.pem"
    if data is not None:
        path.write_bytes(data)
    text = describe_broken_file(path)
    assert str(path) in text and expected in text, text


def test_a_sound_file_and_odd_files_are_described_too(files):
    from wizard.services.pair_files import describe_broken_file

    folder, cert, key = files
    (folder / "certificate.pem").write_bytes(cert)
    assert "holds the certificate for CN=LYABCDEI" in describe_broken_file(folder / "certificate.pem")
    (folder / "private-key.pem").write_bytes(key)
    assert "holds a P-256 private key" in describe_broken_file(folder / "private-key.pem")
    (folder / "private-key.pem").write_bytes(cert)
    assert "it holds a CERTIFICATE, not a private key" in describe_broken_file(folder / "private-key.pem")
    (folder / "dir.pem").mkdir()
    assert "it is a folder" in describe_broken_file(folder / "dir.pem")
    (folder / "link.pem").symlink_to("gone.pem")
    assert "it is a link to gone.pem, which does not exist" in describe_broken_file(folder / "link.pem")


def test_a_current_that_is_not_a_link_is_moved_aside_not_overwritten(onboard, cli, paths):
    import shutil

    done = onboard()
    link = install_dir(paths) / "current"
    folder = link.resolve()
    link.unlink()
    shutil.copytree(folder, link)  # a hand-made copy where the link belongs
    (link / "note.txt").write_text("mine")
    code, out = cli("repair", "--profile", "p")
    assert code == 0 and out["proved"], out
    [aside] = out["moved_aside"]
    assert (Path(aside) / "note.txt").read_text() == "mine"
    assert link.is_symlink() and fingerprint_of(link / "certificate.pem") == done["fingerprint"]
