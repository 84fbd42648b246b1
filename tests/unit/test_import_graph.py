"""The package's modules import each other without a cycle.

Read from the source with :mod:`ast`, not by importing: every ``import`` at module level
counts, including those under ``if TYPE_CHECKING:`` (a cycle hidden from the interpreter
is still two modules that cannot be understood one without the other). Imports inside
functions are left out: they are how an optional dependency or a rarely used command
(the demo, the Redis store) stays unloaded until needed.

``python tests/unit/test_import_graph.py`` prints the graph: each module, its lines,
and the package modules it imports.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Optional

import botocore_resilience

PACKAGE = "botocore_resilience"
ROOT = Path(botocore_resilience.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(current: str, is_package: bool, level: int, name: Optional[str]) -> str:
    """The absolute module name of ``from <level dots><name> import ...`` in ``current``."""
    if level == 0:
        return name or ""
    base = current.split(".")
    if not is_package:
        base.pop()  # a module's own package is one dot
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _top_level_imports(tree: ast.Module) -> list[ast.stmt]:
    """Import statements at module level, also inside module-level ``if``/``try`` blocks."""
    found: list[ast.stmt] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                pending.extend(handler.body)
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: {package modules it imports at module level}}``."""
    paths = {module_name(path): path for path in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _top_level_imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                assert isinstance(node, ast.ImportFrom)
                base = _resolve(name, is_package, node.level, node.module)
                # ``from . import x`` names a module x; ``from .m import f`` names m.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else base
                    for alias in node.names
                ]
            for target in targets:
                while target and target not in paths:  # ``import a.b.c`` -> a.b.c, a.b, a
                    target = target.rpartition(".")[0]
                if target.startswith(PACKAGE) and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One example path for each strongly connected group of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_package_imports_without_a_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_graph_sees_relative_and_type_checking_imports() -> None:
    # The checker itself: it must see what a cycle would be made of.
    graph = import_graph()
    assert "botocore_resilience.runtime" in graph["botocore_resilience.handlers"]
    assert "botocore_resilience.handlers" in graph["botocore_resilience.install"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_handlers_depend_on_the_runtime_not_on_install() -> None:
    graph = import_graph()
    assert "botocore_resilience.install" not in graph["botocore_resilience.handlers"]
    assert "botocore_resilience.global_install" not in graph["botocore_resilience.plugin"]


if __name__ == "__main__":
    for module, imports in sorted(import_graph().items()):
        path = ROOT.parent / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = ROOT.parent / module.replace(".", "/") / "__init__.py"
        lines = len(path.read_text(encoding="utf-8").splitlines())
        short = ", ".join(sorted(name.removeprefix(PACKAGE + ".") for name in imports))
        print(f"{module.removeprefix(PACKAGE + '.') or '__init__':28} {lines:5}  -> {short}")
