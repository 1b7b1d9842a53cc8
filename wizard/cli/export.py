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

if TYPE_CHECKING:
    from wizard.services.session import Session

from wizard.cli.common import add_common, emit
from wizard.cli.session import key_passphrase, open_session
from wizard.core.env_vars import EXPORT_PASSWORD_ENV
from wizard.core.errors import InputError
from wizard.core.findings import ExitCode
from wizard.core.fsutil import write_output
from wizard.services.exports import EXPORTERS

STDOUT = "-"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export", help="export the installed pair")
    add_common(p)
    p.add_argument("--format", required=True, choices=tuple(EXPORTERS))
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
    print(f"printed the {args.format} export on standard output, the private key included", file=sys.stderr)
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
