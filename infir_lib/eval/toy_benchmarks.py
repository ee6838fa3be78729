"""Toy benchmarks a toy model can learn in CPU minutes, and the few-shot machinery to run them.

Each stands in for a family the paper reports (§5.1):

- **GSM8K-like** (:func:`arith_items`): multi-step arithmetic word problems from
  :mod:`infir_lib.data.arith`, difficulty = number of steps, scored by greedy few-shot generation
  (exact final answer) and by the NLL of the reference solution;
- **MMLU-like** (:func:`fact_items`): multiple choice about the encyclopedic facts that appear in
  the toy corpus, scored by likelihood (accuracy and the normalized choice probability, Eq. 2);
- **HumanEval-like** (:func:`code_items`): short code completions of the corpus's code idioms,
  scored by whether the generated next line matches.

Item seeds start at 10_000 so that no item is a verbatim copy of a training document.
"""

from __future__ import annotations

import random
import re
from typing import Sequence

import numpy as np
import torch

from ..data.arith import make_problem
from ..runtime import pad_batch
from ..data.corpus import CODE_TEMPLATES, TOPICS
from ..sft.data import arith_prompt
from ..sft.evaluate import final_answer
from ..sft.evaluate import generate as chat_generate
from .extract import toy_answer
from .generate import generate as generate_replies
from .likelihood import answer_nll, multiple_choice_metrics

ITEM_SEED = 10_000

# ----------------------------------------------------------------------------------------------
# generation


def generate(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int = 40, do_sample: bool = False,
             logits_processor: list | None = None, batch_size: int = 32, return_ids: bool = False,
             stop_strings_at: str | None = None) -> list:
    """Continue each prompt (BOS + prompt, left-padded batches); returns text (or new token ids).

    New tokens are cut after the first end-of-text / end-of-turn token. Sampling uses the model's
    full distribution (no top-k / top-p), so a logits processor sees exactly what is sampled from.
    ``stop_strings_at``: cut the returned text at the first occurrence of this string. (A thin front
    end of the library's one generator, :func:`infir_lib.eval.generate.generate`.)
    """
    return generate_replies(model, tokenizer, list(prompts), max_new_tokens=max_new_tokens, do_sample=do_sample,
                            logits_processor=logits_processor, batch_size=batch_size, return_ids=return_ids,
                            stop_strings=(stop_strings_at,) if stop_strings_at else (), fit_context=False)


@torch.no_grad()
def next_token_prob(model, tokenizer, prompts: Sequence[str], token_id: int, batch_size: int = 32) -> np.ndarray:
    """P(next token = ``token_id`` | BOS + prompt) for each prompt (e.g. end-of-text after a colon)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    encoded = [bos + ids for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
    probs = []
    for b in range(0, len(encoded), batch_size):
        chunk = encoded[b: b + batch_size]
        ids, mask = pad_batch(chunk, pad)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        last = torch.as_tensor([len(s) - 1 for s in chunk], device=device)
        p = torch.softmax(logits[torch.arange(len(chunk), device=device), last], dim=-1)[:, token_id]
        probs += p.cpu().tolist()
    if was_training:
        model.train()
    return np.asarray(probs)


def few_shot_prompt(shots: Sequence[tuple[str, str]], query: str, *, q_prefix: str = "Question: ",
                    a_prefix: str = "Solution:", sep: str = "\n\n") -> str:
    """``k`` solved examples then the query, in the corpus's own format; ends with ``a_prefix``."""
    parts = [f"{q_prefix}{q}\n{a_prefix} {a}" for q, a in shots]
    parts.append(f"{q_prefix}{query}\n{a_prefix}")
    return sep.join(parts)


# ----------------------------------------------------------------------------------------------
# GSM8K-like: multi-step arithmetic


def arith_items(n: int = 60, seed: int = 0, steps: Sequence[int] = (1, 2, 3), k_shot: int = 2) -> list[dict]:
    """``n`` word problems (step counts cycling through ``steps``), each with a ``k_shot`` prompt."""
    rng = random.Random(ITEM_SEED + seed)
    items = []
    for i in range(n):
        p = make_problem(rng, steps[i % len(steps)])
        shots = [make_problem(rng, rng.choice(list(steps))) for _ in range(k_shot)]
        items.append({"question": p.question, "answer": p.answer, "n_steps": p.n_steps, "solution": p.solution,
                      "prompt": few_shot_prompt([(s.question, s.solution) for s in shots], p.question)})
    return items


def extract_answer(text: str) -> int | None:
    """The integer the reply states after ``Answer:`` (the book's one toy rule,
    :func:`infir_lib.eval.extract.toy_answer`); cut a continuation at its line end first."""
    return toy_answer(text)


