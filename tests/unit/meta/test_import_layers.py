"""The package's layers: a lower layer never imports a higher one, and no file-level import cycle.

Imports under ``if TYPE_CHECKING:`` are annotations only and are ignored; every other import,
including one deferred into a function, counts (a deferred import is still a dependency).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "trustbuild"

# Lowest first. A module may import its own layer or any lower one.
LAYERS: list[set[str]] = [
    {"errors", "_internal"},
    {"oci"},
    {"registry"},
    {"store"},
    {"sandbox"},
    {"builder"},
    {"sign"},
    {"attest"},
    {"policy"},
    {"pipeline", "api"},
    {"admission"},
    {"cli", "__main__"},
]


def _rank(top: str) -> int:
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"trustbuild.{top} is in no layer of this test: add it to LAYERS")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path) -> set[str]:
    """Absolute names of the trustbuild modules ``path`` imports at run time."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "trustbuild")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "trustbuild":
                found.add(target)
                # ``from trustbuild.x import y`` may name a submodule y
                for alias in node.names:
                    candidate = f"{target}.{alias.name}"
                    if _exists(candidate):
                        found.add(candidate)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {name for name in found if _exists(name)}


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    base = PACKAGE / rel
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_upward_import_between_layers() -> None:
    upward = []
    for module, targets in _graph().items():
        if module == "trustbuild":
            continue  # the package root re-exports the public API
        for target in targets:
            src, dst = _top(module), _top(target)
            if dst == "__init__" or src == dst:
                continue
            if _rank(dst) > _rank(src):
                upward.append(f"{module} -> {target}")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_import_cycle_between_packages() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, targets in _graph().items():
        for target in targets:
            if _top(module) != _top(target) and module != "trustbuild":
                edges[_top(module)].add(_top(target))
    assert not _cycles(edges)


def test_no_import_cycle_between_files() -> None:
    graph = _graph()
    # a package's __init__ importing its own submodules is not a cycle of files
    edges = {m: {t for t in ts if not m.startswith(t + ".") and t != m} for m, ts in graph.items()}
    assert not _cycles(edges)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            strong(v)
    return found


def test_the_checker_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
