"""Curr-ReFT and its control arm: the stage schedule (both scales), evaluation, rejection sampling.

``run_schedule(cfg)`` is the one code path of a staged GRPO run at toy and at full scale; the config's
values choose its parts (where the starting policy, each stage's rows, the processing class come
from; evaluation; cache or ``output_dir``: the table above :func:`source_stages`). At toy scale it
trains the schedule ``cfg.method`` names (``curr_reft`` or ``mixed``) from the cold-started policy and
evaluates the result greedily on held-out rows:

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

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .. import artifacts, stages
from ..config import as_dict
from ..models import SavedModelMixin, load_model, load_tokenizer
from ..stages import StageResult
from .config import STAGES, RLConfig
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


# --- the schedule: one code path for both scales, its parts chosen by config values -------------------
#
#   part                 toy (scale: toy)                          full (scale: full)
#   starting policy      model_name_or_path if set, else the chapter-2 model cold-started (starting_policy)
#   rows of each stage   toy task families (toy_rows)              dataset id + format adapter (dataset_rows)
#   mixed control        the curriculum's rows shuffled and cut into its stages (mixed_chunks), both scales
#   steps of a stage     stage_steps[i], or derived from the rows when it is 0 (stage_steps), both scales
#   processing class     the policy's processor if it has an image processor, else its tokenizer
#   per-stage resume     <output>/<stage>/stage.json holds the stage's key; a rerun keeps a finished stage
#   evaluation           the toy sets (evaluate_all)               none (the paper's benchmarks are chapter 5's)
#   output               STAGE.output: output_dir when set, else the artifact cache (full scale: output_dir
#                        is required); toy keeps the final policy in model/, full keeps every stage's folder


def source_stages(cfg: RLConfig) -> list[str]:
    """The stages whose rows the schedule reads: the method's own, or, for the control arm (``mixed``),
    the curriculum's (judge, choice, open), whose rows it shuffles together."""
    return STAGES["curr_reft"] if cfg.method == "mixed" else cfg.stages


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


def check_datasets(cfg: RLConfig) -> list[str]:
    """Full scale: one dataset, format (and image root) per stage, checked before any download; the formats."""
    from .hub_data import check_formats

    if len(cfg.datasets) != len(cfg.stages):
        raise ValueError(f"{len(cfg.stages)} stages {cfg.stages} need {len(cfg.stages)} datasets, got {cfg.datasets}")
    formats = check_formats(cfg.dataset_formats, len(cfg.stages))
    if cfg.image_roots and len(cfg.image_roots) != len(cfg.stages):
        raise ValueError(f"{len(cfg.stages)} stages need {len(cfg.stages)} image_roots (\"\" for none), "
                         f"got {cfg.image_roots}")
    return formats


def dataset_rows(cfg: RLConfig, i: int, name: str, report: dict) -> list[dict]:
    """Full scale: the rows of source stage ``name`` from ``cfg.datasets[i]``, converted by the adapter its
    ``dataset_formats`` entry names (:mod:`.hub_data`). Skipped rows are counted by reason, printed, and
    kept in ``report[name]`` (the run's ``result.json`` under ``data``)."""
    from .hub_data import load_stage_rows

    formats = check_datasets(cfg)
    root = cfg.image_roots[i] if cfg.image_roots else ""
    converted = load_stage_rows(cfg.datasets[i], formats[i], name, image_root=root or None)
    print(converted, flush=True)
    report[name] = converted.report()
    if not converted.rows:
        raise ValueError(f"stage {name!r}: no usable rows in {cfg.datasets[i]} (format {formats[i]}); skipped: "
                         f"{dict(converted.skipped)}")
    return converted.rows


def source_rows(cfg: RLConfig, i: int, report: dict) -> list[dict]:
    """The rows of the ``i``-th source stage (:func:`source_stages`): toy task rows, or a dataset's."""
    name = source_stages(cfg)[i]
    return dataset_rows(cfg, i, name, report) if cfg.scale == "full" else toy_rows(cfg, name)


def schedule_rows(cfg: RLConfig, report: dict | None = None) -> Iterator[list[dict]]:
    """The rows of each stage of ``cfg.stages``, in order. The curriculum reads one source per stage, when
    the stage starts (a full-scale stage's data is read after the previous stage trained); the control arm
    (``mixed``) reads them all and cuts the shuffled rows into as many stages (:func:`.tasks.mixed_chunks`)."""
    report = {} if report is None else report
    n = len(cfg.stages)
    if cfg.method == "mixed":
        yield from mixed_chunks([source_rows(cfg, i, report) for i in range(n)], n, cfg.seed)
    else:
        for i in range(n):
            yield source_rows(cfg, i, report)


