"""The Vault adapter against a real OpenBao server (``bao server -dev``, tests/openbao.py): KV
version 2 reads and writes read back with ``bao kv get``, check-and-set, and every refusal as its own
error naming the place and Vault's reason (never a token or a value)."""

from __future__ import annotations

import json
import uuid

import pytest

from wizard.core.secret_value import SecretValue
from wizard.vault import errors
from wizard.vault.kv import VaultKv
from wizard.vault.place import VaultPlace, parse_place
from wizard.vault.settings import VaultSettings, settings_from_env

pytest_plugins = ["openbao"]
pytestmark = pytest.mark.usefixtures("forget_registered_secrets")

READ_ONLY_POLICY = """
path "secret/data/klarna-mtls/*" { capabilities = ["read"] }
path "secret/metadata/klarna-mtls/*" { capabilities = ["list"] }
"""
CRON_POLICY = """
path "secret/data/klarna-mtls/cron/*" { capabilities = ["create", "read", "update"] }
"""


def settings_for(server, token: str | None = None) -> VaultSettings:
    return VaultSettings(server.address, SecretValue(token or server.root_token))


def fresh_place(name: str = "checkout") -> VaultPlace:
    """A path no other test uses: the tests share one server."""
    return parse_place(f"vault:secret/klarna-mtls/{name}-{uuid.uuid4().hex[:10]}")


def kv_get(server, place: VaultPlace, token: str | None = None) -> dict:
    """``bao kv get`` as a person would run it (VAULT_ADDR and VAULT_TOKEN in its environment only)."""
    return json.loads(server.bao("kv", "get", "-format=json", f"-mount={place.mount}", place.path, token=token))


def kv_put(server, place: VaultPlace, **fields: str) -> None:
    server.bao("kv", "put", f"-mount={place.mount}", place.path, *(f"{k}={v}" for k, v in fields.items()))


def token_with_policy(server, name: str, rules: str) -> str:
    server.bao("policy", "write", name, "-", stdin=rules)
    return server.bao("token", "create", f"-policy={name}", "-field=token").strip()


def assert_no_secret(error: Exception, *secrets: str) -> None:
    text = " ".join([str(error), repr(error), getattr(error, "title", ""), getattr(error, "hint", "")])
    leaked = sum(secret in text for secret in secrets)
    assert leaked == 0, "a secret appears in the error"  # the values are not shown, even on failure


@pytest.fixture
def kv(openbao):
    with VaultKv.connect(settings_for(openbao)) as client:
        yield client


# ---------------------------------------------------------------- reads and writes
def test_a_write_reads_back_with_its_version(kv):
    place = fresh_place()
    assert kv.read(place) is None
    assert kv.write(place, {"api_key": "klarna_test_api_one"}, cas=0) == 1
    first = kv.read(place)
    assert first is not None and first.version == 1 and first.data == {"api_key": "klarna_test_api_one"}
    assert kv.write(place, {"api_key": "klarna_test_api_two"}, cas=1) == 2
    latest = kv.read(place)
    assert latest is not None and (latest.version, latest.deleted) == (2, False)
    assert "klarna_test_api_two" not in repr(latest)


