"""Pilot tests: the whole journey on the in-process sandbox over real mTLS, refusals, resume."""

from __future__ import annotations

import pytest
from tests_support import SIZE, click, walk_to
from tests_support import settle_journey as settle

from screens.app import make_app
from screens.modals import ConfirmModal, ErrorModal
from wizard.core.stages import Stage
from wizard.services import onboarding


async def test_whole_journey_to_enforced_with_keyboard_and_clicks(sandbox):
    app = make_app("journey", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, Stage.DONE)
        assert app.screen.__class__.__name__ == "DoneScreen"
        ev = app.session.evidence
        assert ev.enforcement_mode in ("ENFORCED", "REPORTING")
        assert [v["status"] for v in ev.verifications[-3:]] == ["VALID"] * 3
        assert app.session.settings.enforced_from_server
        assert app.session.settings.enforcement_proved_at  # the wizard proved it, and says so
    assert await onboarding.prove_enforced(app.session)  # a call without a client certificate is refused


async def test_next_is_blocked_with_reasons(sandbox):
    app = make_app("blocked", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, Stage.CREDENTIALS)
        await pilot.press("ctrl+n")  # no key tested yet: nothing happens
        await settle(pilot)
        assert app.session.model.stage is Stage.CREDENTIALS
        text = str(app.screen.query_one("#blockers").content)
        assert "Test the API key with a live call" in text
        assert app.screen.query_one("#next").disabled


async def test_malformed_api_key_is_refused_with_a_message(sandbox):
    app = make_app("badkey", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, Stage.CREDENTIALS)
        app.screen.query_one("#api-key").value = "not-a-key"
        await pilot.pause()
        assert "does not look like a Klarna API key" in str(app.screen.query_one("#key-error").content)
        await click(app, pilot, "#test-key")
        assert isinstance(app.screen, ErrorModal)
        assert "API key" in app.screen.body_text
        assert app.session.model.stage is Stage.CREDENTIALS


async def test_revoked_certificate_shows_invalid_diagnosis(sandbox):
    """INVALID is not a verdict at once (Klarna settles within minutes): polling goes on until
    the limit, then stops with the diagnosis on screen."""
    app = make_app("revoked", sandbox=sandbox, poll_interval=0.05, poll_limit=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, Stage.VERIFY)
        await settle(pilot)
        screen = app.screen
        screen.action_cancel_poll()
        async with app.session.client() as klarna:
            await klarna.revoke_certificate(app.session.evidence.certificate_id)
        app.session.evidence.verifications.clear()
        screen.refresh_state()
        screen.action_retry()
        await settle(pilot)
        text = str(screen.query_one("#diagnosis").content)
        assert text.startswith("INVALID")
        assert "revoked or expired" in text
        assert app.session.model.stage is Stage.VERIFY
        seen = [v["status"] for v in app.session.evidence.verifications]
        assert seen.count("INVALID") >= 2  # the first INVALID did not stop the polling
        assert str(screen.query_one("#progress").content).startswith("Stopped: INVALID")


async def test_enforcement_four_months_ahead_is_refused(sandbox):
    from datetime import timedelta

    from wizard.core import rules

    app = make_app("later", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, Stage.ENFORCE)
        later = rules.format_utc(rules.utc_now() + timedelta(days=122))
        app.screen.query_one("#enforce-at").value = later
        await pilot.pause()
        assert "more than 3 months ahead" in str(app.screen.query_one("#when").content)
        assert app.screen.query_one("#enforce").disabled


@pytest.mark.parametrize("stage", [Stage.KEY_AND_CSR, Stage.ISSUE, Stage.INSTALL, Stage.VERIFY, Stage.ENFORCE])
async def test_resume_lands_on_the_same_stage(sandbox, stage):
    app = make_app("resume", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, stage)
        evidence = app.session.evidence.to_dict()
    again = make_app("resume", sandbox=sandbox, poll_interval=0.05, autostart_polling=False)
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert again.session.model.stage is stage
        assert type(again.screen).STAGE is stage
        for name in ("certificate_id", "fingerprint", "key_public_id"):
            assert again.session.evidence.to_dict()[name] == evidence[name]


async def test_keys_are_handled_while_a_poll_is_in_flight(sandbox):
    from wizard.sandbox.server import Fault

    app = make_app("responsive", sandbox=sandbox, poll_interval=0.05, autostart_polling=False)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, Stage.VERIFY)
        sandbox.inject(Fault(kind="latency", seconds=1.5, count=1))
        app.screen.action_retry()
        await pilot.pause(0.2)
        assert app.screen.workers  # the poll is still in flight
        await pilot.press("c")  # handled at once: cancels the poll
        await pilot.pause()
        assert "cancelled" in str(app.screen.query_one("#progress").content)


