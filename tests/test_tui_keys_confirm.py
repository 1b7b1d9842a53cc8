"""API keys screen: disabling a key and rotating the tool's key ask first (live: type the key's
last four characters), and a new key is never offered to a store that cannot keep it."""

from __future__ import annotations

import asyncio

import pytest
from tests_support import name_initial_key, settle

from screens.app import make_app
from screens.keys import SecretOnceModal
from screens.modals import ConfirmModal, ErrorModal, TypedConfirmModal

pytestmark = pytest.mark.e2e
SIZE = (80, 24)


async def open_keys(app, pilot):
    await settle(pilot)
    await pilot.press("k")
    await settle(pilot)
    return app.screen


async def create_key(app, pilot, screen, description: str) -> SecretOnceModal:
    screen.query_one("#description").focus()
    await pilot.press(*description, "enter")  # Enter in the one field creates the key
    await settle(pilot)
    assert screen.query_one("#description").value == ""  # a second Enter cannot duplicate it
    if isinstance(app.screen, ConfirmModal):  # no store keeps keys: asked before the key exists
        assert "kept nowhere" in app.screen.title_text
        await pilot.click("#confirm")
        await settle(pilot)
    assert isinstance(app.screen, SecretOnceModal)
    return app.screen


async def test_keep_is_not_offered_when_the_key_came_from_the_environment(onboard, sandbox):
    await asyncio.to_thread(onboard, enforce_at="NOW")  # the fixture's key is KLARNA_API_KEY
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_keys(app, pilot)
        modal = await create_key(app, pilot, screen, "checkout eu")
        assert not modal.query("#store") and "KLARNA_API_KEY" in str(modal.query_one("#advice").content)
        await pilot.press("escape")
        await settle(pilot)
        assert app.is_running and len(screen.rows) == 2


async def test_disable_asks_first_and_cancel_keeps_the_key(onboard, sandbox):
    await asyncio.to_thread(onboard, enforce_at="NOW")
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_keys(app, pilot)
        await create_key(app, pilot, screen, "checkout eu")
        await pilot.press("escape")
        await settle(pilot)
        other = next(i for i, r in enumerate(screen.rows) if r.description == "checkout eu")
        screen.query_one("DataTable").move_cursor(row=other)
        screen.query_one("DataTable").focus()
        await pilot.press("ctrl+d")
        await pilot.pause()
        # the tool's own key is unknown (onboarded without --own-key): the key's last characters are typed
        assert isinstance(app.screen, TypedConfirmModal) and "checkout eu" in app.screen.consequence
        await pilot.press("enter")  # nothing typed: nothing happens
        await pilot.press("escape")  # Cancel
        await settle(pilot)
        assert [r.status for r in screen.rows] == ["ACTIVE", "ACTIVE"]
        await pilot.press("ctrl+d")
        await pilot.pause()
        await pilot.press(*screen.rows[other].masked[-4:], "enter")  # deliberately to Disable
        await settle(pilot)
        assert not isinstance(app.screen, ErrorModal), app.screen.body_text  # the tool's key still works
        assert screen.rows[other].status == "DISABLED" and screen.rows[1 - other].status == "ACTIVE"


async def test_rotate_asks_first_and_cancel_changes_nothing(onboard, sandbox, memory_keyring, monkeypatch):
    await asyncio.to_thread(onboard, enforce_at="NOW")
    monkeypatch.delenv("KLARNA_API_KEY")
    memory_keyring.set_password("klarna-mtls", "p", sandbox.api_key)  # the profile keeps its key
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    app.session.evidence.secret_backend = "keyring"
    app.session.unlock(sandbox.api_key)
    await asyncio.to_thread(name_initial_key, app.session)  # known tool key: rotation disables it
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_keys(app, pilot)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal) and "disabled" in app.screen.consequence
        await pilot.press("escape")
        await settle(pilot)
        assert len(screen.rows) == 1 and screen.rows[0].status == "ACTIVE"
        await pilot.press("ctrl+r")
        await pilot.pause()
        await pilot.press("tab", "enter")
        await settle(pilot)
        assert not isinstance(app.screen, ErrorModal), app.screen.body_text
        assert sorted(r.status for r in screen.rows) == ["ACTIVE", "DISABLED"]
        assert memory_keyring.get_password("klarna-mtls", "p") != sandbox.api_key


async def test_rotate_without_a_keeping_store_says_why(onboard, sandbox):
    await asyncio.to_thread(onboard, enforce_at="NOW")
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await open_keys(app, pilot)
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert isinstance(app.screen, ErrorModal) and "needs the store" in app.screen.body_text


async def test_live_disable_needs_the_keys_last_four_characters():
    from snapshot_apps import keys_app

    app = keys_app()
    app.session.evidence.environment = "live"
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_keys(app, pilot)
        screen.query_one("DataTable").move_cursor(row=1)
        await pilot.press("ctrl+d")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, TypedConfirmModal) and modal.expected == "c3d4"
        await pilot.press(*"a1b2")
        await pilot.pause()
        assert modal.query_one("#confirm").disabled
        await pilot.press(*["backspace"] * 4, *"c3d4")
        await pilot.pause()
        assert not modal.query_one("#confirm").disabled
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


async def test_a_store_that_refuses_the_new_key_gets_it_disabled(onboard, sandbox, memory_keyring, monkeypatch):
    from wizard.core.errors import SecretStoreError

    await asyncio.to_thread(onboard, enforce_at="NOW")
    monkeypatch.delenv("KLARNA_API_KEY")
    memory_keyring.set_password("klarna-mtls", "p", sandbox.api_key)
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    app.session.evidence.secret_backend = "keyring"
    app.session.save()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_keys(app, pilot)

        def refuse(*args):
            raise SecretStoreError("The OS keyring refused to store the key (Locked).")

        monkeypatch.setattr(memory_keyring, "set_password", refuse)
        screen.query_one("#description").focus()
        await pilot.press(*"checkout eu", "enter")
        await settle(pilot)
        # the CLI's safety net: a key whose secret could not be kept is disabled, never left active
        assert isinstance(app.screen, ErrorModal) and "it was disabled" in app.screen.body_text
        await pilot.press("escape")
        await settle(pilot)
        assert app.is_running and app.screen is screen
        new = [r for r in screen.rows if r.description == "checkout eu"]
        assert len(new) == 1 and new[0].status == "DISABLED"


async def test_a_keeping_store_keeps_the_new_key_and_says_where(onboard, sandbox, memory_keyring, monkeypatch):
    await asyncio.to_thread(onboard, enforce_at="NOW")
    monkeypatch.delenv("KLARNA_API_KEY")
    memory_keyring.set_password("klarna-mtls", "p", sandbox.api_key)
    app = make_app("p", sandbox=sandbox, poll_interval=0.05)
    app.session.evidence.secret_backend = "keyring"
    app.session.save()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_keys(app, pilot)
        modal = await create_key(app, pilot, screen, "checkout eu")
        assert not modal.query("#store") and modal.query("#copy")
        assert "Kept in OS keyring" in str(modal.query_one("#advice").content)
        secret = modal.secret.reveal()
        await pilot.press("escape")
        await settle(pilot)
        new = next(r for r in screen.rows if r.description == "checkout eu")
        assert new.status == "ACTIVE"
        assert memory_keyring.get_password("klarna-mtls", f"p#key:{new.credential_id}") == secret
