"""Regression tests for the red-team findings 3-10 and 12-17 (issue 14), each built from the
report's reproduction: one writer per profile, folders created never seized, keys bound to their
host, bounded answers, exit codes, pinned trust, terminal hygiene and the smaller items."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from conftest import record_figure
from tests_support import sandbox_profile_args, settle

from wizard.core import crypto
from wizard.core.errors import ApiError, CryptoError, InputError, StorageError, TransportError
from wizard.core.paths import Paths
from wizard.klarna.client import KlarnaClient
from wizard.klarna.tls import make_http_client
from wizard.secrets import encrypted_file
from wizard.services import onboarding

REPO = Path(__file__).resolve().parents[1]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# ---------------------------------------------------------------- 1. one writer per profile
HOLDER = textwrap.dedent("""
    import sys
    from wizard.core.locking import profile_lock
    from wizard.core.paths import Paths
    with profile_lock(Paths.from_env(), sys.argv[1], "klarna-mtls rotate"):
        print("held", flush=True)
        sys.stdin.readline()
""")


@pytest.fixture
def hold_profile():
    """Another process holding a profile's lock until the test ends."""
    held = []

    def hold(profile: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, profile],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=os.environ.copy(),
        )
        assert proc.stdout.readline().strip() == "held"
        held.append(proc)
        return proc

    yield hold
    for proc in held:
        proc.stdin.close()
        proc.wait(timeout=60)


def test_a_second_writer_waits_then_refuses_naming_the_holder(onboard, hold_profile, monkeypatch, capsys):
    from wizard.cli import main

    onboard()
    holder = hold_profile("p")
    monkeypatch.setenv("KLARNA_MTLS_LOCK_WAIT", "0.3")
    assert main(["enforce", "--profile", "p", "--at", "NOW"]) == 3
    err = capsys.readouterr().err
    assert f"pid {holder.pid} (klarna-mtls rotate) since" in err
    record_figure("profile lock: second writer refused, naming the holder", 1, 1)


def test_a_reader_never_writes_a_journal_another_process_holds(onboard, hold_profile, paths, cli):
    onboard()
    journal = paths.journal_path("p")
    before = journal.read_bytes()
    hold_profile("p")
    code, status = cli("status", "--profile", "p")
    assert code == 0 and status["ok"]
    assert journal.read_bytes() == before  # the rotation the holder journals is never overwritten
    record_figure("profile lock: reader left a held journal untouched", 1, 1)


def test_a_journal_save_is_refused_while_another_process_writes(onboard, hold_profile, sandbox):
    from tests_support import session_for

    from wizard.core.locking import ProfileBusy

    onboard()
    session = session_for("p", sandbox)  # e.g. a TUI opened before the lock existed
    hold_profile("p")
    session.save()  # nothing changed: nothing to write, so nothing to refuse (readers do not write)
    session.state.settings.extra["touched"] = True
    with pytest.raises(ProfileBusy, match="in use by pid"):
        session.save()


STORE_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from wizard.secrets.encrypted_file import EncryptedFileStore
    store = EncryptedFileStore(Path(sys.argv[1]), b"pp")
    start = float(sys.argv[3])
    while time.time() < start:
        time.sleep(0.001)
    store.set(sys.argv[2], "klarna_test_api_" + sys.argv[2] * 5)
""")


def test_concurrent_store_writes_for_two_profiles_keep_both(tmp_path):
    import time

    path = tmp_path / "s.json"
    encrypted_file.EncryptedFileStore(path, b"pp").set("seed", "klarna_test_api_" + "s" * 20)
    for trial in range(3):
        start = time.time() + 1.5  # both processes are started (imports done) by then
        procs = [
            subprocess.Popen([sys.executable, "-c", STORE_WRITER, str(path), f"{name}{trial}", str(start)], cwd=REPO)
            for name in ("alpha", "bravo")
        ]
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
    entries = set(json.loads(path.read_text())["entries"])
    expected = {"seed"} | {f"{n}{t}" for n in ("alpha", "bravo") for t in range(3)}
    record_figure("encrypted store: entries kept under concurrent writers", len(entries & expected), len(expected))
    assert entries == expected


SANDBOX_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from wizard.secrets.simple_stores import SandboxStore
    store = SandboxStore(Path(sys.argv[1]))
    print("WRITING", flush=True)
    store.set(sys.argv[2], "klarna_test_api_" + sys.argv[2] * 5)
""")


