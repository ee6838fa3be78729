"""The chapter-4 experiments (InfiR App. A-D) at toy scale: training sets, test sets, one runner.

Every experiment fine-tunes the same starting model on different data over a few seeds and scores
each model on held-out toy items: exact final answers for arithmetic, unit tests in the sandbox for
code. Arithmetic test items come from the held-out split of :mod:`infir_lib.data.arith` (no training
source ever draws them); difficulty is a dial (the number of steps), and each claim's evaluation
level is chosen from its control arm's measured per-level curve (:func:`choose_level`).

The runner (:func:`run_arms`) trains arms x seeds in worker processes, one torch thread each
(:func:`infir_lib.parallel.run_parallel`); a run is seeded and cached by its config and rows, so its
result does not depend on which process built it. Evaluations are picklable (``functools.partial``
of the functions below), so they run in the worker next to the model.
"""

from __future__ import annotations

import functools
import math
import random
import re
import statistics
import time
from typing import Callable, Sequence

from ..data.arith import Problem, make_problem, make_problems
from ..eval.sandbox import run_programs
from ..parallel import run_parallel
from ..report.verdicts import level_in_band
from ..synth.instructions import seed_code
from . import run as run_sft
from .data import arith_prompt
from .evaluate import arith_accuracy, generate

VAL_SEED, EASY_SEED, HARD_SEED, LONG_SEED, CODE_SEED, LONG_TRAIN_SEED = 30_001, 30_002, 30_003, 30_004, 40_001, 50_001


def test_sets(n: int = 60) -> dict[str, list[Problem]]:
    """Validation (1-3 steps), easy test (1-2 steps), hard test (3-4 steps)."""
    return {"val": make_problems(n, VAL_SEED, (1, 2, 3)), "easy": make_problems(n, EASY_SEED, (1, 2)),
            "hard": make_problems(n, HARD_SEED, (3, 4))}


def heldout_problems(n_steps: int, n: int, tag: str = "test") -> list[Problem]:
    """``n`` held-out problems with ``n_steps`` steps (seeded by ``tag`` and the level; never trained on)."""
    rng = random.Random(f"sft-{tag}-{n_steps}")
    return [make_problem(rng, n_steps, split="heldout") for _ in range(n)]


def level_sets(levels: Sequence[int], n: int, tag: str) -> dict[int, list[Problem]]:
    """One held-out set per level (number of steps): what a per-level curve is measured on."""
    return {k: heldout_problems(k, n, tag) for k in levels}


def choose_level(curve: dict, lo: float = 0.15, hi: float = 0.85):
    """The evaluation level a claim is decided on, from its control arm's per-level accuracy.

    The rule, fixed before any arm is compared: among the levels where the control scores between
    ``lo`` and ``hi`` (inclusive), the one nearest 50% (where a paired comparison of 0/1 outcomes has
    the most disagreeing items to work with); on a tie the harder (later) level. ``None`` when no
    level qualifies: every level is at the floor or the ceiling for the control, and the claim is
    untestable at toy scale.
    """
    i = level_in_band(list(curve.values()), lo, hi, ties="last")
    return list(curve)[i] if i is not None else None


def code_test_items(n: int = 30, steps: tuple[int, ...] = (1, 2)) -> list:
    rng = random.Random(CODE_SEED)
    return [seed_code(rng, steps[i % len(steps)], f"t{i}") for i in range(n)]


TEST_INPUTS = (0, 1, 5, 12)
PASSED_RE = re.compile(r"passed (\d+) of (\d+)")


def counting_tests(item, inputs: tuple[int, ...] = TEST_INPUTS) -> str:
    """A test block that runs every unit test (not only up to the first failure) and fails unless all pass.

    The sandbox's judge reports the first failing assertion; this block has one, whose message says
    how many tests passed, so one sandboxed run gives both "passed" and the share of tests passed.
    A call that raises or crashes counts as a failed test.
    """
    cases = ", ".join(f"({x}, {item.apply(x)})" for x in inputs)
    return "\n".join([
        "_n = 0",
        f"for _x, _want in [{cases}]:",
        "    try:",
        f"        if {item.fname}(_x) == _want:",
        "            _n += 1",
        "    except Exception:",
        "        pass",
        f"assert _n == {len(inputs)}, f'passed {{_n}} of {len(inputs)}'"])


