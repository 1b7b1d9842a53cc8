"""The onboarding model is the only writer of evidence: every other module records what it observed
through a named ``Onboarding.record_…`` method (wizard/core/model.py), read from the source with ast.

Caught: ``<x>.evidence.<field> = …`` (also in a tuple, augmented or annotated), the same through a
name bound to ``<x>.evidence`` or a parameter typed ``Evidence``, ``setattr(<evidence>, …)``,
``del``, item assignment and mutating calls on a field (``ev.verifications.append(…)``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WRITER = ROOT / "wizard" / "core" / "model.py"
MUTATORS = {"append", "extend", "insert", "pop", "remove", "clear", "update", "setdefault", "sort", "reverse"}


def _is_evidence(node: ast.expr, aliases: set[str]) -> bool:
    """``<x>.evidence`` or a name bound to one."""
    return (isinstance(node, ast.Attribute) and node.attr == "evidence") or (
        isinstance(node, ast.Name) and node.id in aliases
    )


def _aliases(function: ast.AST) -> set[str]:
    """Names in ``function`` bound to ``<x>.evidence`` (also ``ev, y = x.evidence, …``) or typed Evidence."""
    found: set[str] = set()
    if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        for arg in [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]:
            if getattr(arg, "annotation", None) is not None and "Evidence" in ast.unparse(arg.annotation):
                found.add(arg.arg)
    for node in ast.walk(function):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                found |= _bound_to_evidence(target, node.value)
    return found


def _bound_to_evidence(target: ast.expr, value: ast.expr | None) -> set[str]:
    if isinstance(target, ast.Name) and value is not None and _is_evidence(value, set()):
        return {target.id}
    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
        return {name for t, v in zip(target.elts, value.elts, strict=True) for name in _bound_to_evidence(t, v)}
    return set()


def _written_field(target: ast.expr, aliases: set[str]) -> bool:
    """``target`` is an evidence field, an item of one, or (in a tuple) contains one."""
    if isinstance(target, (ast.Tuple, ast.List)):
        return any(_written_field(t, aliases) for t in target.elts)
    if isinstance(target, ast.Starred):
        return _written_field(target.value, aliases)
    if isinstance(target, ast.Subscript):
        target = target.value
    return isinstance(target, ast.Attribute) and _is_evidence(target.value, aliases)


def _write_in(node: ast.AST, aliases: set[str]) -> bool:
    if isinstance(node, ast.Assign):
        return any(_written_field(t, aliases) for t in node.targets)
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        return _written_field(node.target, aliases)
    if isinstance(node, ast.Delete):
        return any(_written_field(t, aliases) for t in node.targets)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
        return bool(node.args) and _is_evidence(node.args[0], aliases)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
        return _written_field(node.func.value, aliases)
    return False


def evidence_writes(source: str) -> list[int]:
    """Line numbers in ``source`` that write an evidence field."""
    tree = ast.parse(source)
    scopes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]
    lines: set[int] = set()
    for scope in scopes:
        aliases = _aliases(scope)
        for node in ast.walk(scope):
            if _write_in(node, aliases):
                lines.add(node.lineno)
    return sorted(lines)


def sources() -> list[Path]:
    return sorted([*ROOT.joinpath("wizard").rglob("*.py"), *ROOT.joinpath("screens").rglob("*.py")])


@pytest.mark.parametrize(
    "source",
    [
        "session.evidence.api_key_masked = masked",
        "self.state.model.evidence.enforcement_mode = mode",
        "def f(self):\n    ev = self.evidence\n    ev.cn = cn",
        "def f(self):\n    ev, before = self.evidence, self.model.stage\n    ev.cn = cn",
        "def f(s):\n    ev = s.evidence\n    ev.key_path, ev.cn = a, b",
        "def f(s):\n    ev = s.evidence\n    ev.active_certificates += 1",
        "def f(ev: Evidence):\n    ev.cn = 'x'",
        "setattr(session.evidence, 'cn', 'x')",
        "session.evidence.verifications.append(row)",
        "def f(s):\n    ev = s.evidence\n    del ev.verifications[:-50]",
        "def f(s):\n    ev = s.evidence\n    ev.verifications[0] = row",
    ],
)
def test_the_scan_sees_each_way_of_writing_evidence(source):
    assert evidence_writes(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "fingerprint = session.evidence.fingerprint",
        "def f(s):\n    ev = s.evidence\n    s.state.certificate(ev.certificate_id).installed = True",
        "def f(s):\n    ev = s.evidence\n    x = ev.cn\n    y = [ev.cn]\n    y.append(1)",
        "session.model.record_key(cn='x')",
        "self.settings.base_url = None",
    ],
)
def test_the_scan_leaves_reading_evidence_alone(source):
    assert evidence_writes(source) == []


def test_only_the_onboarding_model_writes_evidence():
    found = []
    for path in sources():
        if path == WRITER:
            continue
        found += [f"{path.relative_to(ROOT)}:{line}" for line in evidence_writes(path.read_text())]
    assert found == [], "evidence is written outside wizard/core/model.py; call an Onboarding.record_… method"
