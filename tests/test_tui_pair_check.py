"""Pilot tests for the "check a pair" screen, at 80x24, on pairs the sandbox issued."""

from __future__ import annotations

import asyncio
import os

import pytest
from tests_support import settle

from screens.app import make_app
from wizard.core import crypto
from wizard.services import install

pytestmark = pytest.mark.e2e
SIZE = (80, 24)


async def check_pair(app, pilot, cert, key, passphrase: str = "") -> str:
    await pilot.press("p")  # from the dashboard
    await settle(pilot)
    assert type(app.screen).__name__ == "PairCheckScreen"
    app.screen.query_one("#cert-file").value = str(cert)
    app.screen.query_one("#key-file").value = str(key)
    app.screen.query_one("#key-passphrase").value = passphrase
    app.screen.query_one("#key-file").focus()
    await pilot.press("enter")  # Enter submits
    await settle(pilot)
    return str(app.screen.query_one("#findings").content)


async def test_a_pair_issued_by_the_sandbox_checks_out(onboard, sandbox):
    await asyncio.to_thread(onboard, enforce_at="NOW")
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pair = install.current_pair(app.session.install_dir)
        assert pair is not None
        text = await check_pair(app, pilot, pair.cert_path, pair.key_path)
        for check in ("key match", "CN", "chain", "account", "verification"):
            assert f"✓ {check} (ok):" in text, text
        assert "Klarna answered VALID" in text and "(critical)" not in text
        await pilot.press("escape")  # back to the dashboard
        await settle(pilot)
        assert type(app.screen).__name__ == "DashboardScreen"


async def test_a_key_that_does_not_match_the_certificate_is_critical(onboard, sandbox, tmp_path):
    await asyncio.to_thread(onboard, enforce_at="NOW")
    folder = tmp_path / "copied"
    folder.mkdir(mode=0o700)
    other = folder / "other-key.pem"
    other.write_bytes(crypto.make_private_key_pem(crypto.make_private_key()))
    os.chmod(other, 0o600)
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pair = install.current_pair(app.session.install_dir)
        assert pair is not None
        text = await check_pair(app, pilot, pair.cert_path, other)
        assert "✗ key match (critical):" in text, text
        assert "    → " in text  # what to do next
        assert "verification" not in text  # no live call with a broken pair


async def test_a_key_with_its_own_passphrase_is_checked_with_it(onboard, sandbox, tmp_path):
    await asyncio.to_thread(onboard, enforce_at="NOW")
    folder = tmp_path / "copied"
    folder.mkdir(mode=0o700)
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pair = install.current_pair(app.session.install_dir)
        assert pair is not None
        own = app.session.key_passphrase
        key = crypto.load_private_key_file(pair.key_path, own)
        (folder / "key.pem").write_bytes(crypto.make_private_key_pem(key, b"pair secret"))
        os.chmod(folder / "key.pem", 0o600)
        text = await check_pair(app, pilot, pair.cert_path, folder / "key.pem", passphrase="pair secret")
        assert "✓ key match (ok):" in text and "✓ verification (ok):" in text, text
        assert app.session.key_passphrase == own  # the profile's own passphrase is untouched
        assert "pair secret" not in text
