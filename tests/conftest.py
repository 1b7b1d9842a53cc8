"""Test isolation: every test gets its own KLARNA_MTLS_HOME and never touches the real home."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "klarna-home"
    monkeypatch.setenv("KLARNA_MTLS_HOME", str(home))
    monkeypatch.delenv("KLARNA_API_KEY", raising=False)
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "xdg" / var.lower()))
    return home


@pytest.fixture
def paths(isolated_home):
    from wizard.paths import Paths

    return Paths.from_env()
