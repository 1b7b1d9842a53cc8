"""The doctor's vocabulary: a finding (one check's verdict with what to do next), its severity,
and the exit codes the commands return, which the worst finding decides.

Pure: the checks that produce findings live in the services (``doctor``, ``pair_doctor``,
``api_keys``, ``runtime_gate``); the front ends show them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, StrEnum


class ExitCode(IntEnum):
    """What every command returns (documented in the README): "nothing to do" is OK."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    ERROR = 3  # the command itself failed (or was interrupted)


class Severity(StrEnum):
    """How bad a finding is; the values are what the JSON output and the front ends show."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    ERROR = "error"

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode[self.name]


@dataclass(frozen=True)
class Finding:
    check: str
    severity: Severity
    summary: str
    next_step: str = ""

    def __post_init__(self) -> None:
        # A plain string is accepted and checked (an unknown severity fails here, not when shown).
        object.__setattr__(self, "severity", Severity(self.severity))


def worst(findings: Iterable[Finding]) -> ExitCode:
    """The exit code of the most severe finding; OK when there is none."""
    return max((f.severity.exit_code for f in findings), default=ExitCode.OK)