def compiles(code: str) -> bool:
    """Whether a reply is valid Python (compiled, never run, so it is safe outside the sandbox)."""
    try:
        compile(code, "<reply>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def tests_passed_share(verdict, n_tests: int = len(TEST_INPUTS)) -> float:
    """Share of a task's unit tests the reply passed, read from the verdict of :func:`counting_tests`."""
    if verdict.status == "passed":
        return 1.0
    m = PASSED_RE.search(verdict.failing_assertion or "")
    return int(m.group(1)) / int(m.group(2)) if m else 0.0


def code_pass_rate(model, tokenizer, items, timeout: float = 1.5, workers: int = 8) -> dict:
    """Held-out code tasks: per task (item order, for paired comparisons) whether the generated function
    passes all its unit tests in the sandbox (``passed``), whether it compiles (``compiles``) and the
    share of its tests it passes (``tests_share``). ``workers`` sandboxed processes at a time: each
    one mostly waits for its process to start, so more workers than cores pay off."""
    replies = generate(model, tokenizer, [it.text for it in items], max_new_tokens=48)
    verdicts = run_programs(replies, workers=workers, progress=False, tests=[counting_tests(it) for it in items],
                            timeout=timeout)
    statuses = [v.status for v in verdicts]
    passed = [int(s == "passed") for s in statuses]  # 0/1 per task, in item order (paired comparisons)
    return {"pass_rate": sum(passed) / len(items), "passed": passed, "statuses": statuses, "replies": replies,
            "compiles": [int(compiles(r)) for r in replies], "tests_share": [tests_passed_share(v) for v in verdicts]}


def _code_scores(model, tok, items, timeout: float = 1.5, workers: int = 8) -> dict:
    out = code_pass_rate(model, tok, items, timeout, workers)
    return {k: out[k] for k in ("passed", "compiles", "tests_share", "statuses")}


def code_scores_on(items, timeout: float = 1.5, workers: int = 8) -> Callable:
    """An ``evals`` entry for :func:`run_arms`: the per-task code scores of :func:`code_pass_rate`."""
    return functools.partial(_code_scores, items=list(items), timeout=timeout, workers=workers)


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


def long_cot_text(p: Problem) -> str:
    """The long, self-checking solution of a toy problem (:func:`long_cot_solution` of its steps)."""
    ops = [(m[1], int(m[2])) for m in re.findall(r"(-?\d+)([+\-])(\d+)=", " ".join(p.steps))]
    start = int(re.match(r"(\d+)", p.steps[0]).group(1))
    name, item = p.question.split(" has ")[0], p.question.split(" has ")[1].split(".")[0].split(" ", 1)[1]
    return long_cot_solution(ops, start, name, item)


def reply_budget(problems: Sequence[Problem], tokenizer, slack: float = 1.25) -> int:
    """Generation budget for long-CoT replies: the longest reference solution of ``problems`` in tokens
    (:func:`long_cot_text`, plus the end-of-turn token) times ``slack``, so a model that writes the
    reference's style is never cut off before its answer."""
    if not problems:
        raise ValueError("reply_budget needs at least one problem")
    longest = max(len(tokenizer(long_cot_text(p), add_special_tokens=False)["input_ids"]) for p in problems)
    return math.ceil((longest + 1) * slack)


def long_cot_rows(n: int, seed: int = LONG_TRAIN_SEED, steps: tuple[int, ...] = (4, 5)) -> list[dict]:
    """The toy long-CoT set: hard (4-5 step) problems with long, self-checking solutions."""
    return [{"messages": [{"role": "user", "content": arith_prompt(p.question)},
                          {"role": "assistant", "content": long_cot_text(p)}],
             "answer": p.answer, "n_steps": p.n_steps} for p in make_problems(n, seed, steps)]


def mean_sd(xs: list[float]) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.3f}"
    return f"{statistics.fmean(xs):.3f} ± {statistics.pstdev(xs):.3f}"


def train_and_score(name: str, rows: list[dict], seed: int, overrides: dict | None = None, evals: dict | None = None,
                    config: str = "configs/toy/sft.yaml") -> dict:
    """One run of an arm: fine-tune on ``rows`` with ``seed`` (cached), then ``evals[key](model, tok)``.

    ``cpu_seconds`` records what each part cost in this process (``"train"``: the run, or reading it back
    from the cache; then one entry per evaluation), so that a chapter can see where its time goes."""
    t0 = time.process_time()
    res = run_sft(config, {**(overrides or {}), "seed": seed, "data_seed": seed, "eval_n": 0}, rows=rows, name="exp")
    rec = {"arm": name, "seed": seed, "rows": len(rows), "steps": res.metrics["steps"],
           "epochs": res.metrics.get("epochs"), "final_loss": res.metrics["final_loss"],
           "losses": [h["loss"] for h in res.history if "loss" in h]}
    cpu = {"train": time.process_time() - t0}
    if evals:
        model, tok = res.load_model(), res.load_tokenizer()
        for key, fn in evals.items():
            t0 = time.process_time()
            rec[key] = fn(model, tok)
            cpu[key] = time.process_time() - t0
    rec["cpu_seconds"] = cpu
    return rec


