"""A snapshot of every screen and every error or blocked state, at a pinned 80x24."""

from __future__ import annotations

import pytest
from snapshot_apps import evidence_through, snapshot_app
from tests_support import settle

from screens.modals import ConfirmModal, ErrorModal
from wizard.core.errors import ApiError
from wizard.core.stages import Stage

SIZE = (80, 24)


async def _until(pilot, condition, rounds: int = 500):
    """Pause until ``condition()`` holds: a busy machine needs more frames, never a longer sleep."""
    for _ in range(rounds):
        if condition():
            break
        await pilot.pause()
    assert condition(), "the screen never reached the state the snapshot needs"
    await settle(pilot)


def test_welcome_new_profile(snap_compare):
    from wizard.core.evidence import Evidence

    assert snap_compare(snapshot_app(Stage.CREDENTIALS, evidence=Evidence()), terminal_size=SIZE, run_before=settle)


def test_welcome_bad_account_id(snap_compare):
    from wizard.core.evidence import Evidence

    async def typed(pilot):
        await settle(pilot)
        pilot.app.screen.query_one("#account-id").value = "krn:partner:LYABCDEI"
        await pilot.pause()

    assert snap_compare(snapshot_app(Stage.CREDENTIALS, evidence=Evidence()), terminal_size=SIZE, run_before=typed)


async def _continue(pilot):
    await settle(pilot)
    if pilot.app.screen.__class__.__name__ == "WelcomeScreen":
        await pilot.press("ctrl+n")
    await settle(pilot)


@pytest.mark.parametrize("stage", [s for s in Stage if s is not Stage.DONE])
def test_stage_blocked(snap_compare, stage):
    assert snap_compare(snapshot_app(stage), terminal_size=SIZE, run_before=_continue)


@pytest.mark.parametrize(
    "stage", [Stage.CREDENTIALS, Stage.KEY_AND_CSR, Stage.ISSUE, Stage.INSTALL, Stage.VERIFY, Stage.ENFORCE]
)
def test_stage_complete(snap_compare, stage):
    app = snapshot_app(stage, evidence=evidence_through(stage.next()))
    assert snap_compare(app, terminal_size=SIZE, run_before=_continue)


def test_done(snap_compare):
    from snapshot_apps import dashboard_app

    from screens.done import DoneScreen

    async def done(pilot):
        await settle(pilot)
        await pilot.app.push_screen(DoneScreen(pilot.app.services))
        await pilot.pause()

    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=done)


def test_credentials_without_keyring(snap_compare):
    assert snap_compare(snapshot_app(Stage.CREDENTIALS, keyring=False), terminal_size=SIZE, run_before=_continue)


def test_credentials_malformed_key(snap_compare):
    async def typed(pilot):
        await _continue(pilot)
        pilot.app.screen.query_one("#api-key").value = "not-a-klarna-key"
        await pilot.pause()

    assert snap_compare(snapshot_app(Stage.CREDENTIALS), terminal_size=SIZE, run_before=typed)


@pytest.mark.parametrize("status", ["NOT_PRESENT", "INVALID", "REJECTED"])
def test_verify_diagnosis(snap_compare, status):
    async def observed(pilot):
        await _continue(pilot)
        pilot.app.screen.show_diagnosis(status)
        await pilot.pause()

    assert snap_compare(snapshot_app(Stage.VERIFY), terminal_size=SIZE, run_before=observed)


def test_enforce_date_too_far(snap_compare):
    async def typed(pilot):
        await _continue(pilot)
        pilot.app.screen.query_one("#enforce-at").value = "2027-04-15T09:00:00Z"
        await pilot.pause()

    assert snap_compare(snapshot_app(Stage.ENFORCE), terminal_size=SIZE, run_before=typed)


def test_enforce_confirm_modal(snap_compare):
    async def confirm(pilot):
        await _continue(pilot)
        pilot.app.screen.confirm()
        await pilot.pause()
        assert isinstance(pilot.app.screen, ConfirmModal)

    assert snap_compare(snapshot_app(Stage.ENFORCE), terminal_size=SIZE, run_before=confirm)


def test_key_replace_confirm_modal(snap_compare):
    async def confirm(pilot):
        await _continue(pilot)
        await pilot.app.push_screen(
            ConfirmModal(
                "Replace the existing private key?",
                "A key already exists at /home/partner/keys/private-key.pem. Replacing it makes any certificate "
                "issued for it unusable from this machine.",
                "Replace key",
            )
        )
        await pilot.pause()

    assert snap_compare(snapshot_app(Stage.KEY_AND_CSR), terminal_size=SIZE, run_before=confirm)