def test_a_second_process_storing_a_sandbox_key_mid_write_loses_neither_key(tmp_path, monkeypatch):
    """Two wizards storing their sandbox keys at once (CI's polling benchmark: the Verify and the
    Enforce worker) lost one key. The second writer now runs between our read and our write."""
    from wizard.core.env_vars import LOCK_WAIT_ENV
    from wizard.secrets.simple_stores import SandboxStore

    path = tmp_path / "credentials.json"
    read = SandboxStore._read
    other: list[subprocess.Popen[str]] = []

    def read_then_let_the_other_write(self: SandboxStore) -> dict[str, str]:
        data = read(self)
        if not other:
            proc = subprocess.Popen(
                [sys.executable, "-c", SANDBOX_WRITER, str(path), "bravo"],
                cwd=REPO,
                env={**os.environ, LOCK_WAIT_ENV: "120"},
                stdout=subprocess.PIPE,
                text=True,
            )
            other.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "WRITING"
            with contextlib.suppress(subprocess.TimeoutExpired):  # unlocked, it writes now; locked, it waits for us
                proc.wait(timeout=2)
        return data

    monkeypatch.setattr(SandboxStore, "_read", read_then_let_the_other_write)
    SandboxStore(path).set("alpha", "klarna_test_api_" + "alpha" * 5)
    assert other[0].wait(timeout=120) == 0
    assert set(json.loads(path.read_text())) == {"alpha", "bravo"}


# ---------------------------------------------------------------- 2. folders: create, never seize
def test_every_folder_we_create_is_0700_under_umask_000(tmp_path):
    from wizard.core.fsutil import ensure_private_dir

    old = os.umask(0)
    try:
        ensure_private_dir(tmp_path / "a" / "b" / "c")
    finally:
        os.umask(old)
    modes = [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")]
    record_figure("folders: created levels 0700 under umask 000", modes.count(0o700), 3)
    assert modes == [0o700, 0o700, 0o700]


def test_support_bundle_leaves_a_sticky_temp_folder_as_it_was(onboard, tmp_path, cli):
    onboard()
    shared = tmp_path / "faketmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    code, _ = cli("support-bundle", "--profile", "p", "--out", str(shared / "bundle.json"))
    assert code == 0
    assert mode(shared) == 0o1777 and mode(shared / "bundle.json") == 0o600
    record_figure("folders: existing folders left as they were (1777, 2775, symlink target)", 1, 1)


def test_a_shared_install_folder_is_refused_and_left_alone(tmp_path):
    from wizard.core.fsutil import ensure_private_dir

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o2775)
    with pytest.raises(StorageError, match="writable by group or others") as caught:
        ensure_private_dir(shared)
    assert "chmod go-w" in caught.value.hint
    assert mode(shared) == 0o2775
    record_figure("folders: existing folders left as they were (1777, 2775, symlink target)", 1, 1)


def test_a_symlink_planted_as_the_install_folder_is_refused(tmp_path):
    from tests_support import self_signed

    from wizard.services.install import install_pair

    victim = tmp_path / "victim-etc"
    victim.mkdir()
    os.chmod(victim, 0o755)
    (tmp_path / "tmp3").mkdir()
    link = tmp_path / "tmp3" / "klarna-certs"
    link.symlink_to(victim)
    key = crypto.make_private_key()
    with pytest.raises(StorageError, match="symlink"):
        install_pair(link, self_signed(key).encode(), crypto.make_private_key_pem(key), label="abc")
    assert mode(victim) == 0o755 and list(victim.iterdir()) == []
    record_figure("folders: existing folders left as they were (1777, 2775, symlink target)", 1, 1)


