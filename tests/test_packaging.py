"""The wheel ships assets/ and the console script; a plain install answers --help and --version."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return next(out.glob("klarna_mtls-*.whl"))


def test_wheel_ships_every_asset_and_the_console_script(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for asset in sorted((ROOT / "assets").glob("*.tcss")):
        assert f"klarna_mtls_assets/{asset.name}" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "klarna-mtls = wizard.cli:main" in entry_points


def test_installed_wheel_finds_assets_outside_the_source_tree(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    probe = (
        "import screens.assets as a, wizard, sys; p = a.assets_dir();"
        "assert str(p).startswith(sys.argv[1]), p; assert any(p.glob('*.tcss')), p;"
        "assert wizard.__file__.startswith(sys.argv[1]); print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(target)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_cli_answers(flag):
    done = subprocess.run([sys.executable, "-m", "wizard.cli", flag], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "klarna-mtls" in done.stdout
