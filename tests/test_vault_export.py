"""`export --format vault --out vault:…` and `rotate --also-export vault:…` against a real OpenBao
server and the sandbox: the pair as a new KV version 2 version read back with `bao kv get`,
check-and-set against a concurrent writer, a read-only token, and the copy kept current by a
rotation before the old certificate is revoked."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from vault_support import files_under, fresh, kv_get, kv_put, point_at, read_only_token

from wizard.core import crypto
from wizard.vault.kv import VaultKv

pytest_plugins = ["openbao"]
pytestmark = pytest.mark.usefixtures("forget_registered_secrets")


@pytest.fixture
def onboarded(openbao, onboard, monkeypatch, tmp_path):
    """A sandbox profile 'p' with its pair installed, and this process pointed at the server."""
    onboard("p")
    point_at(monkeypatch, openbao, home=tmp_path / "user-home")


def installed(isolated_home) -> tuple[bytes, bytes]:
    current = next(p for p in isolated_home.rglob("current") if p.is_symlink())
    return (current / "certificate.pem").read_bytes(), (current / "private-key.pem").read_bytes()


def test_the_pair_is_exported_as_a_new_version_and_read_back_with_bao(openbao, onboarded, cli, isolated_home):
    place = fresh("secret/klarna/checkout")
    code, out = cli("export", "--profile", "p", "--format", "vault", "--out", place)
    assert code == 0, out
    assert (out["place"], out["version"], out["changed"]) == (place, 1, True)

    shown = kv_get(openbao, place)
    data, cert_pem, key_pem = shown["data"], *installed(isolated_home)
    assert data["certificate"].encode() == cert_pem  # as Klarna returned it and as installed
    cert = crypto.load_certificate(data["certificate"].encode())
    key = serialization.load_pem_private_key(data["private_key"].encode(), None)
    crypto.verify_cert_matches_key(cert, key)
    same_key = data["private_key"].encode() == key_pem
    assert same_key  # compared, never shown
    assert data["fingerprint_sha256"] == crypto.fingerprint_sha256(cert)
    assert data["expires_at"] == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    code, status = cli("status", "--profile", "p")
    assert data["credential_id"] == status["current_id"]
    assert (data["kind"], data["profile"]) == ("klarna-mtls/pair-export", "p")

    # The same pair again: nothing new is written.
    code, again = cli("export", "--profile", "p", "--format", "vault", "--out", place)
    assert code == 0 and (again["version"], again["changed"]) == (1, False)


def test_a_concurrent_writer_is_never_overwritten(openbao, onboarded, cli, monkeypatch):
    """Someone writes the place between our read and our write: check-and-set refuses, the error
    names the place, and what they wrote is still there."""
    place = fresh("secret/klarna/checkout")
    write = VaultKv.write

    def someone_writes_first(self, where, data, *, cas):
        kv_put(openbao, place, owner="another team")
        return write(self, where, data, cas=cas)

    monkeypatch.setattr(VaultKv, "write", someone_writes_first)
    code, out = cli("export", "--profile", "p", "--format", "vault", "--out", place)
    assert code == 3
    assert out["error"]["title"] == "Someone else wrote to Vault"
    assert place in out["error"]["message"] and "Nothing was overwritten" in out["error"]["message"]
    assert kv_get(openbao, place)["data"] == {"owner": "another team"}


def test_after_a_conflict_with_its_own_export_the_tool_reads_again_and_writes(openbao, onboarded, cli, monkeypatch):
    """The concurrent writer was this profile's own export (another run): read again, write on top."""
    place = fresh("secret/klarna/checkout")
    code, out = cli("export", "--profile", "p", "--format", "vault", "--out", place)
    ours = kv_get(openbao, place)["data"]
    write, raced = VaultKv.write, []

    def our_other_run_writes_first(self, where, data, *, cas):
        if not raced:
            raced.append(True)
            kv_put(openbao, place, **{**ours, "exported_at": "2020-01-01T00:00:00Z", "fingerprint_sha256": "OLD"})
        return write(self, where, data, cas=cas)

    monkeypatch.setattr(VaultKv, "write", our_other_run_writes_first)
    kv_put(openbao, place, **{**ours, "fingerprint_sha256": "EARLIER"})  # version 2: an earlier pair of ours
    code, out = cli("export", "--profile", "p", "--format", "vault", "--out", place)
    assert code == 0, out
    assert out["version"] == 4  # 2 read, 3 written by the other run, 4 ours on top of it
    assert kv_get(openbao, place)["data"]["fingerprint_sha256"] == ours["fingerprint_sha256"]


