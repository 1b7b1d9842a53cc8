"""The dashboard offline (from what the journal holds, marked last seen), and everything at 80x24:
the footer, the certificate table, fingerprints and snippets cut between tokens, copy actions."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest
from evidence import evidence_through
from snapshot_apps import dashboard_app, fixed_status, snapshot_app
from tests_support import settle

from screens.app import make_app
from screens.base import fingerprint_lines, fold_shell
from wizard.core.errors import TransportError
from wizard.core.stages import Stage
from wizard.services.install import snippets

SIZE = (80, 24)


def screen_text(app) -> list[str]:
    return ["".join(seg.text for seg in strip).rstrip() for strip in app.screen._compositor.render_strips()]


def failing_loader(app):
    async def offline(session):
        raise TransportError("Could not connect to Klarna.", hint="Check the network.")

    app.services.status_loader = offline
    return app


async def test_offline_dashboard_shows_the_last_answer_and_the_error():
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)  # online once: the answer is remembered in the journal
    again = failing_loader(dashboard_app())
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = again.screen
        assert type(screen).__name__ == "DashboardScreen"
        banner = str(screen.query_one("#offline").content)
        assert "Offline" in banner and "last seen 2026-12-01 09:00 UTC" in banner
        assert "Could not connect to Klarna." in banner
        assert "ENFORCED" in str(screen.query_one("#summary").content)
        assert screen.query_one("#certificates").row_count == len(fixed_status().certificates)


async def test_offline_dashboard_without_a_remembered_answer_uses_the_records():
    app = failing_loader(snapshot_app(Stage.DONE))
    ev = app.session.evidence
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert "Loading" not in "\n".join(screen_text(app))
        assert "this tool's records" in str(screen.query_one("#offline").content)
        assert screen.query_one("#certificates").row_count == 1
        details = str(screen.query_one("#details").content)
        assert ev.certificate_id in details and fingerprint_lines(ev.fingerprint, indent=9) in details
        assert f"{ev.enforcement_mode} from" in str(screen.query_one("#summary").content)


@pytest.mark.e2e
async def test_dashboard_after_the_network_goes_away(onboard, sandbox):
    await asyncio.to_thread(onboard, enforce_at="NOW")
    app = make_app("p")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.screen.query_one("#offline").display is False  # online: no banner
    sandbox.stop()
    app = make_app("p")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "Offline" in str(app.screen.query_one("#offline").content)
        assert app.screen.query_one("#certificates").row_count >= 1


async def test_dashboard_at_80_columns_footer_and_table_fit():
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        footer = screen_text(app)[-1]
        for words in ("Doctor", "API keys", "Rotate", "Revoke", "Enforce", "Help"):
            assert words in footer, footer
        table = app.screen.query_one("#certificates")
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert table.has_focus


async def test_copy_goes_through_the_terminal_clipboard():
    app = dashboard_app()
    copied = []
    async with app.run_test(size=SIZE) as pilot:
        app.copy_to_clipboard = copied.append
        await settle(pilot)
        await pilot.press("ctrl+y")
        assert copied == [fixed_status().current.fingerprint]  # the certificate in use is selected


async def test_install_copy_is_the_exact_snippet():
    app = snapshot_app(Stage.INSTALL, evidence=evidence_through(Stage.VERIFY))
    copied = []
    async with app.run_test(size=SIZE) as pilot:
        app.copy_to_clipboard = copied.append
        await settle(pilot)
        if type(app.screen).__name__ == "WelcomeScreen":
            await pilot.press("ctrl+n")
            await settle(pilot)
        await pilot.press("ctrl+y")
        assert copied and copied[0].startswith("curl --cert ") and "\\\n" not in copied[0]


def test_fingerprint_lines_cut_between_bytes():
    fingerprint = ":".join(f"{i:02X}" for i in range(32))
    lines = fingerprint_lines(fingerprint, indent=4).split("\n")
    assert [len(line) for line in lines] == [47, 51]
    assert lines[1].startswith("    10:") and lines[0].endswith(":0F")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_folded_curl_fits_and_runs_as_the_same_command():
    text = snippets(
        "/srv/klarna mtls/current/certificate.pem",
        "/srv/klarna-mtls/current/private-key.pem",
        "https://api-global.test.klarna.com",
    )["curl"]
    folded = fold_shell(text)
    command = text.splitlines()[0]
    for line in folded.splitlines():
        assert len(line) <= 72 or " " not in line.strip().removesuffix(" \\")  # only one unbreakable word
    args = [
        subprocess.run(
            ["bash", "-c", f'curl() {{ printf "%s\\n" "$@"; }}\n{script}'],
            capture_output=True,
            text=True,
            check=True,
            env={"KLARNA_API_KEY": "k"},
        ).stdout
        for script in (command, folded.split("\n#")[0])
    ]
    assert args[0] == args[1] and "/srv/klarna mtls/current/certificate.pem\n" in args[0]
