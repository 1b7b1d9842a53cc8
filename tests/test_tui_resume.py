"""A journal pulled back to an earlier stage when loaded: the TUI says why, in the CLI's words."""

from __future__ import annotations

import asyncio
import json

from wizard.core.stages import Stage


async def test_the_stage_screen_says_why_the_journal_was_pulled_back(onboard, sandbox, paths):
    from screens.app import make_app

    await asyncio.to_thread(onboard)
    journal = paths.journal_path("p")
    data = json.loads(journal.read_text())
    data["evidence"]["install_probe_ok_at"] = None  # the install was never proved
    journal.write_text(json.dumps(data))
    app = make_app("p", sandbox=sandbox, poll_interval=0.05, autostart_polling=False)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(3):
            await pilot.pause()
            await app.workers.wait_for_complete()
        model = app.session.model
        assert model.stage is Stage.INSTALL and model.pulled_back[0] is Stage.ENFORCE
        assert type(app.screen).__name__ == "InstallScreen"
        shown = [n.message for n in app._notifications]
        why = " ".join(model.pulled_back[1])
        assert why and f"Resumed at Install, not Enforce: {why}" in shown  # the CLI's words
        assert f"Resumed {model.pulled_back_note()}" in shown
