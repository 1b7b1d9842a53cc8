"""After quitting, the end of the journey stays in the terminal (as certbot and gh do)."""

from __future__ import annotations

import asyncio

from screens.exit_report import exit_summary
from wizard.services.renewal import cron_advice
from wizard.services.session import Session


async def test_the_summary_names_everything_a_partner_needs_next(onboard, paths):
    result = await asyncio.to_thread(onboard, "done", enforce_at="NOW")
    text = exit_summary(Session(paths, "done"))
    assert f"Certificate: {result['certificate_id']}" in text
    assert result["cert_path"] in text and result["key_path"] in text
    assert "Expires: 20" in text and "start the renewal (klarna-mtls rotate --profile done) by 20" in text
    assert "Enforcement: ENFORCED" in text
    assert str(paths.log_path()) in text


async def test_the_summary_prints_the_cron_lines_that_work_as_printed(onboard, paths):
    """Issue 24: the TUI's exit summary prints renewal.cron_advice's lines (the program's full
    path, the moved home, renew beside check) and what cron needs, not a line of its own."""
    await asyncio.to_thread(onboard, "done", enforce_at="NOW")
    session = Session(paths, "done")
    advice = cron_advice(session)
    lines = exit_summary(session).splitlines()
    for line in advice.lines:
        assert f"    {line}" in lines
    assert any(
        line.startswith("17 6 * * * ") and "klarna-mtls check --profile done --warn-days 60" in line
        for line in advice.lines
    )
    assert any(" renew --profile done" in line for line in advice.lines)
    assert [f"    # needs: {need}" for need in advice.needs] == [line for line in lines if "# needs:" in line]


def test_an_unfinished_profile_says_where_it_stopped(paths):
    text = exit_summary(Session(paths, "fresh"))
    assert "'fresh' stopped at" in text and "run klarna-mtls --profile fresh again to resume" in text
    assert "run klarna-mtls again to resume" in exit_summary(Session(paths, "default"))


async def test_the_done_screen_prints_the_same_cron_lines(onboard, sandbox):
    from tests_support import settle

    from screens.app import make_app
    from screens.done import DoneScreen

    await asyncio.to_thread(onboard, "done", enforce_at="NOW")
    app = make_app("done", sandbox=sandbox)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await app.push_screen(DoneScreen(app.services))
        await settle(pilot)
        shown = str(app.screen.query_one("#summary").content).splitlines()
        advice = cron_advice(app.session)
        assert all(f"  {line}" in shown for line in advice.lines), shown
        assert all(f"  # needs: {need}" in shown for need in advice.needs), shown
        assert any("klarna-mtls check --profile done --warn-days 60 --critical-days 14" in line for line in shown)