def arith_accuracy(model, tokenizer, items: Sequence[dict], *, max_new_tokens: int = 40,
                   batch_size: int = 64) -> dict:
    """Exact-answer accuracy of greedy few-shot generation, overall and per number of steps; ``correct``
    is the 0/1 outcome per item in item order (for paired comparisons)."""
    gens = generate(model, tokenizer, [it["prompt"] for it in items], max_new_tokens=max_new_tokens,
                    batch_size=batch_size, stop_strings_at="\n")
    hits = [extract_answer(g) == it["answer"] for g, it in zip(gens, items)]
    by = {}
    for s in sorted({it["n_steps"] for it in items}):
        sel = [h for h, it in zip(hits, items) if it["n_steps"] == s]
        by[s] = float(np.mean(sel))
    return {"accuracy": float(np.mean(hits)), "by_steps": by, "n": len(items), "generations": gens,
            "correct": [int(h) for h in hits]}


def arith_answer_nll(model, tokenizer, items: Sequence[dict]) -> float:
    """NLL per token of the reference solutions given the few-shot prompts (the pre-training metric)."""
    return answer_nll(model, tokenizer, [it["prompt"] for it in items], [" " + it["solution"] for it in items])


def arith_choice_items(n: int = 40, seed: int = 0, steps: Sequence[int] = (1, 2, 3), n_choices: int = 4,
                       k_shot: int = 2) -> list[dict]:
    """Multiple-choice arithmetic: the few-shot prompt and the worked solution up to its last ``=``;
    the choices are the right result and ``n_choices - 1`` near misses (scored by likelihood, Eq. 2).

    A likelihood view of the GSM8K-like task that can be computed at every checkpoint without
    generation (what the paper does with NLL during pre-training).
    """
    rng = random.Random(ITEM_SEED + 5 + seed)
    items = []
    for i in range(n):
        p = make_problem(rng, steps[i % len(steps)])
        shots = [make_problem(rng, rng.choice(list(steps))) for _ in range(k_shot)]
        prompt = few_shot_prompt([(s.question, s.solution) for s in shots], p.question)
        solution = " ".join(p.steps)
        head = prompt + " " + solution[: solution.rindex("=") + 1]
        wrong = set()
        while len(wrong) < n_choices - 1:
            v = p.answer + rng.choice([-3, -2, -1, 1, 2, 3, 10])
            if v >= 0 and v != p.answer:
                wrong.add(v)
        options = sorted(wrong | {p.answer}, key=lambda _: rng.random())
        items.append({"context": head, "choices": [str(v) for v in options], "answer": options.index(p.answer),
                      "n_steps": p.n_steps})
    return items


def chat_answer_nll(model, tokenizer, items: Sequence[dict]) -> float:
    """NLL per token of the reference solutions as assistant replies (Llama-3 chat template).

    The post-SFT counterpart of :func:`arith_answer_nll`: same problems, asked the way chapter 4's
    SFT data asks them (``infir_lib.sft.data.arith_prompt``), the reply ending with ``<|eot_id|>``.
    """
    bos = tokenizer.bos_token or ""
    prompts = []
    for it in items:
        text = tokenizer.apply_chat_template([{"role": "user", "content": arith_prompt(it["question"])}],
                                             tokenize=False, add_generation_prompt=True)
        prompts.append(text[len(bos):] if bos and text.startswith(bos) else text)  # BOS is added when scoring
    return answer_nll(model, tokenizer, prompts, [it["solution"] + "<|eot_id|>" for it in items])


# ----------------------------------------------------------------------------------------------
# MMLU-like: facts from the corpus


def _subject_and_rest(definition: str) -> tuple[str, str]:
    for verb in (" is ", " are "):
        if verb in definition:
            subject, rest = definition.split(verb, 1)
            return subject, verb.strip() + " " + rest
    raise ValueError(f"cannot split definition {definition!r}")


def fact_items(seed: int = 0, n_choices: int = 4, variants: int = 3, truncate_words: Sequence[int] = (0, 6)) -> list[dict]:
    """Multiple choice: which subject does a definition from the corpus belong to?

    Each item scores the whole sentence "<subject> is/are <definition>" for ``n_choices`` subjects
    (context = ""), so s_i = log P(sentence_i); the definition may be truncated to its first words.
    """
    rng = random.Random(ITEM_SEED + seed)
    parts = {topic: _subject_and_rest(d) for topic, d in TOPICS.items()}
    topics = sorted(parts)
    items = []
    for topic in topics:
        _, rest = parts[topic]
        for cut in truncate_words:
            predicate = " ".join(rest.split()[1:cut + 1]) if cut else " ".join(rest.split()[1:])
            for _ in range(variants):
                others = rng.sample([t for t in topics if t != topic], n_choices - 1)
                options = others + [topic]
                rng.shuffle(options)
                choices = [f"{parts[t][0]} {parts[t][1].split()[0]} {predicate}" for t in options]
                items.append({"context": "", "choices": choices, "answer": options.index(topic), "topic": topic})
    return items


