"""wizard/ never imports Textual or Rich: the domain serves the headless commands on its own.

httpx imports Rich for its own command line when click happens to be installed (linters bring it),
so the probe records *who* imports Textual or Rich rather than whether either got loaded."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import wizard

PROBE = """
import importlib, sys

class Watch:
    importers = set()
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('textual', 'rich'):
            frame = sys._getframe(1)
            while frame and frame.f_globals.get('__name__', '').startswith(('importlib', '_frozen_importlib')):
                frame = frame.f_back
            Watch.importers.add(frame.f_globals.get('__name__', '?') if frame else '?')
        return None

sys.meta_path.insert(0, Watch())
for name in MODULES:
    importlib.import_module(name)
print(','.join(sorted(m for m in Watch.importers if m.split('.')[0] in ('wizard', '__main__'))))
"""


def test_no_wizard_module_imports_textual_or_rich():
    modules = ["wizard"] + [m.name for m in pkgutil.walk_packages(wizard.__path__, "wizard.")]
    probe = PROBE.replace("MODULES", repr(modules))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert len(modules) > 10
    assert "wizard.cli.main" in modules
    assert done.stdout.strip() == ""


def test_the_probe_sees_a_domain_module_that_imports_rich(tmp_path):
    """The watch must be able to fail: a module under a wizard-like name that imports rich."""
    (tmp_path / "wizard_probe_bad.py").write_text("import rich.text\n")
    probe = PROBE.replace("MODULES", repr(["wizard_probe_bad"])).replace(
        "('wizard', '__main__')", "('wizard_probe_bad',)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert done.stdout.strip() == "wizard_probe_bad"
