"""The library's own import graph, read from the source (nothing is imported).

One node per file of ``infir_lib`` and an edge for every ``import`` / ``from ... import`` of another
library file, at module level or inside a function (``if TYPE_CHECKING:`` blocks excepted: they never
run). Two users: a stage's cache key digests the source of every module its entry point reaches
(:func:`reachable`), so an edit anywhere on that path rebuilds the artifact; and the test that keeps
the graph free of cycles.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent


def module_files() -> dict[str, Path]:
    """``infir_lib.x.y`` -> its source file, for every module and package of the library."""
    out = {}
    for f in sorted(PACKAGE_DIR.rglob("*.py")):
        name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = f
    return out


def module_file(module: str) -> Path:
    """The source file of ``infir_lib.x.y`` (without importing it)."""
    parts = module.split(".")
    if parts[0] != "infir_lib":
        raise ValueError(f"{module}: only infir_lib modules are part of a stage's code")
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise ValueError(f"{module}: no such module in infir_lib (a stage's code names modules that exist)")


def targets(modules: dict[str, Path], importer: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The library modules one import statement of ``importer`` loads (a name imported from a package
    counts as its submodule when there is one, else as the package)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in modules]
    package = importer if modules[importer].name == "__init__.py" else importer.rpartition(".")[0]
    if node.level:
        base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in modules]
    whole = [mod] if mod in modules and len(subs) < len(node.names) else []
    return whole + subs


def type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (imports there never run)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _names_type_checking(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def _names_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING`` (read without ``ast.unparse``: the graph is read on
    every cache lookup's first use in a process)."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    """(module -> library modules it imports, (a, b) -> 'file:line' of the first such import)."""
    modules = module_files()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    where: dict[tuple[str, str], str] = {}
    for m, f in modules.items():
        tree = ast.parse(f.read_text(), str(f))
        skip = type_checking_blocks(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skip:
                for t in targets(modules, m, node):
                    if t != m:
                        edges[m].add(t)
                        where.setdefault((m, t), f"{f.relative_to(ROOT)}:{node.lineno}")
    return edges, where


@functools.lru_cache(maxsize=None)
def _edges() -> dict[str, frozenset[str]]:
    return {m: frozenset(ts) for m, ts in import_graph()[0].items()}


def reachable(roots: tuple[str, ...], stop: Callable[[str], bool] = lambda m: False) -> tuple[str, ...]:
    """``roots`` and every library module they import, directly or not (sorted); the walk does not go on
    from a module for which ``stop`` is true. The graph is read once per process: the book's code does not
    change while it runs."""
    edges, seen, todo = _edges(), set(), list(roots)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        if m not in edges:
            raise ValueError(f"{m}: no such module in infir_lib")
        seen.add(m)
        if not stop(m):
            todo.extend(edges[m])
    return tuple(sorted(seen))
