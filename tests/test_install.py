"""Installing the pair (modes, refusal, atomic `current`, rollback), exports and snippets."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import threading

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12
from tests_support import self_signed

from wizard.core import crypto
from wizard.core.errors import CryptoError, InputError, StorageError
from wizard.services import install

KEY_PASSPHRASE = b"key passphrase 1"
P12_PASSWORD = b"p12 password 9"
API_KEY = "klarna_test_api_" + "Z" * 28 + "wxyz"


def make_pair(passphrase: bytes | None = None) -> tuple[bytes, bytes, str]:
    key = crypto.make_private_key()
    cert_pem = self_signed(key).encode()
    label = install.label_for(crypto.fingerprint_sha256(crypto.load_certificate(cert_pem)))
    return cert_pem, crypto.make_private_key_pem(key, passphrase), label


def installed(install_dir, passphrase: bytes | None = None) -> install.InstalledPair:
    cert_pem, key_pem, label = make_pair(passphrase)
    pair = install.install_pair(install_dir, cert_pem, key_pem, label=label, key_passphrase=passphrase)
    install.activate(install_dir, label)
    return pair


@pytest.fixture
def permissive_umask():
    old = os.umask(0)
    yield
    os.umask(old)


# ---------------------------------------------------------------- install
def test_install_writes_private_modes_under_a_permissive_umask(tmp_path, permissive_umask):
    cert_pem, key_pem, label = make_pair()
    pair = install.install_pair(tmp_path / "certs", cert_pem, key_pem, label=label)
    assert pair.folder == tmp_path / "certs" / label and pair.label == label and len(label) == 16
    assert pair.modes() == (0o644, 0o600, 0o700)
    assert oct((tmp_path / "certs").stat().st_mode & 0o777) == "0o700"
    assert pair.cert_path.read_bytes() == cert_pem and pair.key_path.read_bytes() == key_pem
    assert pair.fingerprint == crypto.fingerprint_sha256(crypto.load_certificate(cert_pem))
    assert not [p for p in (tmp_path / "certs").iterdir() if p.name.startswith(".")]  # no staging left
    install.verify_private_files(pair)


def test_reinstalling_the_same_pair_is_idempotent(tmp_path):
    cert_pem, key_pem, label = make_pair()
    first = install.install_pair(tmp_path, cert_pem, key_pem, label=label)
    again = install.install_pair(tmp_path, cert_pem, key_pem, label=label)
    assert first == again and [p.label for p in install.list_pairs(tmp_path)] == [label]


def test_a_certificate_for_another_key_is_refused_and_current_stays(tmp_path):
    first = installed(tmp_path)
    other_cert, _, other_label = make_pair()
    _, unrelated_key, _ = make_pair()
    with pytest.raises(CryptoError, match="does not belong"):
        install.install_pair(tmp_path, other_cert, unrelated_key, label=other_label)
    assert not (tmp_path / other_label).exists()
    assert install.current_pair(tmp_path) == first
    assert first.cert_path.read_bytes() and first.key_path.read_bytes()


def test_a_label_cannot_be_reused_for_another_certificate(tmp_path):
    first = installed(tmp_path)
    cert_pem, key_pem, _ = make_pair()
    with pytest.raises(StorageError, match="another certificate"):
        install.install_pair(tmp_path, cert_pem, key_pem, label=first.label)
    assert install.current_pair(tmp_path) == first


@pytest.mark.parametrize("label", ["", "current", "previous", "../x", "a/b", ".hidden", "x" * 65])
def test_unsafe_labels_are_refused(tmp_path, label):
    cert_pem, key_pem, _ = make_pair()
    with pytest.raises(InputError):
        install.install_pair(tmp_path, cert_pem, key_pem, label=label)


def test_an_encrypted_key_installs_with_its_passphrase(tmp_path):
    cert_pem, key_pem, label = make_pair(KEY_PASSPHRASE)
    with pytest.raises(CryptoError, match="encrypted"):
        install.install_pair(tmp_path, cert_pem, key_pem, label=label)
    pair = install.install_pair(tmp_path, cert_pem, key_pem, label=label, key_passphrase=KEY_PASSPHRASE)
    assert b"ENCRYPTED" in pair.key_path.read_bytes()


# ---------------------------------------------------------------- current, previous, rollback
def test_current_is_a_stable_relative_symlink_and_rollback_swaps(tmp_path):
    first = installed(tmp_path)
    assert os.readlink(tmp_path / "current") == first.label
    assert (tmp_path / "current" / "certificate.pem").read_bytes() == first.cert_path.read_bytes()
    second = installed(tmp_path)
    assert install.current_pair(tmp_path) == second
    assert os.readlink(tmp_path / "previous") == first.label
    assert {p.label for p in install.list_pairs(tmp_path)} == {first.label, second.label}
    assert install.rollback(tmp_path) == first
    assert install.current_pair(tmp_path) == first and os.readlink(tmp_path / "previous") == second.label
    assert install.rollback(tmp_path) == second  # and back again


def test_rollback_without_a_previous_pair_is_refused(tmp_path):
    installed(tmp_path)
    with pytest.raises(StorageError, match="no previous pair"):
        install.rollback(tmp_path)


def test_nothing_installed(tmp_path):
    assert install.current_pair(tmp_path) is None and install.list_pairs(tmp_path / "absent") == []
    with pytest.raises(StorageError, match="No installed pair"):
        install.activate(tmp_path, "0123456789abcdef")


def test_current_flips_atomically_for_a_concurrent_reader(tmp_path):
    first, second = installed(tmp_path), installed(tmp_path)
    expected = {first.cert_path.read_bytes(), second.cert_path.read_bytes()}
    stable = tmp_path / "current" / "certificate.pem"
    seen, missing, stop = set(), [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.add(stable.read_bytes())
            except FileNotFoundError:
                missing.append(1)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(300):
            install.rollback(tmp_path)
    finally:
        stop.set()
        thread.join()
    assert not missing and seen <= expected and len(seen) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_damaged_folder_is_skipped_by_list_pairs(tmp_path):
    pair = installed(tmp_path)
    (tmp_path / "0000000000000000").mkdir()
    (tmp_path / "0000000000000000" / "certificate.pem").write_text("garbage")
    assert install.list_pairs(tmp_path) == [pair]


# ---------------------------------------------------------------- file checks
def test_a_key_readable_by_others_is_refused_with_the_fix(tmp_path):
    pair = installed(tmp_path)
    os.chmod(pair.key_path, 0o644)
    with pytest.raises(CryptoError) as caught:
        install.verify_private_files(pair)
    assert caught.value.hint == f"Run: chmod 600 {pair.key_path}"
    with pytest.raises(CryptoError, match="readable by others"):
        install.verify_private_files(pair.key_path)  # a key file path works too
    os.chmod(pair.key_path, 0o600)
    os.chmod(pair.folder, 0o750)
    with pytest.raises(CryptoError) as caught:
        install.verify_private_files(pair.folder)  # and a folder
    assert caught.value.hint == f"Run: chmod 700 {pair.folder}"


def test_a_missing_key_file_is_a_storage_error(tmp_path):
    with pytest.raises(StorageError, match="Cannot check"):
        install.verify_private_files(tmp_path / "private-key.pem")


# ---------------------------------------------------------------- exports
def test_pem_pair_and_bundle_exports(tmp_path, permissive_umask):
    pair = installed(tmp_path / "certs")
    user_folder = tmp_path / "deploy"
    user_folder.mkdir(mode=0o755)
    cert_path, key_path = install.export_pem_pair(pair, user_folder)
    assert (cert_path.name, key_path.name) == ("certificate.pem", "private-key.pem")
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    assert oct(user_folder.stat().st_mode & 0o777) == "0o755"  # the user's folder is left as it was
    bundle = install.export_bundle(pair, tmp_path / "new" / "bundle.pem")
    assert oct(bundle.stat().st_mode & 0o777) == "0o600" and oct(bundle.parent.stat().st_mode & 0o777) == "0o700"
    text = bundle.read_bytes()
    assert text.startswith(b"-----BEGIN CERTIFICATE-----") and text.endswith(pair.key_path.read_bytes())
    crypto.verify_cert_matches_key(crypto.load_certificate(text), crypto.load_private_key(pair.key_path.read_bytes()))


def test_pkcs12_export_is_readable_by_cryptography(tmp_path):
    pair = installed(tmp_path / "certs", KEY_PASSPHRASE)
    out = install.export_pkcs12(pair, tmp_path / "out" / "client.p12", P12_PASSWORD, KEY_PASSPHRASE)
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    key, cert, extra = pkcs12.load_key_and_certificates(out.read_bytes(), P12_PASSWORD)
    assert crypto.fingerprint_sha256(cert) == pair.fingerprint and extra == []
    assert crypto.valid_cert_matches_key(cert, key)
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(out.read_bytes(), b"wrong")
    with pytest.raises(InputError):
        install.export_pkcs12(pair, tmp_path / "x.p12", b"", KEY_PASSPHRASE)


@pytest.fixture
def p12(tmp_path):
    pair = installed(tmp_path / "certs")
    return install.export_pkcs12(pair, tmp_path / "client.p12", P12_PASSWORD)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_pkcs12_export_is_readable_by_openssl(p12):
    done = subprocess.run(
        ["openssl", "pkcs12", "-info", "-noout", "-in", str(p12), "-passin", f"pass:{P12_PASSWORD.decode()}"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "AES-256-CBC" in done.stderr and "sha256" in done.stderr.lower()


@pytest.mark.skipif(shutil.which("keytool") is None, reason="keytool (a JDK) is not installed")
def test_pkcs12_export_is_readable_by_keytool(p12):
    done = subprocess.run(
        ["keytool", "-list", "-storetype", "PKCS12", "-keystore", str(p12), "-storepass", P12_PASSWORD.decode()],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PrivateKeyEntry" in done.stdout and "klarna-mtls" in done.stdout


def parse_manifest(text: str) -> dict:
    """A tiny parser for the flat two-level YAML we write (PyYAML is not a dependency)."""
    doc: dict = {}
    section = None
    for line in text.splitlines():
        key, _, value = line.strip().partition(": ") if ": " in line else (line.strip().rstrip(":"), "", "")
        if line.startswith("  "):
            doc[section][key] = value
        elif value:
            doc[key] = value
        else:
            section = key
            doc[section] = {}
    return doc


def test_k8s_secret_manifest(tmp_path):
    pair = installed(tmp_path / "certs")
    out = install.export_k8s_secret(pair, tmp_path / "secret.yaml", "klarna-mtls", "payments")
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    text = out.read_text()
    doc = parse_manifest(text)
    assert doc["apiVersion"] == "v1" and doc["kind"] == "Secret" and doc["type"] == "kubernetes.io/tls"
    assert doc["metadata"] == {"name": "klarna-mtls", "namespace": "payments"}
    assert base64.b64decode(doc["data"]["tls.crt"]) == pair.cert_path.read_bytes()
    assert base64.b64decode(doc["data"]["tls.key"]) == pair.key_path.read_bytes()
    try:
        import yaml
    except ImportError:
        return
    assert yaml.safe_load(text) == doc


def test_k8s_secret_decrypts_an_encrypted_key_only_with_its_passphrase(tmp_path):
    pair = installed(tmp_path / "certs", KEY_PASSPHRASE)
    with pytest.raises(CryptoError, match="unencrypted"):
        install.export_k8s_secret(pair, tmp_path / "s.yaml", "klarna-mtls")
    out = install.export_k8s_secret(pair, tmp_path / "s.yaml", "klarna-mtls", key_passphrase=KEY_PASSPHRASE)
    key_pem = base64.b64decode(parse_manifest(out.read_text())["data"]["tls.key"])
    assert b"ENCRYPTED" not in key_pem
    crypto.verify_cert_matches_key(
        crypto.load_certificate(pair.cert_path.read_bytes()), crypto.load_private_key(key_pem)
    )


@pytest.mark.parametrize("name, namespace", [("Bad_Name", None), ("ok", "has space"), ("x\nkind: Pod", None)])
def test_k8s_names_are_validated(tmp_path, name, namespace):
    pair = installed(tmp_path / "certs")
    with pytest.raises(InputError):
        install.export_k8s_secret(pair, tmp_path / "s.yaml", name, namespace)
    assert not (tmp_path / "s.yaml").exists()


# ---------------------------------------------------------------- snippets
def test_snippets_use_the_stable_paths_and_never_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("KLARNA_API_KEY", API_KEY)
    installed(tmp_path)
    cert, key = install.current_paths(tmp_path)
    base = "https://api-global.test.klarna.com"
    found = install.snippets(cert, key, base)
    assert set(found) == {"curl", "httpx", "requests", "java", "node", "nginx"}
    assert found["curl"].splitlines()[0] == (
        f'curl --cert {cert} --key {key} -H "Authorization: Basic $KLARNA_API_KEY" '
        f"{base}/v2/account/integration/credentials/client-certificate -i"
    )
    for name, text in found.items():
        assert API_KEY not in text and "wxyz" not in text, name
        assert "KLARNA_API_KEY" in text, name
    for name in ("curl", "httpx", "requests", "node", "nginx"):
        assert str(cert) in found[name] and str(key) in found[name], name
    assert "keytool" in found["java"] and "javax.net.ssl.keyStore=client.p12" in found["java"]
    assert "proxy_ssl_certificate_key" in found["nginx"] and "proxy_ssl_trusted_certificate" in found["nginx"]


def test_snippets_add_the_ca_bundle_and_quote_paths(tmp_path):
    cert, key = tmp_path / "my certs" / "certificate.pem", tmp_path / "my certs" / "private-key.pem"
    ca = tmp_path / "sandbox-ca.pem"
    found = install.snippets(cert, key, "https://127.0.0.1:8443/", ca)
    assert f"--cert '{cert}' --key '{key}' --cacert {ca}" in found["curl"]
    assert "https://127.0.0.1:8443/v2/" in found["curl"]  # no double slash
    for name in ("httpx", "requests", "node", "nginx", "java"):
        assert str(ca) in found[name], name


def test_pair_snippets_use_current_for_the_current_pair(tmp_path):
    older, newer = installed(tmp_path), installed(tmp_path)
    base = "https://api-global.klarna.com"
    stable_cert, stable_key = install.current_paths(tmp_path)
    assert install.snippets_for_pair(newer, base) == install.snippets(stable_cert, stable_key, base)
    assert str(older.cert_path) in install.snippets_for_pair(older, base)["curl"]


# ---------------------------------------------------------------- snippets, for real
@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_and_httpx_snippets_work_against_the_sandbox(onboard, sandbox, paths, monkeypatch):
    """The installed files work unchanged in Klarna's documented curl command, and in the httpx
    snippet: the sandbox answers VALID to both."""
    onboard("snip")
    install_dir = paths.default_install_dir("snip")
    assert install.current_pair(install_dir) is not None
    found = install.snippets(*install.current_paths(install_dir), sandbox.base_url, sandbox.ca_bundle)
    env = {**os.environ, "KLARNA_API_KEY": sandbox.api_key}
    curl = subprocess.run(["bash", "-c", found["curl"]], capture_output=True, text=True, env=env, timeout=30)
    assert curl.returncode == 0, curl.stderr
    assert "klarna-mtls-verification-status: valid" in curl.stdout.lower()
    python = subprocess.run([sys.executable, "-c", found["httpx"]], capture_output=True, text=True, env=env, timeout=30)
    assert python.returncode == 0, python.stderr
    assert python.stdout.strip() == "VALID"
