"""Radio buttons and checkboxes whose state is a mark, not only a colour: Textual draws every radio
as ● and every checkbox as X, lit or dimmed, which a monochrome or low-contrast terminal cannot
tell apart. These draw the mark only when on."""

from __future__ import annotations

from textual.widgets import Checkbox, RadioButton


class MarkedRadioButton(RadioButton):
    """A radio button showing ● when chosen and nothing when not."""

    def __init__(self, label: str = "", value: bool = False, *, id: str | None = None, disabled: bool = False) -> None:
        super().__init__(label, value, id=id, disabled=disabled)
        self.BUTTON_INNER = "●" if value else " "

    def watch_value(self) -> None:
        self.BUTTON_INNER = "●" if self.value else " "
        super().watch_value()  # the -on class and the Changed message the RadioSet listens for


class MarkedCheckbox(Checkbox):
    """A checkbox showing X when ticked and nothing when not."""

    def __init__(self, label: str = "", value: bool = False, *, id: str | None = None, disabled: bool = False) -> None:
        super().__init__(label, value, id=id, disabled=disabled)
        self.BUTTON_INNER = "X" if value else " "

    def watch_value(self) -> None:
        self.BUTTON_INNER = "X" if self.value else " "
        super().watch_value()  # the -on class and the Changed message