def test_a_planted_private_key_is_never_adopted(sandbox, paths, monkeypatch, capsys):
    from wizard.cli import main

    planted = crypto.make_private_key()
    folder = paths.keys_dir("prod")
    folder.mkdir(parents=True, mode=0o700)
    fd = os.open(folder / "private-key.pem", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, crypto.make_private_key_pem(planted))
    os.close(fd)
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    code = main(
        [
            "onboard",
            "--profile",
            "prod",
            "--non-interactive",
            *sandbox_profile_args(sandbox),
            "--poll-interval",
            "0.05",
        ]
    )
    assert code == 3
    assert "was not written by klarna-mtls" in capsys.readouterr().err
    installed = list(paths.install_root.rglob("private-key.pem"))
    assert (
        all(crypto.public_key_id(crypto.load_private_key_file(p)) != crypto.public_key_id(planted) for p in installed)
        and not installed
    )
    record_figure("folders: planted private key refused, not adopted", 1, 1)


def test_a_key_this_tool_wrote_is_adopted_after_a_crash(onboard, paths, sandbox):
    from tests_support import session_for

    onboard()
    session = session_for("p", sandbox)
    key = onboarding._load_own_key(session, None)  # what use_existing_key adopts: the journal names its digest
    assert crypto.public_key_id(key) == session.evidence.key_public_id


# ---------------------------------------------------------------- 3. keys bound to their host
LIVE_KEY = "klarna_live_api_LIVEKEY000000000000000000"


def test_a_live_key_is_never_sent_to_a_sandbox_host(onboard, monkeypatch, cli, sandbox):
    onboard()
    monkeypatch.setenv("KLARNA_API_KEY", LIVE_KEY)
    code, out = cli("status", "--profile", "p")
    assert code == 3 and "live key but the profile is sandbox" in out["error"]["message"]
    code, out = cli("status", "--all")
    assert code == 3 and out["profiles"][0]["ok"] is False
    record_figure("key binding: keys refused before reaching another environment's host", 2, 2)


def test_status_all_sends_the_env_key_only_to_the_profile_it_belongs_to(onboard, monkeypatch, sandbox, cli):
    onboard("p")  # its key came from KLARNA_API_KEY: backend "env", masked key recorded
    monkeypatch.setenv("KLARNA_API_KEY", "klarna_test_api_SOMEONEELSE0000000000000000")
    code, out = cli("status", "--all")
    assert code == 3 and "not the key recorded for profile 'p'" in out["profiles"][0]["error"]
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)  # the profile's own key: used
    code, out = cli("status", "--all")
    assert code == 0 and out["profiles"][0]["ok"]
    record_figure("key binding: keys refused before reaching another environment's host", 1, 1)


def test_a_sandbox_base_url_must_be_https_on_loopback(onboard, paths, cli):
    onboard()
    journal = paths.journal_path("p")
    data = json.loads(journal.read_text())
    base = data["settings"]["base_url"]
    for url in (base.replace("https://", "http://"), "https://203.0.113.7:8443"):
        data["settings"]["base_url"] = url
        journal.write_text(json.dumps(data))
        code, out = cli("status", "--profile", "p")
        assert code == 3, url
        assert "https" in out["error"]["message"] or "not this machine" in out["error"]["message"]
        record_figure("key binding: keys refused before reaching another environment's host", 1, 1)


def test_keys_disable_protects_the_stored_key_whatever_the_env_holds(sandbox, monkeypatch, cli, paths):
    from wizard.cli import main

    monkeypatch.setenv("KLARNA_MTLS_STORE_PASSPHRASE", "pp")
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    assert (
        main(
            [
                "onboard",
                "--profile",
                "ef",
                "--non-interactive",
                *sandbox_profile_args(sandbox),
                "--secret-store",
                "encrypted-file",
                "--poll-interval",
                "0.05",
                "--json",
            ]
        )
        == 0
    )
    monkeypatch.delenv("KLARNA_API_KEY")
    code, created = cli("keys", "create", "--profile", "ef", "--description", "ops laptop", "--show-secret-once")
    assert code == 0
    code, listed = cli("keys", "list", "--profile", "ef")
    stored = [k["credential_id"] for k in listed["keys"] if k["masked"].endswith(sandbox.api_key[-4:])][0]
    monkeypatch.setenv("KLARNA_API_KEY", created["secret"])
    code, out = cli("keys", "disable", "--profile", "ef", stored)
    assert code == 3 and out["ok"] is False
    record_figure("key binding: keys refused before reaching another environment's host", 1, 1)
    monkeypatch.delenv("KLARNA_API_KEY")
    code, findings = cli("check", "--profile", "ef")
    assert code != 3  # the stored key still works


