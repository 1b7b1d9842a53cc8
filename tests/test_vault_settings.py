"""Vault places and sign-in settings, without a server: ``vault:MOUNT/PATH`` parsing, the address
rules (TLS always, plain http only on loopback), where the token comes from, and the AppRole
secret-id file (a file only its owner can read)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wizard.core.errors import InputError, SecretStoreError, WizardError
from wizard.vault import errors
from wizard.vault.place import VaultPlace, is_vault_place, parse_place
from wizard.vault.settings import check_address, read_secret_id, settings_from_env

pytest_plugins = ["openbao"]
pytestmark = pytest.mark.usefixtures("forget_registered_secrets")
ADDR = "https://vault.example.com:8200"
TOKEN = "s.token-for-a-test-only"


# ---------------------------------------------------------------- places
@pytest.mark.parametrize(
    ("text", "mount", "path"),
    [
        ("vault:secret/klarna-mtls/checkout", "secret", "klarna-mtls/checkout"),
        ("vault:kv/a", "kv", "a"),
        ("vault:team_kv/klarna/live/report-1.json", "team_kv", "klarna/live/report-1.json"),
    ],
)
def test_a_place_is_its_mount_and_its_path(text, mount, path):
    place = parse_place(text)
    assert place == VaultPlace(mount, path)
    assert str(place) == text
    assert is_vault_place(text)


def test_a_place_knows_the_api_paths_a_policy_names():
    place = parse_place("vault:secret/klarna-mtls/checkout")
    assert place.data_path == "secret/data/klarna-mtls/checkout"
    assert place.metadata_path == "secret/metadata/klarna-mtls/checkout"
    assert place.child("host-a") == VaultPlace("secret", "klarna-mtls/checkout/host-a")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("secret/klarna", "does not start with 'vault:'"),
        ("vault:secret", "no path inside it"),
        ("vault:", "no path inside it"),
        ("vault:secret//x", "empty segment"),
        ("vault:secret/x/", "empty segment"),
        ("vault:/secret/x", "empty segment"),
        ("vault:secret/../x", "segment '..'"),
        ("vault:secret/a b", "segment 'a b'"),
        ("vault:secret/a?b", "segment 'a?b'"),
    ],
)
def test_a_malformed_place_is_refused_with_the_reason(text, why):
    with pytest.raises(InputError) as caught:
        parse_place(text)
    assert why in caught.value.message
    assert "vault:MOUNT/PATH" in caught.value.hint


def test_the_apis_data_segment_is_refused_with_the_place_meant():
    with pytest.raises(InputError) as caught:
        parse_place("vault:secret/data/klarna/checkout")
    assert "vault:secret/klarna/checkout" in caught.value.hint


# ---------------------------------------------------------------- address
@pytest.mark.parametrize(
    "address",
    ["https://vault.example.com:8200", "https://vault.example.com/", "http://127.0.0.1:8200", "http://[::1]:8200"],
)
def test_addresses_that_are_accepted(address):
    assert check_address(address) == address.rstrip("/")


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("", "VAULT_ADDR is not set"),
        ("http://vault.example.com:8200", "plain http"),
        ("http://10.0.0.5:8200", "plain http"),
        ("ftp://vault.example.com", "https://host[:port]"),
        ("https://user:pw@vault.example.com", "https://host[:port]"),
        ("https://vault.example.com/v1/secret", "https://host[:port]"),
        ("vault.example.com:8200", "https://host[:port]"),
    ],
)
def test_addresses_that_are_refused(address, why):
    with pytest.raises(errors.VaultConfigError) as caught:
        check_address(address)
    assert why in caught.value.message


# ---------------------------------------------------------------- sign-in
def test_vault_token_comes_first_and_is_never_shown(tmp_path):
    (tmp_path / ".vault-token").write_text("s.from-the-file\n")
    settings = settings_from_env({"VAULT_ADDR": ADDR, "VAULT_TOKEN": "s.from-the-env"}, home=tmp_path)
    assert settings.token is not None and settings.token.reveal() == "s.from-the-env"
    assert settings.token_source == "VAULT_TOKEN"
    assert "from-the-env" not in repr(settings)


def test_the_token_file_is_the_fallback(tmp_path):
    (tmp_path / ".vault-token").write_text("s.from-the-file\n")
    settings = settings_from_env({"VAULT_ADDR": ADDR}, home=tmp_path)
    assert settings.token is not None and settings.token.reveal() == "s.from-the-file"
    assert settings.token_source == "~/.vault-token"


def test_no_token_anywhere_says_how_to_sign_in(tmp_path):
    with pytest.raises(errors.VaultConfigError) as caught:
        settings_from_env({"VAULT_ADDR": ADDR}, home=tmp_path)
    assert "bao login" in caught.value.hint and "VAULT_ROLE_ID" in caught.value.hint


def test_namespace_and_ca_file_are_taken(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {"VAULT_ADDR": ADDR, "VAULT_TOKEN": TOKEN, "VAULT_CACERT": str(ca), "VAULT_NAMESPACE": "team-a"}
    settings = settings_from_env(env, home=tmp_path)
    assert settings.namespace == "team-a"
    assert settings.verify == str(ca)
    assert settings_from_env({"VAULT_ADDR": ADDR, "VAULT_TOKEN": TOKEN}, home=tmp_path).verify is True


def test_a_missing_ca_file_is_refused(tmp_path):
    env = {"VAULT_ADDR": ADDR, "VAULT_TOKEN": TOKEN, "VAULT_CACERT": str(tmp_path / "nope.pem")}
    with pytest.raises(errors.VaultConfigError, match="VAULT_CACERT"):
        settings_from_env(env, home=tmp_path)


def test_approle_needs_a_secret_id_file_never_a_value(tmp_path):
    env = {"VAULT_ADDR": ADDR, "VAULT_ROLE_ID": "role", "VAULT_SECRET_ID": "in-the-env"}
    with pytest.raises(errors.VaultConfigError) as caught:
        settings_from_env(env, home=tmp_path)
    assert "VAULT_SECRET_ID_FILE" in caught.value.message
    assert "in-the-env" not in str(caught.value)


def test_approle_settings_name_the_file_and_read_it_later(tmp_path):
    env = {"VAULT_ADDR": ADDR, "VAULT_ROLE_ID": "role", "VAULT_SECRET_ID_FILE": str(tmp_path / "secret-id")}
    settings = settings_from_env(env, home=tmp_path)
    assert settings.token is None and settings.approle is not None
    assert settings.approle.secret_id_file == tmp_path / "secret-id"
    assert settings.token_source == "AppRole"


def test_token_and_approle_together_are_ambiguous(tmp_path):
    env = {"VAULT_ADDR": ADDR, "VAULT_TOKEN": TOKEN, "VAULT_ROLE_ID": "role", "VAULT_SECRET_ID_FILE": "/x"}
    with pytest.raises(errors.VaultConfigError, match="Both VAULT_TOKEN and VAULT_ROLE_ID"):
        settings_from_env(env, home=tmp_path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o602])
def test_a_secret_id_file_open_to_others_is_refused(tmp_path, mode):
    path = tmp_path / "secret-id"
    path.write_text("the-secret-id\n")
    path.chmod(mode)
    with pytest.raises(errors.VaultConfigError) as caught:
        read_secret_id(path)
    assert f"{mode:04o}" in caught.value.message and "chmod 600" in caught.value.hint
    assert "the-secret-id" not in str(caught.value)


def test_a_private_secret_id_file_is_read(tmp_path):
    path = tmp_path / "secret-id"
    path.write_text("the-secret-id\n")
    path.chmod(0o600)
    secret_id = read_secret_id(path)
    assert secret_id.reveal() == "the-secret-id"
    assert "the-secret-id" not in repr(secret_id)


@pytest.mark.parametrize("content", ["", "  \n"])
def test_an_empty_secret_id_file_is_refused(tmp_path, content):
    path = tmp_path / "secret-id"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(errors.VaultConfigError, match="empty"):
        read_secret_id(path)


def test_a_missing_or_special_secret_id_file_is_refused(tmp_path):
    with pytest.raises(errors.VaultConfigError, match="Cannot read"):
        read_secret_id(tmp_path / "absent")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(errors.VaultConfigError, match="not a regular file"):
        read_secret_id(fifo)  # and it does not hang waiting for a writer


# ---------------------------------------------------------------- errors and start-up
def test_every_vault_error_is_a_secret_store_error_with_its_own_title():
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.VaultError)]
    assert len(classes) == 10
    assert all(issubclass(c, SecretStoreError) and issubclass(c, WizardError) for c in classes)
    assert len({c.title for c in classes}) == len(classes)


def test_importing_the_adapter_and_the_store_does_not_import_hvac():
    probe = (
        "import sys, wizard.vault.kv, wizard.vault.settings, wizard.secrets.vault_store, wizard.cli.main;"
        "print(sorted(m for m in ('hvac', 'requests') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=Path.cwd())
    assert done.stdout.strip() == "[]"
