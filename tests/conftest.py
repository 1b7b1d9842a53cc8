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


@pytest.fixture(autouse=True)
def memory_keyring():
    """A fresh in-memory keyring per test: never the user's real keyring."""
    import keyring

    from wizard.secrets import MemoryKeyring

    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def sandbox(tmp_path):
    from wizard.sandbox import start_sandbox

    sb = start_sandbox(tmp_path / "sandbox", enforcement_delay=0.5)
    yield sb
    sb.stop()
