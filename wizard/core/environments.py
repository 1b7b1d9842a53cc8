"""Klarna's environments as one table: a new region or environment is one row here.

Each row says what its credentials look like, where its API is, and how careful destructive steps
must be. Nothing else in the code compares an environment's name to decide safety."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Environment:
    name: str
    key_environment: str  # "live" | "test": the shape of its account ids and API keys
    base_url: str | None  # Klarna's host; None: the embedded sandbox, whose host each profile names
    typed_confirmation: bool  # revoke, disable a key, leave a runtime out: type the id's suffix first

    @property
    def is_sandbox(self) -> bool:
        return self.base_url is None


ENVIRONMENTS: dict[str, Environment] = {
    env.name: env
    for env in (
        Environment("live", "live", "https://api-global.klarna.com", typed_confirmation=True),
        Environment("test", "test", "https://api-global.test.klarna.com", typed_confirmation=False),
        # The sandbox mints test-shaped credentials: it rehearses the test environment.
        Environment("sandbox", "test", None, typed_confirmation=False),
    )
}


def typed_confirmation_required(name: str | None) -> bool:
    """Whether destructive steps on a profile of environment ``name`` need a typed confirmation;
    an environment this table does not know is treated as the strictest (unknown means careful)."""
    env = ENVIRONMENTS.get(name or "")
    return env is None or env.typed_confirmation