# ---------------------------------------------------------------- 4. bounded answers
def client_for(handler, **kwargs) -> KlarnaClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return KlarnaClient(http, "https://example.test", "klarna_test_api_" + "k" * 20, max_attempts=1, **kwargs)


def test_a_huge_streamed_body_is_cut_off(monkeypatch):
    sent = {"bytes": 0}

    async def endless():
        yield b'{"credentials": [], "pad": "'
        for _ in range(300):
            sent["bytes"] += 1 << 20
            yield b"A" * (1 << 20)

    def handler(request):
        return httpx.Response(200, content=endless())

    with pytest.raises(ApiError, match="larger than 2 MB"):
        asyncio.run(client_for(handler).list_certificates())
    assert sent["bytes"] <= 4 << 20  # stopped reading, not 300 MB later
    record_figure("bounded answers: hostile answers ended by a bound", 1, 1)


def test_a_slow_answer_hits_the_overall_deadline():
    async def trickle():
        for _ in range(1000):
            await asyncio.sleep(0.05)
            yield b" "

    def handler(request):
        return httpx.Response(200, content=trickle())

    with pytest.raises(TransportError, match="in time"):
        asyncio.run(client_for(handler, deadline=0.5).list_certificates())
    record_figure("bounded answers: hostile answers ended by a bound", 1, 1)


@pytest.mark.parametrize("status", [200, 400])
def test_deeply_nested_json_is_the_projects_own_error(status):
    body = b'{"credentials": ' + b"[" * 100000 + b"]" * 100000 + b"}"

    def handler(request):
        return httpx.Response(status, content=body)

    with pytest.raises(ApiError):
        asyncio.run(client_for(handler).list_certificates())
    record_figure("bounded answers: hostile answers ended by a bound", 1, 1)


# ---------------------------------------------------------------- 5. exit codes
def test_an_unexpected_failure_exits_3_with_one_line_and_the_log(onboard, monkeypatch, capsys):
    from wizard.cli import checks, main

    onboard()

    def boom(args):
        secret = "klarna_test_api_" + "z" * 30  # noqa: F841 - a local that must never be printed
        raise RuntimeError("boom")

    monkeypatch.setattr(checks, "cmd_doctor", boom)  # register() binds the handler at each main()
    assert main(["doctor", "--profile", "p"]) == 3
    err = capsys.readouterr().err
    assert "Unexpected failure (RuntimeError)" in err and "klarna-mtls.log" in err
    assert "Traceback" not in err and "zzzz" not in err
    log = Paths.from_env().log_path().read_text()
    assert "RuntimeError: boom" in log and "zzzz" not in log


def test_a_missing_ca_bundle_is_an_error_not_a_traceback(onboard, paths, cli):
    onboard()
    journal = paths.journal_path("p")
    data = json.loads(journal.read_text())
    data["settings"]["ca_bundle"] = "/nonexistent/ca.pem"
    journal.write_text(json.dumps(data))
    code, out = cli("check", "--profile", "p")
    assert code == 3 and out["error"]["title"] == "CA bundle missing"


