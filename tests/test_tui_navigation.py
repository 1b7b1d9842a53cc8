"""Pilot tests at 80x24: Back on stage screens (ask before discarding, nothing lost on cancel),
help on F1 and ?, every screen action in the command palette, copy through the clipboard."""

from __future__ import annotations

from evidence import evidence_through
from snapshot_apps import dashboard_app, snapshot_app
from tests_support import settle

from screens.modals import ConfirmModal
from wizard.core.journal import Journal
from wizard.core.stages import Stage

SIZE = (80, 24)


async def resumed(pilot) -> None:
    await settle(pilot)
    if type(pilot.app.screen).__name__ == "WelcomeScreen":
        await pilot.press("ctrl+n")
        await settle(pilot)


def issued_app():
    """At ISSUE with the certificate already issued: going back discards it."""
    return snapshot_app(Stage.ISSUE, evidence=evidence_through(Stage.INSTALL))


async def test_escape_asks_before_discarding_and_cancel_keeps_everything():
    app = issued_app()
    async with app.run_test(size=SIZE) as pilot:
        await resumed(pilot)
        cert_id = app.session.evidence.certificate_id
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        assert cert_id in app.screen.consequence and "Issue:" in app.screen.consequence
        await pilot.press("escape")  # cancel
        await pilot.pause()
        assert type(app.screen).__name__ == "IssueScreen"
        assert app.session.model.stage is Stage.ISSUE and app.session.evidence.certificate_id == cert_id
        assert Journal(app.session.paths, "snap").load().model.evidence.certificate_id == cert_id


async def test_back_button_confirmed_reopens_key_stage_and_keeps_certificate_record():
    app = issued_app()
    async with app.run_test(size=SIZE) as pilot:
        await resumed(pilot)
        cert_id = app.session.evidence.certificate_id
        app.screen.query_one("#back").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("tab", "enter")  # from Cancel (the default) to "Go back"
        await settle(pilot)
        assert type(app.screen).__name__ == "KeyCsrScreen"
        assert app.session.model.stage is Stage.KEY_AND_CSR
        saved = Journal(app.session.paths, "snap").load()
        assert saved.model.stage is Stage.KEY_AND_CSR and saved.model.evidence.certificate_id is None
        assert cert_id in saved.certificates


async def test_back_without_later_evidence_goes_straight_back_and_credentials_back_is_welcome():
    app = snapshot_app(Stage.KEY_AND_CSR)
    async with app.run_test(size=SIZE) as pilot:
        await resumed(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert type(app.screen).__name__ == "CredentialsScreen"
        assert app.session.evidence.api_call_ok_at  # the reopened stage keeps what it had
        await pilot.press("escape")
        await settle(pilot)
        assert type(app.screen).__name__ == "WelcomeScreen"


async def test_help_on_f1_and_question_mark_lists_every_dashboard_action():
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key in ("f1", "question_mark"):
            await pilot.press(key)
            await pilot.pause()
            assert type(app.screen).__name__ == "HelpScreen"
            text = app.screen.body_text
            for words in (
                "Doctor",
                "API keys",
                "Rotate",
                "Revoke",
                "Remove enforcement",
                "Refresh",
                "Copy fingerprint",
            ):
                assert words in text, words
            await pilot.press("escape")
            await pilot.pause()
            assert type(app.screen).__name__ == "DashboardScreen"


async def test_question_mark_in_a_field_is_typed_not_help():
    app = snapshot_app(Stage.CREDENTIALS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        field = app.screen.query_one("#account-id")
        field.value = ""
        field.focus()
        await pilot.press("question_mark")
        await pilot.pause()
        assert type(app.screen).__name__ == "WelcomeScreen" and field.value == "?"


async def test_palette_holds_every_screen_action_and_runs_it():
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for words in ("Doctor", "API keys", "Rotate", "Enforce", "Remove enforcement", "Help"):
            assert words in titles, titles
        assert "Keys" not in titles  # Textual's 30-column panel is replaced by the help screen
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"doctor")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert type(app.screen).__name__ == "DoctorScreen"


async def test_palette_offers_back_to_each_earlier_stage():
    app = issued_app()
    async with app.run_test(size=SIZE) as pilot:
        await resumed(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Back to Credentials" in titles and "Back to Key and CSR" in titles
        assert "Back to Issue" not in titles


async def test_palette_back_command_asks_like_the_key_does():
    app = issued_app()
    async with app.run_test(size=SIZE) as pilot:
        await resumed(pilot)
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Back to Key and CSR")
        command.callback()
        await settle(pilot)
        assert isinstance(app.screen, ConfirmModal) and "Issue:" in app.screen.consequence
        await pilot.press("escape")
        await pilot.pause()
        assert app.session.model.stage is Stage.ISSUE and app.session.evidence.certificate_id


async def test_back_is_refused_while_the_step_is_running():
    import asyncio

    app = issued_app()
    async with app.run_test(size=SIZE) as pilot:
        await resumed(pilot)
        gate = asyncio.Event()
        app.screen.run_worker(gate.wait(), name="issue", group="step")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "IssueScreen" and app.session.model.stage is Stage.ISSUE
        gate.set()


async def test_keyboard_journey_at_80x24_back_past_issue_and_forward_reuses_the_certificate(sandbox):
    """On the real sandbox over mTLS: keys only, help on F1, Back past an issued certificate,
    then forward again: Klarna's certificate is adopted again, never issued twice."""
    from screens.app import make_app

    app = make_app("walk", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for keys, stage in (
            (["ctrl+n", "enter"], Stage.CREDENTIALS),
            (["ctrl+n", "enter"], Stage.KEY_AND_CSR),
            (["ctrl+n", "enter"], Stage.ISSUE),
        ):
            for key in keys:
                await pilot.press(key)
                await settle(pilot)
            assert app.session.model.stage is stage and not app.session.model.blockers(stage), stage
        first = app.session.evidence.certificate_id
        await pilot.press("f1")
        await pilot.pause()
        assert "Back" in app.screen.body_text and "Next" in app.screen.body_text
        await pilot.press("escape", "escape")  # close help, then Back
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal) and first in app.screen.consequence
        await pilot.press("tab", "enter")
        await settle(pilot)
        assert app.session.model.stage is Stage.KEY_AND_CSR and first in app.session.state.certificates
        await pilot.press("ctrl+n")  # the key and CSR are unchanged: on to Issue again
        await settle(pilot)
        await pilot.press("enter")  # Submit CSR: Klarna already has a certificate for this key
        await settle(pilot)
        assert app.session.evidence.certificate_id == first
        assert app.session.evidence.active_certificates == 1
