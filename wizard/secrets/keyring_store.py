"""The API key in the OS keyring, after a probe that says whether the keyring may be used.

Never silently in plaintext: the failing, the null and plaintext backends (keyrings.alt's among
them) are judged unusable, and the front ends offer explicit alternatives instead. Every keyring
call runs in a daemon thread with a timeout, so a locked or hung Secret Service cannot hang us."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from keyring.errors import PasswordDeleteError

from wizard.core.env_vars import API_KEY_ENV
from wizard.core.errors import SecretStoreError

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

SERVICE = "klarna-mtls"
PROBE_TIMEOUT = 3.0
# Reads and writes may wait on an unlock prompt a person answers: far longer than the probe.
OPERATION_TIMEOUT = 120.0

T = TypeVar("T")


class _TimedOut(Exception):
    """A keyring call did not return in time (a locked or hung Secret Service)."""


def _call_with_timeout(action: Callable[[], T], timeout: float) -> T:
    """Run ``action`` in a daemon thread: a hung backend must not hang us, nor block exit."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = action()
        except BaseException as exc:  # handed back to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True, name="klarna-mtls-keyring")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise _TimedOut
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome.get("value")  # type: ignore[return-value]


@dataclass(frozen=True)
class KeyringProbe:
    usable: bool
    backend_name: str
    reason: str
    plaintext: bool = False


def _backend_name(backend: object) -> str:
    return str(getattr(backend, "name", None) or type(backend).__name__)


def _backend_priority(backend: KeyringBackend) -> float | None:
    try:
        return float(type(backend).priority)  # a classproperty; may raise when not viable
    except Exception:
        return None


def _is_plaintext(backend: KeyringBackend) -> bool:
    """keyrings.alt's PlaintextKeyring and friends, or any low-priority backend not encrypted."""
    qualified = f"{type(backend).__module__}.{type(backend).__name__}".lower()
    if "plaintext" in qualified or "uncrypted" in qualified:
        return True
    priority = _backend_priority(backend)
    return priority is not None and priority < 1 and "encrypt" not in qualified


def _members(backend: KeyringBackend) -> list[KeyringBackend]:
    """The backends a ChainerBackend would write through; the backend itself otherwise."""
    from keyring.backends.chainer import ChainerBackend

    if isinstance(backend, ChainerBackend):
        return list(backend.backends)
    return [backend]


def _judge_backend(backend: KeyringBackend) -> KeyringProbe | None:
    """A verdict when the backend must not be used, None when it may be tried."""
    from keyring.backends import fail, null

    members = _members(backend)
    if not members or all(isinstance(m, fail.Keyring) for m in members):
        return KeyringProbe(False, _backend_name(backend), "No OS keyring is available on this machine.")
    if any(isinstance(m, null.Keyring) for m in members):
        return KeyringProbe(False, _backend_name(backend), "The keyring is disabled (null backend): it keeps nothing.")
    plaintext = [m for m in members if _is_plaintext(m)]
    if plaintext:
        return KeyringProbe(
            False,
            _backend_name(plaintext[0]),
            "The only keyring available stores secrets in plaintext; klarna-mtls will not use it silently.",
            plaintext=True,
        )
    return None


def _probe_now() -> KeyringProbe:
    import keyring

    backend = keyring.get_keyring()
    verdict = _judge_backend(backend)
    if verdict is not None:
        return verdict
    backend.get_password(SERVICE, "__probe__")  # harmless: reads a name nobody stores
    name = _backend_name(_members(backend)[0])
    return KeyringProbe(True, name, f"The OS keyring ({name}) answered.")


def probe_keyring(timeout: float = PROBE_TIMEOUT) -> KeyringProbe:
    """Find the keyring backend and do a harmless round trip, within ``timeout`` seconds."""
    try:
        return _call_with_timeout(_probe_now, timeout)
    except _TimedOut:
        return KeyringProbe(
            False, "unresponsive", f"The OS keyring did not answer within {timeout:g} s (is it locked?)."
        )
    except Exception as exc:  # any backend failure means: not usable
        return KeyringProbe(False, "unavailable", f"The OS keyring failed ({type(exc).__name__}).")


class KeyringStore:
    """The API key in the OS keyring, under ``service`` with the profile as user name."""

    kind = "keyring"
    persistent = True

    def __init__(
        self, service: str = SERVICE, *, probe: KeyringProbe | None = None, timeout: float = OPERATION_TIMEOUT
    ) -> None:
        self.service = service
        self.probe = probe or probe_keyring()
        self.timeout = timeout
        self.display_name = f"OS keyring ({self.probe.backend_name})"

    def __repr__(self) -> str:
        return f"KeyringStore(service={self.service!r}, backend={self.probe.backend_name!r})"

    def _call(self, action: Callable[[], T], failure: str) -> T:
        if not self.probe.usable:
            raise SecretStoreError(
                self.probe.reason,
                hint=f"Choose the encrypted file, or provide the key per run ({API_KEY_ENV} or standard input).",
            )
        try:
            return _call_with_timeout(action, self.timeout)
        except _TimedOut:
            raise SecretStoreError(
                f"{failure}: the OS keyring did not answer within {self.timeout:g} s.",
                hint="Unlock your keyring and try again.",
            ) from None
        except PasswordDeleteError:
            raise
        except Exception as exc:
            raise SecretStoreError(
                f"{failure} ({type(exc).__name__}).",
                hint="Unlock your keyring and try again, or choose the encrypted file.",
            ) from None

    def get(self, profile: str) -> str | None:
        import keyring

        return (
            self._call(lambda: keyring.get_password(self.service, profile), "The OS keyring could not be read") or None
        )

    def set(self, profile: str, api_key: str) -> None:
        import keyring

        self._call(
            lambda: keyring.set_password(self.service, profile, api_key), "The OS keyring refused to store the key"
        )

    def delete(self, profile: str) -> None:
        import keyring

        with contextlib.suppress(PasswordDeleteError):  # nothing stored: already the wanted state
            self._call(
                lambda: keyring.delete_password(self.service, profile), "The OS keyring could not delete the key"
            )