# ---------------------------------------------------------------- 6. trust
def test_ssl_cert_file_cannot_make_live_trust_another_ca(sandbox, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(sandbox.ca_bundle))

    async def get():
        async with make_http_client() as http:  # live/test: no CA given
            await http.get(sandbox.base_url + "/")

    with pytest.raises((httpx.ConnectError, OSError), match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        asyncio.run(get())


def test_sslkeylogfile_receives_nothing(sandbox, monkeypatch, tmp_path):
    keylog = tmp_path / "keylog.txt"
    monkeypatch.setenv("SSLKEYLOGFILE", str(keylog))

    async def get():
        async with make_http_client(ca_bundle=sandbox.ca_bundle) as http:
            await http.get(sandbox.base_url + "/")

    asyncio.run(get())
    assert not keylog.exists()


# ---------------------------------------------------------------- 7. terminal hygiene
def test_cli_text_strips_escape_sequences_from_server_strings():
    from wizard.cli.common import clean

    forged = "krn:x\x1b]0;owned\x07\x1b[2J\x1b[H\n * all certificates healthy\x9b31m"
    out = clean(forged)
    assert "\x1b" not in out and "\x07" not in out and "\n" not in out and "\x9b" not in out
    assert out.startswith("krn:x")


def test_the_p12_password_is_read_without_echo_on_a_terminal(monkeypatch):
    from wizard.cli import export

    prompts = []
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or "pw")
    assert export._read_export_password() == "pw" and prompts == ["PKCS#12 export password: "]


# ---------------------------------------------------------------- 8. smaller items
def test_a_ca_certificate_is_refused_as_the_client_certificate(tmp_path):
    from tests_support import self_signed_certificate

    from wizard.services.install import install_pair

    key = crypto.make_private_key()
    cert = self_signed_certificate(key, days=90, ca=True)
    with pytest.raises(CryptoError, match="CA certificate"):
        install_pair(tmp_path / "inst", crypto.certificate_pem(cert), crypto.make_private_key_pem(key), label="ca")
    assert not (tmp_path / "inst" / "ca").exists()


@pytest.mark.parametrize("bad", [".", "..", "a/b", "a\\b", "x?y", ""])
def test_dot_segments_and_separators_never_reach_a_url(bad):
    seen = []

    def handler(request):
        seen.append(request.url.path)
        return httpx.Response(200, json={"credential_id": "x"})

    with pytest.raises(InputError):
        asyncio.run(client_for(handler).update_api_key(bad, "desc"))
    assert seen == []


@pytest.mark.parametrize("value", ["nan", "-1", "inf"])
def test_negative_or_nan_poll_settings_are_refused(value, capsys):
    from wizard.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["onboard", "--profile", "p", "--poll-interval", value])
    assert caught.value.code == 2


def test_an_old_scrypt_store_is_read_then_upgraded_on_the_next_write(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    monkeypatch.setattr(encrypted_file, "CURRENT_KDF", {"name": "scrypt", **encrypted_file.SCRYPT_PARAMS})
    encrypted_file.EncryptedFileStore(path, b"pp").set("old", "klarna_test_api_" + "o" * 20)
    assert json.loads(path.read_text())["kdf"]["name"] == "scrypt"
    monkeypatch.undo()
    store = encrypted_file.EncryptedFileStore(path, b"pp")
    assert store.get("old") == "klarna_test_api_" + "o" * 20  # old parameters read from the file
    store.set("new", "klarna_test_api_" + "n" * 20)
    data = json.loads(path.read_text())
    assert data["kdf"] == encrypted_file.CURRENT_KDF and data["kdf"]["name"] == "argon2id"
    fresh = encrypted_file.EncryptedFileStore(path, b"pp")
    assert fresh.get("old") == "klarna_test_api_" + "o" * 20 and fresh.get("new") == "klarna_test_api_" + "n" * 20


def test_core_dumps_are_off_while_a_command_runs(capsys):
    import resource

    from wizard.cli import main

    main(["profiles", "list"])
    assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)


def test_sandbox_serve_refuses_a_non_loopback_address(capsys):
    from wizard.cli import main

    assert main(["sandbox", "serve", "--host", "0.0.0.0", "--port", "0"]) == 3
    assert "not a loopback address" in capsys.readouterr().err


