"""`klarna-mtls export` (the installed pair as PEM, a PEM bundle, PKCS#12 or a Kubernetes TLS
Secret) and `klarna-mtls support-bundle` (facts for support, no secrets): files for others.

Every file goes through fsutil.write_output: never into the folders the tool keeps, never
through a link, only into folders no other user can change. ``--out -`` prints the export on
standard output instead (``kubectl apply -f -``)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from wizard.cli.common import add_common, emit, progress, terminal_text
from wizard.cli.session import key_passphrase, open_session
from wizard.core.env_vars import EXPORT_PASSWORD_ENV
from wizard.core.errors import InputError, WizardError
from wizard.core.findings import ExitCode
from wizard.core.fsutil import write_output
from wizard.services.exports import EXPORTERS
from wizard.vault.place import is_vault_place, parse_place

if TYPE_CHECKING:
    from wizard.services.session import Session

STDOUT = "-"
VAULT_FORMAT = "vault"  # not a file: a new KV version at a vault: place (services/vault_exchange.py)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export", help="export the installed pair")
    add_common(p)
    p.add_argument("--format", required=True, choices=(*EXPORTERS, VAULT_FORMAT))
    p.add_argument(
        "--out",
        required=True,
        help="where to write (pem: a folder); '-' prints the export on standard output, the PRIVATE KEY "
        "included (p12 only into a pipe or a file, never onto a terminal)",
    )
    p.add_argument("--name", default="klarna-mtls", help="k8s Secret name")
    p.add_argument("--namespace", help="k8s namespace")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("support-bundle", help="facts for support; no secrets")
    add_common(p)
    p.add_argument("--out", help="write the bundle to this file ('-' or none: standard output)")
    p.set_defaults(handler=cmd_support_bundle)


def cmd_export(args: argparse.Namespace) -> int:
    from wizard.services import exports

    session = open_session(args)
    if args.format == VAULT_FORMAT or is_vault_place(args.out):
        return _export_to_vault(args, session)
    if args.out == STDOUT:
        return _export_to_stdout(args, session)
    files = exports.export(
        session,
        args.format,
        Path(args.out),
        _export_password,
        key_passphrase=key_passphrase(),
        name=args.name,
        namespace=args.namespace,
    )
    written = [str(p) for p in files]
    emit(args, {"ok": True, "format": args.format, "files": written}, "wrote " + ", ".join(written))
    return ExitCode.OK


def _export_to_vault(args: argparse.Namespace, session: Session) -> int:
    """The pair as a new KV version 2 version at the ``vault:`` place, through the same gate."""
    from wizard.services.vault_exchange import export_to_vault, vault_for

    if args.format != VAULT_FORMAT or not is_vault_place(args.out):
        raise InputError(
            "--format vault writes to a vault:MOUNT/PATH place, and a vault: place takes --format vault.",
            hint="e.g. klarna-mtls export --format vault --out vault:secret/klarna/checkout",
        )
    place = parse_place(args.out)
    with vault_for(args.out) as kv:
        assert kv is not None
        written = export_to_vault(kv, session, place, key_passphrase())
    what = f"wrote version {written.version} of {place}" if written.changed else f"{place} already holds this pair"
    emit(
        args,
        {"ok": True, "format": "vault", "place": str(place), "version": written.version, "changed": written.changed},
        f"{what} (certificate, private key, fingerprint, expiry, credential id)",
    )
    return ExitCode.OK


def add_also_export(parser: argparse.ArgumentParser) -> None:
    """--also-export vault:…, for the commands that switch to a new pair (rotate, renew)."""
    parser.add_argument(
        "--also-export",
        type=vault_place_arg,
        metavar="vault:MOUNT/PATH",
        help="after the switch, write the new pair there as export --format vault does, so services "
        "reading it switch too (checked before anything changes; with --retire-old the old certificate "
        "is revoked only once the copy is written)",
    )


def vault_place_arg(text: str) -> str:
    """argparse type: a well-formed ``vault:`` place."""
    try:
        return str(parse_place(text))
    except InputError as error:
        raise argparse.ArgumentTypeError(f"{error.message} {error.hint}") from None


def prove_also_export(args: argparse.Namespace, session: Session) -> None:
    """Before a switch: Vault answers, this token may write the place, and it holds nothing but
    this profile's own earlier export (so the copy can be kept current afterwards)."""
    from wizard.services.vault_exchange import prove_export_place, vault_for

    if getattr(args, "also_export", None):
        with vault_for(args.also_export) as kv:
            assert kv is not None
            prove_export_place(kv, session, parse_place(args.also_export))


