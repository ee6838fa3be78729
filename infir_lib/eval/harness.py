"""The evaluation harness: prompt builders, batched generation, and one scorer per benchmark family.

The paper (§5.1.1) evaluates base models **few-shot** (Table 1) and instruct models **zero-shot** with
their chat template (Table 2). The same functions serve a toy model on CPU and a hub model on GPU:

- :func:`math_prompt` / :func:`mc_prompt` / :func:`mbpp_prompt` build zero- or few-shot prompts;
- :func:`generate` decodes batches (left padding, greedy or sampled, ``n`` samples per prompt) and
  cuts each reply at the stop strings, because a base model that is not stopped writes the next
  few-shot question too, and "the last number" then comes from the wrong question;
- :func:`eval_math` extracts with :mod:`.extract` and compares with ``math-verify``;
  :func:`eval_multiple_choice` scores MMLU-style items twice, by the normalized probability of the
  option letters (Eq. 2 of the paper, via :mod:`.likelihood`) and by the letter the model generates;
  :func:`eval_humaneval_model` / :func:`eval_mbpp_model` run generated code in the sandbox (pass@k).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from . import code as code_eval
from .extract import extract_answer, is_equivalent
from .generate import cut_at_stops, generate as generate_replies  # noqa: F401  (cut_at_stops: harness API)
from .likelihood import choice_scores, normalized_choice_probs

LETTERS = "ABCDEFGHIJ"
MATH_STOPS = ("\n\nQuestion:", "\nQuestion:", "\n\n\n", "<|eot_id|>", "<|im_end|>")
CODE_STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\n```", "<|eot_id|>", "<|im_end|>")


# ---------------------------------------------------------------- prompts
def math_prompt(question: str, shots: Sequence[tuple[str, str]] = (), *, q_prefix: str = "Question: ",
                a_prefix: str = "Answer:") -> str:
    """Zero-shot (no ``shots``) or k-shot: solved examples, then the question, ending with ``a_prefix``."""
    parts = [f"{q_prefix}{q}\n{a_prefix} {a}" for q, a in shots]
    parts.append(f"{q_prefix}{question}\n{a_prefix}")
    return "\n\n".join(parts)


def mc_block(question: str, choices: Sequence[str]) -> str:
    lines = [question] + [f"{LETTERS[i]}. {c}" for i, c in enumerate(choices)]
    return "\n".join(lines)


def mc_prompt(question: str, choices: Sequence[str], shots: Sequence[dict] = (), subject: str | None = None) -> str:
    """MMLU's format: an optional header, k solved items, then the item, ending with ``Answer:``."""
    head = f"The following are multiple choice questions (with answers) about {subject}.\n\n" if subject else ""
    parts = [mc_block(s["question"], s["choices"]) + f"\nAnswer: {LETTERS[s['answer']]}" for s in shots]
    parts.append(mc_block(question, choices) + "\nAnswer:")
    return head + "\n\n".join(parts)


def mbpp_prompt(row: dict, shots: Sequence[dict] = ()) -> str:
    """The MBPP paper's prompt: task text plus its tests; k-shot puts solved tasks in front."""
    def one(r, solved):
        tests = "\n".join(r["test_list"])
        text = f"You are an expert Python programmer, and here is your task: {r['text']} " \
               f"Your code should pass these tests:\n\n{tests}\n"
        return text + (f"[BEGIN]\n{r['code'].strip()}\n[DONE]" if solved else "[BEGIN]\n")
    return "\n\n".join([one(s, True) for s in shots] + [one(row, False)])


# ---------------------------------------------------------------- generation
def generate(model, tokenizer, prompts: Sequence[str], *, chat: bool = False, max_new_tokens: int = 64,
             batch_size: int = 16, n: int = 1, temperature: float = 0.0, top_p: float = 1.0,
             stops: Sequence[str] = (), seed: int = 0) -> list[list[str]]:
    """``n`` completions per prompt (greedy when ``temperature`` is 0), each cut at ``stops``.

    Base models continue the raw prompt (after BOS); ``chat=True`` wraps it in the tokenizer's chat
    template as a user turn (instruct models, zero-shot). The library's one batched generator
    (:func:`infir_lib.eval.generate.generate`) does the decoding.
    """
    if n > 1 and temperature <= 0:
        raise ValueError("n > 1 samples need temperature > 0 (greedy decoding gives n copies)")
    sample = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0) if temperature > 0 else {}
    out = generate_replies(model, tokenizer, list(prompts), max_new_tokens=max_new_tokens, chat=chat, n=n,
                           batch_size=batch_size, seed=seed, stop_strings=stops, **sample)
    return out if n > 1 else [[r] for r in out]


