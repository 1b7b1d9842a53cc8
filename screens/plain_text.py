"""Text that is not one of this program's own literals (a server's answer, a file, what a person
typed) on screen: cleaned by the one cleaner, ``rules.clean_text`` (no escape sequence, control or
bidi character, no absurdly long line), and never parsed as markup, so ``[@click=app.quit]`` or
``[/x]`` in a key's description or an error message is just characters. Notifications get the same
treatment in ``Shell.notify``."""

from __future__ import annotations

from rich.text import Text
from textual.content import Content

from wizard.core.rules import clean_text


def plain(text: object) -> Content:
    """For a Static, a Label or a modal: its lines kept, nothing in it read as markup."""
    return Content(clean_text(text, keep_newlines=True))


def cell(text: object) -> Text:
    """For a DataTable cell: one line (a newline from a server must not forge a row), never markup
    (a ``str`` cell would be parsed as markup by Textual's cell formatter)."""
    return Text(clean_text(text), end="")
