"""The layers, read from the source: front ends (screens/, wizard/cli/) above services above the core.

Every import statement is checked, including the lazy ones inside functions, so a layer cannot be
crossed by importing late. A module that is not listed in a layer is a services module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRONT_ENDS = ("screens", "wizard.cli")
# Floors, lowest first. The core is the model and this machine's own state; beside it, the adapters
# to the world (Klarna's API and its sandbox, the secret stores); services stand on both.
LAYERS = {
    "wizard": "core",
    "wizard.core": "core",
    "wizard.klarna": "adapters",
    "wizard.sandbox": "adapters",
    "wizard.secrets": "adapters",
    "wizard.vault": "adapters",
    "wizard.services": "services",
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
    package = ".".join(module.split(".")[:2])
    assert package in LAYERS, f"{module} is in no layer: put it in a sub-package of wizard/"
    return LAYERS[package]


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


RANK = {"core": 0, "adapters": 1, "services": 2, "front end": 3}


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
    session = ROOT / "wizard" / "services" / "session.py"
    assert "wizard.klarna.tls" in imports_of(session)  # imported inside a function
    assert "wizard.services.session" in imports_of(ROOT / "wizard" / "cli" / "onboard.py")
    assert layer("wizard.services.session") == "services" and layer("wizard.core.model") == "core"
    assert layer("wizard.klarna.client") == "adapters" and layer("wizard.sandbox.server") == "adapters"
    assert layer("wizard.cli.manage") == "front end" and layer("screens.app") == "front end"
    assert layer("wizard.services.clients") == "services"  # a name starting like wizard.cli is not the CLI
    assert RANK[layer("wizard.services.session")] > RANK[layer("wizard.core.model")]


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of ours it imports (lazy and type-only imports included; a package's
    own ``__init__`` is not an edge from inside it)."""
    modules = {module_name(p): p for p in sources("wizard") + sources("screens")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target in imports_of(path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("path", sources("wizard") + sources("screens"), ids=lambda p: module_name(p))
def test_no_module_is_longer_than_500_lines(path: Path):
    assert len(path.read_text().splitlines()) <= 500