def data_source(cfg: RLConfig, i: int) -> object:
    """What stage ``i``'s rows are made from (part of its resume key): dataset ids, or the toy rows' settings."""
    if cfg.scale == "full":
        return list(cfg.datasets) if cfg.method == "mixed" else cfg.datasets[i]
    return {"toy": source_stages(cfg) if cfg.method == "mixed" else cfg.stages[i], "rows_per_stage": cfg.rows_per_stage,
            "train_steps": list(cfg.train_steps), "data_seed": cfg.data_seed}


def stage_steps(cfg: RLConfig, i: int, n_rows: int) -> int:
    """GRPO steps of stage ``i``: ``stage_steps[i]``, or when that is 0 the stage's rows x ``stage_epochs[i]``
    (default 1) / prompts per step (at least 1). The dry-run counts with the same rule."""
    if cfg.stage_steps[i] > 0:
        return cfg.stage_steps[i]
    epochs = cfg.stage_epochs[i] if i < len(cfg.stage_epochs) else 1.0
    return max(1, int(n_rows * epochs // cfg.prompts_per_step))


def stage_args(cfg: RLConfig, i: int, n_rows: int | None = None) -> StageArgs:
    """Stage ``i``'s GRPO settings; with ``n_rows`` (its rows) a ``stage_steps`` of 0 is derived from them."""
    steps = cfg.stage_steps[i] if n_rows is None else stage_steps(cfg, i, n_rows)
    return StageArgs(steps=steps, num_generations=cfg.stage_generations[i],
                     prompts_per_step=cfg.prompts_per_step, beta=cfg.beta, learning_rate=cfg.learning_rate,
                     temperature=cfg.temperature, max_completion_length=cfg.max_completion_length,
                     rewards=tuple(cfg.rewards), reward_weights=tuple(cfg.reward_weights), seed=cfg.seed + 1000 * i,
                     gradient_accumulation_steps=cfg.gradient_accumulation_steps, bf16=cfg.bf16,
                     deepspeed=cfg.deepspeed)


def starting_policy(cfg: RLConfig) -> tuple[Path, dict]:
    """The folder RL starts from and its spec: the hub/folder policy, or the toy model cold-started."""
    if cfg.model_name_or_path:
        return Path(cfg.model_name_or_path), {"model": cfg.model_name_or_path}
    if not cfg.base_config:
        raise ValueError("no starting policy: set model_name_or_path (a hub id or a folder) or base_config "
                         "(a pretrain preset, cold-started here)")
    from .policy import cold_start

    base = STAGE.input(cfg, "base_config")
    base_spec = {"pretrain": STAGE.input_key(cfg, "base_config")}
    if cfg.cold_start_per_format == 0:
        return base.model_dir, base_spec
    folder = cold_start(base.model_dir, base_spec, n_per_format=cfg.cold_start_per_format,
                        steps=cfg.cold_start_steps, lr=cfg.cold_start_lr, batch=16, seed=0)
    spec = artifacts.load_json(folder / artifacts.MANIFEST)["spec"]
    return folder, spec


def processing_class(policy: str | Path):
    """What the GRPO trainer prepares prompts with: the policy's processor when it has an image processor
    (a VLM), else ``None`` (the stage then uses the policy's tokenizer)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(policy))
    return processor if hasattr(processor, "image_processor") else None


def cache_spec(cfg: RLConfig, start_spec: dict) -> dict:
    """The cache key of an RL run: the stage's key (:meth:`infir_lib.stages.Stage.key`; the rs_* fields are
    keyed by the self-improvement artifact, the full path's by nothing: it is not cached) and the start's."""
    return {"cfg": STAGE.key(cfg), "start": start_spec}


def rollouts(cfg: RLConfig, steps: list[int] | None = None) -> int:
    """Completions sampled over the whole schedule: steps x group size x prompts per step, per stage
    (``steps``: the steps each stage ran, default ``stage_steps``)."""
    steps = cfg.stage_steps if steps is None else steps
    return sum(s * g * cfg.prompts_per_step for s, g in zip(steps, cfg.stage_generations))


def zero_variance_by_stage(history: list[dict]) -> dict[str, float]:
    """Per stage, the share of prompt groups whose G rewards were all equal (TRL's ``frac_reward_zero_std``,
    averaged over the stage's steps, which all hold the same number of groups): their advantages are 0,
    so they add nothing to the update."""
    out: dict[str, list[float]] = {}
    for h in history:
        if "frac_reward_zero_std" in h:
            out.setdefault(h["stage"], []).append(h["frac_reward_zero_std"])
    return {stage: sum(v) / len(v) for stage, v in out.items()}


def resumable_stage(start: Path, rows: list[dict], dest: Path, args: StageArgs, processor, name: str,
                    source: object) -> list[dict]:
    """One GRPO stage into ``dest``, unless ``dest/stage.json`` says it finished with the same key (settings,
    start, data, number of rows): then its history is read back. A rerun resumes at stage granularity."""
    done = dest / "stage.json"
    key = json.loads(json.dumps({"args": dataclasses.asdict(args), "start": str(start), "dataset": source,
                                 "rows": len(rows)}))
    if done.exists() and json.loads(done.read_text()).get("key") == key:
        print(f"stage {name!r}: finished in an earlier run, kept ({dest})", flush=True)
        return json.loads(done.read_text())["history"]
    history = run_stage(start, rows, dest, args, processor=processor, stage=name)
    done.write_text(json.dumps({"key": key, "history": history}))
    return history


def train_schedule(cfg: RLConfig, start: Path, out: Path, processor=None,
                   report: dict | None = None) -> tuple[list[dict], Path, list[int]]:
    """Run every stage of ``cfg.method`` in order into ``out/<stage>``, each from the previous stage's folder.

    Returns the per-step history, the last stage's folder and the steps each stage ran."""
    history, path, steps = [], start, []
    for i, (name, rows) in enumerate(zip(cfg.stages, schedule_rows(cfg, report))):
        if processor is None and any("image" in r for r in rows):
            raise ValueError(f"stage {name!r}: {data_source(cfg, i)} has image rows but the policy {start} has no "
                             "image processor (a text-only model)")
        args = stage_args(cfg, i, len(rows))
        steps.append(args.steps)
        history += resumable_stage(path, rows, out / name, args, processor, name, data_source(cfg, i))
        path = out / name
    return history, path, steps


def run_schedule(cfg: RLConfig) -> RLResult:
    """The stage schedule ``cfg.method`` names, at either scale, from one code path whose parts the config
    chooses (the table above). Toy: Curr-ReFT's curriculum (``curr_reft``) or its control (``mixed``) on the
    toy text task, evaluated, cached. Full: any method's stages on the released datasets (needs GPUs and the
    hub, or local copies), every stage's checkpoint kept in ``output_dir``."""
    full = cfg.scale == "full"
    if full:
        if not cfg.output_dir:
            raise ValueError("a full-scale run needs output_dir (checkpoints of every stage are written there)")
        check_datasets(cfg)  # before any download
    elif cfg.method not in ("curr_reft", "mixed"):
        raise ValueError(f"the toy schedule runs curr_reft or mixed, not {cfg.method!r} (run_phased runs the VLM's)")
    start, start_spec = starting_policy(cfg)

    def build(folder: Path) -> None:
        report: dict = {}
        history, final, steps = train_schedule(cfg, start, folder, processing_class(start), report)
        summary = {"method": cfg.method, "seed": cfg.seed}
        if not full:  # the final policy in model/, evaluated on the toy sets; the stage folders go
            model, tok = load_model(final), load_tokenizer(final)
            model.save_pretrained(folder / "model", safe_serialization=True)
            tok.save_pretrained(folder / "model")
            for name in cfg.stages:
                shutil.rmtree(folder / name)
            summary["eval"] = evaluate_all(folder / "model", cfg)
        summary.update(steps=sum(steps), samples=rollouts(cfg, steps), zero_variance=zero_variance_by_stage(history))
        if full:
            summary.update(stages=cfg.stages, data=report)
        (folder / "history.json").write_text(json.dumps(history))
        (folder / "result.json").write_text(json.dumps(summary, indent=1))

    folder = STAGE.output(cfg, build, key=None if cfg.output_dir else cache_spec(cfg, start_spec), name=cfg.method)
    return RLResult(folder, json.loads((folder / "result.json").read_text()),
                    json.loads((folder / "history.json").read_text()), cfg)


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
