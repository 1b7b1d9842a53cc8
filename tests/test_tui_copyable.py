"""Paths and snippets at 80 columns can be copied whole (issue 24, friction list): the Done
screen shows each path on a line of its own, never wrapped inside it, and copies it; the Install
step says how to get a clipped snippet whole; the doctor copies its next steps."""

from __future__ import annotations

from evidence import evidence_through
from snapshot_apps import dashboard_app, snapshot_app
from tests_support import settle

from screens.doctor import DoctorScreen
from screens.done import DoneScreen
from wizard.core.stages import Stage

SIZE = (80, 24)
DEEP = "/srv/" + "/".join(["a-long-install-folder"] * 3) + "/current"


def screen_lines(app) -> list[str]:
    return ["".join(seg.text for seg in strip).rstrip() for strip in app.screen._compositor.render_strips()]


async def test_done_shows_a_long_path_unbroken_and_copies_it():
    app = dashboard_app()
    ev = app.session.evidence
    ev.cert_path, ev.installed_key_path = f"{DEEP}/certificate.pem", f"{DEEP}/private-key.pem"
    assert len(ev.cert_path) > 80
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.push_screen(DoneScreen(app.services))
        await settle(pilot)
        lines = screen_lines(app)
        # a hard wrap would put the path's tail at the start of a line of its own
        assert not any(line.strip() and ev.cert_path.endswith(line.strip()) for line in lines)
        assert any(line.strip() and ev.cert_path.startswith(line.strip()) for line in lines)  # clipped, not cut
        await pilot.press("c")
        assert app.clipboard == ev.cert_path
        await pilot.press("k")
        assert app.clipboard == ev.installed_key_path
        assert "check --profile snap" in str(app.screen.query_one("#summary").content)


async def test_the_install_step_says_a_clipped_snippet_is_copied_whole():
    app = snapshot_app(Stage.INSTALL, evidence=evidence_through(Stage.VERIFY))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "ctrl+y copies the snippet" in "\n".join(screen_lines(app))
        await pilot.press("ctrl+y")
        assert "https://api-global.test.klarna.com/v2/account/integration/credentials/" in app.clipboard


async def test_the_doctor_copies_its_next_steps_with_paths_whole():
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.push_screen(DoctorScreen(app.services))
        await settle(pilot)
        await pilot.press("ctrl+y")
        assert "Run: chmod 600 /srv/klarna-mtls/certs/current/private-key.pem" in app.clipboard.splitlines()