def run_arms(arms: dict[str, tuple[list[dict], dict]], seeds: Sequence[int] | dict[str, Sequence[int]],
             evals: dict | None = None, *, arm_evals: dict[str, dict] | None = None,
             config: str = "configs/toy/sft.yaml", workers: int | None = None) -> list[dict]:
    """Every arm x seed (``arms[name] = (rows, overrides)``), trained and scored in worker processes.

    ``seeds``: one list for every arm, or a dict giving each arm its own (an exploratory arm may run
    one seed). ``evals`` score every run, ``arm_evals[name]`` only that arm's runs (e.g. the control's
    per-level curve); both map a column name to a picklable ``fn(model, tok)`` (the ``*_on`` helpers
    of this module). One torch thread per worker, ``workers`` = cores by default; records come back
    in arms x seeds order. Runs already in the cache are read back, not retrained.
    """
    def arm_seeds(name):
        if isinstance(seeds, dict):
            if name not in seeds:
                raise KeyError(f"no seeds given for arm {name!r} (seeds has {sorted(seeds)})")
            return list(seeds[name])
        return list(seeds)

    calls = [dict(name=name, rows=rows, seed=seed, overrides=overrides, config=config,
                  evals={**(evals or {}), **((arm_evals or {}).get(name) or {})})
             for name, (rows, overrides) in arms.items() for seed in arm_seeds(name)]
    # longest runs first, so that no worker is left with a long run at the end while the other idles
    order = sorted(range(len(calls)), key=lambda i: -_run_cost(calls[i]["rows"], calls[i]["overrides"] or {}))
    done = run_parallel(train_and_score, [calls[i] for i in order], threads=1, workers=workers)
    out = [None] * len(calls)
    for i, rec in zip(order, done):
        out[i] = rec
    return out


def _run_cost(rows: list[dict], overrides: dict, batch: int = 16) -> float:
    """A rough cost of one run (optimizer steps x characters per row): only orders the calls."""
    b = overrides.get("per_device_train_batch_size", batch)
    steps = overrides.get("max_steps", -1)
    if not steps or steps <= 0:
        steps = overrides.get("num_train_epochs", 1) * -(-len(rows) // b)
    chars = statistics.fmean(len(str(r.get("messages", r))) for r in rows) if rows else 0
    return steps * b * chars


def run_arm(name: str, rows: list[dict], seeds: list[int], evals: dict, overrides: dict | None = None,
            config: str = "configs/toy/sft.yaml") -> list[dict]:
    """One arm over ``seeds`` in this process (see :func:`run_arms` for several arms in parallel)."""
    return [train_and_score(name, rows, seed, overrides, evals, config) for seed in seeds]


def _accuracy(model, tok, problems, max_new_tokens: int = 48, batch_size: int = 100) -> float:
    return arith_accuracy(model, tok, problems, max_new_tokens, batch_size=batch_size)["accuracy"]


def _correct(model, tok, problems, max_new_tokens: int = 48, batch_size: int = 100) -> list[int]:
    return arith_accuracy(model, tok, problems, max_new_tokens, per_item=True, batch_size=batch_size)["correct"]


def _curve(model, tok, sets, max_new_tokens: int = 48, batch_size: int = 100) -> dict:
    return {level: _accuracy(model, tok, problems, max_new_tokens, batch_size) for level, problems in sets.items()}


def accuracy_on(problems, max_new_tokens: int = 48) -> Callable:
    """An ``evals`` entry: exact-answer accuracy on ``problems``."""
    return functools.partial(_accuracy, problems=list(problems), max_new_tokens=max_new_tokens)


def correct_on(problems, max_new_tokens: int = 48, batch_size: int = 100) -> Callable:
    """An ``evals`` entry for :func:`run_arms`: the 0/1 outcome per problem, in item order (the scorecard
    compares arms item by item; the accuracy is the mean of the list). Batches of 100: a 1 M-parameter
    model's greedy decoding costs about the same per step for 32 or 100 rows, so a few hundred items stay cheap."""
    return functools.partial(_correct, problems=list(problems), max_new_tokens=max_new_tokens, batch_size=batch_size)


def curve_on(sets: dict[int, list[Problem]], max_new_tokens: int = 48) -> Callable:
    """An ``evals`` entry: accuracy per level on :func:`level_sets` (what :func:`choose_level` reads)."""
    return functools.partial(_curve, sets=dict(sets), max_new_tokens=max_new_tokens)


def loss_plateau(history: list[dict], steps_per_epoch: int, tol: float = 0.1) -> dict:
    """Whether a run's training loss has flattened: the mean loss of its last epoch is less than ``tol``
    (relative) below the mean of the epoch before. Needs a loss logged every step (``logging_steps=1``);
    a run shorter than two epochs has not shown a plateau."""
    losses = [h["loss"] for h in history if "loss" in h]
    k = max(1, int(steps_per_epoch))
    if len(losses) < 2 * k:
        return {"last_epoch_loss": statistics.fmean(losses) if losses else None, "previous_epoch_loss": None,
                "relative_drop": None, "plateaued": False}
    last, prev = statistics.fmean(losses[-k:]), statistics.fmean(losses[-2 * k: -k])
    drop = (prev - last) / prev if prev > 0 else 0.0
    return {"last_epoch_loss": last, "previous_epoch_loss": prev, "relative_drop": drop, "plateaued": drop < tol}


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


def _reads_question(model, tok, problems, max_new_tokens: int = 48) -> float:
    replies = generate(model, tok, [arith_prompt(p.question) for p in problems], max_new_tokens)
    return sum(starts_from_question(p, r) for p, r in zip(problems, replies)) / max(1, len(problems))


def reads_question_on(problems, max_new_tokens: int = 48) -> Callable:
    """Share of greedy replies that start from the question's own starting number."""
    return functools.partial(_reads_question, problems=list(problems), max_new_tokens=max_new_tokens)
