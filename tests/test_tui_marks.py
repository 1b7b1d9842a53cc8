"""Radio and checkbox state is shown by a mark, not only by colour: on a monochrome terminal the
chosen environment, the chosen store and the ticked formats must still be readable."""

from __future__ import annotations

from snapshot_apps import snapshot_app
from tests_support import settle

from wizard.core.evidence import Evidence
from wizard.core.stages import Stage

SIZE = (80, 24)


def screen_lines(app) -> list[str]:
    return ["".join(seg.text for seg in strip).rstrip() for strip in app.screen._compositor.render_strips()]


def line_of(app, label: str) -> str:
    return next(line for line in screen_lines(app) if label in line)


async def test_only_the_chosen_environment_carries_a_mark():
    app = snapshot_app(Stage.CREDENTIALS, evidence=Evidence())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "●" in line_of(app, " test")
        assert "●" not in line_of(app, " live") and "●" not in line_of(app, " sandbox")
        app.screen.query_one("#env-live").value = True
        await settle(pilot)
        assert "●" in line_of(app, " live") and "●" not in line_of(app, " test")


async def test_ticked_formats_carry_a_mark_and_unticked_ones_none():
    app = snapshot_app(Stage.INSTALL)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        if app.screen.__class__.__name__ == "WelcomeScreen":
            await pilot.press("ctrl+n")
            await settle(pilot)
        line = line_of(app, "PEM bundle")
        assert "X" not in line.split("PEM bundle")[0]
        app.screen.query_one("#fmt-bundle").value = True
        await pilot.pause()
        assert "X" in line_of(app, "PEM bundle").split("PEM bundle")[0]
        assert "X" not in line_of(app, "PKCS#12").split("PKCS#12")[0].split("PEM bundle")[-1]
