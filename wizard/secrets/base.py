"""What every secret store offers, and the one display helper the file-backed stores share.

No secret ever reaches an exception, a repr or a log line: stores raise ``SecretStoreError`` ``from
None`` so a backend's own exception text (which we do not control) is not chained in."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol


class SecretStore(Protocol):
    """What every store offers. ``kind`` is recorded in the journal as Evidence.secret_backend."""

    kind: str
    display_name: str
    persistent: bool

    def get(self, profile: str) -> str | None: ...
    def set(self, profile: str, api_key: str) -> None: ...
    def delete(self, profile: str) -> None: ...


def home_relative(path: Path) -> str:
    """``~/…`` when under the home folder: shorter in status views, same meaning."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except (ValueError, RuntimeError):
        return str(path)


def store_write_lock(path: Path) -> AbstractContextManager[None]:
    """Held around a file store's read-change-write, so a second process (another profile's
    onboarding, a cron renew) cannot lose this writer's entry, nor this writer lose its."""
    from wizard.core.locking import file_lock

    return file_lock(path.with_name(path.name + ".lock"), "secrets file write")