# ---------------------------------------------------------------- math (GSM8K / MATH style)
def eval_math(model, tokenizer, items: Sequence[dict], *, shots: Sequence[tuple[str, str]] = (), chat: bool = False,
              max_new_tokens: int = 256, batch_size: int = 16, suffix: str = "", a_prefix: str = "Answer:") -> dict:
    """Accuracy of greedy answers: ``items`` are ``{"question", "final"}``; replies are extracted then
    compared with ``math-verify``. ``suffix`` is appended to the question (e.g. a step-by-step cue).

    A few-shot example that is also a scored item would show the model its own answer, so that is an
    error, and so are no items (an accuracy of nothing is not a number)."""
    if not items:
        raise ValueError("eval_math: no items to score")
    leaked = {q for q, _ in shots} & {it["question"] for it in items}
    if leaked:
        raise ValueError(f"eval_math: {len(leaked)} few-shot example(s) are also scored items "
                         f"(e.g. {sorted(leaked)[0][:60]!r}); draw the shots from another split")
    prompts = [math_prompt(it["question"] + suffix, shots, a_prefix=a_prefix) if not chat else it["question"] + suffix for it in items]
    replies = [r[0] for r in generate(model, tokenizer, prompts, chat=chat, max_new_tokens=max_new_tokens,
                                      batch_size=batch_size, stops=MATH_STOPS)]
    preds = [extract_answer(r) for r in replies]
    correct = [is_equivalent(p, str(it["final"])) for p, it in zip(preds, items)]
    return {"accuracy": float(np.mean(correct)), "n": len(items),
            "no_answer": sum(p is None for p in preds), "replies": replies, "preds": preds, "correct": correct}


# ---------------------------------------------------------------- multiple choice (MMLU style)
def eval_multiple_choice(model, tokenizer, items: Sequence[dict], *, shots: Sequence[dict] = (),
                         batch_size: int = 16, chat: bool = False) -> dict:
    """MMLU-style scoring two ways on the same prompts.

    ``items``: ``{"question", "choices", "answer" (index)}``. *Probability*: s_i = log P(" X" | prompt)
    for each option letter X, normalized over the options (Eq. 2); accuracy is the argmax and
    ``p_norm_correct`` the mean normalized probability of the right letter. *Generation*: the first
    option letter in the greedy reply (no letter = wrong).
    """
    prompts = [mc_prompt(it["question"], it["choices"], shots, it.get("subject")) for it in items]
    lik_items = [{"context": p, "choices": [f" {LETTERS[i]}" for i in range(len(it["choices"]))], "answer": it["answer"]}
                 for p, it in zip(prompts, items)]
    scores = choice_scores(model, tokenizer, lik_items, batch_size=batch_size)
    probs = [normalized_choice_probs(s) for s in scores]
    acc_prob = [int(np.argmax(s) == it["answer"]) for s, it in zip(scores, items)]
    p_correct = [float(p[it["answer"]]) for p, it in zip(probs, items)]
    replies = [r[0] for r in generate(model, tokenizer, prompts, chat=chat, max_new_tokens=4, batch_size=batch_size)]
    letters = [_first_letter(r, len(it["choices"])) for r, it in zip(replies, items)]
    acc_gen = [int(letter is not None and LETTERS.index(letter) == it["answer"]) for letter, it in zip(letters, items)]
    return {"acc_probability": float(np.mean(acc_prob)), "p_norm_correct": float(np.mean(p_correct)),
            "acc_generated": float(np.mean(acc_gen)), "no_letter": sum(x is None for x in letters),
            "n": len(items), "replies": replies}


def _first_letter(text: str, k: int) -> str | None:
    m = re.search(r"\b([A-%s])\b" % LETTERS[k - 1], text.strip())
    return m.group(1) if m else None


# ---------------------------------------------------------------- code
def eval_humaneval_model(model, tokenizer, problems: Sequence[dict], *, n: int = 1, temperature: float = 0.0,
                         ks: Sequence[int] = (1,), chat: bool = False, max_new_tokens: int = 256,
                         batch_size: int = 16, workers: int = 2, timeout: float = 5.0, progress: bool = False) -> dict:
    """Generate ``n`` completions per HumanEval prompt and score pass@k in the sandbox."""
    prompts = [p["prompt"] if not chat else "Complete the following Python function.\n\n```python\n" + p["prompt"] + "```"
               for p in problems]
    outs = generate(model, tokenizer, prompts, chat=chat, n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                    batch_size=batch_size, stops=() if chat else CODE_STOPS)
    comps = {p["task_id"]: o for p, o in zip(problems, outs)}
    res = code_eval.evaluate_humaneval(comps, list(problems), ks=ks, workers=workers, timeout=timeout, progress=progress)
    res["completions"] = comps
    return res


def eval_mbpp_model(model, tokenizer, rows: Sequence[dict], *, shots: Sequence[dict] = (), n: int = 1,
                    temperature: float = 0.0, ks: Sequence[int] = (1,), chat: bool = False, max_new_tokens: int = 256,
                    batch_size: int = 16, workers: int = 2, timeout: float = 5.0) -> dict:
    prompts = [mbpp_prompt(r, shots) for r in rows]
    outs = generate(model, tokenizer, prompts, chat=chat, n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                    batch_size=batch_size, stops=("[DONE]", "<|eot_id|>", "<|im_end|>"))
    comps = {r["task_id"]: o for r, o in zip(rows, outs)}
    res = code_eval.evaluate_mbpp(comps, list(rows), ks=ks, workers=workers, timeout=timeout, progress=False)
    res["completions"] = comps
    return res