def test_error_modal_api_error(snap_compare):
    async def failed(pilot):
        await _continue(pilot)
        pilot.app.show_error(
            ApiError(
                "At most 10 active certificates are allowed.",
                status=409,
                error_id="e-123",
                error_code="LIMIT_EXCEEDED",
                correlation_id="abc123",
                klarna_correlation_id="k-456",
                hint="Revoke a certificate you no longer use, then try again.",
            )
        )
        await pilot.pause()
        assert isinstance(pilot.app.screen, ErrorModal)

    assert snap_compare(snapshot_app(Stage.ISSUE), terminal_size=SIZE, run_before=failed)


def test_dashboard(snap_compare):
    from snapshot_apps import dashboard_app

    assert snap_compare(dashboard_app(), terminal_size=(120, 30), run_before=settle)


def test_dashboard_revoke_refused(snap_compare):
    from snapshot_apps import dashboard_app

    async def refuse(pilot):
        await settle(pilot)
        table = pilot.app.screen.query_one("#certificates")
        table.move_cursor(row=1)
        await pilot.press("v")
        await pilot.pause()
        assert isinstance(pilot.app.screen, ErrorModal)

    assert snap_compare(dashboard_app(), terminal_size=(120, 30), run_before=refuse)


def test_rotate_screen(snap_compare):
    from snapshot_apps import dashboard_app

    async def open_rotate(pilot):
        await settle(pilot)
        await pilot.press("o")
        await pilot.pause()

    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=open_rotate)


def test_doctor_screen(snap_compare):
    from snapshot_apps import dashboard_app

    async def open_doctor(pilot):
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)

    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=open_doctor)


def test_enforce_modal_from_dashboard(snap_compare):
    from snapshot_apps import dashboard_app

    async def open_enforce(pilot):
        await settle(pilot)
        await pilot.press("e")
        await _until(pilot, lambda: type(pilot.app.screen).__name__ == "EnforceModal")

    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=open_enforce)


def test_keys_screen(snap_compare):
    from snapshot_apps import keys_app

    async def open_keys(pilot):
        await settle(pilot)
        await pilot.press("k")
        await settle(pilot)

    assert snap_compare(keys_app(), terminal_size=SIZE, run_before=open_keys)


def test_keys_screen_disable_refused(snap_compare):
    from snapshot_apps import keys_app

    async def refuse(pilot):
        await settle(pilot)
        await pilot.press("k")
        await settle(pilot)
        await pilot.press("ctrl+d")
        await pilot.pause()
        assert isinstance(pilot.app.screen, ErrorModal)

    assert snap_compare(keys_app(), terminal_size=SIZE, run_before=refuse)


# ---------------------------------------------------------------- 80x24: way back, help, palette, offline
def test_dashboard_80x24(snap_compare):
    from snapshot_apps import dashboard_app

    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=settle)


def test_dashboard_revoke_refused_80x24(snap_compare):
    from snapshot_apps import dashboard_app

    async def refuse(pilot):
        await settle(pilot)
        pilot.app.screen.query_one("#certificates").move_cursor(row=1)
        await pilot.press("v")
        await pilot.pause()
        assert isinstance(pilot.app.screen, ErrorModal)

    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=refuse)


def test_dashboard_revoke_confirm_80x24(snap_compare):
    from snapshot_apps import dashboard_app

    async def confirm(pilot):
        await settle(pilot)
        pilot.app.screen.query_one("#certificates").move_cursor(row=0)
        await pilot.press("v")
        await pilot.pause()
        assert isinstance(pilot.app.screen, ConfirmModal)

    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=confirm)


def test_dashboard_offline_last_answer(snap_compare):
    from snapshot_apps import dashboard_app, offline_dashboard_app

    async def offline(pilot):
        await settle(pilot)
        assert "Offline" in str(pilot.app.screen.query_one("#offline").content)

    online = dashboard_app()
    offline_dashboard_app(online, remembered=True)
    assert snap_compare(offline_dashboard_app(dashboard_app()), terminal_size=SIZE, run_before=offline)


def test_dashboard_offline_from_records(snap_compare):
    from snapshot_apps import offline_dashboard_app

    async def offline(pilot):
        await settle(pilot)
        assert "records" in str(pilot.app.screen.query_one("#offline").content)

    assert snap_compare(offline_dashboard_app(snapshot_app(Stage.DONE)), terminal_size=SIZE, run_before=offline)


def test_help_on_dashboard(snap_compare):
    from snapshot_apps import dashboard_app

    async def help_(pilot):
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=help_)


