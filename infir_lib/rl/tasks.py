"""Toy RL tasks with ground truth: Curr-ReFT's three answer formats, an out-of-domain family, and
Infi-MMR's three kinds of input (text only, image + caption, image only).

Every row is what TRL's ``GRPOTrainer`` takes in the conversational format: a ``prompt`` list of
messages plus extra columns that TRL hands to the reward functions (``solution``: the truth as a
string, ``answer_type``: which checker applies). Vision rows also carry an ``image`` (a PIL image).

Curr-ReFT (its released code) rewrites each item three ways, from easy to strict:

- **judge**: "…Is the answer 7? Answer yes or no." (``answer_type="yes_no"``);
- **choice**: "…Options: A) 5 B) 7 C) 9 D) 4." (``answer_type="choice"``);
- **open**: the original question (``answer_type="math"``, math-verify decides).

The in-domain family is :mod:`infir_lib.data.arith` (multi-step word problems). The out-of-domain
family, held out from every training stage as Curr-ReFT holds out its counting set, is *counting*:
several people each hold some items and the question asks for the total, a different surface form
of the same skill.
"""

from __future__ import annotations

import random
from typing import Iterable

from ..data.arith import ITEMS, NAMES, Problem, make_problem

FORMATS = ("judge", "choice", "open")
ANSWER_TYPE = {"judge": "yes_no", "choice": "choice", "open": "math"}
LETTERS = "ABCD"


def reasoning(p: Problem) -> str:
    return " ".join(p.steps)


def r1_response(think: str, answer: str) -> str:
    """The target format of every RL stage: ``<think>…</think><answer>…</answer>``."""
    return f"<think>{think}</think><answer>{answer}</answer>"


def counting_problem(rng: random.Random, n_people: int = 3, max_count: int = 5) -> Problem:
    """The held-out family: 'Ann has 2 pens. Ben has 3 pens. … How many pens do they have in all?'"""
    item = rng.choice(ITEMS)
    people = rng.sample(NAMES, n_people)
    counts = [rng.randint(1, max_count) for _ in people]
    sentences = [f"{who} has {k} {item}." for who, k in zip(people, counts)]
    sentences.append(f"How many {item} do they have in all?")
    steps, total = [], counts[0]
    for k in counts[1:]:
        steps.append(f"{total}+{k}={total + k}.")
        total += k
    return Problem(" ".join(sentences), steps, total, n_people - 1, family="counting")


def make_family(family: str, n: int, seed: int, steps: Iterable[int] = (1, 2)) -> list[Problem]:
    """``n`` seeded problems of ``family`` (``arith`` in domain, ``counting`` out of domain)."""
    rng = random.Random(f"{family}-{seed}")
    steps = tuple(steps)
    if family == "arith":
        return [make_problem(rng, steps[i % len(steps)]) for i in range(n)]
    if family == "counting":
        return [counting_problem(rng, n_people=1 + steps[i % len(steps)]) for i in range(n)]
    raise KeyError(f"unknown task family {family!r}; families: ['arith', 'counting']")


def _distractors(rng: random.Random, answer: int, k: int) -> list[int]:
    pool = [v for v in range(max(0, answer - 4), answer + 5) if v != answer]
    return rng.sample(pool, k)


def reformulate(p: Problem, fmt: str, rng: random.Random) -> dict:
    """One problem as a ``judge``/``choice``/``open`` RL row, with the cold-start reference response."""
    think = reasoning(p)
    if fmt == "judge":
        truth = rng.random() < 0.5
        shown = p.answer if truth else _distractors(rng, p.answer, 1)[0]
        text = f"{p.question} Is the answer {shown}? Answer yes or no."
        solution = "yes" if truth else "no"
    elif fmt == "choice":
        options = _distractors(rng, p.answer, 3) + [p.answer]
        rng.shuffle(options)
        letter = LETTERS[options.index(p.answer)]
        text = f"{p.question} Options: " + " ".join(f"{L}) {v}" for L, v in zip(LETTERS, options)) + "."
        solution = letter
    elif fmt == "open":
        text, solution = p.question, str(p.answer)
    else:
        raise KeyError(f"unknown format {fmt!r}; formats: {list(FORMATS)}")
    return {"prompt": [{"role": "user", "content": text}], "solution": solution, "answer_type": ANSWER_TYPE[fmt],
            "format": fmt, "family": p.family, "n_steps": p.n_steps,
            "reference": r1_response(think, solution)}


def format_rows(family: str, fmt: str, n: int, seed: int, steps: Iterable[int] = (1, 2)) -> list[dict]:
    """``n`` rows of one family in one answer format (seeded)."""
    rng = random.Random(f"{family}-{fmt}-{seed}")
    return [reformulate(p, fmt, rng) for p in make_family(family, n, seed, steps)]


def mixed_rows(stage_rows: list[list[dict]], seed: int) -> list[dict]:
    """The control arm: every stage's rows shuffled together (same items, no order)."""
    rows = [r for rows in stage_rows for r in rows]
    random.Random(seed).shuffle(rows)
    return rows


def sft_pairs(rows: list[dict]) -> list[dict]:
    """Cold-start / self-improvement SFT rows in TRL's prompt-completion format."""
    return [{"prompt": r["prompt"], "completion": [{"role": "assistant", "content": r["reference"]}]} for r in rows]
