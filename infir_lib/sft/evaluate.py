"""Greedy generation and the toy scores the SFT experiments compare (exact final answer, tests passed).

Batched greedy decoding with left padding; a response ends at ``<|eot_id|>``. The toy answer is the
integer after ``Answer:`` (the format every toy solution ends with), so scoring is exact.
"""

from __future__ import annotations

from typing import Iterable

from ..data.arith import Problem
from ..eval.extract import toy_answer
from ..eval.generate import generate as generate_replies
from .data import arith_prompt


def final_answer(text: str) -> int | None:
    """The integer the reply states after its last ``Answer:`` (the book's one toy rule,
    :func:`infir_lib.eval.extract.toy_answer`), or None."""
    return toy_answer(text)


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 64, batch_size: int = 32) -> list[str]:
    """Greedy assistant replies to single-turn user ``prompts`` (chat template, generation prompt), through
    the library's one batched generator (:func:`infir_lib.eval.generate.generate`): the context SFT trains
    every reply after (:func:`infir_lib.sft.data.reply_example`), whatever the reply starts with."""
    return generate_replies(model, tokenizer, list(prompts), max_new_tokens=max_new_tokens, chat=True,
                            batch_size=batch_size, fit_context=False)


def arith_accuracy(model, tokenizer, problems: Iterable[Problem], max_new_tokens: int = 64,
                   per_item: bool = False, batch_size: int = 32) -> dict:
    """Exact-answer accuracy overall and per step count, plus the replies (for inspection); with
    ``per_item`` also ``correct``, the 0/1 outcome per item in item order (what the scorecard's paired
    comparisons need)."""
    problems = list(problems)
    replies = generate(model, tokenizer, [arith_prompt(p.question) for p in problems], max_new_tokens, batch_size)
    correct = [final_answer(r) == p.answer for r, p in zip(replies, problems)]
    by_steps: dict[int, list[bool]] = {}
    for p, c in zip(problems, correct):
        by_steps.setdefault(p.n_steps, []).append(c)
    out = {"accuracy": sum(correct) / max(1, len(correct)), "n": len(correct)}
    if per_item:
        out["correct"] = [int(c) for c in correct]
    out.update({f"acc_{k}step": sum(v) / len(v) for k, v in sorted(by_steps.items())})
    out["replies"] = replies
    return out
