"""Klarna clients for one profile: which host, which trust, which key and certificate.

A ``ClientFactory`` reads what it needs when a client is made (the profile's settings and
environment, where its pair is installed, and the key in custody) through the callables it was
built with, so a setting changed mid-run applies to the next client. It holds no journal and
writes nothing; it can keep connections open across calls (``keep_connections``) or reuse a pool
shared with other profiles (``use_connections``)."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard.core import rules
from wizard.core.errors import (
    ApiError,
    CryptoError,
    InputError,
    InstalledPairRefused,
    JournalError,
    LockedOut,
    MtlsRequired,
    StorageError,
    TransportError,
    WizardError,
)
from wizard.core.fsutil import check_trusted_file
from wizard.core.records import Settings
from wizard.klarna.endpoints import BASE_URLS
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
        settings_file: Path | None = None,
        installed_label: Callable[[], str | None] = lambda: None,
        profile: str | None = None,
    ) -> None:
        self._custody = custody
        self._settings = settings
        self._environment = environment
        self._install_dir = install_dir
        self._settings_file = settings_file  # named when the settings are found damaged
        self._installed_label = installed_label  # the pair the records say is in `current`, if any
        self._profile = profile  # named in the commands a refusal suggests
        self._connections: ConnectionPool | None = None  # kept connections while in use
        self._owns_connections = False
        # Set by without_certificate_after: the installed pair was refused and Klarna said
        # enforcement is not in force, so clients that would send it send none (the way back).
        self._installed_refused: str | None = None

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
            settings_file=self._settings_file,
            installed_label=self._installed_label,
            profile=self._profile,
        )
        other.use_connections(self._connections)
        other._installed_refused = self._installed_refused
        return other

    @property
    def base_url(self) -> str:
        """Live and test: Klarna's host from the environment table, whatever the settings say (a
        host written there is damage: verify_host_settings). Only a sandbox has its own URL."""
        settings, environment = self._settings(), self._environment()
        if environment in BASE_URLS:
            verify_host_settings(settings, environment, self._settings_file)
            return BASE_URLS[environment]
        if settings.base_url:
            return settings.base_url
        raise InputError("This profile has no environment yet.", hint="Choose one on the first step.")

    @property
    def ca_bundle(self) -> Path | None:
        """The CAs this profile trusts: the sandbox's CA, a set the user chose for live/test
        (Session.set_trust_ca), or None for the bundled roots. Never the environment's."""
        settings = self._settings()
        value = settings.trust_ca if self._environment() in BASE_URLS else settings.ca_bundle
        return Path(value) if value else None

    def trusted_ca_bundle(self) -> Path | None:
        """``ca_bundle`` for a connection: a CA set chosen for live/test is checked on every use
        (ours or root's, not writable by others, fsutil.check_trusted_file), else CryptoError."""
        chosen = self.ca_bundle
        if chosen is None or self._environment() not in BASE_URLS:
            return chosen
        return checked_trust_ca(chosen)

    def check_binding(self, api_key: str) -> None:
        """An API key goes only to its own environment's host: a live key never to a sandbox or
        test host (nor the reverse), a live or test key only to Klarna's host for it, a sandbox URL
        only https on loopback unless allowed."""
        settings, environment = self._settings(), self._environment()
        rules.verify_api_key(api_key, environment)
        if environment in BASE_URLS:
            verify_host_settings(settings, environment, self._settings_file)
        elif settings.base_url:
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
        from wizard.klarna.errors import refuses_certificate
        from wizard.klarna.probe import handshake_probe_for

        key = api_key or self._custody.api_key()
        self.check_binding(key)  # before any request: the key and the URL belong to this profile
        ca_bundle = self.trusted_ca_bundle()
        pair = self._client_pair(with_certificate, pair, files_checked)
        passphrase = self._custody.passphrase if pair else None
        tls: dict[str, Any] = dict(
            ca_bundle=ca_bundle,
            client_cert=pair.cert_path if pair else None,
            client_key=pair.key_path if pair else None,
            key_passphrase=passphrase,
        )
        probe = (
            handshake_probe_for(
                ca_bundle=ca_bundle,
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
                refused = error.status == 403 or refuses_certificate(error.status, error.error_code)
                if pair is None and refused and not isinstance(error, MtlsRequired):
                    raise mtls_required(error, self._profile) from None
                raise

    def _client_pair(
        self, with_certificate: bool | None, pair: InstalledPair | None, files_checked: bool
    ) -> InstalledPair | None:
        """The pair a client presents (see ``client``), its key file checked unless the caller did."""
        from wizard.services.install import verify_private_files
        from wizard.services.pair_files import current_pair_checked

        if pair is None and with_certificate is None and self._installed_refused is not None:
            return None  # the way back: the installed pair is refused (without_certificate_after)
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

    async def without_certificate_after(self, refusal: WizardError) -> str:
        """The way back once Klarna refused the installed pair (``refusal``: the TLS handshake
        refused it, or Klarna answered MTLS_REQUIRED to it). The one place that decides: the
        enforcement state is read without a certificate, and only when Klarna says enforcement is
        not in force (NOT_ENABLED or REPORTING) do the clients made from then on send no
        certificate where they would have sent the installed one; returns the note to show.
        Enforced, refused or not established (unknown means no): raises a WizardError saying
        what is locked and what is left to do, and nothing changes."""
        from wizard.klarna.models import EnforcementState

        installed = _installed_words(self._install_dir())
        try:
            async with self._client(False, None, None, False) as klarna:
                state: EnforcementState = (await klarna.get_enforcement()).value
        except ApiError as error:
            if error.error_code == "MTLS_REQUIRED":
                raise locked_out(installed, refusal, self._profile) from None
            raise way_back_unknown(installed, refusal, error.message) from None
        except TransportError as error:
            raise way_back_unknown(installed, refusal, error.message) from None
        mode = state.mode.value
        if mode == "ENFORCED":
            raise locked_out(installed, refusal, self._profile)
        if mode not in ("NOT_ENABLED", "REPORTING"):
            raise way_back_unknown(installed, refusal, f"Klarna's answer gave the mode as {mode}")
        scheduled = f", scheduled from {state.enforced_from}: fix this before then" if state.enforced_from else ""
        self._installed_refused = (
            f"{installed} was refused ({refusal.message.rstrip('.')}). mTLS is not enforced now "
            f"({mode}{scheduled}), so this run calls Klarna without a client certificate."
        )
        return self._installed_refused


def checked_trust_ca(path: Path) -> Path:
    """The CA file chosen with --trust-ca, if it is still safe to trust (fsutil.check_trusted_file:
    ours or root's, not writable by others, reached through folders only we or root can change);
    else a CryptoError saying what to fix. Checked when chosen and on every run."""
    try:
        return check_trusted_file(path)
    except StorageError as error:
        raise CryptoError(error.message, title=error.title, hint=error.hint) from None


def verify_host_settings(settings: Settings, environment: str | None, source: Path | None = None) -> None:
    """A live or test profile talks to Klarna's host for its environment with the bundled roots
    or a CA set the user chose: a ``base_url`` for another host, or a sandbox ``ca_bundle``, in its
    settings was never written by klarna-mtls (Session.configure refuses both), so it is damage
    and refused, naming the file, before any key is sent."""
    if environment not in BASE_URLS:
        return
    own = BASE_URLS[environment]
    foreign = settings.base_url is not None and settings.base_url.rstrip("/") != own
    if not foreign and settings.ca_bundle is None:
        return
    what = f"the host {rules.clean_text(str(settings.base_url))[:80]}" if foreign else "a sandbox CA bundle"
    where = f"The saved settings in {source}" if source else "This profile's saved settings"
    raise JournalError(
        f"{where} give {what} for a {environment} profile, which always talks to {own}: "
        "klarna-mtls never writes that, so the file was changed by hand or damaged. Nothing was sent.",
        title="Saved settings damaged",
        hint="Remove settings.base_url and settings.ca_bundle from that file (or restore it from a backup); "
        "a CA set for a TLS-inspecting proxy is chosen with onboard --trust-ca.",
    )


def mtls_required(error: ApiError, profile: str | None = None) -> MtlsRequired:
    """A 403, or Klarna's mTLS refusal (401 or 403), to a call made without a client certificate:
    say what it means and what to do, leading with the way that keeps the account enforced (a
    runtime certificate: the key made here, issued from a machine whose pair Klarna accepts)."""
    code = f" ({error.error_code})" if error.error_code else ""
    return MtlsRequired(
        f"Klarna refused a call made without a client certificate{code}. This account most likely "
        "already enforces mTLS, and this profile (a new service or machine) has no certificate yet; "
        "without an error body, Klarna's DDoS protection answers 403 too.",
        status=error.status,
        error_id=error.error_id,
        error_code=error.error_code,
        error_type=error.error_type,
        correlation_id=error.correlation_id,
        klarna_correlation_id=error.klarna_correlation_id,
        hint=f"Without removing enforcement, give this machine its own certificate {runtime_steps(profile)} "
        f"{UNENFORCE_LAST_RESORT}",
    )


def rotate_command(profile: str) -> str:
    """``klarna-mtls rotate --profile NAME``, as every piece of advice prints it."""
    return f"klarna-mtls rotate --profile {shlex.quote(profile)}"


def runtime_steps(profile: str | None) -> str:
    """The runtime request, issue, install flow that gives this machine a certificate while the
    account stays enforced (the one wording of that advice)."""
    here = f" --profile {shlex.quote(profile)}" if profile else ""
    return (
        f"(NAME: this service, e.g. refunds): here, klarna-mtls runtime request --name NAME{here}; on a "
        "machine whose certificate is VALID on this account, klarna-mtls runtime issue "
        f"runtime-request-NAME.json; back here, klarna-mtls runtime install runtime-response-NAME.json{here}."
    )


UNENFORCE_LAST_RESORT = (
    "Only as a last resort, remove enforcement for a while from a system whose certificate is VALID "
    "(klarna-mtls unenforce, or ask Klarna in the portal or support): meanwhile the API key alone is "
    "accepted again."
)


def refused_under_enforcement_steps(profile: str | None) -> str:
    """What to do when Klarna refuses this profile's installed pair and mTLS is enforced: repair when
    the files are the problem, else a new certificate by the runtime flow; unenforcing last."""
    here = f" --profile {shlex.quote(profile)}" if profile else ""
    return (
        f"If this profile's installed files no longer match its records (klarna-mtls doctor{here} says so), "
        f"run klarna-mtls repair{here}. Otherwise, without removing enforcement, give this machine a new "
        f"certificate {runtime_steps(profile)} A certificate issued in the last few minutes may not be "
        f"accepted yet (Klarna: up to 5 minutes). {UNENFORCE_LAST_RESORT} Then klarna-mtls rotate{here} calls "
        "without a certificate while enforcement is off."
    )


def _installed_words(install_dir: Path) -> str:
    """``The installed certificate (valid until 2026-…)``, as far as its file says."""
    from wizard.core import crypto
    from wizard.services.install import current_pair

    try:
        pair = current_pair(install_dir)
        cert = crypto.load_certificate(pair.cert_path.read_bytes()) if pair else None
    except (OSError, WizardError):
        cert = None
    if cert is None:
        return "The installed certificate"
    return f"The installed certificate (valid until {rules.format_utc(cert.not_valid_after_utc)})"


def locked_out(installed: str, refusal: WizardError, profile: str | None) -> LockedOut:
    """The installed pair is refused and mTLS is enforced: what is locked, and what is left to do."""
    return LockedOut(
        f"{installed} was refused ({refusal.message.rstrip('.')}), and mTLS is enforced on this account: "
        "Klarna refuses every call from this profile, with that certificate or without one. Locked: "
        "rotate, status, certs, unenforce and every other command of this profile.",
        hint=refused_under_enforcement_steps(profile),
    )


def way_back_unknown(installed: str, refusal: WizardError, why: str) -> InstalledPairRefused:
    """The installed pair is refused and whether enforcement is on could not be established."""
    return InstalledPairRefused(
        f"{installed} was refused ({refusal.message.rstrip('.')}), and whether mTLS is enforced could not "
        f"be established without a certificate ({why.rstrip('.')}); nothing else was sent without one.",
        title="Client certificate refused",
        hint="Check the network and the API key, then try again. If enforcement is off, this command then "
        "calls without a certificate; if it is on, remove it from a system whose certificate is VALID.",
    )
