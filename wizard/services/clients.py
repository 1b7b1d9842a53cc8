"""Klarna clients for one profile: which host, which trust, which key and certificate.

A ``ClientFactory`` reads what it needs when a client is made (the profile's settings and
environment, where its pair is installed, and the key in custody) through the callables it was
built with, so a setting changed mid-run applies to the next client. It holds no journal and
writes nothing; it can keep connections open across calls (``keep_connections``) or reuse a pool
shared with other profiles (``use_connections``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard.core import rules
from wizard.core.errors import ApiError, CryptoError, InputError, MtlsRequired
from wizard.core.records import Settings
from wizard.secrets.custody import KeyCustody

if TYPE_CHECKING:  # httpx and the install module load when a client is made
    import httpx

    from wizard.klarna.client import KlarnaClient
    from wizard.klarna.tls import ConnectionPool
    from wizard.services.install import InstalledPair


class ClientFactory:
    """Makes this profile's KlarnaClients. Not thread-safe: one worker at a time."""

    def __init__(
        self,
        custody: KeyCustody,
        *,
        settings: Callable[[], Settings],
        environment: Callable[[], str | None],
        install_dir: Callable[[], Path],
        installed_label: Callable[[], str | None] = lambda: None,
        profile: str | None = None,
    ) -> None:
        self._custody = custody
        self._settings = settings
        self._environment = environment
        self._install_dir = install_dir
        self._installed_label = installed_label  # the pair the records say is in `current`, if any
        self._profile = profile  # named in the commands a refusal suggests
        self._connections: ConnectionPool | None = None  # kept connections while in use
        self._owns_connections = False

    def __repr__(self) -> str:
        return f"ClientFactory(environment={self._environment()!r}, kept={self._connections is not None})"

    def with_custody(self, custody: KeyCustody) -> ClientFactory:
        """The same profile's factory over another custody (e.g. a pair's own key passphrase);
        it reuses the connections this one keeps, and never closes them."""
        other = ClientFactory(
            custody,
            settings=self._settings,
            environment=self._environment,
            install_dir=self._install_dir,
            installed_label=self._installed_label,
            profile=self._profile,
        )
        other.use_connections(self._connections)
        return other

    @property
    def base_url(self) -> str:
        from wizard.klarna.endpoints import BASE_URLS

        settings, environment = self._settings(), self._environment()
        if settings.base_url:
            return settings.base_url
        if environment in BASE_URLS:
            return BASE_URLS[environment]
        raise InputError("This profile has no environment yet.", hint="Choose one on the first step.")

    @property
    def ca_bundle(self) -> Path | None:
        """The CAs this profile trusts: the sandbox's CA, a set the user chose for live/test
        (Session.set_trust_ca), or None for the bundled roots. Never the environment's."""
        settings = self._settings()
        value = settings.ca_bundle or settings.trust_ca
        return Path(value) if value else None

    def check_binding(self, api_key: str) -> None:
        """An API key goes only to its own environment's host: a live key never to a sandbox or
        test host (nor the reverse), a sandbox URL only https on loopback unless allowed."""
        settings, environment = self._settings(), self._environment()
        rules.verify_api_key(api_key, environment)
        if settings.base_url:
            rules.verify_base_url(environment, self.base_url, allow_remote=settings.allow_remote_sandbox)

    def client(
        self,
        *,
        with_certificate: bool | None = None,
        pair: InstalledPair | None = None,
        api_key: str | None = None,
        files_checked: bool = False,
    ) -> contextlib.AbstractAsyncContextManager[KlarnaClient]:
        """A KlarnaClient for this profile. ``with_certificate=None`` sends the installed
        certificate when there is one (needed once enforcement applies); ``pair`` sends that
        InstalledPair instead (rotation proves a new pair before switching); ``api_key``
        overrides the key in custody (key rotation proves a new key before switching);
        ``files_checked`` says the caller checked ``pair``'s files its own way (a probe of a
        mounted Kubernetes Secret, whose folder is sticky and world-writable by design)."""
        return self._client(with_certificate, pair, api_key, files_checked)

    @contextlib.asynccontextmanager
    async def _client(
        self, with_certificate: bool | None, pair: InstalledPair | None, api_key: str | None, files_checked: bool
    ) -> AsyncIterator[KlarnaClient]:
        from wizard.klarna.client import KlarnaClient
        from wizard.klarna.probe import handshake_probe_for

        key = api_key or self._custody.api_key()
        self.check_binding(key)  # before any request: the key and the URL belong to this profile
        pair = self._client_pair(with_certificate, pair, files_checked)
        passphrase = self._custody.passphrase if pair else None
        tls: dict[str, Any] = dict(
            ca_bundle=self.ca_bundle,
            client_cert=pair.cert_path if pair else None,
            client_key=pair.key_path if pair else None,
            key_passphrase=passphrase,
        )
        probe = (
            handshake_probe_for(
                ca_bundle=self.ca_bundle,
                client_cert=pair.cert_path,
                client_key=pair.key_path,
                key_passphrase=passphrase,
            )
            if pair is not None
            else None
        )
        async with self._http(tls) as http:
            try:
                yield KlarnaClient(http, self.base_url, key, with_certificate=pair is not None, handshake_probe=probe)
            except ApiError as error:
                if pair is None and error.status == 403 and not isinstance(error, MtlsRequired):
                    raise mtls_required(error) from None
                raise

    def _client_pair(
        self, with_certificate: bool | None, pair: InstalledPair | None, files_checked: bool
    ) -> InstalledPair | None:
        """The pair a client presents (see ``client``), its key file checked unless the caller did."""
        from wizard.services.install import verify_private_files
        from wizard.services.pair_files import current_pair_checked

        if pair is None and with_certificate is not False:
            # A `current` whose files are missing or broken is refused here, before a call without
            # a certificate turns a local problem into Klarna's "mTLS required".
            pair = current_pair_checked(self._install_dir(), self._installed_label(), self._profile)
        if with_certificate and pair is None:
            raise CryptoError("No certificate is installed yet.", hint="Finish the Install step first.")
        if pair is not None and not files_checked:
            verify_private_files(pair)  # refuse to use a key file others can read; says the fix
        return pair

    @contextlib.asynccontextmanager
    async def _http(self, tls: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
        """The kept connection for these TLS options (not closed here) when connections are kept,
        else a fresh client closed after use."""
        from wizard.klarna.tls import ConnectionPool, make_http_client

        if self._connections is None and self._owns_connections:
            self._connections = ConnectionPool()
        if self._connections is not None:
            yield self._connections.client(**tls)
            return
        async with make_http_client(**tls) as http:
            yield http

    # One connection per trust and certificate, reused across steps instead of one per call.
    def use_connections(self, pool: ConnectionPool | None) -> None:
        """Reuse ``pool`` (an api.ConnectionPool shared with other sessions; its owner closes it)."""
        self._connections, self._owns_connections = pool, False

    def keep_connections(self) -> None:
        """Reuse this profile's own connections from now on (made at first use) until
        close_connections()."""
        self._owns_connections = True

    async def close_connections(self) -> None:
        pool, owned = self._connections, self._owns_connections
        self._connections, self._owns_connections = None, False
        if pool is not None and owned:
            await pool.aclose()

    @contextlib.asynccontextmanager
    async def connections(self) -> AsyncIterator[None]:
        """keep_connections() for the block; a pool already in use is left as it is."""
        if self._connections is not None or self._owns_connections:
            yield
            return
        self.keep_connections()
        try:
            yield
        finally:
            await self.close_connections()


def mtls_required(error: ApiError) -> MtlsRequired:
    """A 403 to a call made without a client certificate: say what it means and what to do."""
    code = f" ({error.error_code})" if error.error_code else ""
    return MtlsRequired(
        f"Klarna refused a call made without a client certificate{code}. This account most likely "
        "already enforces mTLS, and this profile (a new service or machine) has no certificate yet; "
        "without an error body, Klarna's DDoS protection answers 403 too.",
        status=403,
        error_id=error.error_id,
        error_code=error.error_code,
        error_type=error.error_type,
        correlation_id=error.correlation_id,
        klarna_correlation_id=error.klarna_correlation_id,
        hint="From a system whose certificate is VALID on this account, remove enforcement for a while "
        "(klarna-mtls unenforce), onboard this profile, verify it, then enforce again; or issue this "
        "runtime's certificate in Klarna's portal.",
    )