def test_help_on_stage_screen(snap_compare):
    async def help_(pilot):
        await _continue(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    app = snapshot_app(Stage.ISSUE, evidence=evidence_through(Stage.INSTALL))
    assert snap_compare(app, terminal_size=SIZE, run_before=help_)


def test_palette_on_dashboard(snap_compare):
    from snapshot_apps import dashboard_app

    async def palette(pilot):
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"doctor")
        palette = pilot.app.screen
        for _ in range(200):  # the search runs in the background: wait until it has answered
            await pilot.pause(0.05)
            found = palette.query_one("CommandList")
            if found.option_count and not palette._show_busy and "Doctor" in str(found.get_option_at_index(0).prompt):
                break
        palette._stop_busy_countdown()
        await pilot.pause()

    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=palette)


def test_go_back_confirm_modal(snap_compare):
    async def back(pilot):
        await _continue(pilot)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(pilot.app.screen, ConfirmModal)

    app = snapshot_app(Stage.VERIFY, evidence=evidence_through(Stage.DONE))
    assert snap_compare(app, terminal_size=SIZE, run_before=back)


def test_install_snippets_80x24(snap_compare):
    async def scrolled(pilot):
        await _continue(pilot)
        pilot.app.screen.query_one("#snippets").scroll_visible(animate=False, top=True)
        await pilot.pause()

    app = snapshot_app(Stage.INSTALL, evidence=evidence_through(Stage.VERIFY))
    assert snap_compare(app, terminal_size=SIZE, run_before=scrolled)


def test_issue_fingerprint_80x24(snap_compare):
    async def scrolled(pilot):
        await _continue(pilot)
        pilot.app.screen.query_one("#facts").scroll_visible(animate=False, top=True)
        await pilot.pause()

    app = snapshot_app(Stage.ISSUE, evidence=evidence_through(Stage.INSTALL))
    assert snap_compare(app, terminal_size=SIZE, run_before=scrolled)


def test_key_passphrase_modal_on_resume(snap_compare):
    async def asked(pilot):
        await settle(pilot)
        pilot.app.screen.query_one("#key-passphrase").cursor_blink = False  # a blinking cursor is a clock
        pilot.app.screen_stack[-2].refresh_bindings()  # the footer beneath, pushed over on mount: settle it
        await pilot.pause()
        await pilot.pause()

    evidence = evidence_through(Stage.VERIFY)
    evidence.key_encrypted = True
    assert snap_compare(snapshot_app(Stage.VERIFY, evidence=evidence), terminal_size=SIZE, run_before=asked)


def test_welcome_resume_note(snap_compare):
    assert snap_compare(snapshot_app(Stage.INSTALL), terminal_size=SIZE, run_before=settle)


def test_live_revoke_typed_confirm(snap_compare):
    from snapshot_apps import dashboard_app

    from screens.modals import TypedConfirmModal

    async def confirm(pilot):
        await settle(pilot)
        pilot.app.session.evidence.environment = "live"
        pilot.app.screen.query_one("#certificates").move_cursor(row=0)
        await pilot.press("v")
        await pilot.pause()
        assert isinstance(pilot.app.screen, TypedConfirmModal)

    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=confirm)


def test_unenforce_confirm_80x24(snap_compare):
    from snapshot_apps import dashboard_app

    async def confirm(pilot):
        await settle(pilot)
        await pilot.press("u")
        await pilot.pause()
        assert isinstance(pilot.app.screen, ConfirmModal)

    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=confirm)


def test_unexpected_error_modal_80x24(snap_compare):
    async def failed(pilot):
        await _continue(pilot)
        pilot.app.show_error(FileExistsError("/srv/klarna-mtls/certs"))
        await pilot.pause()
        assert isinstance(pilot.app.screen, ErrorModal)

    assert snap_compare(snapshot_app(Stage.INSTALL), terminal_size=SIZE, run_before=failed)


def test_rotate_done_and_retire_prompt_80x24(snap_compare, monkeypatch):
    from snapshot_apps import dashboard_app, fixed_status

    from wizard.services import certificate_rotation

    old, new = fixed_status().certificates[1], fixed_status().certificates[0]

    async def rotation(session, **options):  # the domain's rotation events, without the network
        from wizard.services import waits

        for n, step in enumerate(certificate_rotation.ROTATION_WORDS, 1):
            yield waits.Step("Rotating", step, n, 5, certificate_rotation.ROTATION_WORDS[step])
        progress = certificate_rotation.RotationProgress("done", old.credential_id, new.credential_id, new.fingerprint)
        yield waits.Done("Rotating", 1.0, "VALID", result=progress)

    monkeypatch.setattr(certificate_rotation, "rotation", rotation)

    async def rotate(pilot):
        await settle(pilot)
        await pilot.press("o")
        await pilot.pause()
        await pilot.press("enter")  # Start rotation has the focus
        await settle(pilot)
        assert isinstance(pilot.app.screen, ConfirmModal)

    assert snap_compare(dashboard_app(), terminal_size=SIZE, run_before=rotate)
