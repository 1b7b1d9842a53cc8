"""The API keys screen from the keyboard at 80x24 (issue 24, friction list): the table has the
focus, the new key's name is one Tab (or n) away, every column and the whole footer fit, and the
key actions work wherever the focus is."""

from __future__ import annotations

from snapshot_apps import keys_app
from tests_support import settle

from screens.keys import KeysScreen
from screens.modals import ConfirmModal, TypedConfirmModal

SIZE = (80, 24)


def screen_lines(app) -> list[str]:
    return ["".join(seg.text for seg in strip).rstrip() for strip in app.screen._compositor.render_strips()]


async def open_keys(app, pilot) -> KeysScreen:
    await settle(pilot)
    await pilot.press("k")
    await settle(pilot)
    assert isinstance(app.screen, KeysScreen)
    return app.screen


async def test_the_table_has_the_focus_and_the_new_keys_name_is_one_tab_away():
    app = keys_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_keys(app, pilot)
        assert app.focused is screen.query_one("#keys")
        await pilot.press("tab")
        assert app.focused is screen.query_one("#description")
        screen.query_one("#keys").focus()
        await pilot.press("n")
        assert app.focused is screen.query_one("#description")


async def test_every_column_and_the_whole_footer_fit_80_columns():
    app = keys_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_keys(app, pilot)
        lines = screen_lines(app)
        assert any(line.rstrip().endswith("in use") for line in lines)  # the last column, "tool"
        footer = lines[-1]
        for words in ("esc Back", "^d Disable", "^r Rotate own", "^t Mark own", "f1 Help"):
            assert words in footer, footer


async def test_disable_works_while_the_name_field_has_the_focus():
    app = keys_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_keys(app, pilot)
        screen.query_one("#keys").move_cursor(row=1)
        screen.query_one("#description").focus()
        await pilot.pause()
        assert "Disable" in screen_lines(app)[-1]  # still offered while typing a name
        await pilot.press("ctrl+d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal | TypedConfirmModal) and "checkout eu" in app.screen.consequence
