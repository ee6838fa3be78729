"""Toy RL tasks with ground truth: Curr-ReFT's three answer formats, an out-of-domain family, and
Infi-MMR's three kinds of input (text only, image + caption, image only).

Every row is what TRL's ``GRPOTrainer`` takes in the conversational format: a ``prompt`` list of
messages plus extra columns that TRL hands to the reward functions (``solution``: the truth as a
string, ``answer_type``: which checker applies). Vision rows also carry an ``image`` (a PIL image).

Curr-ReFT (its released code) rewrites each item three ways, from easy to strict:

- **judge**: "…Is the answer 7? Answer yes or no." (``answer_type="yes_no"``);
- **choice**: "…Options: A) 5 B) 7 C) 9 D) 4." (``answer_type="choice"``);
- **open**: the original question (``answer_type="math"``, math-verify decides).

The in-domain family is :mod:`infir_lib.data.arith` (multi-step word problems). Three out-of-domain
families are held out from every training stage, as Curr-ReFT holds out its counting set:
*counting* (several people each hold some items and the question asks for the total, a different
surface form of the same skill), *large* (the in-domain form from start values above every trained
one) and *new_items* (the in-domain form about things no training item names). Each has a difficulty dial (the number of steps); the chapter evaluates where the
measured curve puts the control arm off the floor and the ceiling.
"""

from __future__ import annotations

import random
import re
from typing import Iterable

from ..data.arith import ITEMS, NAMES, Problem, make_problem
from ..eval.generate import encode_prompt
from ..sft.data import token_rows

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


# Start values of the in-domain problems (and of every arithmetic item the toy base was trained on)
# are 2..9; the "large" family starts above that range.
LARGE_START = (10, 19)
FAMILIES = ("arith", "counting", "large", "new_items")
# Item nouns that no arithmetic item of training uses (one per entry of ITEMS, same order).
NEW_ITEMS = ("kites", "plums", "maps", "bells", "rings", "bowls", "hats", "nuts", "socks", "toys")


def new_items_problem(rng: random.Random, n_steps: int) -> Problem:
    """The in-domain problem form, its item noun swapped for one never trained on (:data:`NEW_ITEMS`)."""
    p = make_problem(rng, n_steps)
    old = next(item for item in ITEMS if re.search(rf"\b{item}\b", p.question))
    question = re.sub(rf"\b{old}\b", NEW_ITEMS[ITEMS.index(old)], p.question)
    return Problem(question, p.steps, p.answer, p.n_steps, family="new_items")


def large_problem(rng: random.Random, n_steps: int) -> Problem:
    """The in-domain problem form from a start value in :data:`LARGE_START` (above every trained start)."""
    lo, hi = LARGE_START
    while True:
        p = make_problem(rng, n_steps, max_start=hi)
        start = int(p.question.split(" has ", 1)[1].split(" ", 1)[0])
        if start >= lo:
            return Problem(p.question, p.steps, p.answer, p.n_steps, family="large")


def make_family(family: str, n: int, seed: int, steps: Iterable[int] = (1, 2)) -> list[Problem]:
    """``n`` seeded problems of ``family``: ``arith`` (in domain), or out of domain ``counting``
    (people's items summed: a surface form never trained on), ``large`` (start values above the
    trained range) or ``new_items`` (item nouns never trained on); ``steps`` cycles through the
    number of operations."""
    rng = random.Random(f"{family}-{seed}")
    steps = tuple(steps)
    if family == "arith":
        return [make_problem(rng, steps[i % len(steps)]) for i in range(n)]
    if family == "counting":
        return [counting_problem(rng, n_people=1 + steps[i % len(steps)]) for i in range(n)]
    if family == "large":
        return [large_problem(rng, steps[i % len(steps)]) for i in range(n)]
    if family == "new_items":
        return [new_items_problem(rng, steps[i % len(steps)]) for i in range(n)]
    raise KeyError(f"unknown task family {family!r}; families: {list(FAMILIES)}")


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


def mixed_chunks(stage_rows: list[list[dict]], n_stages: int, seed: int) -> list[list[dict]]:
    """The control arm on the curriculum's schedule: the shuffled rows (:func:`mixed_rows`) cut into
    ``n_stages`` consecutive chunks of equal size, so every stage mixes all formats."""
    rows = mixed_rows(stage_rows, seed)
    size, rest = divmod(len(rows), n_stages)
    if size == 0:
        raise ValueError(f"{len(rows)} rows cannot fill {n_stages} stages")
    return [rows[i * size + min(i, rest): (i + 1) * size + min(i + 1, rest)] for i in range(n_stages)]


def sft_pairs(rows: list[dict]) -> list[dict]:
    """SFT rows in TRL's prompt-completion format (text; see :func:`sft_token_rows` for what the
    cold start actually trains on)."""
    return [{"prompt": r["prompt"], "completion": [{"role": "assistant", "content": r["reference"]}]} for r in rows]


def generation_prompt_ids(tokenizer, prompt: list[dict]) -> list[int]:
    """The token ids a policy is sampled from: the chat template with the assistant header, tokenized
    alone, by the library's generator (:func:`infir_lib.eval.generate.encode_prompt`); TRL's GRPO
    tokenizes its prompts the same way."""
    return encode_prompt(tokenizer, prompt)


def sft_token_rows(tokenizer, rows: list[dict]) -> list[dict]:
    """Cold-start / self-improvement SFT rows, tokenized so that training sees the sampling context: the
    library's one SFT tokenization (:func:`infir_lib.sft.data.token_rows`) of each row's prompt followed by
    its reference as the assistant turn. The prompt ids are exactly :func:`generation_prompt_ids` (the
    assistant header's final ``"\\n\\n"`` stays one token even when ``"<think>"`` follows, which the joined
    text would cut into two); the loss covers the completion only (``completion_mask``)."""
    return token_rows(tokenizer, [{"messages": [*r["prompt"], {"role": "assistant", "content": r["reference"]}]}
                                  for r in rows])