def test_rotate_can_wait_a_grace_period_before_revoking(onboard, cli, monkeypatch, capsys):
    import json

    from wizard.cli import main
    from wizard.services import certificate_rotation

    onboard()
    slept = []

    async def pause(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(certificate_rotation, "grace_pause", pause)
    code = main(["rotate", "--profile", "p", "--retire-old", "--grace", "150", "--poll-interval", "0.05", "--json"])
    captured = capsys.readouterr()
    out = json.loads(captured.out.splitlines()[-1])
    assert code == 0 and slept[-3:] == [60.0, 60.0, 30.0]  # a progress line between the pauses
    assert "90 s left" in captured.err and "30 s left" in captured.err
    code, status = cli("status", "--profile", "p")
    old = [c for c in status["certificates"] if c["credential_id"] == out["old_certificate_id"]]
    assert old and old[0]["status"] == "REVOKED"


def test_an_interrupted_grace_period_keeps_the_old_certificate_and_says_how_to_revoke_it(
    onboard, cli, monkeypatch, capsys
):
    from wizard.cli import main
    from wizard.services import certificate_rotation

    onboard()
    _, before = cli("status", "--profile", "p")
    old_id = next(c["credential_id"] for c in before["certificates"] if c["current"])

    async def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(certificate_rotation, "grace_pause", interrupted)
    code = main(["rotate", "--profile", "p", "--retire-old", "--grace", "600", "--poll-interval", "0.05", "--json"])
    err = capsys.readouterr().err
    assert code == 130 and f"{old_id} stays active" in err  # Ctrl+C: 128 + SIGINT
    assert f"klarna-mtls certs revoke --profile p {old_id}" in err
    _, after = cli("status", "--profile", "p")
    assert {c["credential_id"]: c["status"] for c in after["certificates"]}[old_id] == "ACTIVE"


def test_the_revoke_interlock_says_it_knows_only_this_machine(capsys):
    from wizard.cli.main import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["certs", "--help"])
    assert "installs of the account; other machines and exported copies are not known" in " ".join(
        capsys.readouterr().out.split()
    )


def test_markup_in_a_server_message_is_shown_as_text_in_the_tui():
    from textual.app import App
    from textual.widgets import Static

    from screens.modals import ErrorModal

    error = ApiError("bad [/request] [@click=app.quit]x[/]", status=400)

    async def run() -> str:
        app = App()
        async with app.run_test() as pilot:
            app.push_screen(ErrorModal(error))
            await pilot.pause()
            return str(app.screen.query_one("#error-message", Static).render())

    assert "bad [/request] [@click=app.quit]x[/]" in asyncio.run(run())


@pytest.mark.e2e
async def test_typing_markup_in_the_enforce_field_does_not_crash_the_tui(onboard, sandbox):
    from textual.widgets import Input, Static

    from screens.app import make_app

    await asyncio.to_thread(onboard, enforce_at="never")  # stops at the Enforce stage
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert type(app.screen).__name__ == "EnforceScreen"
        app.screen.query_one("#enforce-at", Input).value = "[/"
        await settle(pilot)
        assert "[/" in str(app.screen.query_one("#when", Static).render())
        assert app.is_running


@pytest.mark.e2e
async def test_markup_in_a_certificate_id_does_not_crash_the_dashboard(onboard, sandbox):
    from dataclasses import replace

    from screens.app import make_app

    await asyncio.to_thread(onboard, enforce_at="NOW")
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        status = app.screen.status
        row = replace(status.certificates[0], credential_id="krn:x:ab[/bogus]", cn="\x1b[2J[b]cn")
        app.screen.show(replace(status, certificates=[row]))
        await settle(pilot)
        table = app.screen.query_one("#certificates")
        cells = [str(c) for c in table.get_row_at(0)]
        assert cells[0] == "…[/bogus]"  # text, never markup
        details = str(app.screen.query_one("#details").content)  # the CN is shown under the table
        assert "krn:x:ab[/bogus]" in details and "CN [b]cn" in details and "\x1b" not in details  # escape removed
        assert app.is_running


def _race_onboard_argv(sandbox) -> list[str]:
    """A headless sandbox onboarding of profile "race" that never enforces, run as a child process."""
    return [
        sys.executable,
        "-m",
        "wizard.cli",
        "onboard",
        "--profile",
        "race",
        "--non-interactive",
        "--json",
        *sandbox_profile_args(sandbox),
        "--enforce-at",
        "never",
        "--poll-interval",
        "0.05",
    ]


