"""Secret-leak scan: full flows (headless and TUI) with a recognisable API key and key passphrase,
then every file under the home, state, config, data and install folders, the log, the audit log,
the snapshot SVGs, and captured output are searched. Zero occurrences allowed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import record_figure
from tests_support import sandbox_profile_args

pytestmark = pytest.mark.e2e
PASSPHRASE = "canary-passphrase-7781"
SNAPSHOTS = Path(__file__).parent / "__snapshots__"
UNENCRYPTED_KEY_MARKERS = (b"BEGIN PRIVATE KEY", b"BEGIN EC PRIVATE KEY")


def scan(roots, needles: list[bytes], allowed: set[Path] = frozenset()) -> tuple[list[str], int]:
    leaks, files = [], 0
    for root in roots:
        for path in Path(root).rglob("*"):
            if not path.is_file() or path.is_symlink() or path in allowed:
                continue
            files += 1
            data = path.read_bytes()
            leaks += [f"{path}: {needle[:20]!r}" for needle in needles if needle in data]
    return leaks, files


def _leak_onboard_argv(sandbox) -> list[str]:
    """A headless sandbox onboarding of profile "leak" that enforces at once, run as a child process."""
    return [
        sys.executable,
        "-m",
        "wizard.cli",
        "onboard",
        "--profile",
        "leak",
        "--non-interactive",
        "--json",
        *sandbox_profile_args(sandbox),
        "--enforce-at",
        "NOW",
        "--poll-interval",
        "0.05",
        "--enforce-wait",
        "20",
    ]


def test_headless_flow_leaks_nothing(sandbox, tmp_path):
    home = tmp_path / "home"
    env = {
        **os.environ,
        "KLARNA_MTLS_HOME": str(home),
        "KLARNA_API_KEY": sandbox.api_key,
        "KLARNA_MTLS_KEY_PASSPHRASE": PASSPHRASE,
    }
    argv = _leak_onboard_argv(sandbox)
    runs = [subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)]
    for extra in (["doctor"], ["status"], ["check"], ["support-bundle"], ["certs", "list"]):
        runs.append(
            subprocess.run(
                [sys.executable, "-m", "wizard.cli", *extra, "--profile", "leak", "--json"],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
        )
    assert runs[0].returncode == 0, runs[0].stderr
    assert (home / "state" / "klarna-mtls.log").stat().st_size > 0  # the log exists and was scanned
    output = "".join(r.stdout + r.stderr for r in runs)
    command_lines = " ".join(" ".join(r.args) for r in runs)  # the tool starts no other process
    needles = [sandbox.api_key.encode(), PASSPHRASE.encode()]
    leaks, files = scan([home], needles + list(UNENCRYPTED_KEY_MARKERS))
    leaks += [f"output: {n[:20]!r}" for n in needles if n.decode() in output]
    leaks += [f"command line: {n[:20]!r}" for n in needles if n.decode() in command_lines]
    record_figure("secret-leak scan: places clean", files + 2 - len(leaks), files + 2)
    assert leaks == []
    key_files = [p for p in home.rglob("private-key.pem") if p.is_file() and not p.is_symlink()]
    assert key_files and all(b"ENCRYPTED PRIVATE KEY" in p.read_bytes() for p in key_files)


async def test_tui_flow_leaks_nothing(sandbox, isolated_home, capsys):
    from tests_support import SIZE, walk_to
    from tests_support import settle_journey as settle

    from screens.app import make_app
    from wizard.core.paths import Paths
    from wizard.core.stages import Stage

    app = make_app("leaktui", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, Stage.KEY_AND_CSR)
        app.screen.query_one("#passphrase").value = PASSPHRASE
        app.screen.query_one("#passphrase-confirm").value = PASSPHRASE
        await walk_to(app, pilot, Stage.DONE)
        await settle(pilot)
    captured = capsys.readouterr()
    paths = Paths.from_env()
    sandbox_store = paths.sandbox_dir() / "credentials.json"  # the store the user chose: intended
    own_key = json.loads(sandbox_store.read_text())["leaktui"]  # the tool's own key, made with the given one
    assert own_key != sandbox.api_key
    needles = [sandbox.api_key.encode(), own_key.encode(), PASSPHRASE.encode()]
    leaks, files = scan([isolated_home, SNAPSHOTS], needles + list(UNENCRYPTED_KEY_MARKERS), {sandbox_store})
    leaks += [f"output: {n[:20]!r}" for n in needles if n.decode() in captured.out + captured.err]
    record_figure("secret-leak scan: places clean", files + 1 - len(leaks), files + 1)
    assert leaks == []