def also_export(args: argparse.Namespace, session: Session, old_id: str | None) -> None:
    """After a switch: the new pair to the ``--also-export`` place. A failure says that the switch
    itself is done and how to bring the copy up to date (``old_id`` stays active until then)."""
    from wizard.services.vault_exchange import export_to_vault, vault_for

    if not getattr(args, "also_export", None):
        return
    place = parse_place(args.also_export)
    try:
        with vault_for(args.also_export) as kv:
            assert kv is not None
            written = export_to_vault(kv, session, place, key_passphrase())
    except WizardError as error:
        keep = f" {old_id} was not revoked: services reading {place} still use it." if old_id else ""
        error.message = f"The switch to the new pair is done, but {place} was not updated: {error.message}"
        error.hint = (
            f"{error.hint} Then run: klarna-mtls export --profile {session.profile} --format vault --out {place}.{keep}"
        ).strip()
        raise
    progress(args, f"exported the new pair to {place} (version {written.version})")


def _export_to_stdout(args: argparse.Namespace, session: Session) -> int:
    """The export on standard output: PEM (certificate then key) or the k8s manifest as text,
    PKCS#12 only when standard output is not a terminal. A note on stderr says the key went out."""
    from wizard.services import exports

    if getattr(args, "json", False):
        raise InputError("--json and --out - would both write to standard output.", hint="Leave out --json.")
    if args.format == "p12" and sys.stdout.isatty():
        raise InputError(
            "A PKCS#12 file is binary: it is not printed on a terminal.",
            hint="Redirect it (klarna-mtls export --format p12 --out - > client.p12) or give --out client.p12.",
        )
    data = exports.export_bytes(
        session,
        args.format,
        _export_password,
        key_passphrase=key_passphrase(),
        name=args.name,
        namespace=args.namespace,
    )
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    print(
        terminal_text(f"printed the {args.format} export on standard output, the private key included"), file=sys.stderr
    )
    return ExitCode.OK


def _export_password() -> bytes:
    password = os.environ.get(EXPORT_PASSWORD_ENV) or _read_export_password()
    if not password:
        raise InputError(
            "A PKCS#12 export needs a password.", hint=f"Set {EXPORT_PASSWORD_ENV} or pipe it on standard input."
        )
    return password.encode()


def _read_export_password() -> str:
    """On a terminal: a prompt, without echo (getpass). From a pipe: one line."""
    if sys.stdin.isatty():
        return getpass.getpass("PKCS#12 export password: ").strip()
    return sys.stdin.readline().strip()


def cmd_support_bundle(args: argparse.Namespace) -> int:
    from wizard.services.support_bundle import support_bundle

    session = open_session(args)
    bundle = support_bundle(session)
    out = args.out if args.out not in (None, STDOUT) else None
    if out:
        text = json.dumps(bundle, indent=2, sort_keys=True).encode()
        out = str(write_output(Path(out), text, 0o600, keep_out=session.kept_folders()))
    emit(args, bundle, f"support bundle for {session.profile}" + (f" written to {out}" if out else ""))
    if not args.json and not out:
        print(json.dumps(bundle, indent=2, sort_keys=True))
    return ExitCode.OK
