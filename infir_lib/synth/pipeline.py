"""The Figure-2 pipeline end to end, with a count at every step (the funnel): one code path at every scale.

seeds -> evolution -> N step-by-step candidates -> rejection sampling (reward / sandbox) ->
rule filters -> labels -> diversity sampling -> SFT rows.
The funnel is counted in instructions; each step says how many came in, how many it added or
removed and why, and how many went out (``in + added - removed == out``, checked by the tests).

What differs between the toy run and the full one is only the *parts* (:class:`Parts`), each chosen by
its own config value (:func:`parts_for`):

==============  ===============================================  ==============================================
part            toy                                              full (:mod:`.full`)
==============  ===============================================  ==============================================
seeds           ``seed_source: toy``: structured instructions   a JSONL or a hub dataset (Infinity-Instruct)
evolver         no ``evolver_model``/``teacher_model``: the     an instruct LLM with ``prompts/evolve_*``
                programmatic operators (:mod:`.evolve`)
teacher         no ``teacher_model``: :func:`.teacher.          an instruct LLM (``prompts/respond_*``);
                toy_candidates` (the reply to a code task is     the reply carries the code and its tests
                the code; its tests come from the task)          as two code blocks
math verifier   ``reward_model: verifier``: the step verifier   an open reward model by id
difficulty      rules on the instruction's structure (App. B)   the LLM as a judge (``prompts/difficulty``)
==============  ===============================================  ==============================================

Every other rule (the sandbox, the reward threshold ``min_quality``, the reasoning-step and
function-definition filters, the domain label, diversity sampling) is the same code for both.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from ..eval.sandbox import run_programs
from ..sft.data import arith_prompt
from . import full
from .config import SynthConfig
from .evolve import evolve
from .instructions import MathInstruction, TextInstruction, seed_instructions  # noqa: F401  (TextInstruction re-exported)
from .select import (defines_function, difficulty_label, difficulty_score, diversity_sample, label_domain, pick_best,
                     shows_steps, step_reward)
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


@dataclass
class Parts:
    """The swappable parts of the pipeline (module doc); everything else is shared."""

    seeds: Callable[[], list]  # -> instructions
    evolve: Callable[[list], tuple[list, dict]]  # seeds -> (seeds + evolved, counts)
    respond: Callable[[list], list[list[dict]]]  # instructions -> candidates ({"response", "teacher_error", ...})
    math_score: Callable[[object, str, str], float]  # (instruction, prompt text, reply) -> reward
    program: Callable[[dict, dict], tuple[str | None, str | None]]  # (record, candidate) -> (code, tests)
    difficulty: Callable[[list], tuple[list[tuple[int, str]], dict]]  # instructions -> (score, label) each, extras
    teacher_errors_known: bool = True  # the toy teacher knows which replies it got wrong


def toy_parts(cfg: SynthConfig) -> dict:
    rng = random.Random(cfg.seed + 2)
    targs = TeacherArgs(cfg.step_error, cfg.no_steps, cfg.code_bug, cfg.code_slow)
    return {
        "seeds": lambda: seed_instructions(cfg.n_math_seeds, cfg.n_code_seeds, cfg.seed, tuple(cfg.seed_steps)),
        "evolve": lambda seeds: evolve(seeds, list(cfg.evolution_ops), cfg.evolutions_per_seed, cfg.seed + 1),
        "respond": lambda instructions: [toy_candidates(ins, cfg.n_candidates, rng, targs) for ins in instructions],
        "math_score": lambda ins, prompt, reply: step_reward(ins, reply),
        "program": lambda rec, cand: (cand["response"], rec["tests"]),
        "difficulty": lambda instructions: ([(s, difficulty_label(s)) for s in map(difficulty_score, instructions)],
                                            {}),
    }


def parts_for(cfg: SynthConfig) -> Parts:
    """Each part from its own config value (see the module doc); combinations that cannot work raise."""
    parts = toy_parts(cfg)
    llm = cfg.evolver_model or cfg.teacher_model
    toy_seeds = cfg.seed_source == "toy"
    if cfg.reward_model == "verifier" and not toy_seeds:
        raise ValueError("reward_model 'verifier' (the toy step verifier) reads the structure of toy instructions; "
                         f"seed_source {cfg.seed_source!r} needs a reward model by id")
    if llm and toy_seeds:
        raise ValueError("an LLM evolver/teacher rewrites instructions as text, which loses the toy instructions' "
                         "ground truth; use seed_source: toy with the toy parts, or seeds from a dataset")
    if not llm and not toy_seeds:
        raise ValueError(f"seed_source {cfg.seed_source!r} (text instructions) needs teacher_model (an LLM by id)")
    teacher_errors_known = True
    if not toy_seeds:
        parts["seeds"] = lambda: full.load_seeds(cfg)
    if llm:
        evolver, teacher = full.llm_parts(cfg)
        parts["evolve"] = lambda seeds: full.evolve_text(evolver, seeds, cfg)
        parts["respond"] = lambda instructions: teacher.candidates_many(
            [(ins.text, ins.domain) for ins in instructions], cfg.n_candidates)
        parts["program"] = lambda rec, cand: full.code_and_tests(cand["response"])
        parts["difficulty"] = lambda instructions: full.judge_difficulty(teacher, [i.text for i in instructions])
        teacher_errors_known = False
    if cfg.reward_model != "verifier":
        rm = full.LazyRewardModel(cfg.reward_model)
        parts["math_score"] = lambda ins, prompt, reply: rm.score(prompt, reply)
    return Parts(**parts, teacher_errors_known=teacher_errors_known)


def run_pipeline(cfg: SynthConfig, parts: Parts | None = None) -> tuple[list[dict], list[dict], list[dict]]:
    """(sft_rows, candidate_records, funnel) of one run, with the parts ``cfg`` chooses (or ``parts``)."""
    parts = parts or parts_for(cfg)
    funnel = []
    seeds = parts.seeds()
    funnel.append(_step("seed instructions", 0, len(seeds), added=len(seeds), by_domain=_by_domain(seeds)))
    instructions, evo = parts.evolve(seeds)
    funnel.append(_step("instruction evolution", len(seeds), len(instructions), added=evo["produced"],
                        by_domain=_by_domain(instructions), evolution=evo))

    records = []
    for ins, candidates in zip(instructions, parts.respond(instructions)):
        rec = {"uid": ins.uid, "domain": ins.domain, "instruction": user_prompt(ins), "n_steps": ins.n_steps,
               "history": ins.history, "reference": ins.reference(), "candidates": candidates, "_ins": ins}
        if isinstance(ins, MathInstruction):
            rec["answer"] = ins.answer
        elif hasattr(ins, "tests"):
            rec["tests"] = ins.tests()
        records.append(rec)
    n_cand = sum(len(r["candidates"]) for r in records)
    errors = {"candidates_with_teacher_error": sum(c["teacher_error"] for r in records for c in r["candidates"])} \
        if parts.teacher_errors_known else {}
    funnel.append(_step("step-by-step responses", len(instructions), len(instructions),
                        by_domain=_by_domain(instructions), candidates=n_cand, **errors))

    # rejection sampling: reward for math, sandbox for code
    code_jobs, programs = [], []
    for i, r in enumerate(records):
        if r["domain"] != "code":
            continue
        for j, c in enumerate(r["candidates"]):
            code, tests = parts.program(r, c)
            if code is None:
                c["status"], c["score"] = "no code", 0.0
                continue
            code_jobs.append((i, j))
            programs.append((code, tests))
    verdicts = run_programs([p for p, _ in programs], workers=cfg.sandbox_workers, progress=False,
                            tests=[t for _, t in programs], timeout=cfg.sandbox_timeout) if code_jobs else []
    for (i, j), v in zip(code_jobs, verdicts):
        records[i]["candidates"][j]["status"] = v.status
        records[i]["candidates"][j]["score"] = 1.0 if v.passed else 0.0
    removed = Counter()
    kept = []
    for r in records:
        ins = r["_ins"]
        if r["domain"] == "math":
            for c in r["candidates"]:
                c["score"] = parts.math_score(ins, r["instruction"], c["response"])
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
        if r["domain"] == "math" and not shows_steps(resp, cfg.min_reasoning_steps):
            removed["math: no reasoning steps"] += 1
            continue
        if r["domain"] == "code" and not defines_function(r["_ins"], parts.program(r, r["candidates"][r["chosen"]])[0]):
            removed["code: no function definition"] += 1
            continue
        passed_rules.append(r)
    funnel.append(_step("rule filters", len(kept), len(passed_rules), removed=dict(removed),
                        by_domain=_by_domain(passed_rules, lambda r: r["domain"])))

    rows = []
    levels, label_extras = parts.difficulty([r["_ins"] for r in passed_rules])
    for r, (score, label) in zip(passed_rules, levels):
        ins = r["_ins"]
        row = {"messages": [{"role": "user", "content": r["instruction"]},
                            {"role": "assistant", "content": r["candidates"][r["chosen"]]["response"]}],
               "uid": r["uid"], "domain": getattr(ins, "given_domain", None) or label_domain(ins.text),
               "difficulty_score": score, "difficulty": label, "n_steps": ins.n_steps,
               "quality": r["candidates"][r["chosen"]]["score"], "evolution": ins.history}
        row.update({k: r[k] for k in ("answer", "tests") if k in r})
        rows.append(row)
    funnel.append(_step("labels (domain, difficulty, quality)", len(passed_rules), len(rows),
                        by_domain=_by_domain(rows, lambda r: r["domain"]),
                        by_difficulty=dict(Counter(r["difficulty"] for r in rows)), **label_extras))

    sampled = diversity_sample(rows, cfg.per_domain, cfg.seed + 3) if cfg.per_domain else rows
    funnel.append(_step("diversity sampling", len(rows), len(sampled),
                        removed={"over the per-domain cap": len(rows) - len(sampled)},
                        by_domain=_by_domain(sampled, lambda r: r["domain"])))
    for r in records:
        r.pop("_ins")
    return sampled, records, funnel


run_toy = run_pipeline  # the name the stage registry used for the toy run (the same function now)
