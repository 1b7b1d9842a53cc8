"""The one home of every folder klarna-mtls uses.

Folders come from platformdirs; ``KLARNA_MTLS_HOME`` relocates all of them under one folder
(tests, scripts and CI set it so nothing touches the real home folder)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from wizard.core.env_vars import HOME_ENV

APP_NAME = "klarna-mtls"
_PROFILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def valid_profile_name(name: str) -> bool:
    return bool(_PROFILE_RE.match(name)) and ".." not in name


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    state_dir: Path
    data_dir: Path
    install_root: Path

    @classmethod
    def from_env(cls) -> Paths:
        home = os.environ.get(HOME_ENV)
        if home:
            root = Path(home).expanduser().absolute()
            return cls(root / "config", root / "state", root / "data", root / "certs")
        import platformdirs

        data = platformdirs.user_data_path(APP_NAME, appauthor=False)
        return cls(
            platformdirs.user_config_path(APP_NAME, appauthor=False),
            platformdirs.user_state_path(APP_NAME, appauthor=False),
            data,
            data / "certs",
        )

    # Per-profile locations. Callers create folders with fsutil.ensure_private_dir.
    def profile_state_dir(self, profile: str) -> Path:
        return self.state_dir / "profiles" / profile

    def journal_path(self, profile: str) -> Path:
        return self.profile_state_dir(profile) / "journal.json"

    def audit_path(self, profile: str) -> Path:
        return self.profile_state_dir(profile) / "audit.jsonl"

    def keys_dir(self, profile: str) -> Path:
        """Where private keys and CSRs are generated, before install."""
        return self.data_dir / "keys" / profile

    def default_install_dir(self, profile: str) -> Path:
        return self.install_root / profile

    def secrets_file(self) -> Path:
        """The passphrase-encrypted file store (used only when the user picks it)."""
        return self.config_dir / "secrets.enc.json"

    def sandbox_dir(self) -> Path:
        return self.data_dir / "sandbox"

    def log_path(self) -> Path:
        return self.state_dir / "klarna-mtls.log"

    def profiles(self) -> list[str]:
        root = self.state_dir / "profiles"
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / "journal.json").is_file())
