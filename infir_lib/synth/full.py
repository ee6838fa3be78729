"""The full-scale pipeline: the same steps with LLMs by hub id (GPU; never run in tests).

Seeds from a hub dataset or JSONL (Infinity-Instruct in the paper), evolution and responses by an
instruct LLM with the prompts in ``prompts/``, rejection sampling with an open reward model
(``AutoModelForSequenceClassification``), code verified in the sandbox, difficulty by an LLM judge.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

from .config import SynthConfig
from .select import DIFFICULTY_LABELS, diversity_sample, has_reasoning_steps, label_domain, pick_best
from .teacher import LLMTeacher, load_prompt

CODE_BLOCK = re.compile(r"```(?:python)?\n(.*?)```", re.S)


def load_seeds(cfg: SynthConfig) -> list[dict]:
    from ..data.sources import read_jsonl

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
    return [{"uid": f"s{i:07d}", "instruction": r["instruction"], "domain": r.get("domain") or label_domain(r["instruction"])}
            for i, r in enumerate(rows[:n])]


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


def run_full(cfg: SynthConfig, log=print) -> tuple[list[dict], list[dict], list[dict]]:
    from ..eval.sandbox import run_programs
    from .pipeline import _step

    funnel = []
    seeds = load_seeds(cfg)
    funnel.append(_step("seed instructions", 0, len(seeds), added=len(seeds)))
    gen = dict(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.generation_batch)
    evolver = LLMTeacher(cfg.evolver_model or cfg.teacher_model, **gen)
    rng = random.Random(cfg.seed)
    instructions, level = list(seeds), list(seeds)
    for _ in range(cfg.evolutions_per_seed):  # each level evolves the previous one, all in one batch
        ops = [rng.choice(cfg.evolution_ops) for _ in level]
        evolved = evolver.evolve_many([(ins["instruction"], op) for ins, op in zip(level, ops)])
        level = [{**ins, "uid": f"{ins['uid']}+{op}", "instruction": text} for ins, op, text in zip(level, ops, evolved)]
        instructions += level
    funnel.append(_step("instruction evolution", len(seeds), len(instructions), added=len(instructions) - len(seeds)))
    same = cfg.teacher_model == (cfg.evolver_model or cfg.teacher_model)
    teacher = evolver if same else LLMTeacher(cfg.teacher_model, **gen)
    replies = teacher.candidates_many([(ins["instruction"], ins["domain"]) for ins in instructions], cfg.n_candidates)
    for ins, cands in zip(instructions, replies):
        ins["candidates"] = cands
    funnel.append(_step("step-by-step responses", len(instructions), len(instructions)))

    # Code: the reply must hold a code block and its tests (asked for by prompts/respond_code.txt).
    jobs = []
    for i, ins in enumerate(instructions):
        if ins["domain"] == "code":
            for j, c in enumerate(ins["candidates"]):
                blocks = CODE_BLOCK.findall(c["response"])
                c["code"], c["tests"] = (blocks[0], blocks[1]) if len(blocks) >= 2 else (None, None)
                if c["code"]:
                    jobs.append((i, j))
    verdicts = run_programs([instructions[i]["candidates"][j]["code"] for i, j in jobs], workers=cfg.sandbox_workers,
                            tests=[instructions[i]["candidates"][j]["tests"] for i, j in jobs],
                            timeout=cfg.sandbox_timeout)
    for (i, j), v in zip(jobs, verdicts):
        instructions[i]["candidates"][j]["status"] = v.status
    rm = RewardModel(cfg.reward_model)
    kept, removed = [], Counter()
    for ins in instructions:
        if ins["domain"] == "code":
            passing = [j for j, c in enumerate(ins["candidates"]) if c.get("status") == "passed"]
            if not passing:
                removed["code: no candidate passed"] += 1
                continue
            ins["chosen"] = passing[0]
        else:
            scores = [rm.score(ins["instruction"], c["response"]) for c in ins["candidates"]]
            for c, s in zip(ins["candidates"], scores):
                c["score"] = s
            ins["chosen"] = pick_best(scores)
        kept.append(ins)
    funnel.append(_step("rejection sampling / sandbox", len(instructions), len(kept), removed=dict(removed)))
    rules = [k for k in kept if k["domain"] == "code" or has_reasoning_steps_text(k["candidates"][k["chosen"]]["response"])]
    funnel.append(_step("rule filters", len(kept), len(rules), removed={"no reasoning steps": len(kept) - len(rules)}))
    rows = []
    labels = judge_difficulty(teacher, [ins["instruction"] for ins in rules])
    for ins, (label, parsed) in zip(rules, labels):
        rows.append({"messages": [{"role": "user", "content": ins["instruction"]},
                                  {"role": "assistant", "content": ins["candidates"][ins["chosen"]]["response"]}],
                     "uid": ins["uid"], "domain": ins["domain"], "difficulty": label,
                     "difficulty_score": DIFFICULTY_LABELS.index(label) + 1})
    unparsed = sum(not parsed for _, parsed in labels)
    funnel.append(_step("labels (domain, difficulty, quality)", len(rules), len(rows),
                        difficulty_unparsed_set_to_medium=unparsed))
    sampled = diversity_sample(rows, cfg.per_domain, cfg.seed) if cfg.per_domain else rows
    funnel.append(_step("diversity sampling", len(rows), len(sampled), removed={"over the per-domain cap": len(rows) - len(sampled)}))
    return sampled, [json.loads(json.dumps(i, default=str)) for i in instructions], funnel


def has_reasoning_steps_text(response: str) -> bool:
    """Full-scale rule: numbered/ordered steps or several reasoning sentences before the answer."""
    return has_reasoning_steps(response) or len(re.findall(r"(?m)^\s*(?:Step\s*\d+|\d+[.)])", response)) >= 2


def judge_difficulty(teacher: LLMTeacher, instructions: list[str]) -> list[tuple[str, bool]]:
    """The judge's App. B level per instruction, and whether its reply named one (else "medium", counted)."""
    out = []
    for reply in (r[0].lower() for r in teacher.complete_many(
            [load_prompt("difficulty").format(instruction=i) for i in instructions], 1)):
        label = next((lab for lab in sorted(DIFFICULTY_LABELS, key=len, reverse=True) if lab in reply), None)
        out.append((label or "medium", label is not None))
    return out