def fact_metrics(model, tokenizer, items: Sequence[dict]) -> dict:
    """Accuracy and normalized choice probability (Eq. 2) on the fact items."""
    return multiple_choice_metrics(model, tokenizer, items)


# ----------------------------------------------------------------------------------------------
# HumanEval-like: next-line code completion


def code_items(n: int = 30, seed: int = 0) -> list[dict]:
    """Prompts cut before a predictable line of the corpus's code idioms; ``pattern`` matches a right line."""
    rng = random.Random(ITEM_SEED + seed)
    cases = [
        (0, "    return", r"^a \+ b \+ \d+$"),
        (1, "            total", r"^\+= 1$"),
        (2, "        self.value", r"^\+= 1$"),
    ]
    items = []
    for i in range(n):
        t, cut_after, pattern = cases[i % len(cases)]
        code = CODE_TEMPLATES[t].format(n=rng.randint(0, 999), k=rng.randint(0, 9))
        cut = code.rindex(cut_after) + len(cut_after)  # the last occurrence: the line the pattern describes
        items.append({"prompt": code[:cut], "pattern": pattern, "template": t})
    return items


def code_correct(texts: Sequence[str], items: Sequence[dict]) -> list[int]:
    """0/1 per item: does the generated rest-of-line (first line of each text) match the item's pattern?"""
    if len(texts) != len(items):
        raise ValueError(f"{len(texts)} generations for {len(items)} code items")
    return [int(bool(re.match(it["pattern"], t.split("\n")[0].strip()))) for t, it in zip(texts, items)]


def code_accuracy(model, tokenizer, items: Sequence[dict], *, max_new_tokens: int = 12, batch_size: int = 64) -> dict:
    """Share of prompts whose generated rest-of-line matches the item's pattern (``correct``: per item)."""
    gens = generate(model, tokenizer, [it["prompt"] for it in items], max_new_tokens=max_new_tokens,
                    batch_size=batch_size, stop_strings_at="\n")
    hits = code_correct(gens, items)
    return {"accuracy": float(np.mean(hits)), "n": len(items), "generations": gens, "correct": hits}


def chat_accuracy(model, tokenizer, items: Sequence[dict], *, max_new_tokens: int = 64, batch_size: int = 32) -> dict:
    """Exact-answer accuracy of a chat (SFT) model on the word problems, asked the way chapter 4's SFT
    data asks them; ``correct`` is the 0/1 outcome per item, so base and tuned models can be compared
    on the same items."""
    replies = chat_generate(model, tokenizer, [arith_prompt(it["question"]) for it in items], max_new_tokens,
                            batch_size=batch_size)
    hits = [int(final_answer(r) == it["answer"]) for r, it in zip(replies, items)]
    return {"accuracy": float(np.mean(hits)), "n": len(items), "correct": hits, "replies": replies}


# Lead-ins after which a worked solution follows; crawled math pages whose formulas were stripped end
# right after them (InfiR §5.1.2). Chapter 1's toy crawl uses the same kind of phrases.
COLON_LEADINS = ["Let us work it out step by step:", "The calculation goes as follows:",
                 "We can write the solution as:", "Here is the derivation:", "The steps are:",
                 "Putting the numbers together we get:"]


def colon_prompts(n: int = 40, seed: int = 0, kind: str = "leadin") -> list[str]:
    """Math prompts that end in ':' (InfiR §5.1.2), where a model may stop too early.

    ``kind="leadin"``: a problem followed by a lead-in phrase; ``kind="benchmark"``: the few-shot
    benchmark's own prompt, which ends in ``Solution:``.
    """
    rng = random.Random(ITEM_SEED + 7 + seed)
    out = []
    for i in range(n):
        p = make_problem(rng, rng.choice([1, 2, 3]))
        if kind == "leadin":
            out.append(f"{p.question} {COLON_LEADINS[i % len(COLON_LEADINS)]}")
        elif kind == "benchmark":
            out.append(f"Question: {p.question}\nSolution:")
        else:
            raise ValueError(f"kind must be 'leadin' or 'benchmark', got {kind!r}")
    return out


__all__ = ["generate", "next_token_prob", "few_shot_prompt", "arith_items", "extract_answer", "arith_accuracy",
           "arith_answer_nll", "chat_answer_nll", "arith_choice_items", "fact_items", "fact_metrics", "code_items", "code_correct", "code_accuracy",
           "chat_accuracy", "colon_prompts"]
