"""Chapter 3: the SFT data synthesis pipeline (InfiR §3.1, Figure 2, App. A-C).

    from infir_lib import synth
    result = synth.run("configs/toy/synth.yaml")      # seconds on a CPU, cached
    result.rows          # the SFT set (chat messages + domain / difficulty / quality labels)
    result.funnel        # counts at every step
    result.candidates    # every instruction with all its candidates, scores and sandbox verdicts
    # full scale (GPUs, LLMs by hub id): python -m infir_lib synth --config configs/full/synth.yaml
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .. import artifacts, stages
from ..stages import StageResult, TextPlan
from .config import SynthConfig
from .evolve import OPERATORS, evolve
from .select import (DIFFICULTY_LABELS, difficulty_label, difficulty_score, diversity_sample, has_reasoning_steps,
                     label_domain, pick_best, step_reward)

STAGE = stages.stage("synth")


@dataclass
class SynthResult(StageResult):
    output_dir: Path
    rows: list[dict]
    candidates: list[dict]
    funnel: list[dict]
    config: SynthConfig | None = None

    @property
    def summary(self) -> dict:
        return {"rows": len(self.rows), "funnel": [(s["step"], s["out"]) for s in self.funnel]}

    @property
    def history(self) -> list[dict]:
        return self.funnel  # the pipeline's steps, in order

    def funnel_table(self):
        """The funnel as a pandas table: one row per step (in, added, removed with reasons, out)."""
        import pandas as pd

        return pd.DataFrame([{"step": s["step"], "in": s["in"], "added": s["added"],
                              "removed": sum(s["removed"].values()),
                              "why removed": "; ".join(f"{k}: {v}" for k, v in s["removed"].items()),
                              "out": s["out"], **{f"out ({d})": n for d, n in s.get("by_domain", {}).items()}}
                             for s in self.funnel]).fillna(0)

    def rows_for(self, domain: str) -> list[dict]:
        return [r for r in self.rows if r["domain"] == domain]


def unfiltered_rows(candidates: list[dict], domain: str, which: int = 0) -> list[dict]:
    """The no-rejection-sampling baseline: candidate ``which`` of every instruction, kept unchecked."""
    out = []
    for rec in candidates:
        if rec["domain"] != domain:
            continue
        c = rec["candidates"][which]
        row = {"messages": [{"role": "user", "content": rec["instruction"]},
                            {"role": "assistant", "content": c["response"]}],
               "uid": rec["uid"], "domain": domain, "n_steps": rec["n_steps"], "teacher_error": c["teacher_error"]}
        row.update({"answer": rec["answer"]} if "answer" in rec else {"tests": rec["tests"]})
        out.append(row)
    return out


def load(config, overrides=None) -> SynthConfig:
    """The config of a run: a preset path + overrides, or a SynthConfig (+ a dict of replacements)."""
    return STAGE.load(config, overrides)


def cache_spec(cfg: SynthConfig) -> dict:
    """The cache key (:meth:`infir_lib.stages.Stage.key`; the LLM generation settings only at full scale)."""
    return STAGE.key(cfg)


def _write(folder: Path, rows, candidates, funnel) -> None:
    with open(folder / "rows.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    with open(folder / "candidates.jsonl", "w") as f:
        for r in candidates:
            f.write(json.dumps(r, default=str) + "\n")
    artifacts.save_json(funnel, folder / "funnel.json")
    # the SFT set in the form configs/*/sft.yaml reads (a JSONL of chat rows)
    with open(folder / "sft.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps({"messages": r["messages"], "domain": r["domain"], "difficulty": r["difficulty"]}) + "\n")


def _read(folder: Path, cfg: SynthConfig | None = None) -> SynthResult:
    def jl(name):
        return [json.loads(line) for line in (folder / name).read_text().splitlines() if line.strip()]

    return SynthResult(folder, jl("rows.jsonl"), jl("candidates.jsonl"), artifacts.load_json(folder / "funnel.json"), cfg)


def run(config: str | Path | SynthConfig = "configs/toy/synth.yaml", overrides: dict | list | None = None) -> SynthResult:
    """Run the pipeline as the config says; cached by config unless ``output_dir`` is set."""
    cfg = load(config, overrides)

    def build(folder: Path) -> None:
        from .pipeline import run_pipeline  # one path; its parts (toy or LLM) are chosen by config values

        _write(folder, *run_pipeline(cfg))

    return _read(STAGE.output(cfg, build, name="sft-data"), cfg)


def plan(config: str | Path | SynthConfig, overrides=None) -> TextPlan:
    """What a run would generate: instructions, candidates, tokens and GPU-hours (nothing is loaded)."""
    cfg = load(config, overrides)
    seeds = cfg.plan_seeds or (cfg.n_math_seeds + cfg.n_code_seeds)
    instructions = seeds * (1 + cfg.evolutions_per_seed)
    candidates = instructions * cfg.n_candidates
    tokens = candidates * cfg.plan_tokens_per_response + seeds * cfg.evolutions_per_seed * 200
    hours = tokens / cfg.plan_tokens_per_second / 3600.0
    return TextPlan([
        f"synthesis ({cfg.scale}): seeds from {cfg.seed_source}",
        f"seed instructions   {seeds:,}",
        f"after evolution     {instructions:,} ({cfg.evolutions_per_seed} per seed; operators {', '.join(cfg.evolution_ops)})"
        f"{' by ' + cfg.evolver_model if cfg.evolver_model else ''}",
        f"candidates          {candidates:,} ({cfg.n_candidates} per instruction"
        f"{', teacher ' + cfg.teacher_model if cfg.teacher_model else ', toy teacher'})",
        f"rejection sampling  reward: {cfg.reward_model}; code: sandbox, timeout {cfg.sandbox_timeout:g} s",
        f"generated tokens    {tokens / 1e9:.2f} B (about {cfg.plan_tokens_per_response} per reply)",
        f"estimated time      {hours:,.0f} GPU-hours at {cfg.plan_tokens_per_second:g} tokens/s per GPU"
        f" = {hours / cfg.n_gpus:,.1f} h on {cfg.n_gpus} GPUs",
    ])


__all__ = ["SynthConfig", "SynthResult", "run", "plan", "load", "unfiltered_rows", "OPERATORS", "evolve", "pick_best",
           "step_reward", "has_reasoning_steps", "label_domain", "difficulty_score", "difficulty_label",
           "diversity_sample", "DIFFICULTY_LABELS"]