def test_a_write_reads_back_with_bao_kv_get(openbao, kv):
    place = fresh_place("export")
    fields = {"certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "fingerprint": "ab:cd"}
    version = kv.write(place, fields, cas=0)
    shown = kv_get(openbao, place)
    assert shown["data"]["data"] == fields
    assert shown["data"]["metadata"]["version"] == version


def test_a_version_written_by_bao_is_read_with_its_number(openbao, kv):
    place = fresh_place()
    kv_put(openbao, place, api_key="first")
    kv_put(openbao, place, api_key="second")
    current = kv.read(place)
    assert current is not None and (current.version, current.data) == (2, {"api_key": "second"})


def test_update_writes_on_top_of_the_version_read_and_skips_no_change(kv):
    place = fresh_place()
    assert kv.update(place, lambda fields: {**fields, "a": "1"}) == 1
    assert kv.update(place, lambda fields: {**fields, "b": "2"}) == 2
    assert kv.update(place, lambda fields: fields) == 2  # nothing changed: no new version
    current = kv.read(place)
    assert current is not None and current.data == {"a": "1", "b": "2"}


def test_a_deleted_latest_version_reads_as_deleted_and_is_written_over(openbao, kv):
    place = fresh_place()
    kv.write(place, {"a": "1"}, cas=0)
    openbao.bao("kv", "delete", f"-mount={place.mount}", place.path)
    current = kv.read(place)
    assert current is not None and (current.version, current.deleted, current.data) == (1, True, {})
    assert kv.update(place, lambda fields: {**fields, "a": "2"}) == 2


def test_list_keys_under_a_folder(kv):
    folder = fresh_place("reports")
    for name in ("host-b", "host-a"):
        kv.write(folder.child(name), {"report": "{}"}, cas=0)
    assert kv.list_keys(folder) == ["host-a", "host-b"]
    assert kv.list_keys(fresh_place("empty")) == []


def test_non_text_fields_are_refused(openbao, kv):
    place = fresh_place()
    openbao.bao("kv", "put", f"-mount={place.mount}", place.path, "-", stdin='{"n": {"nested": 1}}')
    with pytest.raises(errors.VaultRefused, match="not text"):
        kv.read(place)


# ---------------------------------------------------------------- check-and-set
def test_a_concurrent_writer_is_never_overwritten(openbao, kv):
    place = fresh_place()
    kv.write(place, {"api_key": "ours"}, cas=0)
    read = kv.read(place)
    kv_put(openbao, place, api_key="theirs")  # someone else writes version 2 meanwhile
    with pytest.raises(errors.VaultCasConflict) as caught:
        kv.write(place, {"api_key": "ours-again"}, cas=read.version)
    error = caught.value
    assert str(place) in error.message and "version 1" in error.message
    assert "Nothing was overwritten" in error.hint and "bao kv get" in error.hint
    assert_no_secret(error, "ours-again", "theirs", openbao.root_token)
    assert kv_get(openbao, place)["data"]["data"] == {"api_key": "theirs"}


def test_creating_what_someone_else_created_is_a_conflict(openbao, kv):
    place = fresh_place()
    kv_put(openbao, place, api_key="theirs")
    with pytest.raises(errors.VaultCasConflict, match="created .* meanwhile"):
        kv.write(place, {"api_key": "ours"}, cas=0)
    assert kv_get(openbao, place)["data"]["data"] == {"api_key": "theirs"}


# ---------------------------------------------------------------- refusals
def test_a_read_only_token_reads_but_may_not_write(openbao, kv):
    place = fresh_place()
    kv.write(place, {"api_key": "stored"}, cas=0)
    token = token_with_policy(openbao, "klarna-read-only", READ_ONLY_POLICY)
    with VaultKv.connect(settings_for(openbao, token)) as reader:
        assert reader.read(place).data == {"api_key": "stored"}
        with pytest.raises(errors.VaultPermissionDenied) as caught:
            reader.write(place, {"api_key": "changed"}, cas=1)
    error = caught.value
    assert str(place) in error.message and "permission denied" in error.message
    assert place.data_path in error.hint
    assert_no_secret(error, token, "changed", "stored")
    assert kv_get(openbao, place)["data"]["data"] == {"api_key": "stored"}


def test_a_token_vault_does_not_know_is_its_own_error(openbao):
    bogus = "s.not-a-token-" + uuid.uuid4().hex
    with VaultKv.connect(settings_for(openbao, bogus)) as stranger:
        with pytest.raises(errors.VaultInvalidToken) as caught:
            stranger.read(fresh_place())
        with pytest.raises(errors.VaultInvalidToken):
            stranger.write(fresh_place(), {"a": "1"}, cas=0)
    assert "bao login" in caught.value.hint
    assert_no_secret(caught.value, bogus)


@pytest.fixture(scope="module")
def other_mounts(openbao):
    """A KV version 1 mount and a transit mount beside the dev server's KV version 2 ``secret/``."""
    suffix = uuid.uuid4().hex[:6]
    kv1, transit = f"kv1-{suffix}", f"transit-{suffix}"
    openbao.bao("secrets", "enable", f"-path={kv1}", "-version=1", "kv")
    openbao.bao("secrets", "enable", f"-path={transit}", "transit")
    return kv1, transit


def test_a_kv_version_1_mount_is_refused_and_not_written(openbao, kv, other_mounts):
    kv1, _ = other_mounts
    place = parse_place(f"vault:{kv1}/klarna/checkout")
    for attempt in (lambda: kv.write(place, {"a": "1"}, cas=0), lambda: kv.read(place)):
        with pytest.raises(errors.VaultNotKv2) as caught:
            attempt()
        assert "KV version 1" in caught.value.message and str(place) in caught.value.message
        assert f"-path={kv1} kv-v2" in caught.value.hint
    listing = openbao.run("list", f"{kv1}/")  # the KV version 1 mount is still empty
    assert listing.returncode == 2 and "No value found" in listing.stderr


def test_another_engine_is_refused(kv, other_mounts):
    _, transit = other_mounts
    with pytest.raises(errors.VaultNotKv2, match="'transit' mount"):
        kv.read(parse_place(f"vault:{transit}/klarna/checkout"))


def test_no_such_mount(openbao, kv):
    place = parse_place(f"vault:nowhere-{uuid.uuid4().hex[:6]}/klarna/checkout")
    with pytest.raises(errors.VaultNotKv2, match="no mount at nowhere-"):
        kv.read(place)
    token = token_with_policy(openbao, "klarna-read-only", READ_ONLY_POLICY)
    with VaultKv.connect(settings_for(openbao, token)) as reader, pytest.raises(errors.VaultPermissionDenied) as caught:
        reader.read(place)  # a limited token cannot tell a missing mount from one it may not see
    assert "either there is none" in caught.value.message


def test_a_namespace_is_where_places_are(openbao, tmp_path):
    namespace = f"team-{uuid.uuid4().hex[:6]}"
    openbao.bao("namespace", "create", namespace)
    openbao.bao("secrets", "enable", f"-namespace={namespace}", "-path=kv", "kv-v2")
    place = parse_place("vault:kv/klarna-mtls/checkout")
    env = {"VAULT_ADDR": openbao.address, "VAULT_TOKEN": openbao.root_token, "VAULT_NAMESPACE": namespace}
    with VaultKv.connect(settings_from_env(env, home=tmp_path)) as kv:
        assert kv.write(place, {"a": "1"}, cas=0) == 1
    shown = json.loads(openbao.bao("kv", "get", "-format=json", f"-namespace={namespace}", "kv/klarna-mtls/checkout"))
    assert shown["data"]["data"] == {"a": "1"}
    with VaultKv.connect(settings_for(openbao)) as outside, pytest.raises(errors.VaultNotKv2, match="no mount at kv/"):
        outside.read(place)  # the root namespace has no kv/ mount


# ---------------------------------------------------------------- AppRole, for cron
@pytest.fixture(scope="module")
def approle(openbao):
    """AppRole enabled, with a role whose tokens may write under klarna-mtls/cron/."""
    openbao.bao("auth", "enable", "approle")
    openbao.bao("policy", "write", "klarna-cron", "-", stdin=CRON_POLICY)
    openbao.bao("write", "auth/approle/role/klarna-cron", "token_policies=klarna-cron", "token_ttl=10m")
    return openbao.bao("read", "-field=role_id", "auth/approle/role/klarna-cron/role-id").strip()


def new_secret_id(openbao) -> str:
    return openbao.bao("write", "-f", "-field=secret_id", "auth/approle/role/klarna-cron/secret-id").strip()


def approle_env(openbao, role_id: str, secret_file) -> dict[str, str]:
    return {"VAULT_ADDR": openbao.address, "VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID_FILE": str(secret_file)}


def test_approle_signs_in_with_a_secret_id_file(openbao, approle, tmp_path):
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(new_secret_id(openbao) + "\n")
    secret_file.chmod(0o600)
    place = fresh_place("cron/checkout")
    with VaultKv.connect(settings_from_env(approle_env(openbao, approle, secret_file), home=tmp_path)) as cron:
        assert cron.write(place, {"api_key": "klarna_test_api_cron"}, cas=0) == 1
        assert cron.read(place).data == {"api_key": "klarna_test_api_cron"}
        with pytest.raises(errors.VaultPermissionDenied):
            cron.write(fresh_place("elsewhere"), {"a": "1"}, cas=0)
    assert kv_get(openbao, place)["data"]["data"] == {"api_key": "klarna_test_api_cron"}


def test_a_wrong_secret_id_is_a_refused_sign_in(openbao, approle, tmp_path):
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(str(uuid.uuid4()))
    secret_file.chmod(0o600)
    with pytest.raises(errors.VaultInvalidToken) as caught:
        VaultKv.connect(settings_from_env(approle_env(openbao, approle, secret_file), home=tmp_path))
    assert "AppRole" in caught.value.message and "invalid role or secret ID" in caught.value.message
    assert_no_secret(caught.value, secret_file.read_text())


def test_a_secret_id_file_others_can_read_is_refused_before_signing_in(openbao, approle, tmp_path):
    secret_id = new_secret_id(openbao)
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(secret_id)
    secret_file.chmod(0o644)
    with pytest.raises(errors.VaultConfigError, match="open to other users"):
        VaultKv.connect(settings_from_env(approle_env(openbao, approle, secret_file), home=tmp_path))
    secret_file.chmod(0o600)  # the secret id was not used up by the refused attempt
    with VaultKv.connect(settings_from_env(approle_env(openbao, approle, secret_file), home=tmp_path)) as cron:
        assert cron.read(fresh_place("cron/x")) is None


# ---------------------------------------------------------------- the server's state
def test_a_sealed_server_is_its_own_error(own_openbao):
    with VaultKv.connect(settings_for(own_openbao)) as kv:
        place = fresh_place()
        kv.write(place, {"a": "1"}, cas=0)
        own_openbao.bao("operator", "seal")
        with pytest.raises(errors.VaultSealed) as caught:
            kv.read(place)
    assert "sealed" in caught.value.message and own_openbao.address in caught.value.message
    assert "unseal" in caught.value.hint


def test_tls_is_verified_against_vault_cacert(tmp_path):
    from openbao import start_dev_server

    server = start_dev_server(tmp_path / "tls-openbao", tls=True)
    try:
        place = fresh_place()
        without_ca = settings_for(server)
        with VaultKv.connect(without_ca) as kv, pytest.raises(errors.VaultTlsError) as caught:
            kv.read(place)
        assert "VAULT_CACERT" in caught.value.hint
        env = {"VAULT_ADDR": server.address, "VAULT_TOKEN": server.root_token, "VAULT_CACERT": str(server.ca_file)}
        with VaultKv.connect(settings_from_env(env, home=tmp_path)) as kv:
            assert kv.write(place, {"a": "1"}, cas=0) == 1
    finally:
        server.stop()
