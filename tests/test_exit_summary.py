"""After quitting, the end of the journey stays in the terminal (as certbot and gh do)."""

from __future__ import annotations

import asyncio

from screens.exit_report import exit_summary
from wizard.services.session import Session


async def test_the_summary_names_everything_a_partner_needs_next(onboard, paths):
    result = await asyncio.to_thread(onboard, "done", enforce_at="NOW")
    text = exit_summary(Session(paths, "done"))
    assert f"Certificate: {result['certificate_id']}" in text
    assert result["cert_path"] in text and result["key_path"] in text
    assert "Expires: 20" in text and "start the renewal (klarna-mtls rotate) by 20" in text
    assert "Enforcement: ENFORCED" in text
    assert "* * * klarna-mtls check --profile done --warn-days 60 --critical-days 14" in text
    assert str(paths.log_path()) in text


def test_an_unfinished_profile_says_where_it_stopped(paths):
    text = exit_summary(Session(paths, "fresh"))
    assert "'fresh' stopped at" in text and "run klarna-mtls again to resume" in text
