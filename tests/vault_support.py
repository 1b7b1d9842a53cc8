"""Helpers for the tests that run the command line against a real OpenBao server (tests/openbao.py):
pointing this process's environment at a server as a person's shell would, reading places back
with ``bao kv get``, tokens with a policy, and what "nothing local changed" compares."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

VAULT_VARIABLES = (
    "VAULT_ADDR",
    "VAULT_TOKEN",
    "VAULT_CACERT",
    "VAULT_NAMESPACE",
    "VAULT_ROLE_ID",
    "VAULT_SECRET_ID_FILE",
)


def point_at(monkeypatch, server, token: str | None = None, home: Path | None = None) -> None:
    """VAULT_ADDR and VAULT_TOKEN for ``server`` (the root token unless ``token``), nothing else of Vault's."""
    for name in VAULT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if home is not None:
        monkeypatch.setenv("HOME", str(home))  # no ~/.vault-token of the person running the tests
    monkeypatch.setenv("VAULT_ADDR", server.address)
    monkeypatch.setenv("VAULT_TOKEN", token or server.root_token)


def fresh(prefix: str) -> str:
    """A ``vault:`` place no other test uses (the tests share one server)."""
    return f"vault:{prefix}-{uuid.uuid4().hex[:10]}"


def kv_get(server, place: str, token: str | None = None) -> dict | None:
    """``bao kv get`` of ``place``: its latest version's data and metadata; None when there is none."""
    done = server.run("kv", "get", "-format=json", place.removeprefix("vault:"), token=token)
    if done.returncode != 0:
        assert "No value found" in done.stderr, server.scrub(done.stderr)
        return None
    return json.loads(done.stdout)["data"]


def kv_put(server, place: str, token: str | None = None, **fields: str) -> None:
    server.bao("kv", "put", place.removeprefix("vault:"), *(f"{k}={v}" for k, v in fields.items()), token=token)


def token_with_policy(server, name: str, rules: str) -> str:
    server.bao("policy", "write", name, "-", stdin=rules)
    return server.bao("token", "create", f"-policy={name}", "-field=token").strip()


def read_only_token(server) -> str:
    return token_with_policy(
        server,
        "klarna-test-read-only",
        'path "secret/data/*" { capabilities = ["read"] }\npath "secret/metadata/*" { capabilities = ["list"] }\n',
    )


def files_under(*folders: Path) -> dict[str, bytes]:
    """Every file below the folders, with its content (the log, which says what was tried, and the
    empty lock files a command takes are left out)."""
    found = {}
    for folder in folders:
        if folder.exists():
            for path in sorted(folder.rglob("*")):
                if path.is_file() and not path.is_symlink() and path.suffix != ".log" and path.name != ".lock":
                    found[str(path)] = path.read_bytes()
    return found
