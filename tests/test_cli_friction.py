"""Issue 24's friction list on the command line: slots the listing cannot count are "unknown",
not 0/10; Ctrl+C in a headless onboarding exits 130 and says what is still scheduled."""

from __future__ import annotations

import pytest

from wizard.cli import main

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("sandbox", ["docs-only"], indirect=True)
@pytest.mark.parametrize("all_profiles", [False, True])
def test_status_says_slots_unknown_when_the_listing_carries_no_status(onboard, capsys, all_profiles):
    onboard()
    capsys.readouterr()
    main(["status", "--all"] if all_profiles else ["status", "--profile", "p"])
    text = capsys.readouterr().out
    assert "slots unknown (1 listed without a state" in text, text
    assert "slots 0/10" not in text


def test_status_counts_slots_when_the_listing_gives_states(onboard, capsys):
    onboard()
    capsys.readouterr()
    main(["status", "--profile", "p"])
    assert "slots 1/10" in capsys.readouterr().out
