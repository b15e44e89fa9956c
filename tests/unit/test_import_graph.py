"""No import circles in complaw: the module graph, read from the source, has no cycle.

Every `import` counts, lazy ones inside functions included. Importing `a.b.c` also runs the
`__init__` of the packages `a.b` and `a` unless they are already being imported, i.e. unless they
contain the importing module: those packages count as imported too.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _modules(root: Path, package: str) -> dict[str, Path]:
    """Module name -> file, for every module of `package` under `root` (a package's __init__
    is the package)."""
    names = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _ancestors(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _type_checking(node: ast.AST) -> bool:
    """An `if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`) block."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules that importing it (or calling its functions) imports."""
    modules = _modules(root, package)
    graph = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {id(n) for block in ast.walk(tree) if _type_checking(block)
                       for stmt in block.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in typing_only:  # `if TYPE_CHECKING:` imports never run
                continue
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), here)
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                            for a in node.names}
        implied = set().union(*map(_ancestors, targets)) - _ancestors(name)
        graph[name] = {t for t in targets | implied if t in modules and t != name}
    return graph


def circles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components with more than one module."""
    reach = {}
    for start in graph:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        reach[start] = seen
    return {frozenset({m for m in reach[n] if n in reach[m]} | {n})
            for n in graph if any(n in reach[m] for m in graph[n])}


def test_complaw_has_no_import_circle():
    found = circles(import_graph(SRC, "complaw"))
    assert not found, "import circles: " + "; ".join(" <-> ".join(sorted(c)) for c in found)


def test_laws_submodules_never_import_the_package():
    """complaw.laws re-exports its submodules: one that imported the package would close a
    circle through it."""
    graph = import_graph(SRC, "complaw")
    assert not [m for m in graph if m.startswith("complaw.laws.") and "complaw.laws" in graph[m]]


def test_checker_finds_direct_lazy_and_package_init_circles(tmp_path):
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import f\n",
        "pkg/b.py": "def f():\n    from pkg import a\n",      # lazy: a <-> b
        "pkg/config.py": "def g():\n    import pkg.sub.leaf\n",  # runs pkg/sub/__init__
        "pkg/sub/__init__.py": "from pkg.sub import heavy\n",
        "pkg/sub/heavy.py": "from pkg.sub.leaf import x\nfrom pkg.config import g\n",
        "pkg/sub/leaf.py": "x = 1\n",
        "pkg/c.py": "from . import a\n",                      # imports into a circle: not in it
        "pkg/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import e\n",
        "pkg/e.py": "from pkg import d\n",                     # d -> e for types only: no circle
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert circles(import_graph(tmp_path, "pkg")) == {
        frozenset({"pkg.a", "pkg.b"}),
        frozenset({"pkg.config", "pkg.sub", "pkg.sub.heavy"}),
    }
