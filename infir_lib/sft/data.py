"""SFT rows: chat ``messages`` lists, from toy generators, JSONL files or hub datasets.

Every row is ``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}], ...}`` so TRL's
``SFTTrainer`` applies the Llama-3 chat template and (with ``assistant_only_loss``) puts the loss on
the assistant tokens only. ShareGPT rows (``conversations`` with ``from``/``value``, as in
Infinity-Instruct) are converted; anything else is an error naming the file and line.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .. import stages
from ..data.arith import Problem, make_problems
from ..data.sources import read_jsonl

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
    from datasets import load_dataset  # full scale: a hub dataset by id

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


def assistant_token_mask(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """(input_ids, mask) where mask is 1 exactly on the tokens the assistant wrote.

    This is what ``assistant_only_loss`` trains on: the ``{% generation %}`` blocks of the chat
    template (the assistant text and its ``<|eot_id|>``), never the prompt or the role headers.
    """
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    return list(out["input_ids"]), list(out["assistant_masks"])
