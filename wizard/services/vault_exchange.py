"""Vault / OpenBao as the place where the tool's documents are kept and exchanged: the exported pair
(``export --format vault``), the runtime exchange (requests and responses) and the readiness reports.

Each document is one KV version 2 secret. The tool's own documents carry their ``kind`` and what
they are about (a runtime's name, or the profile, and the account) as fields beside the content,
so that a writer can tell its own earlier document from someone else's secret. Every write is
check-and-set on top of the version just read: a place holding something else is never
overwritten, and a concurrent write is never overwritten silently (``VaultCasConflict``, naming
the place). After a conflict the place is read again, and written only when what is there now is
the tool's own earlier document of the same thing.

Vault holding a document does not make it true: requests and responses are checked as their files
are (``parse_exchange`` and the checks of wizard/services/runtime_exchange.py), reports by their
signature (wizard/services/runtime_reports.py). A runtime's private key never goes into Vault:
only the exported pair (``export --format vault``, the managing machine's own pair) holds a key.

A command that writes to Vault after changing something else (a key made, a certificate issued, a
rotation) first asks Vault whether this token may write the place (``prove_writable``), so a
refusal there changes nothing."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard import __version__
from wizard.core import rules
from wizard.core.errors import InputError
from wizard.core.interlocks import Action
from wizard.core.runtimes import REPORT_KIND, ReadinessReport
from wizard.services.install import current_pair, pair_fields
from wizard.services.runtime_exchange import parse_exchange, read_exchange, write_exchange
from wizard.services.runtime_reports import ReportFile, report_files
from wizard.vault.errors import VaultCasConflict, VaultError, VaultPermissionDenied
from wizard.vault.place import VaultPlace, is_vault_place, parse_place

if TYPE_CHECKING:
    from wizard.services.session import Session
    from wizard.vault.kv import VaultKv

EXPORT_KIND = "klarna-mtls/pair-export"
KIND, DOCUMENT = "kind", "document"  # the fields every document of the tool carries


@dataclass(frozen=True)
class Written:
    """A document written to Vault: where, the version now current, and whether this run wrote it
    (False: the same content was there already)."""

    place: VaultPlace
    version: int
    changed: bool = True


# ---------------------------------------------------------------- connection
@contextlib.contextmanager
def vault_for(*wheres: str | Path | None) -> Iterator[VaultKv | None]:
    """One signed-in Vault connection when any of ``wheres`` names a ``vault:`` place; None (and
    no Vault, no hvac) otherwise."""
    if not any(isinstance(where, str) and is_vault_place(where) for where in wheres):
        yield None
        return
    from wizard.vault.kv import VaultKv

    with VaultKv.connect() as kv:
        yield kv


def _kv(kv: VaultKv | None) -> VaultKv:
    assert kv is not None, "vault_for opens a connection for every vault: place"
    return kv


def prove_writable(kv: VaultKv | None, where: str | Path | None) -> None:
    """Before anything else changes: when ``where`` is a ``vault:`` place, Vault answers and this
    token may write it (a file is checked where it is written)."""
    if isinstance(where, str) and is_vault_place(where):
        _kv(kv).may_write(parse_place(where))


@contextlib.contextmanager
def after_a_change(done: str, again: str) -> Iterator[None]:
    """Around a write to Vault that follows a change elsewhere (a key made, a certificate issued):
    a Vault error then says what is already done, and that running the command again finishes it
    (``again``), instead of "nothing was changed"."""
    try:
        yield
    except VaultError as error:
        error.message = f"{done} {error.message}"
        for unsaid in ("; nothing was changed", " Nothing was changed."):
            error.hint = error.hint.replace(unsaid, "")
        error.hint = f"{error.hint} {again}".strip()
        raise


# ---------------------------------------------------------------- writing with check-and-set
def write_document(
    kv: VaultKv,
    place: VaultPlace,
    fields: Mapping[str, str],
    replaceable: Callable[[dict[str, str]], str | None],
    *,
    same: Callable[[dict[str, str]], bool] | None = None,
) -> Written:
    """Write ``fields`` as a new version of ``place`` on top of the version read just before.
    ``replaceable(current fields)`` is None when what is there may be replaced, else what it is;
    ``same(current fields)`` says the content is already there (nothing is written then). A
    check-and-set conflict is retried once, after reading again, only if the judge still agrees."""
    for attempt in (1, 2):
        current = kv.read(place)
        if current is not None and not current.deleted:
            if (same or (lambda data: data == dict(fields)))(current.data):
                return Written(place, current.version, changed=False)
            what = replaceable(current.data)
            if what is not None:
                raise _taken(place, what, meanwhile=attempt > 1)
        try:
            return Written(place, kv.write(place, fields, cas=current.version if current else 0))
        except VaultCasConflict:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _taken(place: VaultPlace, what: str, *, meanwhile: bool) -> VaultCasConflict:
    if meanwhile:
        message = f"Someone else wrote {place} meanwhile: it now holds {what}. Nothing was overwritten."
    else:
        message = f"{place} already holds {what}; klarna-mtls does not overwrite it."
    return VaultCasConflict(
        message,
        hint=f"Look at it (bao kv get {place.mount}/{place.path}); name another place, or remove it there if nothing uses it.",
        place=str(place),
        reason="check-and-set",
    )


def _judge(kind: str, about: Mapping[str, str | None]) -> Callable[[dict[str, str]], str | None]:
    """What may be replaced: the tool's own document of ``kind`` about the same things (``about``:
    the fields naming the runtime or profile, and the account)."""

    def replaceable(current: dict[str, str]) -> str | None:
        if current.get(KIND) == kind and all(current.get(k) == v for k, v in about.items()):
            return None
        if current.get(KIND) == kind:
            theirs = ", ".join(f"{k} {str(current.get(k))[:60]}" for k in about)
            return f"a {kind.split('/')[-1]} for {rules.clean_text(theirs)}"
        return "something klarna-mtls did not write there" if KIND not in current else _kind_of(current)

    return replaceable


def _kind_of(current: dict[str, str]) -> str:
    return f"a document of another kind ({rules.clean_text(current[KIND])[:60]})"


# ---------------------------------------------------------------- requests, responses, reports
def _document_fields(payload: Mapping[str, Any], about: Mapping[str, str | None]) -> dict[str, str]:
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    return {KIND: str(payload["kind"]), **{k: v for k, v in about.items() if v is not None}, DOCUMENT: text}


def write_exchange_to(kv: VaultKv | None, where: str | Path, payload: dict[str, Any], keep_out: Iterable[Path]) -> str:
    """Write a runtime request or response to a file or a ``vault:`` place; returns where, as shown."""
    if not (isinstance(where, str) and is_vault_place(where)):
        return str(write_exchange(Path(where), payload, keep_out))
    about = {"name": payload.get("name"), "account_id": payload.get("account_id")}
    place = parse_place(where)
    write_document(_kv(kv), place, _document_fields(payload, about), _judge(payload["kind"], about))
    return str(place)


def read_exchange_from(kv: VaultKv | None, where: str | Path, kind: str) -> dict[str, Any]:
    """A runtime request or response from a file or a ``vault:`` place, checked as a file is."""
    if not (isinstance(where, str) and is_vault_place(where)):
        return read_exchange(Path(where), kind)
    place = parse_place(where)
    return parse_exchange(_document_at(_kv(kv), place), str(place), kind)


def _document_at(kv: VaultKv, place: VaultPlace) -> bytes:
    current = kv.read(place)
    if current is None or current.deleted:
        raise InputError(f"There is nothing at {place}.", hint="Check the place (bao kv get), or write it first.")
    document = current.data.get(DOCUMENT)
    if document is None:
        raise InputError(f"{place} holds no klarna-mtls document (no '{DOCUMENT}' field).")
    return document.encode("utf-8")


def write_report_to(kv: VaultKv, folder: VaultPlace, report: ReadinessReport) -> Written:
    """The signed report at FOLDER/RUNTIME: a new version of the runtime's own report."""
    about = {"runtime": report.runtime, "account_id": report.account_id}
    fields = _document_fields(report.to_dict(), about)
    return write_document(kv, folder.child(report.runtime), fields, _judge(REPORT_KIND, about))


