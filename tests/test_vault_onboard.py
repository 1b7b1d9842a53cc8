"""`onboard --secret-store vault:…` against a real OpenBao server and the sandbox: the API key lives
in KV version 2 only and is read from there on each run (status, check --all); the journal records
the store's kind and place, never the key; a place the token may not write is refused before
anything changes."""

from __future__ import annotations

import json

import pytest
from tests_support import sandbox_profile_args
from vault_support import files_under, fresh, kv_get, kv_put, point_at, read_only_token

pytest_plugins = ["openbao"]
pytestmark = pytest.mark.usefixtures("forget_registered_secrets")


def onboard_args(sandbox, place: str, profile: str = "p") -> list[str]:
    return [
        "onboard",
        "--profile",
        profile,
        *sandbox_profile_args(sandbox),
        "--secret-store",
        place,
        "--poll-interval",
        "0.05",
    ]


def journal(home, profile: str = "p") -> dict:
    found = [p for p in home.rglob("*.json") if p.parent.name == profile or p.stem == profile]
    documents = [json.loads(p.read_text()) for p in found]
    return next(d for d in documents if "evidence" in json.dumps(d))


def test_the_key_lives_in_vault_only_and_later_runs_read_it_from_there(
    openbao, sandbox, cli, monkeypatch, isolated_home, tmp_path
):
    point_at(monkeypatch, openbao, home=tmp_path / "user-home")
    place = fresh("secret/klarna-mtls/p")
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    code, out = cli(*onboard_args(sandbox, place))
    assert code == 0, out

    # In Vault: one field named after the profile. On disk: the kind and the place, never the key.
    kept_in_vault = kv_get(openbao, place)["data"] == {"p": sandbox.api_key}
    assert kept_in_vault  # compared, never shown
    on_disk = files_under(isolated_home)
    assert not [path for path, data in on_disk.items() if sandbox.api_key.encode() in data]
    text = "\n".join(data.decode(errors="replace") for data in on_disk.values())
    assert f'"secret_place": "{place}"' in text and '"secret_backend": "vault"' in text

    # Later runs have no key in the environment: status and check --all read it from Vault.
    monkeypatch.delenv("KLARNA_API_KEY")
    code, status = cli("status", "--profile", "p")
    assert code == 0, status
    assert status["secret_backend"] == f"Vault / OpenBao at {place}"
    code, checked = cli("check", "--all")
    assert code == 0, checked

    # Read on each run, not remembered: once the field is gone from Vault, the next run says so.
    kv_put(openbao, place, other="value")
    code, refused = cli("status", "--profile", "p")
    assert code == 3
    assert place in refused["error"]["message"] and "holds no API key for profile 'p'" in refused["error"]["message"]


def test_a_key_put_in_vault_by_an_operator_is_read_from_the_place_named(openbao, sandbox, cli, monkeypatch, tmp_path):
    """No key in the environment: onboard reads it from the place named (field = profile)."""
    point_at(monkeypatch, openbao, home=tmp_path / "user-home")
    place = fresh("secret/klarna-mtls/ops")
    kv_put(openbao, place, ops=sandbox.api_key)
    code, out = cli(*onboard_args(sandbox, place, profile="ops"))
    assert code == 0, out
    assert kv_get(openbao, place)["metadata"]["version"] == 1  # the same key: not written again


def test_a_place_the_token_may_not_write_is_refused_before_anything_changes(
    openbao, sandbox, cli, monkeypatch, isolated_home, tmp_path
):
    point_at(monkeypatch, openbao, read_only_token(openbao), home=tmp_path / "user-home")
    place = fresh("secret/klarna-mtls/p")
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    before = files_under(isolated_home)
    code, out = cli(*onboard_args(sandbox, place))
    assert code == 3
    assert out["error"]["title"] == "Vault permission denied"
    assert place in out["error"]["message"] and "may: read" in out["error"]["message"]
    assert sandbox.api_key not in json.dumps(out)
    assert files_under(isolated_home) == before  # no profile, no journal, no key file
    assert kv_get(openbao, place) is None


def test_no_vault_is_reached_when_no_vault_place_is_named(sandbox, cli, monkeypatch, tmp_path):
    """The README's commands on a machine with no Vault: VAULT_ADDR pointing nowhere changes nothing."""
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:9")
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    code, out = cli("onboard", "--profile", "p", *sandbox_profile_args(sandbox), "--poll-interval", "0.05")
    assert code == 0, out
    code, out = cli("export", "--profile", "p", "--format", "bundle", "--out", str(tmp_path / "bundle.pem"))
    assert code == 0 and out["files"] == [str(tmp_path / "bundle.pem")]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("vault:secret", "names a mount but no path"),
        ("vault:secret/data/klarna", "names the API's 'data/' segment"),
        ("plaintext", "is not a secret store"),
        ("vault", "is not a secret store"),
    ],
)
def test_a_malformed_store_is_refused_by_the_argument_parser(cli, capsys, value, why):
    with pytest.raises(SystemExit) as exited:
        cli("onboard", "--secret-store", value)
    assert exited.value.code == 2
    assert why in capsys.readouterr().err


def test_the_tools_own_key_is_kept_at_the_same_place(openbao, sandbox, cli, monkeypatch, tmp_path):
    """--own-key: the key the tool creates for itself goes to the Vault place and runs from there."""
    point_at(monkeypatch, openbao, home=tmp_path / "user-home")
    place = fresh("secret/klarna-mtls/p")
    monkeypatch.setenv("KLARNA_API_KEY", sandbox.api_key)
    code, out = cli(*onboard_args(sandbox, place), "--own-key")
    assert code == 0, out
    fields = kv_get(openbao, place)["data"]
    own_key_kept = fields["p"].startswith("klarna_test_api_") and fields["p"] != sandbox.api_key
    assert own_key_kept, sorted(fields)  # field names only: no key in the test output
    monkeypatch.delenv("KLARNA_API_KEY")
    code, status = cli("status", "--profile", "p")
    assert code == 0, status
    code, keys = cli("keys", "list", "--profile", "p")
    assert code == 0 and keys, keys