async def test_a_failing_worker_shows_the_error_modal_and_the_app_stays(sandbox):
    from wizard.sandbox.server import Fault

    app = make_app("failing", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, Stage.ISSUE)
        sandbox.inject(Fault(kind="status", status=400, operation="create_certificate", count=1))
        await click(app, pilot, "#submit")
        assert isinstance(app.screen, ErrorModal)
        assert "Injected server error" in app.screen.body_text
        assert "error_id=" in app.screen.hint_text  # what Klarna support asks for
        await pilot.press("escape")
        await settle(pilot)
        assert app.is_running and app.session.model.stage is Stage.ISSUE
        assert app.session.state.in_flight is None  # a definite refusal: nothing to reconcile


async def test_keyboard_alone_finishes_onboarding(sandbox):
    """Enter presses each step's primary button, then Next; only the enforcement confirmation
    needs a deliberate Tab (its safe default is Cancel)."""
    app = make_app("keys-only", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(40):
            if app.session.model.stage is Stage.DONE:
                break
            if isinstance(app.screen, ConfirmModal):
                await pilot.press("tab", "enter")
            else:
                await pilot.press("enter")
            await settle(pilot)
            assert not isinstance(app.screen, ErrorModal), app.screen.body_text
            await pilot.pause(0.2)
        assert app.session.model.stage is Stage.DONE


async def test_resume_with_an_encrypted_key_asks_for_its_passphrase(sandbox):
    from screens.modals import PassphraseModal

    app = make_app("locked", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, Stage.KEY_AND_CSR)
        app.screen.query_one("#passphrase").value = "resume secret"
        app.screen.query_one("#passphrase-confirm").value = "resume secret"
        await walk_to(app, pilot, Stage.INSTALL)
    again = make_app("locked", sandbox=sandbox, poll_interval=0.05, autostart_polling=False)
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(again.screen, PassphraseModal)
        await pilot.press(*"wrong", "enter")
        await settle(pilot)
        assert isinstance(again.screen, PassphraseModal)  # asked again, saying why
        assert "Wrong passphrase" in str(again.screen.query_one("#passphrase-problem").content)
        await pilot.press(*"resume secret", "enter")
        await settle(pilot)
        assert type(again.screen).STAGE is Stage.INSTALL
        await click(again, pilot, "#install")
        assert again.session.evidence.install_probe_ok_at


async def test_resume_at_verify_asks_before_polling_and_a_forgotten_passphrase_is_asked_again(sandbox, monkeypatch):
    """The Verify auto-poll loads the key: it must not start before the passphrase is known (it
    used to hand OpenSSL the terminal). Cancelled, the poll's KeyLocked asks again."""
    from screens.modals import PassphraseModal

    app = make_app("poll-locked", sandbox=sandbox, poll_interval=0.05, autostart_polling=False)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, Stage.KEY_AND_CSR)
        app.screen.query_one("#passphrase").value = "poll secret"
        app.screen.query_one("#passphrase-confirm").value = "poll secret"
        await walk_to(app, pilot, Stage.VERIFY)
    polls = len(app.session.evidence.verifications)
    again = make_app("poll-locked", sandbox=sandbox, poll_interval=0.05)
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(again.screen, PassphraseModal)
        assert len(again.session.evidence.verifications) == polls  # nothing polled before the answer
        await pilot.press("escape")  # cancelled: the stage opens, its auto-poll needs the key and asks
        await settle(pilot)
        assert isinstance(again.screen, PassphraseModal)
        assert "no passphrase was given" in str(again.screen.query_one("#passphrase-problem").content)
        await pilot.press(*"poll secret", "enter")
        await settle(pilot)
        assert again.session.key_passphrase == b"poll secret"
    monkeypatch.setenv("KLARNA_MTLS_KEY_PASSPHRASE", "poll secret")
    third = make_app("poll-locked", sandbox=sandbox, poll_interval=0.05, autostart_polling=False)
    async with third.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await settle(pilot)
        assert type(third.screen).STAGE is Stage.VERIFY  # the environment's passphrase: no question
        assert third.session.key_passphrase == b"poll secret"


async def test_install_screen_writes_the_chosen_formats(sandbox):
    from cryptography.hazmat.primitives.serialization import pkcs12

    app = make_app("formats", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await walk_to(app, pilot, Stage.INSTALL)
        for box in ("#fmt-bundle", "#fmt-p12", "#fmt-k8s"):
            app.screen.query_one(box).value = True
        app.screen.query_one("#p12-password").value = "java-pass"
        await click(app, pilot, "#install")
        assert not isinstance(app.screen, ErrorModal), app.screen.body_text
        exports = app.session.install_dir / "exports"
        assert sorted(p.name for p in exports.iterdir()) == ["bundle.pem", "client.p12", "klarna-mtls-secret.yaml"]
        key, cert, _ = pkcs12.load_key_and_certificates((exports / "client.p12").read_bytes(), b"java-pass")
        assert cert is not None and "Exported:" in str(app.screen.query_one("#facts").content)
        assert app.session.evidence.install_probe_ok_at