def reports_at(kv: VaultKv, place: VaultPlace) -> list[ReportFile]:
    """Every report under ``place`` (a folder of RUNTIME secrets), or the one at ``place`` when
    nothing is under it. A report Vault refuses to show this token is listed as skipped."""
    names = [name for name in kv.list_keys(place) if not name.endswith("/")]
    found = []
    for where in [place.child(name) for name in names] or [place]:
        try:
            found.append(_report_at(kv, where))
        except VaultPermissionDenied as refused:
            found.append(ReportFile(str(where), None, f"skipped: {refused.message}"))
    return found


def _report_at(kv: VaultKv, place: VaultPlace) -> ReportFile:
    try:
        return ReportFile(str(place), parse_exchange(_document_at(kv, place), str(place), REPORT_KIND))
    except InputError as error:
        return ReportFile(str(place), None, f"refused: {error}")


def collect_reports(kv: VaultKv | None, sources: Iterable[str], owners: Iterable[int]) -> list[ReportFile]:
    """The reports of every source, in order: files and folders as ``report_files`` reads them,
    ``vault:`` places as ``reports_at`` does."""
    found: list[ReportFile] = []
    for source in sources:
        if is_vault_place(source):
            found += reports_at(_kv(kv), parse_place(source))
        else:
            found += report_files([Path(source)], owners)
    return found