@pytest.mark.parametrize(
    ("there", "named"),
    [
        ({"password": "someone-elses"}, "something klarna-mtls did not write there"),
        ({"kind": "klarna-mtls/pair-export", "profile": "other", "account_id": "x"}, "a pair-export for profile other"),
    ],
)
def test_a_place_holding_something_else_is_not_overwritten(openbao, onboarded, cli, there, named):
    place = fresh("secret/klarna/checkout")
    kv_put(openbao, place, **there)
    code, out = cli("export", "--profile", "p", "--format", "vault", "--out", place)
    assert code == 3
    assert place in out["error"]["message"] and named in out["error"]["message"]
    assert kv_get(openbao, place)["data"] == there


def test_a_read_only_token_is_refused_naming_the_place_and_vaults_reason(
    openbao, onboarded, cli, monkeypatch, isolated_home, tmp_path
):
    place = fresh("secret/klarna/checkout")
    point_at(monkeypatch, openbao, read_only_token(openbao))
    before = files_under(isolated_home, tmp_path / "user-home")
    code, out = cli("export", "--profile", "p", "--format", "vault", "--out", place)
    assert code == 3
    assert out["error"]["title"] == "Vault permission denied"
    assert place in out["error"]["message"] and "permission denied" in out["error"]["message"]
    assert files_under(isolated_home, tmp_path / "user-home") == before
    assert kv_get(openbao, place) is None


def test_nothing_installed_is_refused_by_the_export_interlock(openbao, cli, monkeypatch, tmp_path):
    point_at(monkeypatch, openbao, home=tmp_path / "user-home")
    place = fresh("secret/klarna/checkout")
    code, out = cli("export", "--profile", "nothing", "--format", "vault", "--out", place)
    assert code == 3
    assert "installed" in out["error"]["message"]
    assert kv_get(openbao, place) is None


@pytest.mark.parametrize(("fmt", "out"), [("vault", "pair-folder"), ("pem", "vault:secret/klarna/checkout")])
def test_vault_format_and_vault_places_go_together(onboarded, cli, fmt, out):
    code, answer = cli("export", "--profile", "p", "--format", fmt, "--out", out)
    assert code == 3 and "--format vault writes to a vault:MOUNT/PATH place" in answer["error"]["message"]


def test_rotate_keeps_the_exported_copy_current_before_it_revokes_the_old_certificate(
    openbao, onboarded, cli, monkeypatch
):
    from wizard.services import certificate_rotation, revocation

    place = fresh("secret/klarna/checkout")
    cli("export", "--profile", "p", "--format", "vault", "--out", place)
    old = kv_get(openbao, place)["data"]
    seen_at_revoke = []
    revoke = revocation.revoke

    async def revoke_and_note(session, credential_id, **kwargs):
        seen_at_revoke.append(kv_get(openbao, place)["data"]["credential_id"])
        return await revoke(session, credential_id, **kwargs)

    monkeypatch.setattr(certificate_rotation, "revoke", revoke_and_note)  # the journaled retire step's revoke
    code, out = cli("rotate", "--profile", "p", "--retire-old", "--poll-interval", "0.05", "--also-export", place)
    assert code == 0, out
    new = kv_get(openbao, place)["data"]
    assert new["credential_id"] == out["new_certificate_id"] != old["credential_id"] == out["old_certificate_id"]
    assert new["fingerprint_sha256"] == out["new_fingerprint"]
    assert seen_at_revoke == [out["new_certificate_id"]]  # the copy was current when the old one went


