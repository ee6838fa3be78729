"""Curr-ReFT's parts of the stage schedule (:mod:`.schedule`) at toy scale, and its self-improvement stage.

The schedule trains the method ``cfg.method`` names (``curr_reft``: judge -> choice -> open; ``mixed``: the
control arm, the same rows shuffled on the curriculum's own schedule, so both arms train on the same number
of rollouts and GRPO steps) from the cold-started policy; this module gives it each stage's rows
(:func:`toy_rows`) and evaluates the result greedily on held-out rows (:func:`evaluate_all`):

- in domain: arithmetic word problems in all three formats (the open format is the headline);
- out of domain: a held-out family (``cfg.ood_family`` at ``cfg.ood_steps``), open format (never trained on).

``rejection_sampling_sft`` is Curr-ReFT's second stage: sample several responses per prompt, let a
judge score them 0-100, keep those above the threshold, mix in text-only rows, and SFT on them.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import artifacts, stages
from ..config import as_dict
from ..eval.generate import generate
from ..models import load_model, load_tokenizer
from ..runtime import torch_threads
from .config import RLConfig
from .policy import evaluate_sets, set_stop_tokens, sft, starting_policy
from .rewards import completion_text, extract_answer, format_reward, score_answer
from .tasks import FORMATS, format_rows

STAGE = stages.stage("rl")


def toy_rows(cfg: RLConfig, name: str) -> list[dict]:
    """The toy rows of curriculum stage ``name`` (= its answer format; in-domain family only)."""
    return format_rows("arith", name, cfg.rows_per_stage, seed=cfg.data_seed, steps=cfg.train_steps)


def stage_rows(cfg: RLConfig) -> list[list[dict]]:
    """The training rows of each curriculum stage (in-domain family only)."""
    return [toy_rows(cfg, fmt) for fmt in FORMATS]


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
    cfg = STAGE.load(config, overrides)
    with torch_threads(cfg.num_threads):
        policy = STAGE.run(cfg)
        spec = {"policy": artifacts.load_json(policy.output_dir / artifacts.MANIFEST)["spec"], "filtered": filtered,
                "rs": {k: v for k, v in as_dict(cfg).items() if k.startswith("rs_")}}  # the policy's spec holds the rl code digest

        def build(folder: Path) -> None:
            res = rejection_sampling_sft(policy.model_dir, cfg, folder / "model", filtered=filtered)
            (folder / "result.json").write_text(json.dumps(res, indent=1))

        folder = artifacts.cached("rl_rs", spec, build, name="filtered" if filtered else "unfiltered")
    return json.loads((folder / "result.json").read_text())
