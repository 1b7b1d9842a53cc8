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


def test_ctrl_c_while_enforcement_is_pending_exits_130_and_says_it_is_still_scheduled(sandbox):
    import os
    import signal
    import subprocess
    import sys

    from tests_support import sandbox_profile_args

    sandbox.enforcement_delay = 3600  # applied long after the interrupt: the wait is where Ctrl+C lands
    env = {
        **os.environ,
        "KLARNA_API_KEY": sandbox.api_key,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    argv = ["onboard", "--profile", "p", "--non-interactive", *sandbox_profile_args(sandbox)]
    argv += ["--enforce-at", "NOW", "--poll-interval", "0.05", "--enforce-wait", "3000"]
    process = subprocess.Popen(
        [sys.executable, "-m", "wizard.cli", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        seen = []
        assert process.stdout is not None
        for line in process.stdout:  # until the request is recorded and the wait for ENFORCED begins
            seen.append(line)
            if "enforcement requested from" in line:
                break
        assert seen and "enforcement requested from" in seen[-1], "".join(seen)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, rest
    assert "enforcement is still scheduled for 20" in rest, rest
    assert "`klarna-mtls unenforce --profile p` cancels it" in rest and "Traceback" not in rest
    assert "klarna-mtls onboard --profile p resumes" in rest


@pytest.mark.parametrize("typed", ["-ab1", "--x1", "-"])
@pytest.mark.parametrize(
    "command", [("keys", "disable", "krn:k"), ("keys", "set-own", "krn:k"), ("certs", "revoke", "krn:c")]
)
def test_a_confirmation_suffix_that_starts_with_a_dash_is_read_as_the_value(typed, command, capsys):
    """An API key's last four characters may start with "-" (URL-safe base64): argparse took
    `--confirm-suffix -ab1` for an option and exited 2, so such a live key could not be disabled."""
    try:
        code = main([*command, "--profile", "nowhere", "--json", "--confirm-suffix", typed])
    except SystemExit as exit_:
        pytest.fail(f"argparse refused the typed suffix {typed!r}: exit {exit_.code}")
    assert code == 3 and "nowhere" in capsys.readouterr().out  # the profile is missing: read past the suffix


@pytest.mark.parametrize(
    "command", [("keys", "disable", "krn:k"), ("keys", "set-own", "krn:k"), ("certs", "revoke", "krn:c")]
)
def test_an_option_after_confirm_suffix_is_not_taken_as_the_typed_value(command, capsys):
    """`--confirm-suffix --json` took `--json` as the typed characters: the confirmation then failed
    in text mode although JSON was asked for. argparse now says the value is missing."""
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--profile", "nowhere", "--confirm-suffix", "--json"])
    assert exit_.value.code == 2
    assert "--confirm-suffix: expected one argument" in capsys.readouterr().err