def test_rotate_refuses_before_rotating_when_the_copy_could_not_be_kept_current(
    openbao, onboarded, cli, monkeypatch, isolated_home
):
    place = fresh("secret/klarna/checkout")
    cli("export", "--profile", "p", "--format", "vault", "--out", place)
    point_at(monkeypatch, openbao, read_only_token(openbao))
    code, before = cli("status", "--profile", "p")
    code, out = cli("rotate", "--profile", "p", "--retire-old", "--poll-interval", "0.05", "--also-export", place)
    assert code == 3
    assert out["error"]["title"] == "Vault permission denied" and place in out["error"]["message"]
    code, after = cli("status", "--profile", "p")
    assert after["current_id"] == before["current_id"]
    assert len(after["certificates"]) == len(before["certificates"])  # nothing issued


def test_renew_keeps_the_exported_copy_current(openbao, onboard, sandbox, cli, monkeypatch, tmp_path):
    """Issue 25: renew (like rotate) writes the new pair to the --also-export place after the switch."""
    from datetime import timedelta

    sandbox.certificate_lifetime = timedelta(days=30)  # inside its 60-day renewal window at once
    onboard("p")
    sandbox.certificate_lifetime = timedelta(days=90)
    point_at(monkeypatch, openbao, home=tmp_path / "user-home")
    place = fresh("secret/klarna/renewed")
    cli("export", "--profile", "p", "--format", "vault", "--out", place)
    old = kv_get(openbao, place)["data"]
    code, out = cli("renew", "--profile", "p", "--poll-interval", "0.05", "--also-export", place)
    assert code == 0 and out["action"] == "renewed", out
    new = kv_get(openbao, place)["data"]
    assert new["credential_id"] == out["new_certificate_id"] != old["credential_id"]
    assert new["fingerprint_sha256"] == out["new_fingerprint"]
    code, out = cli("renew", "--all", "--also-export", place)
    assert code == 3 and "--also-export names one place" in out["error"]["message"]


@pytest.mark.parametrize("rerun", ["renew", "rotate"])
def test_a_resumed_retirement_exports_the_new_pair_before_it_revokes_the_old(
    openbao, onboard, sandbox, cli, monkeypatch, tmp_path, rerun
):
    """rotate --retire-old --grace interrupted in its grace (the copy at the place still the old
    pair), then renew or rotate --also-export resumes the retirement: the copy is brought current
    before the old certificate is revoked, never left holding a revoked certificate."""
    from datetime import timedelta

    from wizard.services import certificate_rotation, revocation

    sandbox.certificate_lifetime = timedelta(days=30)  # inside its 60-day renewal window at once
    onboard("p")
    sandbox.certificate_lifetime = timedelta(days=90)
    point_at(monkeypatch, openbao, home=tmp_path / "user-home")
    place = fresh("secret/klarna/resumed")
    cli("export", "--profile", "p", "--format", "vault", "--out", place)
    old = kv_get(openbao, place)["data"]["credential_id"]

    async def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(certificate_rotation, "grace_pause", interrupted)
    code, _ = cli("rotate", "--profile", "p", "--retire-old", "--grace", "600", "--poll-interval", "0.05")
    assert code != 0
    assert kv_get(openbao, place)["data"]["credential_id"] == old

    async def over(seconds: float) -> None:
        pass

    seen_at_revoke = []
    revoke = revocation.revoke

    async def revoke_and_note(session, credential_id, **kwargs):
        seen_at_revoke.append((credential_id, kv_get(openbao, place)["data"]["credential_id"]))
        return await revoke(session, credential_id, **kwargs)

    monkeypatch.setattr(certificate_rotation, "grace_pause", over)
    monkeypatch.setattr(certificate_rotation, "revoke", revoke_and_note)
    code, out = cli(rerun, "--profile", "p", "--retire-old", "--poll-interval", "0.05", "--also-export", place)
    assert code == 0, out
    new = out["new_certificate_id"]
    assert new != old and seen_at_revoke == [(old, new)]  # the copy was current when the old one went
    assert kv_get(openbao, place)["data"]["credential_id"] == new
