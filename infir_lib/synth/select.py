"""Rejection sampling, sandbox verification, rule filters, labels and diversity sampling (§3.1, App. A-C).

- Math/reasoning: every candidate gets a reward; the highest-scored one is kept (ties: the first).
  Toy reward = a step verifier (a process reward: each equation recomputed and checked to continue
  from the previous result and from the question's numbers); full = an open reward model by id.
- Code: every candidate runs in the sandbox against the instruction's unit tests; a candidate that
  passes is kept, failures and timeouts are dropped and counted (App. C).
- Rules: a reasoning reply must show its steps (App. A; :func:`shows_steps`); a code reply must define the function.
- Labels: domain (rules on the instruction), difficulty on the five-level scale of App. B
  (very easy ... very hard), quality (the reward or the verdict).
- Diversity sampling: at most ``per_domain`` rows per domain, drawn round-robin across difficulty
  levels so no level crowds the others out.
"""

from __future__ import annotations

import random
import re

from ..eval.extract import toy_answer
from .instructions import MathInstruction

DIFFICULTY_LABELS = ["very easy", "easy", "medium", "hard", "very hard"]
STEP_RE = re.compile(r"(-?\d+)\s*([+\-*])\s*(-?\d+)\s*=\s*(-?\d+)")


def step_reward(ins: MathInstruction, response: str) -> float:
    """Share of the expected steps that are right and chained, times 1 if the final answer follows.

    It reads the question (start value and operations) the way a process reward model does, but
    not the ground-truth answer: a wrong equation, a broken chain or a final line that does not
    follow from the last step each lower the score.
    """
    steps = STEP_RE.findall(response)
    answer = toy_answer(response)  # the last "Answer: N", the book's one toy rule
    if answer is None:
        return 0.0
    good, v = 0, ins.start
    for i, (a, op, b, c) in enumerate(steps):
        a, b, c = int(a), int(b), int(c)
        true = a + b if op == "+" else a - b if op == "-" else a * b
        expected_op = ins.ops[i] if i < len(ins.ops) else None
        if true == c and a == v and expected_op == (op, b):
            good += 1
        v = c
    denom = max(len(ins.ops), len(steps))
    final_ok = bool(steps) and answer == int(steps[-1][3])
    return (good / denom) * (1.0 if final_ok else 0.5) if denom else 0.0


def pick_best(scores: list[float]) -> int:
    """Rejection sampling's choice: the index of the highest score (the first one on a tie)."""
    if not scores:
        raise ValueError("no candidates to choose from")
    best = 0
    for i, s in enumerate(scores):
        if s > scores[best]:
            best = i
    return best


def has_reasoning_steps(response: str, min_steps: int = 1) -> bool:
    """The App. A rule: a reasoning reply must contain its steps, not just an answer."""
    return len(STEP_RE.findall(response)) >= min_steps


NUMBERED_STEP = re.compile(r"(?m)^\s*(?:Step\s*\d+|\d+[.)])")


def shows_steps(response: str, min_steps: int = 1) -> bool:
    """The rule filter on a kept reasoning reply (App. A), at every scale: at least ``min_steps`` equations
    (the toy teacher's "3+4=7." steps), or at least ``max(2, min_steps)`` numbered step lines ("Step 1",
    "1.", "2)"), the form an LLM writes its steps in."""
    return has_reasoning_steps(response, min_steps) or len(NUMBERED_STEP.findall(response)) >= max(2, min_steps)


def defines_function(ins, code: str | None) -> bool:
    """A code reply must define the task's function (any function when the task names none) and return."""
    name = getattr(ins, "fname", None)
    if not code:
        return False
    found = f"def {name}(" in code if name else re.search(r"(?m)^\s*def \w+\(", code) is not None
    return found and "return" in code


def label_domain(text: str) -> str:
    """Domain from the instruction text (rules, as the paper's seed labels are mapped by rules)."""
    return "code" if re.search(r"\bPython\b|\bfunction\b|\bdef\b", text) else "math"


def difficulty_score(ins) -> int:
    """Steps, plus one for a multiplication (a deeper operation); never lower for more steps."""
    return ins.n_steps + (1 if any(op == "*" for op, _ in ins.ops) else 0)


def difficulty_label(score: int) -> str:
    """Five levels as in App. B: 1 -> very easy, 2 -> easy, 3 -> medium, 4 -> hard, 5+ -> very hard."""
    return DIFFICULTY_LABELS[max(0, min(len(DIFFICULTY_LABELS) - 1, score - 1))]


def diversity_sample(rows: list[dict], per_domain: int, seed: int) -> list[dict]:
    """Up to ``per_domain`` rows per domain, round-robin over difficulty levels (seeded)."""
    rng = random.Random(seed)
    out = []
    for domain in sorted({r["domain"] for r in rows}):
        buckets: dict[str, list[dict]] = {}
        for r in rows:
            if r["domain"] == domain:
                buckets.setdefault(r["difficulty"], []).append(r)
        for b in buckets.values():
            rng.shuffle(b)
        levels = [lvl for lvl in DIFFICULTY_LABELS if lvl in buckets]
        taken: list[dict] = []
        while len(taken) < per_domain and any(buckets[lvl] for lvl in levels):
            for lvl in levels:
                if buckets[lvl] and len(taken) < per_domain:
                    taken.append(buckets[lvl].pop())
        out += taken
    return out
