"""The chapter-4 experiments (InfiR App. A-D) at toy scale: training sets, test sets, one runner.

Every experiment fine-tunes the same toy base on different data over a few seeds and scores each
model on held-out toy items: exact final answers for arithmetic, unit tests in the sandbox for code.
Item seeds (30_000+) never overlap the seeds the training data was generated from.
"""

from __future__ import annotations

import random
import re
import statistics

from ..data.arith import Problem, make_problems
from ..synth.instructions import seed_code
from .data import arith_prompt
from .evaluate import arith_accuracy, generate

VAL_SEED, EASY_SEED, HARD_SEED, LONG_SEED, CODE_SEED, LONG_TRAIN_SEED = 30_001, 30_002, 30_003, 30_004, 40_001, 50_001


def test_sets(n: int = 60) -> dict[str, list[Problem]]:
    """Validation (1-3 steps), easy test (1-2 steps), hard test (3-4 steps)."""
    return {"val": make_problems(n, VAL_SEED, (1, 2, 3)), "easy": make_problems(n, EASY_SEED, (1, 2)),
            "hard": make_problems(n, HARD_SEED, (3, 4))}


def code_test_items(n: int = 30, steps: tuple[int, ...] = (1, 2)) -> list:
    rng = random.Random(CODE_SEED)
    return [seed_code(rng, steps[i % len(steps)], f"t{i}") for i in range(n)]


def code_pass_rate(model, tokenizer, items, timeout: float = 1.5, workers: int = 2) -> dict:
    """Share of held-out code tasks whose generated function passes its unit tests in the sandbox."""
    from ..eval.sandbox import run_programs

    replies = generate(model, tokenizer, [it.text for it in items], max_new_tokens=48)
    verdicts = run_programs(replies, workers=workers, progress=False, tests=[it.tests() for it in items],
                            timeout=timeout)
    statuses = [v.status for v in verdicts]
    passed = [int(s == "passed") for s in statuses]  # 0/1 per task, in item order (paired comparisons)
    return {"pass_rate": sum(passed) / len(items), "passed": passed, "statuses": statuses, "replies": replies}


def long_cot_solution(p_ops: list[tuple[str, int]], start: int, name: str, item: str) -> str:
    """A long step-by-step solution: restate, compute, check each step by the inverse operation."""
    lines, v = [f"{name} starts with {start} {item}."], start
    for i, (op, k) in enumerate(p_ops, 1):
        new = v + k if op == "+" else v - k
        inverse = f"{new}-{k}={v}" if op == "+" else f"{new}+{k}={v}"
        lines.append(f"Step {i}: {v}{op}{k}={new}. Check: {inverse}.")
        v = new
    lines.append(f"So {name} has {v} {item}. Answer: {v}")
    return " ".join(lines)


def long_cot_rows(n: int, seed: int = LONG_TRAIN_SEED, steps: tuple[int, ...] = (4, 5)) -> list[dict]:
    """The toy long-CoT set: hard (4-5 step) problems with long, self-checking solutions."""
    import re

    rows = []
    for p in make_problems(n, seed, steps):
        ops = [(m[1], int(m[2])) for m in re.findall(r"(-?\d+)([+\-])(\d+)=", " ".join(p.steps))]
        start = int(re.match(r"(\d+)", p.steps[0]).group(1))
        name, item = p.question.split(" has ")[0], p.question.split(" has ")[1].split(".")[0].split(" ", 1)[1]
        rows.append({"messages": [{"role": "user", "content": arith_prompt(p.question)},
                                  {"role": "assistant", "content": long_cot_solution(ops, start, name, item)}],
                     "answer": p.answer, "n_steps": p.n_steps})
    return rows


def mean_sd(xs: list[float]) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.3f}"
    return f"{statistics.fmean(xs):.3f} ± {statistics.pstdev(xs):.3f}"


def run_arm(name: str, rows: list[dict], seeds: list[int], evals: dict, overrides: dict | None = None,
            config: str = "configs/toy/sft.yaml") -> list[dict]:
    """Fine-tune on ``rows`` once per seed and score with each ``evals[name](model, tok) -> float``."""
    from . import run

    out = []
    for seed in seeds:
        res = run(config, {**(overrides or {}), "seed": seed, "data_seed": seed, "eval_n": 0}, rows=rows,
                  name="exp")
        model, tok = res.load_model(), res.load_tokenizer()
        rec = {"arm": name, "seed": seed, "rows": len(rows), "steps": res.metrics["steps"],
               "final_loss": res.metrics["final_loss"]}
        for key, fn in evals.items():
            rec[key] = fn(model, tok)
        out.append(rec)
    return out


def accuracy_on(problems, max_new_tokens: int = 48):
    return lambda model, tok: arith_accuracy(model, tok, problems, max_new_tokens)["accuracy"]


def correct_on(problems, max_new_tokens: int = 48, batch_size: int = 100):
    """An ``evals`` entry for :func:`run_arm`: the 0/1 outcome per problem, in item order (the scorecard
    compares arms item by item; the accuracy is the mean of the list). Batches of 100: a 1 M-parameter
    model's greedy decoding costs about the same per step for 32 or 100 rows, so a few hundred items stay cheap."""
    return lambda model, tok: arith_accuracy(model, tok, problems, max_new_tokens, per_item=True,
                                             batch_size=batch_size)["correct"]


def item_matrix(runs, arm: str, column: str, seeds: list[int]) -> list[list[float]]:
    """Seeds × items outcomes of one arm from :func:`run_arm` records (a DataFrame or a list of dicts),
    rows in the order of ``seeds`` so that two arms pair seed by seed and item by item."""
    records = runs.to_dict("records") if hasattr(runs, "to_dict") else list(runs)
    by_seed = {r["seed"]: r[column] for r in records if r["arm"] == arm}
    missing = [s for s in seeds if s not in by_seed]
    if missing:
        raise KeyError(f"arm {arm!r} has no run for seed(s) {missing} (column {column!r})")
    rows = [list(map(float, by_seed[s])) for s in seeds]
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"arm {arm!r}, column {column!r}: seeds scored different numbers of items "
                         f"{[len(r) for r in rows]}")
    return rows


FIRST_OPERAND = re.compile(r"\s*(-?\d+)\s*[-+*]")


def starts_from_question(problem: Problem, reply: str) -> bool:
    """Whether the reply's first equation starts from the number the question starts with.

    A diagnostic, not a score: a model that has learned the *form* of a solution but not to read
    the question writes a fixed template ("2-1=1. Answer: 1") whatever the numbers, and gets an
    item right only when the template's answer happens to be the true one.
    """
    start = re.match(r"(-?\d+)", problem.steps[0])
    first = FIRST_OPERAND.match(reply)
    return bool(start and first and first.group(1) == start.group(1))


def reads_question_on(problems, max_new_tokens: int = 48):
    """Share of greedy replies that start from the question's own starting number."""
    def score(model, tok):
        replies = generate(model, tok, [arith_prompt(p.question) for p in problems], max_new_tokens)
        return sum(starts_from_question(p, r) for p, r in zip(problems, replies)) / max(1, len(problems))
    return score
