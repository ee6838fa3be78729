"""Greedy generation and the toy scores the SFT experiments compare (exact final answer, tests passed).

Batched greedy decoding with left padding; a response ends at ``<|eot_id|>``. The toy answer is the
integer after ``Answer:`` (the format every toy solution ends with), so scoring is exact.
"""

from __future__ import annotations

import re
from typing import Iterable

import torch

from ..data.arith import Problem
from .data import arith_prompt

ANSWER_RE = re.compile(r"Answer:\s*(-?\d+)")


def final_answer(text: str) -> int | None:
    """The integer after the last ``Answer:`` in ``text``, or None."""
    found = ANSWER_RE.findall(text)
    return int(found[-1]) if found else None


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 64, batch_size: int = 32) -> list[str]:
    """Greedy assistant replies to single-turn user ``prompts`` (chat template, generation prompt)."""
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    stop = [tokenizer.convert_tokens_to_ids("<|eot_id|>"), tokenizer.eos_token_id]
    stop = [s for s in stop if s is not None and s >= 0]
    outs: list[str] = []
    try:
        for i in range(0, len(prompts), batch_size):
            texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                   add_generation_prompt=True) for p in prompts[i: i + batch_size]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
                                 pad_token_id=tokenizer.pad_token_id)
            new = gen[:, enc["input_ids"].shape[1]:]
            outs += tokenizer.batch_decode(new, skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return outs


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
