"""The Figure-2 pipeline end to end, with a count at every step (the funnel).

seeds -> evolution -> N step-by-step candidates -> rejection sampling (reward / sandbox) ->
rule filters -> labels -> diversity sampling -> SFT rows.
The funnel is counted in instructions; each step says how many came in, how many it added or
removed and why, and how many went out (``in + added - removed == out``, checked by the tests).
"""

from __future__ import annotations

import random
from collections import Counter

from ..sft.data import arith_prompt
from .config import SynthConfig
from .evolve import evolve
from .instructions import MathInstruction, seed_instructions
from .select import (defines_function, difficulty_label, difficulty_score, diversity_sample, has_reasoning_steps,
                     label_domain, pick_best, step_reward)
from .teacher import TeacherArgs, toy_candidates


def _by_domain(items, key=lambda x: x.domain) -> dict:
    return dict(sorted(Counter(key(x) for x in items).items()))


def _step(name: str, n_in: int, n_out: int, *, added: int = 0, removed: dict | None = None, **extra) -> dict:
    removed = {k: v for k, v in (removed or {}).items() if v}
    if n_in + added - sum(removed.values()) != n_out:
        raise AssertionError(f"funnel step {name!r} does not add up: {n_in} + {added} - {removed} != {n_out}")
    return {"step": name, "in": n_in, "added": added, "removed": removed, "out": n_out, **extra}


def user_prompt(ins) -> str:
    return arith_prompt(ins.text) if isinstance(ins, MathInstruction) else ins.text


def run_toy(cfg: SynthConfig, log=print) -> tuple[list[dict], list[dict], list[dict]]:
    """(sft_rows, candidate_records, funnel) for the toy pipeline."""
    from ..eval.sandbox import run_programs

    funnel = []
    seeds = seed_instructions(cfg.n_math_seeds, cfg.n_code_seeds, cfg.seed, tuple(cfg.seed_steps))
    funnel.append(_step("seed instructions", 0, len(seeds), added=len(seeds), by_domain=_by_domain(seeds)))
    instructions, evo = evolve(seeds, list(cfg.evolution_ops), cfg.evolutions_per_seed, cfg.seed + 1)
    funnel.append(_step("instruction evolution", len(seeds), len(instructions), added=evo["produced"],
                        by_domain=_by_domain(instructions), evolution=evo))

    rng = random.Random(cfg.seed + 2)
    targs = TeacherArgs(cfg.step_error, cfg.no_steps, cfg.code_bug, cfg.code_slow)
    records = []
    for ins in instructions:
        rec = {"uid": ins.uid, "domain": ins.domain, "instruction": user_prompt(ins), "n_steps": ins.n_steps,
               "history": ins.history, "reference": ins.reference(),
               "candidates": toy_candidates(ins, cfg.n_candidates, rng, targs), "_ins": ins}
        if isinstance(ins, MathInstruction):
            rec["answer"] = ins.answer
        else:
            rec["tests"] = ins.tests()
        records.append(rec)
    n_cand = sum(len(r["candidates"]) for r in records)
    funnel.append(_step("step-by-step responses", len(instructions), len(instructions), by_domain=_by_domain(instructions),
                        candidates=n_cand, candidates_with_teacher_error=sum(c["teacher_error"] for r in records
                                                                              for c in r["candidates"])))

    # rejection sampling: reward for math, sandbox for code
    code_jobs = [(i, j) for i, r in enumerate(records) if r["domain"] == "code" for j in range(len(r["candidates"]))]
    verdicts = run_programs([records[i]["candidates"][j]["response"] for i, j in code_jobs], workers=cfg.sandbox_workers,
                            progress=False, tests=[records[i]["tests"] for i, j in code_jobs],
                            timeout=cfg.sandbox_timeout) if code_jobs else []
    for (i, j), v in zip(code_jobs, verdicts):
        records[i]["candidates"][j]["status"] = v.status
        records[i]["candidates"][j]["score"] = 1.0 if v.passed else 0.0
    removed = Counter()
    kept = []
    for r in records:
        ins = r["_ins"]
        if r["domain"] == "math":
            for c in r["candidates"]:
                c["score"] = step_reward(ins, c["response"])
            best = pick_best([c["score"] for c in r["candidates"]])
            if r["candidates"][best]["score"] <= cfg.min_quality:
                removed["math: best reward too low"] += 1
                r["chosen"] = None
                continue
        else:
            passing = [j for j, c in enumerate(r["candidates"]) if c["status"] == "passed"]
            if not passing:
                statuses = {c["status"] for c in r["candidates"]}
                removed["code: only timeouts" if statuses == {"timeout"} else "code: no candidate passed"] += 1
                r["chosen"] = None
                continue
            best = passing[0]
        r["chosen"] = best
        kept.append(r)
    cand_status = dict(Counter(c.get("status", "scored") for r in records for c in r["candidates"]))
    funnel.append(_step("rejection sampling / sandbox", len(records), len(kept), removed=dict(removed),
                        by_domain=_by_domain(kept, lambda r: r["domain"]), candidate_status=cand_status))

    removed = Counter()
    passed_rules = []
    for r in kept:
        resp = r["candidates"][r["chosen"]]["response"]
        if r["domain"] == "math" and not has_reasoning_steps(resp, cfg.min_reasoning_steps):
            removed["math: no reasoning steps"] += 1
            continue
        if r["domain"] == "code" and not defines_function(r["_ins"], resp):
            removed["code: no function definition"] += 1
            continue
        passed_rules.append(r)
    funnel.append(_step("rule filters", len(kept), len(passed_rules), removed=dict(removed),
                        by_domain=_by_domain(passed_rules, lambda r: r["domain"])))

    rows = []
    for r in passed_rules:
        ins = r["_ins"]
        score = difficulty_score(ins)
        row = {"messages": [{"role": "user", "content": r["instruction"]},
                            {"role": "assistant", "content": r["candidates"][r["chosen"]]["response"]}],
               "uid": r["uid"], "domain": label_domain(ins.text), "difficulty_score": score,
               "difficulty": difficulty_label(score), "n_steps": ins.n_steps,
               "quality": r["candidates"][r["chosen"]]["score"], "evolution": ins.history}
        row.update({"answer": r["answer"]} if "answer" in r else {"tests": r["tests"]})
        rows.append(row)
    funnel.append(_step("labels (domain, difficulty, quality)", len(passed_rules), len(rows),
                        by_domain=_by_domain(rows, lambda r: r["domain"]),
                        by_difficulty=dict(Counter(r["difficulty"] for r in rows))))

    sampled = diversity_sample(rows, cfg.per_domain, cfg.seed + 3) if cfg.per_domain else rows
    funnel.append(_step("diversity sampling", len(rows), len(sampled),
                        removed={"over the per-domain cap": len(rows) - len(sampled)},
                        by_domain=_by_domain(sampled, lambda r: r["domain"])))
    for r in records:
        r.pop("_ins")
    return sampled, records, funnel
