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


def reply_context(tokenizer, prompt: str, reply_start: str) -> list[int]:
    """The token ids a user turn's reply is trained to follow when that reply starts with ``reply_start``.

    A chat model is trained on the tokenized *whole* conversation, and a byte-level BPE does not always
    cut it where the prompt ends: the toy tokenizer cuts the assistant header's ``"\n\n"`` into one
    token before a digit (digits are split off first) but into ``"\n"``, ``"\n"`` before a word
    (``"\n\ndef"``). A prompt tokenized alone ends in the one-token form, which a model trained on
    replies that start with a word has never seen before its reply (a toy code model then writes
    ``" y( y = ..."`` instead of ``"def solve(x):"``). This is the prompt as training tokenizes it:
    the conversation with the reply's first characters, which are then dropped again.
    """
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    full = tokenizer(text + reply_start, add_special_tokens=False)["input_ids"]
    for k in range(len(full), 0, -1):  # the longest prefix that decodes to the prompt text exactly
        if tokenizer.decode(full[:k]) == text:
            return full[:k]
    raise ValueError(f"the prompt is not a token prefix of prompt + {reply_start!r}")


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 64, batch_size: int = 32,
             reply_start: str | None = None) -> list[str]:
    """Greedy assistant replies to single-turn user ``prompts`` (chat template, generation prompt), through
    the library's one batched generator (:func:`infir_lib.eval.generate.generate`). ``reply_start``: the
    replies are known to start with this text (code: ``"def"``), so each prompt is tokenized as training
    tokenized it before such a reply (:func:`reply_context`); the reply itself is still the model's."""
    prompts = [reply_context(tokenizer, p, reply_start) for p in prompts] if reply_start else list(prompts)
    return generate_replies(model, tokenizer, prompts, max_new_tokens=max_new_tokens, chat=True,
                            batch_size=batch_size, fit_context=False)


def arith_accuracy(model, tokenizer, problems: Iterable[Problem], max_new_tokens: int = 64,
                   per_item: bool = False, batch_size: int = 32, reply_start: str | None = None) -> dict:
    """Exact-answer accuracy overall and per step count, plus the replies (for inspection); with
    ``per_item`` also ``correct``, the 0/1 outcome per item in item order (what the scorecard's paired
    comparisons need)."""
    problems = list(problems)
    replies = generate(model, tokenizer, [arith_prompt(p.question) for p in problems], max_new_tokens, batch_size,
                       reply_start)
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
