"""The simple stores: the API key from the environment or standard input for this run only, and
the sandbox's throwaway keys in a private file."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import IO

from wizard.core.env_vars import API_KEY_ENV
from wizard.core.errors import SecretStoreError
from wizard.core.fsutil import write_private
from wizard.core.rules import api_key_environment
from wizard.secrets.base import home_relative, store_write_lock


class EnvStore:
    """KLARNA_API_KEY, read each run; nothing is stored."""

    kind = "env"
    persistent = False
    display_name = f"Environment variable {API_KEY_ENV} (this run only)"

    def get(self, profile: str) -> str | None:
        return os.environ.get(API_KEY_ENV) or None

    def set(self, profile: str, api_key: str) -> None:
        raise SecretStoreError(
            f"{API_KEY_ENV} is read per run; it cannot store a key.",
            hint="Choose the OS keyring or the encrypted file to keep the key, or set the variable each run.",
        )

    def delete(self, profile: str) -> None:
        """Nothing to delete: the variable belongs to the caller's shell."""


class StdinStore:
    """One line read from ``stream`` the first time it is needed, then kept in memory for this run.
    On a terminal, getpass reads it without echo."""

    kind = "stdin"
    persistent = False
    display_name = "Standard input (this run only)"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._value: str | None = None
        self._read = False

    def __repr__(self) -> str:
        return "StdinStore()"

    def get(self, profile: str) -> str | None:
        if not self._read:
            self._read = True
            self._value = self._read_line() or None
        return self._value

    def _read_line(self) -> str:
        isatty = getattr(self._stream, "isatty", None)
        if isatty is not None and isatty():
            return getpass.getpass("Klarna API key (not echoed): ").strip()
        return self._stream.readline().strip()

    def set(self, profile: str, api_key: str) -> None:
        self._value, self._read = api_key, True  # this run only

    def delete(self, profile: str) -> None:
        self._value = None


class SandboxStore:
    """Sandbox credentials only, in a 0600 file: acceptable because sandbox keys are throwaway
    and minted by the local sandbox. It refuses anything but a test-shaped key."""

    kind = "sandbox"
    persistent = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.display_name = f"Sandbox-only file {home_relative(path)} (throwaway sandbox keys, not encrypted)"

    def __repr__(self) -> str:
        return f"SandboxStore({str(self.path)!r})"

    def get(self, profile: str) -> str | None:
        return self._read().get(profile)

    def set(self, profile: str, api_key: str) -> None:
        if api_key_environment(api_key) != "test":
            raise SecretStoreError(
                "The sandbox store holds sandbox (test-shaped) keys only.",
                hint="Keep live and test keys in the OS keyring or the encrypted file.",
            )
        with store_write_lock(self.path):  # read, change, write under one lock: no other writer's entry is lost
            data = self._read()
            data[profile] = api_key
            write_private(self.path, json.dumps(data, sort_keys=True).encode())

    def delete(self, profile: str) -> None:
        with store_write_lock(self.path):
            data = self._read()
            if data.pop(profile, None) is not None:
                write_private(self.path, json.dumps(data, sort_keys=True).encode())

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise SecretStoreError(
                f"The sandbox credentials file {self.path} is damaged.",
                hint="Delete it and start the sandbox again: sandbox keys are throwaway.",
            )
        return data