@pytest.mark.e2e
def test_two_onboardings_at_once_issue_one_certificate_for_one_key(sandbox, tmp_path):
    """The report's race (a): two runs on one profile, a latency fault widening the window."""
    from wizard.sandbox.server import Fault
    from wizard.services.install import current_pair

    sandbox.inject(Fault(kind="latency", operation="create_certificate", count=2, seconds=3.0))
    env = {**os.environ, "KLARNA_API_KEY": sandbox.api_key, "KLARNA_MTLS_LOCK_WAIT": "0.5"}
    argv = _race_onboard_argv(sandbox)
    runs = [
        subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(r.wait(timeout=180), r.stderr.read()) for r in runs]
    codes = sorted(code for code, _ in results)
    # Normally the second run is refused while the first holds the profile; on a very loaded
    # machine it may only start after the first finished, and then resumes a finished profile.
    assert codes in ([0, 3], [0, 0]), results
    assert all("is in use by pid" in err for code, err in results if code == 3)

    async def listing():
        async with make_http_client(ca_bundle=sandbox.ca_bundle) as http:
            return (await KlarnaClient(http, sandbox.base_url, sandbox.api_key).list_certificates()).value

    active = [c for c in asyncio.run(listing()) if c.status == "ACTIVE"]
    pair = current_pair(Paths.from_env().default_install_dir("race"))
    assert len(active) == 1 and active[0].fingerprint == pair.fingerprint
    crypto.verify_cert_matches_key(
        crypto.load_certificate(pair.cert_path.read_bytes()), crypto.load_private_key_file(pair.key_path)
    )
    record_figure("profile lock: concurrent onboardings, certificates issued", len(active), 1)


def test_live_and_test_trust_only_a_ca_set_the_user_chose_explicitly(sandbox, paths):
    from wizard.services import doctor
    from wizard.services.session import Session

    session = Session(paths, "corp")
    session.configure("test", "krn:partner:global:account:test:LYABCDEI")
    assert session.ca_bundle is None  # the bundled roots
    session.set_trust_ca(sandbox.ca_bundle)  # e.g. a company's TLS-inspecting proxy
    reopened = Session(paths, "corp")
    assert reopened.ca_bundle == Path(sandbox.ca_bundle).absolute()
    finding = doctor._trust_finding(reopened)
    assert "you chose" in finding.summary and str(sandbox.ca_bundle) in finding.summary
    with pytest.raises(CryptoError):
        reopened.set_trust_ca(paths.state_dir / "missing.pem")
    reopened.set_trust_ca(None)
    assert Session(paths, "corp").ca_bundle is None


def test_a_rotation_never_adopts_a_key_it_did_not_write(onboard, sandbox, paths):
    from tests_support import session_for

    from wizard.core.flow_records import CertificateRotation
    from wizard.services import certificate_rotation

    onboard()
    session = session_for("p", sandbox)
    folder = paths.keys_dir("p") / "rotation-planted"
    session.state.flows.rotation = CertificateRotation(
        step="key", old_certificate_id=session.evidence.certificate_id, folder=str(folder)
    )
    session.save()
    folder.mkdir(mode=0o700)
    fd = os.open(folder / "private-key.pem", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, crypto.make_private_key_pem(crypto.make_private_key()))
    os.close(fd)
    with pytest.raises(CryptoError, match="was not written by klarna-mtls"):
        asyncio.run(certificate_rotation.rotate(session, verify_interval=0.05))
    record_figure("folders: planted private key refused, not adopted", 1, 1)


@pytest.mark.parametrize(
    "edit", [("settings", "install_dir", 123), ("settings", "base_url", 5), ("flows", "rotation", "x")]
)
def test_a_hand_edited_journal_with_wrong_types_is_a_clear_error(onboard, paths, cli, edit):
    onboard()
    journal = paths.journal_path("p")
    data = json.loads(journal.read_text())
    section, name, value = edit
    data[section][name] = value
    journal.write_text(json.dumps(data))
    code, out = cli("status", "--profile", "p")
    assert code == 3 and f"'{section}.{name}' has the wrong type" in out["error"]["message"]
