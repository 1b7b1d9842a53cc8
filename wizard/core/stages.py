"""The onboarding stages, in the order a profile walks them."""

from __future__ import annotations

from enum import Enum


class Stage(str, Enum):  # noqa: UP042 -- StrEnum would change str() and f-string output
    CREDENTIALS = "CREDENTIALS"
    KEY_AND_CSR = "KEY_AND_CSR"
    ISSUE = "ISSUE"
    INSTALL = "INSTALL"
    VERIFY = "VERIFY"
    ENFORCE = "ENFORCE"
    DONE = "DONE"

    @property
    def number(self) -> int:
        """1-based position among the six working stages (DONE is 6 too: all complete)."""
        return min(ORDER.index(self) + 1, WORKING_STAGES)

    @property
    def label(self) -> str:
        """How people read the stage: 'Key and CSR', not KEY_AND_CSR."""
        return {"KEY_AND_CSR": "Key and CSR"}.get(self.value, self.value.capitalize())

    def next(self) -> Stage:
        return ORDER[min(ORDER.index(self) + 1, len(ORDER) - 1)]


ORDER: tuple[Stage, ...] = tuple(Stage)
WORKING_STAGES = len(ORDER) - 1  # DONE is not a stage one works on
