"""Every API call the client makes x every injected fault, through the sandbox over real mTLS.
Each cell must end in a clear error or a correct retry, with no duplicate created."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from conftest import record_figure

from wizard.core import crypto, rules
from wizard.core.errors import WizardError
from wizard.klarna.client import KlarnaClient
from wizard.klarna.endpoints import ENDPOINTS
from wizard.klarna.tls import make_http_client
from wizard.sandbox.server import Fault

pytestmark = pytest.mark.e2e

FAULTS = {
    "timeout": Fault(kind="latency", seconds=1.0),
    "reset": Fault(kind="reset"),
    "500": Fault(kind="status", status=500),
    "502": Fault(kind="status", status=502),
    "503": Fault(kind="status", status=503),
    "429": Fault(kind="rate_limit", retry_after=0.01),
    "malformed json": Fault(kind="malformed_json"),
    "html error page": Fault(kind="html_error"),
    "lost after commit": Fault(kind="drop_after_commit"),
}


async def _no_sleep(seconds):
    return None


async def prepare(sb):
    """A fresh account with one certificate and one spare API key, so each cell starts clean."""
    account_id, api_key = sb.mint_account()
    key = crypto.make_private_key()
    async with make_http_client(ca_bundle=sb.ca_bundle) as http:
        klarna = KlarnaClient(http, sb.base_url, api_key)
        cert = (
            await klarna.create_certificate(
                crypto.make_csr_pem(key, rules.default_cn(account_id)).decode(), "setup", str(uuid.uuid4())
            )
        ).value
        spare = (await klarna.create_api_key("spare", str(uuid.uuid4()))).value
    return account_id, api_key, cert, spare


def call(operation: str, klarna: KlarnaClient, account_id: str, cert, spare):
    new_key = crypto.make_private_key()
    return {
        "list_certificates": lambda: klarna.list_certificates(),
        "create_certificate": lambda: klarna.create_certificate_reconciled(
            crypto.make_csr_pem(new_key, rules.default_cn(account_id)).decode(),
            "m",
            str(uuid.uuid4()),
            crypto.public_key_id(new_key),
        ),
        "get_certificate": lambda: klarna.get_certificate(cert.credential_id),
        "update_certificate": lambda: klarna.update_certificate(cert.credential_id, "renamed"),
        "revoke_certificate": lambda: klarna.revoke_certificate(cert.credential_id),
        "get_enforcement": lambda: klarna.get_enforcement(),
        "set_enforcement": lambda: klarna.set_enforcement(
            rules.format_utc(rules.utc_now() + rules.MAX_ENFORCEMENT_AHEAD / 2)
        ),
        "remove_enforcement": lambda: klarna.remove_enforcement(),
        "list_api_keys": lambda: klarna.list_api_keys(),
        "create_api_key": lambda: klarna.create_api_key("new service", str(uuid.uuid4())),
        "get_api_key": lambda: klarna.get_api_key(spare.credential_id),
        "update_api_key": lambda: klarna.update_api_key(spare.credential_id, "renamed"),
        "disable_api_key": lambda: klarna.disable_api_key(spare.credential_id),
    }[operation]()


async def counts(sb, api_key):
    async with make_http_client(ca_bundle=sb.ca_bundle) as http:
        klarna = KlarnaClient(http, sb.base_url, api_key)
        return len((await klarna.list_certificates()).value), len((await klarna.list_api_keys()).value)


@pytest.fixture(scope="module")
def matrix_sandbox(tmp_path_factory):
    from wizard.sandbox import start_sandbox

    sb = start_sandbox(tmp_path_factory.mktemp("matrix"), enforcement_delay=300)
    yield sb
    sb.stop()


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("operation", list(ENDPOINTS))
def test_cell(matrix_sandbox, operation, fault):
    sb = matrix_sandbox

    async def cell():
        account_id, api_key, cert, spare = await prepare(sb)
        before = await counts(sb, api_key)
        template = FAULTS[fault]
        sb.inject(
            Fault(
                kind=template.kind,
                status=template.status,
                retry_after=template.retry_after,
                seconds=template.seconds,
                operation=operation,
                count=1,
            )
        )
        outcome = "retried to success"
        async with make_http_client(ca_bundle=sb.ca_bundle, timeout=0.4) as http:
            klarna = KlarnaClient(http, sb.base_url, api_key, sleep=_no_sleep)
            try:
                await call(operation, klarna, account_id, cert, spare)
            except WizardError as error:
                assert error.message and error.title  # a clear error, never a raw exception
                outcome = f"clear error: {error.title}"
        sb.clear_faults()
        await asyncio.sleep(0.05 if fault != "timeout" else 1.0)  # let a slow server finish its commit
        after = await counts(sb, api_key)
        created = {"create_certificate": (1, 0), "create_api_key": (0, 1)}.get(operation, (0, 0))
        assert after[0] - before[0] <= created[0], "duplicate certificate"
        assert after[1] - before[1] <= created[1], "duplicate API key"
        if operation == "create_certificate":
            assert outcome == "retried to success"  # reconciled: never a wasted or missing slot
        return outcome

    try:
        outcome = asyncio.run(cell())
    except BaseException:
        record_figure("fault matrix cells passed", 0, 1)
        raise
    record_figure("fault matrix cells passed", 1, 1)
    assert outcome
