"""KV version 2 on one Vault or OpenBao server, through hvac (imported on first use: commands that
never name a ``vault:`` place do not pay for it).

Before the first operation on a mount, Vault is asked which engine is mounted there, as its own
``kv`` commands do: on a KV version 1 mount the API's ``data/`` segment would be taken for part of
a key name, and a write would land where nobody looks. Every write carries check-and-set
(``cas=0`` creates, ``cas=N`` replaces version N), so a concurrent writer is never overwritten
silently. Nothing is cached on disk; the token lives in memory only."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from wizard.core.logs import register_secret
from wizard.core.rules import clean_text
from wizard.vault.errors import VaultError, VaultNotKv2, VaultPermissionDenied, VaultRefused
from wizard.vault.place import VaultPlace
from wizard.vault.settings import VaultSettings, read_secret_id, settings_from_env
from wizard.vault.translate import Attempt, invalid_token, translate

# Seconds to connect, then to wait for an answer: a dead address fails fast, a busy server is waited for.
TIMEOUT = (5.0, 30.0)
T = TypeVar("T")
_ENABLE_HINT = "Name a path on a KV version 2 mount, or have one enabled: bao secrets enable -path={mount} kv-v2."


@dataclass(frozen=True, repr=False)
class KvVersion:
    """One version of a secret: its fields, its version number, and whether it was deleted (then
    ``data`` is empty, and the next write must name this version for check-and-set)."""

    data: dict[str, str]
    version: int
    deleted: bool = False

    def __repr__(self) -> str:  # the field names, never the values
        return f"KvVersion(version={self.version}, fields={sorted(self.data)}, deleted={self.deleted})"


class VaultKv:
    """Signed in to one server; reads, writes and lists KV version 2 places."""

    def __init__(self, client: Any, settings: VaultSettings) -> None:
        self._client = client
        self.settings = settings
        self._kv2_mounts: set[str] = set()

    def __repr__(self) -> str:
        return f"VaultKv({self.settings.address!r})"

    @classmethod
    def connect(cls, settings: VaultSettings | None = None) -> VaultKv:
        """A client for ``settings`` (default: from the environment), signed in with AppRole when
        that is how the settings sign in. No request is made for a token sign-in."""
        import hvac

        settings = settings or settings_from_env()
        client = hvac.Client(
            url=settings.address,
            token=settings.token.reveal() if settings.token else "",  # "": hvac must not look for one itself
            verify=settings.verify,
            namespace=settings.namespace,
            timeout=TIMEOUT,
            allow_redirects=False,  # a redirect must not carry the token to another address
        )
        kv = cls(client, settings)
        if settings.approle is not None:
            kv._sign_in_with_approle()
        return kv

    def close(self) -> None:
        self._client.adapter.close()

    def __enter__(self) -> VaultKv:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---------------------------------------------------------------- operations
    def read(self, place: VaultPlace) -> KvVersion | None:
        """The latest version at ``place``; None when nothing was ever written there."""
        self._require_kv2(place, "read")
        attempt = Attempt("read", str(place), f"'read' on {place.data_path}")
        found, answer = self._call(attempt, lambda: self._get_or_missing(place))
        return _version_from(answer, place, found)

    def write(self, place: VaultPlace, data: Mapping[str, str], *, cas: int) -> int:
        """Write ``data`` as a new version; ``cas`` is the version it replaces (0: create). Returns
        the new version. VaultCasConflict when someone else wrote the place meanwhile."""
        self._require_kv2(place, "write")
        attempt = Attempt("write", str(place), f"'create' and 'update' on {place.data_path}", cas=cas)
        answer = self._call(
            attempt,
            lambda: self._client.secrets.kv.v2.create_or_update_secret(
                path=place.path, secret=dict(data), cas=cas, mount_point=place.mount
            ),
        )
        version = _dig(answer, "data", "version")
        if not isinstance(version, int):
            raise _unexpected(answer, attempt)
        return version

    def update(self, place: VaultPlace, change: Callable[[dict[str, str]], dict[str, str]]) -> int:
        """Read ``place``, apply ``change`` to its fields and write the result on top of the version
        read (check-and-set). Returns the version now current (0: none); nothing is written when
        nothing changed."""
        current = self.read(place)
        before = dict(current.data) if current else {}
        after = change(dict(before))
        if after == before:
            return current.version if current else 0
        return self.write(place, after, cas=current.version if current else 0)

    def list_keys(self, place: VaultPlace) -> list[str]:
        """The names under ``place`` (a folder's end in '/'); empty when there are none."""
        self._require_kv2(place, "list")
        attempt = Attempt("list", str(place), f"'list' on {place.metadata_path}")
        found, answer = self._call(attempt, lambda: self._list_or_missing(place))
        keys = _dig(answer, "data", "keys") if found else []
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise _unexpected(answer, attempt)
        return sorted(keys)

    def may_write(self, place: VaultPlace) -> None:
        """Refuse now, before a caller changes anything else, when this token could not write
        ``place``: its capabilities there as Vault reports them (``sys/capabilities-self``, in
        every token's default policy). Reaching Vault, the token and the mount are checked too."""
        self._require_kv2(place, "write")
        attempt = Attempt("write", str(place), f"'create' and 'update' on {place.data_path}")
        answer = self._call(attempt, lambda: self._client.sys.get_capabilities(paths=[place.data_path]))
        granted = _dig(answer, "data", place.data_path) or _dig(answer, place.data_path)
        if not isinstance(granted, list):
            raise _unexpected(answer, attempt)
        if "root" in granted or ({"create", "update"} & set(granted) and "deny" not in granted):
            return
        raise VaultPermissionDenied(
            f"Vault's policies do not let this token write {place} (it may: {', '.join(granted) or 'nothing'}).",
            hint=f"The token's policies must allow {attempt.policy}; ask a Vault operator for it. Nothing was changed.",
            place=str(place),
            reason="permission denied",
        )

    def token_policies(self) -> list[str] | None:
        """The token's policies; None when Vault does not accept the token at all. An answer that
        cannot be had for another reason gives [] (the token is not blamed for it)."""
        import hvac.exceptions as hv

        try:
            answer = self._client.auth.token.lookup_self()
        except hv.Forbidden:
            return None
        except Exception:
            return []
        policies = _dig(answer, "data", "policies")
        return [str(p) for p in policies] if isinstance(policies, list) else []

    # ---------------------------------------------------------------- plumbing
    def _call(self, attempt: Attempt, action: Callable[[], T]) -> T:
        try:
            return action()
        except VaultError:
            raise
        except Exception as exc:
            raise translate(exc, attempt, self.settings.address, self.token_policies) from None

    def _get_or_missing(self, place: VaultPlace) -> tuple[bool, object]:
        import hvac.exceptions as hv

        try:
            return True, self._client.secrets.kv.v2.read_secret_version(
                path=place.path, mount_point=place.mount, raise_on_deleted_version=True
            )
        except hv.InvalidPath as missing:  # never written, or its latest version deleted (metadata says which)
            return False, missing.json

    def _list_or_missing(self, place: VaultPlace) -> tuple[bool, object]:
        import hvac.exceptions as hv

        try:
            return True, self._client.secrets.kv.v2.list_secrets(path=place.path, mount_point=place.mount)
        except hv.InvalidPath:
            return False, None

    def _sign_in_with_approle(self) -> None:
        approle = self.settings.approle
        assert approle is not None
        secret_id = read_secret_id(approle.secret_id_file)
        attempt = Attempt("sign in at", self.settings.address)
        self._call(
            attempt,
            lambda: self._client.auth.approle.login(
                role_id=approle.role_id.reveal(), secret_id=secret_id.reveal(), mount_point=approle.mount
            ),
        )
        register_secret(self._client.token)

    def _require_kv2(self, place: VaultPlace, verb: str) -> None:
        """Refuse a place whose mount is not KV version 2 (asked once per mount)."""
        if place.mount in self._kv2_mounts:
            return
        attempt = Attempt(verb, str(place), f"a capability under {place.mount}/")
        found, answer = self._call(attempt, lambda: self._mount_or_hidden(place))
        if not found:
            raise self._mount_hidden(place, verb)
        mount = _dig(answer, "data")
        if not isinstance(mount, dict):
            raise _unexpected(answer, attempt)
        engine, version = mount.get("type"), _dig(mount, "options", "version")
        if mount.get("path") != f"{place.mount}/":
            raise VaultNotKv2(
                f"{place} is on the mount {clean_text(str(mount.get('path')))[:60]}, not on {place.mount}/.",
                hint="A vault: place names a mount of one segment; name a path on such a mount.",
                place=str(place),
            )
        if engine != "kv" or version != "2":
            what = "KV version 1" if engine == "kv" else f"'{clean_text(str(engine))[:60]}'"
            raise VaultNotKv2(
                f"{place} is on a {what} mount, not on a KV version 2 mount.",
                hint=_ENABLE_HINT.format(mount=place.mount),
                place=str(place),
            )
        self._kv2_mounts.add(place.mount)

    def _mount_or_hidden(self, place: VaultPlace) -> tuple[bool, object]:
        import hvac.exceptions as hv

        try:  # what `vault kv` asks first; a 403 says no mount is visible to this token there
            return True, self._client.adapter.get(f"/v1/sys/internal/ui/mounts/{place.mount}/{place.path}")
        except hv.Forbidden:
            return False, None

    def _mount_hidden(self, place: VaultPlace, verb: str) -> VaultError:
        """Vault shows no mount at the place: the token is refused, there is none, or the token's
        policies grant nothing there (a root token sees every mount, so for it there is none)."""
        attempt = Attempt(verb, str(place))
        policies = self.token_policies()
        if policies is None:
            return invalid_token(self.settings.address, attempt, "permission denied")
        if "root" in policies:
            return VaultNotKv2(
                f"There is no mount at {place.mount}/{self._in_namespace()} (for {place}).",
                hint=_ENABLE_HINT.format(mount=place.mount),
                place=str(place),
            )
        return VaultPermissionDenied(
            f"Vault shows this token no mount at {place.mount}/{self._in_namespace()} for {place}: either there "
            "is none, or the "
            "token's policies grant nothing there.",
            hint=f"Check the mount (bao secrets list) and ask for a policy on {place.data_path}.",
            place=str(place),
            reason="permission denied",
        )

    def _in_namespace(self) -> str:
        return f" in the namespace {self.settings.namespace}" if self.settings.namespace else ""


def _version_from(answer: object, place: VaultPlace, found: bool) -> KvVersion | None:
    attempt = Attempt("read", str(place))
    metadata = _dig(answer, "data", "metadata")
    if not found and not isinstance(metadata, dict):
        return None  # never written (or every version's metadata deleted)
    version = _dig(metadata, "version")
    if not isinstance(version, int):
        raise _unexpected(answer, attempt)
    deleted = bool(_dig(metadata, "deletion_time")) or bool(_dig(metadata, "destroyed")) or not found
    values = _dig(answer, "data", "data") or {}
    if not isinstance(values, dict):
        raise _unexpected(answer, attempt)
    if not all(isinstance(v, str) for v in values.values()):
        raise VaultRefused(
            f"{place} holds fields that are not text; klarna-mtls reads and writes text fields only.",
            hint="Keep other data at another path.",
            place=str(place),
        )
    return KvVersion({str(k): v for k, v in values.items()}, version, deleted)


def _dig(value: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _unexpected(answer: object, attempt: Attempt) -> VaultRefused:
    status = getattr(answer, "status_code", None)  # hvac hands back a non-200 answer as a Response
    what = f"HTTP {status}" if status else "an answer of an unexpected shape"
    return VaultRefused(
        f"Vault gave {what} when asked to {attempt.verb} {attempt.place}.",
        hint="Point VAULT_ADDR at the active Vault node (redirects are not followed), and check the server's version.",
        place=attempt.place,
    )
