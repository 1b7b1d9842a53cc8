"""The layers, read from the source: front ends (screens/, wizard/cli/) above services above the core.

Every import statement is checked, including the lazy ones inside functions, so a layer cannot be
crossed by importing late. A module that is not listed in a layer is a services module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRONT_ENDS = ("screens", "wizard.cli")
CORE = {
    "wizard",
    "wizard._lazy",
    "wizard.api",
    "wizard.clients",
    "wizard.crypto",
    "wizard.custody",
    "wizard.diagnosis",
    "wizard.errors",
    "wizard.flow_records",
    "wizard.fsutil",
    "wizard.install",
    "wizard.journal",
    "wizard.locking",
    "wizard.logs",
    "wizard.model",
    "wizard.paths",
    "wizard.records",
    "wizard.rules",
    "wizard.runtimes",
    "wizard.secret_value",
    "wizard.secrets",
    "wizard.sandbox",
    "wizard.interlocks",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, anywhere in the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names if is_module(f"{target}.{a.name}"))
    return found


def is_module(name: str) -> bool:
    where = ROOT.joinpath(*name.split("."))
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


def layer(module: str) -> str:
    if any(module == end or module.startswith(end + ".") for end in FRONT_ENDS):
        return "front end"
    if module in CORE or module.startswith("wizard.sandbox."):
        return "core"
    return "services"


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


RANK = {"core": 0, "services": 1, "front end": 2}


@pytest.mark.parametrize("path", sources("wizard") + sources("screens"), ids=lambda p: module_name(p))
def test_imports_only_go_down(path: Path):
    here = module_name(path)
    bad = []
    for target in imports_of(path):
        if target.split(".")[0] in ("textual", "rich") and layer(here) != "front end":
            bad.append(target)
        if target.split(".")[0] not in ("wizard", "screens"):
            continue
        if RANK[layer(target)] > RANK[layer(here)]:
            bad.append(target)
        if layer(here) == "front end" and layer(target) == "front end" and here.split(".")[0] != target.split(".")[0]:
            bad.append(target)  # the two front ends are peers: neither imports the other
    allowed = {"screens.app"} if here == "wizard.cli.main" else set()  # the TUI is started from the CLI
    assert sorted(set(bad) - allowed) == [], f"{here} imports across layers"


def test_the_checker_sees_lazy_and_relative_imports():
    assert {"wizard.api", "wizard.install"} <= imports_of(ROOT / "wizard" / "flow.py")  # imported inside functions
    assert "wizard.flow" in imports_of(ROOT / "wizard" / "cli" / "onboard.py")  # `from ..flow import Session`
    assert layer("wizard.flow") == "services" and layer("wizard.model") == "core"
    assert layer("wizard.cli.manage") == "front end" and layer("screens.app") == "front end"
    assert layer("wizard.clients") == "core"  # a name starting like wizard.cli is not the CLI
    assert RANK[layer("wizard.flow")] > RANK[layer("wizard.model")]


def test_lifecycle_and_keys_do_not_import_each_other_both_ways():
    """The doctor lists its checks itself (wizard/doctor.py): keys needs lifecycle, not the reverse."""
    assert "wizard.lifecycle" in imports_of(ROOT / "wizard" / "keys.py")
    assert "wizard.keys" not in imports_of(ROOT / "wizard" / "lifecycle.py")
