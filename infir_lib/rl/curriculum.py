"""Curr-ReFT and its control arm on the text toy task: stage schedules, evaluation, rejection sampling.

``run_text_method(cfg)`` trains the schedule ``cfg.method`` names (``curr_reft`` or ``mixed``) from
the cold-started policy and evaluates the result greedily on held-out rows:

- in domain: arithmetic word problems in all three formats (the open format is the headline);
- out of domain: a held-out family (``cfg.ood_family`` at ``cfg.ood_steps``), open format (never trained on).

The control arm (``mixed``) runs the curriculum's own schedule (same stages, steps, group sizes,
reference resets) on the shuffled rows, so both arms train on the same number of rollouts and GRPO
steps. The run's summary keeps, per stage, the share of zero-variance reward groups (all G
completions of a prompt with the same reward, so every advantage is 0): the waste Curr-ReFT's
curriculum is meant to avoid.

``rejection_sampling_sft`` is Curr-ReFT's second stage: sample several responses per prompt, let a
judge score them 0-100, keep those above the threshold, mix in text-only rows, and SFT on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import artifacts, stages
from ..config import as_dict
from ..models import SavedModelMixin, load_model, load_tokenizer
from ..stages import StageResult
from .config import RLConfig
from .grpo import StageArgs, run_stage
from .policy import evaluate_sets, set_stop_tokens, sft
from .rewards import completion_text, extract_answer, format_reward, score_answer
from .tasks import FORMATS, format_rows, mixed_chunks

STAGE = stages.stage("rl")


@dataclass
class RLResult(StageResult, SavedModelMixin):
    output_dir: Path
    summary: dict
    history: list[dict] = field(default_factory=list)
    config: RLConfig | None = None


def stage_rows(cfg: RLConfig) -> list[list[dict]]:
    """The training rows of each curriculum stage (in-domain family only)."""
    return [format_rows("arith", fmt, cfg.rows_per_stage, seed=cfg.data_seed, steps=cfg.train_steps)
            for fmt in FORMATS]


def eval_sets(cfg: RLConfig) -> dict[str, list[dict]]:
    """Held-out rows: in-domain per format, and the out-of-domain family (open answers)."""
    sets = {f"id_{fmt}": format_rows("arith", fmt, cfg.eval_n, seed=cfg.eval_seed, steps=cfg.eval_steps)
            for fmt in FORMATS}
    sets["ood_open"] = format_rows(cfg.ood_family, "open", cfg.eval_n, seed=cfg.eval_seed, steps=cfg.ood_steps)
    return sets


def evaluate_all(model_dir: Path, cfg: RLConfig) -> dict:
    """Greedy scores of the policy in ``model_dir`` on every set of :func:`eval_sets` (one batched pass)."""
    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    set_stop_tokens(model, tok)
    sets = eval_sets(cfg)
    scores = evaluate_sets(model, tok, sets, cfg.eval_max_new_tokens)
    return {name: {k: v for k, v in res.items() if k != "samples"} for name, res in scores.items()}


def stage_args(cfg: RLConfig, i: int) -> StageArgs:
    return StageArgs(steps=cfg.stage_steps[i], num_generations=cfg.stage_generations[i],
                     prompts_per_step=cfg.prompts_per_step, beta=cfg.beta, learning_rate=cfg.learning_rate,
                     temperature=cfg.temperature, max_completion_length=cfg.max_completion_length,
                     rewards=tuple(cfg.rewards), reward_weights=tuple(cfg.reward_weights), seed=cfg.seed + 1000 * i,
                     gradient_accumulation_steps=cfg.gradient_accumulation_steps, bf16=cfg.bf16,
                     deepspeed=cfg.deepspeed)


def starting_policy(cfg: RLConfig) -> tuple[Path, dict]:
    """The folder RL starts from and its spec: the hub/folder policy, or the toy model cold-started."""
    if cfg.model_name_or_path:
        return Path(cfg.model_name_or_path), {"model": cfg.model_name_or_path}
    from .policy import cold_start

    base = STAGE.input(cfg, "base_config")
    base_spec = {"pretrain": STAGE.input_key(cfg, "base_config")}
    if cfg.cold_start_per_format == 0:
        return base.model_dir, base_spec
    folder = cold_start(base.model_dir, base_spec, n_per_format=cfg.cold_start_per_format,
                        steps=cfg.cold_start_steps, lr=cfg.cold_start_lr, batch=16, seed=0)
    spec = artifacts.load_json(folder / artifacts.MANIFEST)["spec"]
    return folder, spec


def cache_spec(cfg: RLConfig, start_spec: dict) -> dict:
    """The cache key of an RL run: the stage's key (:meth:`infir_lib.stages.Stage.key`; the rs_* fields are
    keyed by the self-improvement artifact, the full path's by nothing: it is not cached) and the start's."""
    return {"cfg": STAGE.key(cfg), "start": start_spec}


def rollouts(cfg: RLConfig) -> int:
    """Completions sampled over the whole schedule: steps x group size x prompts per step, per stage."""
    return sum(s * g * cfg.prompts_per_step for s, g in zip(cfg.stage_steps, cfg.stage_generations))


def zero_variance_by_stage(history: list[dict]) -> dict[str, float]:
    """Per stage, the share of prompt groups whose G rewards were all equal (TRL's ``frac_reward_zero_std``,
    averaged over the stage's steps, which all hold the same number of groups): their advantages are 0,
    so they add nothing to the update."""
    out: dict[str, list[float]] = {}
    for h in history:
        if "frac_reward_zero_std" in h:
            out.setdefault(h["stage"], []).append(h["frac_reward_zero_std"])
    return {stage: sum(v) / len(v) for stage, v in out.items()}


def train_schedule(cfg: RLConfig, start: Path, out: Path) -> list[dict]:
    """Run every stage of ``cfg.method`` in order, each from the previous stage's folder."""
    rows = stage_rows(cfg)
    if cfg.method == "mixed":  # the same rows, shuffled, cut into as many stages as the curriculum has
        rows = mixed_chunks(rows, len(cfg.stages), cfg.seed)
    history, path = [], start
    for i, name in enumerate(cfg.stages):
        dest = out / "stages" / name
        history += run_stage(path, rows[i], dest, stage_args(cfg, i), stage=name)
        path = dest
    return history, path


def run_text_method(cfg: RLConfig) -> RLResult:
    """Curr-ReFT's curriculum (``curr_reft``) or its control (``mixed``) on the toy text task, cached."""
    if cfg.method not in ("curr_reft", "mixed"):
        raise ValueError(f"run_text_method runs curr_reft or mixed, not {cfg.method!r}")
    start, start_spec = starting_policy(cfg)

    def build(folder: Path) -> None:
        history, final = train_schedule(cfg, start, folder)
        model, tok = load_model(final), load_tokenizer(final)
        model.save_pretrained(folder / "model", safe_serialization=True)
        tok.save_pretrained(folder / "model")
        import shutil
        shutil.rmtree(folder / "stages")
        summary = {"method": cfg.method, "seed": cfg.seed, "eval": evaluate_all(folder / "model", cfg),
                   "steps": sum(cfg.stage_steps), "samples": rollouts(cfg),
                   "zero_variance": zero_variance_by_stage(history)}
        (folder / "history.json").write_text(json.dumps(history))
        (folder / "result.json").write_text(json.dumps(summary, indent=1))

    folder = Path(cfg.output_dir) if cfg.output_dir else None
    if folder is None:
        folder = artifacts.cached("rl", cache_spec(cfg, start_spec), build, name=cfg.method)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        build(folder)
    return RLResult(folder, json.loads((folder / "result.json").read_text()),
                    json.loads((folder / "history.json").read_text()))


def start_eval(cfg: RLConfig) -> dict:
    """The cold-started policy's scores before any RL (the row every table starts from)."""
    start, _ = starting_policy(cfg)
    return evaluate_all(start, cfg)


# --- rejection-sampling self-improvement ----------------------------------------------------------

def verifier_judge(completion: str, row: dict) -> float:
    """The toy judge: 0-100, from the rule-based checkers (100 = right answer in the right format).

    At full scale the judge is a strong model named by ``rs_judge`` that grades the response 0-100.
    """
    acc = score_answer(extract_answer(completion_text(completion)), row["solution"], row["answer_type"])
    fmt = format_reward([completion])[0]
    return 100.0 * (0.9 * acc + 0.1 * fmt)


def select_samples(rows: list[dict], samples: list[list[str]], threshold: float | None,
                   judge=verifier_judge) -> tuple[list[dict], list[float]]:
    """Judge every sample; keep those scoring above ``threshold`` (all of them when it is ``None``).

    Returns the kept SFT rows (the sample becomes the row's reference response) and every score.
    """
    if len(rows) != len(samples):
        raise ValueError(f"{len(rows)} prompts but {len(samples)} groups of samples")
    kept, scores = [], []
    for row, responses in zip(rows, samples):
        for resp in responses:
            s = judge(resp, row)
            scores.append(s)
            if threshold is None or s > threshold:
                kept.append({**row, "reference": resp.strip()})
    return kept, scores


def sample_responses(model, tok, rows: list[dict], k: int, max_new_tokens: int, seed: int) -> list[list[str]]:
    """``k`` sampled (temperature 1, the whole distribution) responses per row, from the library's one
    batched generator."""
    from ..eval.generate import generate

    out = generate(model, tok, [r["prompt"] for r in rows], max_new_tokens=max_new_tokens, do_sample=True,
                   temperature=1.0, top_k=0, n=k, batch_size=16, seed=seed, fit_context=False)
    return out if k > 1 else [[r] for r in out]


def rejection_sampling_sft(policy_dir: Path, cfg: RLConfig, out: Path, *, filtered: bool = True) -> dict:
    """Curr-ReFT stage 2 at toy scale; ``filtered=False`` keeps every sample (the control).

    Returns counts (sampled, kept, kept per format) and the evaluation of the SFT'd model.
    """
    model, tok = load_model(policy_dir), load_tokenizer(policy_dir)
    set_stop_tokens(model, tok)
    prompts = []
    per = max(1, cfg.rs_prompts // len(FORMATS))
    for fmt in FORMATS:
        prompts += format_rows("arith", fmt, per, seed=cfg.data_seed + 31, steps=cfg.train_steps)
    samples = sample_responses(model, tok, prompts, cfg.rs_samples, cfg.eval_max_new_tokens, cfg.seed)
    kept, scores = select_samples(prompts, samples, cfg.rs_threshold if filtered else None)
    # "general language data": text-only rows with reference answers, so the SFT keeps the basics
    text_rows = format_rows("arith", "open", cfg.rs_text_rows, seed=cfg.data_seed + 57, steps=cfg.train_steps)
    counts = {"prompts": len(prompts), "sampled": len(scores), "kept": len(kept),
              "kept_by_format": {f: sum(r["format"] == f for r in kept) for f in FORMATS},
              "mean_judge_score": sum(scores) / max(1, len(scores)), "text_rows": len(text_rows)}
    history = sft(policy_dir, kept + text_rows, out, steps=cfg.rs_sft_steps, lr=cfg.rs_sft_lr, batch=16, seed=cfg.seed)
    return {"counts": counts, "eval": evaluate_all(out, cfg), "sft_history": history}


def self_improve(config, filtered: bool = True, overrides: dict | None = None) -> dict:
    """Curr-ReFT stage 2 after the curriculum run of ``config`` (cached): counts, scores, SFT curve."""
    from ..runtime import torch_threads

    cfg = STAGE.load(config, overrides)
    with torch_threads(cfg.num_threads):
        policy = STAGE.run(cfg)
        from .policy import SFT_ROWS_VERSION

        spec = {"policy": artifacts.load_json(policy.output_dir / artifacts.MANIFEST)["spec"], "filtered": filtered,
                "rs": {k: v for k, v in as_dict(cfg).items() if k.startswith("rs_")}, "sft_rows": SFT_ROWS_VERSION}

        def build(folder: Path) -> None:
            res = rejection_sampling_sft(policy.model_dir, cfg, folder / "model", filtered=filtered)
            (folder / "result.json").write_text(json.dumps(res, indent=1))

        folder = artifacts.cached("rl_rs", spec, build, name="filtered" if filtered else "unfiltered")
    return json.loads((folder / "result.json").read_text())
