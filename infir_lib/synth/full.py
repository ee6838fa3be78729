"""The full-scale parts of the one synthesis pipeline (:mod:`.pipeline`): LLMs and a reward model by hub id.

Seeds from a hub dataset or JSONL (Infinity-Instruct in the paper), evolution and responses by an
instruct LLM with the prompts in ``prompts/``, rejection sampling with an open reward model
(``AutoModelForSequenceClassification``), code (a reply's first code block, checked against its
second, the tests ``prompts/respond_code.txt`` asks for) verified in the sandbox, difficulty by an LLM
judge. :func:`.pipeline.parts_for` picks each of them when the config names a model or a dataset;
the tests run them on local stand-ins (``tests/test_synth_full.py``).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from ..data.sources import read_jsonl
from .config import SynthConfig
from .instructions import TextInstruction
from .select import DIFFICULTY_LABELS, label_domain
from .teacher import LLMTeacher, load_prompt

CODE_BLOCK = re.compile(r"```(?:python)?\n(.*?)```", re.S)


def load_seeds(cfg: SynthConfig) -> list:
    """Seed instructions from a JSONL of ``{"instruction", "domain"?}`` or a hub dataset of conversations."""
    n = cfg.plan_seeds or (cfg.n_math_seeds + cfg.n_code_seeds)
    if Path(cfg.seed_source).suffix == ".jsonl":
        rows = list(read_jsonl(cfg.seed_source, text_field="instruction"))
    else:
        from datasets import load_dataset

        name, _, subset = cfg.seed_source.partition(":")
        rows = []
        for i, row in enumerate(load_dataset(name, subset or None, split=cfg.seed_split, streaming=True)):
            conv = row.get("conversations") or row.get("messages") or []
            first = next((m.get("value", m.get("content")) for m in conv if m.get("from", m.get("role")) in
                          ("human", "user")), None)
            if first is None:
                raise ValueError(f"{cfg.seed_source}[{i}]: no user turn (fields: {sorted(row)})")
            rows.append({"instruction": first})
            if len(rows) >= n:
                break
    return [TextInstruction(r["instruction"], f"s{i:07d}", r.get("domain") or label_domain(r["instruction"]),
                            given_domain=r.get("domain")) for i, r in enumerate(rows[:n])]


class RewardModel:
    def __init__(self, model_id: str):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(model_id)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_id, dtype="auto", device_map="auto")

    def score(self, instruction: str, response: str) -> float:
        msgs = [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}]
        ids = self.tok.apply_chat_template(msgs, return_tensors="pt", return_dict=True).to(self.model.device)
        with self.torch.no_grad():
            return float(self.model(**ids).logits[0, 0])


class LazyRewardModel:
    """A :class:`RewardModel` loaded on its first score (a run whose math rows are all dropped never loads it)."""

    def __init__(self, model_id: str):
        self.model_id, self._rm = model_id, None

    def score(self, instruction: str, response: str) -> float:
        if self._rm is None:
            self._rm = RewardModel(self.model_id)
        return self._rm.score(instruction, response)


def llm_parts(cfg: SynthConfig) -> tuple[LLMTeacher, LLMTeacher]:
    """(evolver, teacher): one model loaded once when both are the same id."""
    gen = dict(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.generation_batch)
    evolver = LLMTeacher(cfg.evolver_model or cfg.teacher_model, **gen)
    same = (cfg.teacher_model or cfg.evolver_model) == (cfg.evolver_model or cfg.teacher_model)
    return evolver, evolver if same else LLMTeacher(cfg.teacher_model, **gen)


def evolve_text(evolver: LLMTeacher, seeds: list, cfg: SynthConfig) -> tuple[list, dict]:
    """``evolutions_per_seed`` levels, each evolving the previous one (one batch per level), operators
    drawn from ``evolution_ops``; counts in the same form as :func:`.evolve.evolve`."""

    rng = random.Random(cfg.seed)
    ops_used = list(cfg.evolution_ops)
    counts = {"attempted": 0, "produced": 0, "failed": 0, "by_operator": {op: 0 for op in ops_used}}
    instructions, level = list(seeds), list(seeds)
    for _ in range(cfg.evolutions_per_seed):
        ops = [rng.choice(ops_used) for _ in level]
        texts = evolver.evolve_many([(ins.text, op) for ins, op in zip(level, ops)])
        level = [TextInstruction(text, f"{ins.uid}+{op}", ins.domain, ins.given_domain, ins.history + [op])
                 for ins, op, text in zip(level, ops, texts)]
        counts["attempted"] += len(level)
        counts["produced"] += len(level)
        for op in ops:
            counts["by_operator"][op] += 1
        instructions += level
    return instructions, counts


def code_and_tests(reply: str) -> tuple[str | None, str | None]:
    """An LLM's code reply: its first code block is the program, its second the tests (None when absent)."""
    blocks = CODE_BLOCK.findall(reply)
    return (blocks[0], blocks[1]) if len(blocks) >= 2 else (None, None)


def judge_difficulty(teacher: LLMTeacher, instructions: list[str]) -> tuple[list[tuple[int, str]], dict]:
    """The judge's App. B level per instruction as (score 1-5, label); a reply that names no level counts
    as "medium" and is counted (``difficulty_unparsed_set_to_medium``)."""
    out, unparsed = [], 0
    replies = teacher.complete_many([load_prompt("difficulty").format(instruction=i) for i in instructions], 1) \
        if instructions else []
    for reply in (r[0].lower() for r in replies):
        label = next((lab for lab in sorted(DIFFICULTY_LABELS, key=len, reverse=True) if lab in reply), None)
        unparsed += label is None
        out.append((DIFFICULTY_LABELS.index(label or "medium") + 1, label or "medium"))
    return out, {"difficulty_unparsed_set_to_medium": unparsed}
