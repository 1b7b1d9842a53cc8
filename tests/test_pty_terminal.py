"""The pty test's terminal reads back whole frames: a read that ends mid-frame on a busy machine
showed the dashboard's new summary beside the banner the same frame clears (issue 24's pty test
failed so, once in a dozen runs with both cores busy)."""

from __future__ import annotations

from pty_terminal import Screen

BEGIN, END = "\x1b[?2026h", "\x1b[?2026l"


def test_it_answers_that_it_synchronizes_output():
    screen = Screen(2, 20)
    screen.feed("\x1b[?2026$p")
    assert screen.answers == ["\x1b[?2026;2$y"]


def test_a_frame_read_in_part_shows_the_last_whole_frame_until_it_ends():
    screen = Screen(2, 20)
    screen.feed(f"{BEGIN}\x1b[1;1Hpair: broken\x1b[2;1HLocal problem{END}")
    screen.feed(f"{BEGIN}\x1b[1;1Hpair: VALID \x1b[2;1H")  # the read ends here
    assert screen.text() == "pair: broken\nLocal problem"
    screen.feed(f"\x1b[2K{END}")
    assert screen.text() == "pair: VALID\n"


def test_a_program_that_does_not_synchronize_is_read_as_drawn():
    screen = Screen(2, 20)
    screen.feed("\x1b[1;1Hhello")
    assert screen.text() == "hello\n"
