"""`klarna-mtls --help` and the TUI's start import every command module, so those modules load the
services that bring cryptography, httpx or keyring only inside their handlers."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("cryptography", "httpx", "httpcore", "keyring", "textual", "rich")
PROBE = f"""
import sys
from wizard.cli.main import build_parser
build_parser().format_help()
print(",".join(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))))
"""


def test_building_the_parser_loads_no_heavy_library():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == ""


def test_the_pem_export_names_the_install_folders_certificate_file():
    """exports.py spells the name out (importing install there would load cryptography for --help)."""
    from wizard.services import install
    from wizard.services.exports import EXPORTERS, PEM

    assert EXPORTERS[PEM].file_name == install.CERT_FILE