# ---------------------------------------------------------------- the exported pair
def export_fields(session: Session, key_passphrase: bytes | None) -> dict[str, str]:
    """The installed pair as a Vault document, through the same gate as the file exports."""
    pair = current_pair(session.install_dir)
    session.require(Action.EXPORT, installed=pair is not None)
    assert pair is not None
    fields = {KIND: EXPORT_KIND, "profile": session.profile, "account_id": session.evidence.account_id or ""}
    fields.update(pair_fields(pair, key_passphrase))
    credential_id = session.current_id(pair)
    if credential_id:  # unknown (a runtime's unconfirmed id) is left out, never guessed
        fields["credential_id"] = credential_id
    fields.update(exported_at=rules.format_utc(session.clock()), tool_version=__version__)
    return fields


def prove_export_place(kv: VaultKv, session: Session, place: VaultPlace) -> None:
    """Before a rotation that will export: the token may write ``place``, and what is there now
    is nothing or this profile's own earlier export."""
    kv.may_write(place)
    current = kv.read(place)
    if current is not None and not current.deleted:
        what = _export_judge(session)(current.data)
        if what is not None:
            raise _taken(place, what, meanwhile=False)


def export_to_vault(kv: VaultKv, session: Session, place: VaultPlace, key_passphrase: bytes | None) -> Written:
    """Write the installed pair to ``place`` as a new version (check-and-set), replacing only this
    profile's own earlier export; nothing is written when that export already holds this pair."""
    fields = export_fields(session, key_passphrase)
    written = write_document(kv, place, fields, _export_judge(session), same=lambda now: _same_pair(now, fields))
    if written.changed:
        session.audit.record(
            "exported_to_vault",
            place=str(place),
            version=written.version,
            fingerprint=fields["fingerprint_sha256"],
            certificate_id=fields.get("credential_id"),
        )
    return written


def _export_judge(session: Session) -> Callable[[dict[str, str]], str | None]:
    return _judge(EXPORT_KIND, {"profile": session.profile, "account_id": session.evidence.account_id or ""})


def _same_pair(current: dict[str, str], fields: dict[str, str]) -> bool:
    """The same export but for when it was made (and by which version)."""
    moment = ("exported_at", "tool_version")
    return {k: v for k, v in current.items() if k not in moment} == {k: v for k, v in fields.items() if k not in moment}
