"""The first screen takes typing at once: a first run opens with the account id focused."""

from __future__ import annotations

from screens.app import make_app


async def test_a_first_run_types_the_account_id_straight_away():
    app = make_app("first")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "account-id"
        await pilot.press("k", "r", "n")
        await pilot.pause()
        assert app.screen.query_one("#account-id").value == "krn"
