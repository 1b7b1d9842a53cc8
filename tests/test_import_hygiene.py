"""wizard/ never imports Textual or Rich: the domain serves the headless commands on its own."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import wizard


def test_no_wizard_module_loads_textual_or_rich():
    modules = ["wizard"] + [m.name for m in pkgutil.walk_packages(wizard.__path__, "wizard.")]
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert len(modules) > 10
    assert done.stdout.strip() == ""
