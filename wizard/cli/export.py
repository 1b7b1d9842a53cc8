"""`klarna-mtls export` (the installed pair as PEM, a PEM bundle, PKCS#12 or a Kubernetes TLS
Secret) and `klarna-mtls support-bundle` (facts for support, no secrets): files for others."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from wizard.cli.common import add_common, emit
from wizard.cli.session import key_passphrase, open_session
from wizard.core.env_vars import EXPORT_PASSWORD_ENV
from wizard.core.errors import InputError
from wizard.core.findings import ExitCode
from wizard.core.interlocks import Action


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export", help="export the installed pair")
    add_common(p)
    p.add_argument("--format", required=True, choices=("pem", "bundle", "p12", "k8s"))
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--name", default="klarna-mtls", help="k8s Secret name")
    p.add_argument("--namespace", help="k8s namespace")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("support-bundle", help="facts for support; no secrets")
    add_common(p)
    p.add_argument("--out", type=Path)
    p.set_defaults(handler=cmd_support_bundle)


def cmd_export(args: argparse.Namespace) -> int:
    from wizard.services import install

    session = open_session(args)
    pair = install.current_pair(session.install_dir)
    session.require(Action.EXPORT, installed=pair is not None)
    assert pair is not None
    out: Path = args.out
    if args.format == "pem":
        written = [str(p) for p in install.export_pem_pair(pair, out)]
    elif args.format == "bundle":
        written = [str(install.export_bundle(pair, out))]
    elif args.format == "k8s":
        written = [
            str(install.export_k8s_secret(pair, out, args.name, args.namespace, key_passphrase=key_passphrase()))
        ]
    else:
        password = os.environ.get(EXPORT_PASSWORD_ENV) or _read_export_password()
        if not password:
            raise InputError(
                "A PKCS#12 export needs a password.", hint=f"Set {EXPORT_PASSWORD_ENV} or pipe it on standard input."
            )
        written = [str(install.export_pkcs12(pair, out, password.encode(), key_passphrase()))]
    emit(args, {"ok": True, "format": args.format, "files": written}, "wrote " + ", ".join(written))
    return ExitCode.OK


def _read_export_password() -> str:
    """On a terminal: a prompt, without echo (getpass). From a pipe: one line."""
    if sys.stdin.isatty():
        return getpass.getpass("PKCS#12 export password: ").strip()
    return sys.stdin.readline().strip()


def cmd_support_bundle(args: argparse.Namespace) -> int:
    from wizard.services.support_bundle import support_bundle, write_support_bundle

    session = open_session(args)
    bundle = support_bundle(session)
    if args.out:
        write_support_bundle(session, args.out)
    emit(args, bundle, f"support bundle for {session.profile}" + (f" written to {args.out}" if args.out else ""))
    if not args.json and not args.out:
        print(json.dumps(bundle, indent=2, sort_keys=True))
    return ExitCode.OK
