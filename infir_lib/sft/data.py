"""SFT rows: chat ``messages`` lists, from toy generators, JSONL files or hub datasets.

Every row is ``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}], ...}``. ShareGPT rows
(``conversations`` with ``from``/``value``, as in Infinity-Instruct) are converted; anything else is an
error naming the file and line.

What a model trains on (:func:`token_rows`, used by the SFT stage and by chapter 7's cold start): each
assistant turn after its context *exactly as the model is later sampled from it*. Rendering the whole
conversation as one string and tokenizing it (TRL's default) lets a byte-level BPE cut the boundary
differently: the toy tokenizer turns the assistant header's final ``"\n\n"`` into one token before a
digit (digits are split off first) but into ``"\n"``, ``"\n"`` before a word, so a reply that starts
with a word (``"def solve(x):"``, ``"Ann starts with..."``) would be trained after a context the generator
never gives. Here the context goes through the generator's own prompt path
(:func:`infir_lib.eval.generate.encode_prompt`) and the reply is tokenized on its own.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .. import stages
from ..data.arith import Problem, make_problems
from ..data.sources import read_jsonl
from ..eval.generate import encode_prompt

ROLE_MAP = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
            "bot": "assistant", "model": "assistant"}
STEP_PROMPT = "Let's think step by step."


def arith_prompt(question: str) -> str:
    """The user turn of a toy math item (the paper prompts for step-by-step reasoning)."""
    return f"{question} {STEP_PROMPT}"


def problem_to_row(p: Problem, response: str | None = None, **extra) -> dict:
    """A toy arithmetic problem as a chat row (the reference solution unless ``response`` is given)."""
    return {"messages": [{"role": "user", "content": arith_prompt(p.question)},
                         {"role": "assistant", "content": p.solution if response is None else response}],
            "answer": p.answer, "n_steps": p.n_steps, **extra}


def toy_arith_rows(n: int, seed: int, steps: tuple[int, ...] = (1, 2, 3)) -> list[dict]:
    return [problem_to_row(p) for p in make_problems(n, seed, tuple(steps))]


def to_messages(row: dict, field: str = "messages", where: str = "row") -> list[dict]:
    """The row's conversation as role/content messages; ShareGPT ``from``/``value`` accepted."""
    conv = row.get(field)
    if conv is None and "conversations" in row:
        conv = row["conversations"]
    if conv is None and "prompt" in row and "response" in row:
        conv = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["response"]}]
    if not isinstance(conv, list) or not conv:
        raise ValueError(f"{where}: no '{field}' list of messages (fields: {sorted(row)})")
    out = []
    for i, m in enumerate(conv):
        role = m.get("role", m.get("from"))
        content = m.get("content", m.get("value"))
        if role not in ROLE_MAP or not isinstance(content, str):
            raise ValueError(f"{where}: message {i} has role {role!r} / content {type(content).__name__}; "
                             f"expected one of {sorted(ROLE_MAP)} and a string")
        out.append({"role": ROLE_MAP[role], "content": content})
    if not any(m["role"] == "assistant" for m in out):
        raise ValueError(f"{where}: no assistant message, nothing to learn from")
    return out


def load_rows(cfg) -> list[dict]:
    """The training rows a config names (toy generator, synthesized set, JSONL file or hub dataset)."""
    cap = cfg.n_train or None
    if cfg.dataset == "toy:arith":
        return toy_arith_rows(cfg.n_train, cfg.data_seed, tuple(cfg.toy_steps))
    if cfg.dataset == "toy:synth":  # the synth stage's output, built (or read) by the runner
        rows = stages.stage("sft").input(cfg, "synth_config").rows
        return rows[:cap] if cap else rows
    path = Path(cfg.dataset)
    if path.suffix == ".jsonl" or path.exists():
        rows = []
        for lineno, row in enumerate(read_jsonl(path, text_field=None), 1):
            row = dict(row)
            row["messages"] = to_messages(row, cfg.messages_field, f"{path}:{lineno}")
            rows.append(row)
            if cap and len(rows) >= cap:
                break
        return rows
    from datasets import load_dataset  # heavy: datasets (full scale: a hub dataset by id)

    name, _, subset = cfg.dataset.partition(":")
    ds = load_dataset(name, subset or None, split=cfg.dataset_split, streaming=True)
    rows = []
    for i, row in enumerate(ds):
        rows.append({"messages": to_messages(row, cfg.messages_field, f"{cfg.dataset}[{i}]")})
        if cap and len(rows) >= cap:
            break
    return rows


def rows_digest(rows: list[dict]) -> str:
    """A hash of the training rows (part of the cache key when rows are passed in directly)."""
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps(r["messages"], sort_keys=True).encode())
    return h.hexdigest()[:16]


def reply_example(tokenizer, context: list[dict], reply: str) -> dict:
    """One training example: ``context`` (the messages before an assistant turn) tokenized exactly as the
    generator tokenizes a prompt to sample from (:func:`infir_lib.eval.generate.encode_prompt`: the chat
    template with the assistant header), then the assistant turn ``reply`` tokenized on its own, as the
    chat template renders it (the trimmed text and the end-of-turn token). ``completion_mask`` is 1 on the
    reply's tokens and 0 on the context's: the loss covers the reply and its end of turn only.

    ``input_ids`` start with the sampling prompt's ids whatever the reply's first character, and decode
    to the conversation the chat template renders.
    """
    prompt_text = tokenizer.apply_chat_template(list(context), tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template([*context, {"role": "assistant", "content": reply}], tokenize=False)
    if not full_text.startswith(prompt_text):
        raise ValueError("the chat template renders the conversation so that its generation prompt is not a "
                         f"prefix of the conversation with the reply: {prompt_text[-40:]!r} vs {full_text[-80:]!r}")
    prompt_ids = encode_prompt(tokenizer, list(context))
    reply_ids = tokenizer(full_text[len(prompt_text):], add_special_tokens=False)["input_ids"]
    return {"input_ids": prompt_ids + reply_ids, "completion_mask": [0] * len(prompt_ids) + [1] * len(reply_ids)}


def chat_examples(tokenizer, messages: list[dict]) -> list[dict]:
    """The training examples of one conversation: one per assistant turn (:func:`reply_example`), each
    after the messages before it.

    The rule for multi-turn rows: every assistant turn is trained, each in its own example whose context
    (earlier replies included) is tokenized exactly as the generator would tokenize that conversation to
    sample the turn. One sequence for the whole conversation cannot give every turn that context: the
    generator tokenizes an earlier reply inside the whole string, training on it tokenizes it on its own.
    A single-turn row is one example.
    """
    return [reply_example(tokenizer, messages[:k], m["content"]) for k, m in enumerate(messages)
            if m["role"] == "assistant"]


def token_rows(tokenizer, rows: list[dict], field: str = "messages") -> list[dict]:
    """Chat rows as the examples TRL's ``SFTTrainer`` trains on (``input_ids`` + ``completion_mask``,
    pre-tokenized so that TRL tokenizes nothing itself); see :func:`chat_examples`."""
    return [ex for r in rows for ex in chat_examples(tokenizer, r[field])]
