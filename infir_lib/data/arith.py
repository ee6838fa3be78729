"""Toy multi-step arithmetic word problems with step-by-step solutions (a GSM8K stand-in).

Difficulty is a dial: the number of steps and the size of the numbers. A tiny model trained for a
few CPU minutes learns the 1-step items well and the 3-step ones poorly (chapter 2 measures the curve), so
the later chapters can show real differences between methods. Every item carries its ground truth.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import asdict, dataclass
from typing import Literal

NAMES = ["Ann", "Ben", "Cat", "Dan", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Lea", "Max", "Ned", "Ola", "Pam"]
ITEMS = ["pens", "apples", "books", "coins", "cards", "shells", "stamps", "marbles", "eggs", "cups"]
VERBS = {"+": ["buys", "finds", "gets", "wins"], "-": ["gives away", "loses", "sells", "eats"],
         "*": ["multiplies the pile by"]}


@dataclass(frozen=True)
class Problem:
    question: str
    steps: list[str]
    answer: int
    n_steps: int
    family: str = "arith"

    @property
    def solution(self) -> str:
        """Step-by-step solution ending in the GSM8K-style final line."""
        return " ".join(self.steps) + f" Answer: {self.answer}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["solution"] = self.solution
        return d


# One problem in HELDOUT_EVERY (by a hash of its question) is reserved for the competence gate
# (:mod:`infir_lib.eval.competence`): every generator that feeds a training mix draws from the "train"
# split, so a gate item is never trained on, whatever the seed or the number of documents.
HELDOUT_EVERY = 10
Split = Literal["train", "heldout", "any"]


def is_heldout(question: str) -> bool:
    """Whether ``question`` belongs to the held-out split (a fixed hash, not a seed: true by construction)."""
    return int(hashlib.sha256(question.encode()).hexdigest()[:8], 16) % HELDOUT_EVERY == 0


def make_problem(rng: random.Random, n_steps: int, max_start: int = 9, max_operand: int = 9,
                 allow_multiply: bool = False, split: Split = "train") -> Problem:
    """One problem with ``n_steps`` operations; values never go negative.

    ``split="train"`` (the default, used by every training source) redraws held-out questions;
    ``"heldout"`` draws only those (the competence gate); ``"any"`` does not look.
    """
    if split not in ("train", "heldout", "any"):
        raise ValueError(f"split must be 'train', 'heldout' or 'any', got {split!r}")
    while True:
        p = _draw_problem(rng, n_steps, max_start, max_operand, allow_multiply)
        if split == "any" or is_heldout(p.question) == (split == "heldout"):
            return p


def _draw_problem(rng: random.Random, n_steps: int, max_start: int, max_operand: int,
                  allow_multiply: bool) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    value = rng.randint(2, max_start)
    sentences = [f"{name} has {value} {item}."]
    steps = []
    ops = ["+", "-"] + (["*"] if allow_multiply else [])
    for _ in range(n_steps):
        op = rng.choice(ops)
        if op == "-" and value <= 1:
            op = "+"
        if op == "*":
            k = rng.randint(2, 3)
            sentences.append(f"{name} {VERBS['*'][0]} {k}.")
            steps.append(f"{value}*{k}={value * k}.")
            value *= k
            continue
        k = rng.randint(1, max_operand if op == "+" else min(max_operand, value - 1) or 1)
        verb = rng.choice(VERBS[op])
        sentences.append(f"{name} {verb} {k}.")
        new = value + k if op == "+" else value - k
        steps.append(f"{value}{op}{k}={new}.")
        value = new
    sentences.append(f"How many {item} does {name} have now?")
    return Problem(" ".join(sentences), steps, value, n_steps)


def make_problems(n: int, seed: int, steps: tuple[int, ...] = (1, 2, 3), **kwargs) -> list[Problem]:
    """``n`` problems with step counts cycling through ``steps`` (seeded, reproducible)."""
    rng = random.Random(seed)
    return [make_problem(rng, steps[i % len(steps)], **kwargs) for i in range(n)]


def format_example(p: Problem) -> str:
    """The pre-training text form: question, reasoning, final answer."""
    return f"Question: {p.question}\nSolution: {p.solution}"


_STEP = re.compile(r"^(\d+)([+\-*])(\d+)=(\d+)\.$")
_OP_WORDS = {"+": "plus", "-": "minus", "*": "times"}


def format_example_plain(p: Problem) -> str:
    """Another style of worked problem (chapter 2's synthetic data): no ``Question:``/``Solution:``/``Answer:``
    lines, steps written in words. A model that scores better on the benchmark after seeing this style has
    learned arithmetic, not the benchmark's template."""
    words = []
    for step in p.steps:
        a, op, b, c = _STEP.match(step).groups()
        words.append(f"{a} {_OP_WORDS[op]} {b} makes {c}.")
    return f"Problem. {p.question}\nWorking. {' '.join(words)} So the result is {p.answer}."


def format_prompt(question: str) -> str:
    """The zero-shot prompt a base model is asked with: :func:`format_example` up to its solution."""
    return f"Question: {question}\nSolution:"
