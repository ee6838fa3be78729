"""Chapter 7: curriculum reinforcement learning — Curr-ReFT and Infi-MMR on top of GRPO.

    from infir_lib import rl
    result = rl.run("configs/toy/rl_curr_reft.yaml")          # toy text curriculum on CPU, cached
    result = rl.run("configs/toy/rl_infi_mmr.yaml")           # toy VLM, three phases
    print(rl.plan("configs/full/rl_curr_reft_qwen.yaml"))     # the paper's run, dry-run only
    # accelerate launch --config_file configs/accelerate/zero3_8gpu.yaml -m infir_lib rl \\
    #     --config configs/full/rl_curr_reft_qwen.yaml

Rewards are pure functions chosen by name and weight in the YAML (:mod:`.rewards`); each stage is
one TRL ``GRPOTrainer`` run (:mod:`.grpo`); :mod:`.curriculum` holds Curr-ReFT (judge -> choice ->
open, and rejection-sampling self-improvement), :mod:`.phases` Infi-MMR (text -> caption -> image).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..stages import stage
from .config import METHODS, STAGES, RLConfig, parse_dataset_id  # noqa: F401  (re-exported)
from .curriculum import RLResult, rejection_sampling_sft, run_text_method, start_eval
from .rewards import REWARDS, get_reward_funcs, register_reward, total_reward


def as_config(config, overrides=None) -> RLConfig:
    """The config of a run: a preset path + overrides, or an RLConfig (+ a dict of replacements)."""
    return stage("rl").load(config, overrides)


def run(config: str | Path | RLConfig, overrides: dict | list | None = None) -> RLResult:
    """Run the schedule the config's ``method`` names. Toy: on this machine, cached. Full: under accelerate."""
    cfg = as_config(config, overrides)
    from ..runtime import torch_threads

    with torch_threads(cfg.num_threads if cfg.scale == "toy" else 0):
        return _run(cfg)


def _run(cfg: RLConfig) -> RLResult:
    if cfg.method in ("curr_reft", "mixed"):
        if cfg.scale == "full":
            return _run_full(cfg)
        return run_text_method(cfg)
    if cfg.scale == "full":
        return _run_full(cfg)
    from .phases import run_phased

    return run_phased(cfg)


def _run_full(cfg: RLConfig) -> RLResult:
    """Full scale: the same stage chain on the released datasets (needs GPUs and the hub, or local copies).

    Each stage's dataset is read and converted by the adapter its ``dataset_formats`` entry names
    (:mod:`.hub_data`): released columns -> prompt messages, solution, answer_type, image. Skipped
    rows are counted by reason, printed, and kept in ``result.json`` under ``data``.
    """
    import json

    from .curriculum import stage_args
    from .grpo import run_stage
    from .hub_data import check_formats, load_stage_rows

    if not cfg.output_dir:
        raise ValueError("a full-scale run needs output_dir (checkpoints of every stage are written there)")
    if len(cfg.datasets) != len(cfg.stages):
        raise ValueError(f"{len(cfg.stages)} stages {cfg.stages} need {len(cfg.stages)} datasets, got {cfg.datasets}")
    formats = check_formats(cfg.dataset_formats, len(cfg.stages))  # before any download
    if cfg.image_roots and len(cfg.image_roots) != len(cfg.stages):
        raise ValueError(f"{len(cfg.stages)} stages need {len(cfg.stages)} image_roots (\"\" for none), "
                         f"got {cfg.image_roots}")
    roots = [r or None for r in cfg.image_roots] or [None] * len(cfg.stages)
    out, path, history, data = Path(cfg.output_dir), cfg.model_name_or_path, [], {}
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(cfg.model_name_or_path)
    if not hasattr(processor, "image_processor"):  # a text-only policy: its tokenizer is the processing class
        processor = None
    for i, (name, ds_id) in enumerate(zip(cfg.stages, cfg.datasets)):
        converted = load_stage_rows(ds_id, formats[i], name, image_root=roots[i])
        print(converted, flush=True)
        data[name] = converted.report()
        rows = converted.rows
        if not rows:
            raise ValueError(f"stage {name!r}: no usable rows in {ds_id} (format {formats[i]}); skipped: "
                             f"{dict(converted.skipped)}")
        if processor is None and any("image" in r for r in rows):
            raise ValueError(f"stage {name!r}: {ds_id} has image rows but the policy {cfg.model_name_or_path} has no "
                             "image processor (a text-only model)")
        args = stage_args(cfg, i)
        derived = int(len(rows) * (cfg.stage_epochs[i] if cfg.stage_epochs else 1.0) // cfg.prompts_per_step)
        args.steps = cfg.stage_steps[i] if cfg.stage_steps[i] > 0 else max(1, derived)  # 0 = derive from the data
        done = out / name / "stage.json"
        key = {"args": dataclasses.asdict(args), "start": str(path), "dataset": ds_id, "rows": len(rows)}
        if done.exists() and json.loads(done.read_text()).get("key") == json.loads(json.dumps(key)):
            print(f"stage {name!r}: finished in an earlier run, kept ({out / name})", flush=True)
            history += json.loads(done.read_text())["history"]
        else:  # a rerun resumes at stage granularity: finished stages are kept, this one starts again
            stage_history = run_stage(path, rows, out / name, args, processor=processor, stage=name)
            done.write_text(json.dumps({"key": key, "history": stage_history}))
            history += stage_history
        path = out / name
    summary = {"method": cfg.method, "stages": cfg.stages, "data": data}
    (out / "history.json").write_text(json.dumps(history))
    (out / "result.json").write_text(json.dumps(summary, indent=1))
    return RLResult(out, summary, history, cfg)


def plan(config: str | Path | RLConfig, overrides=None):
    """The dry-run: policy size from a meta-device build, stages, rollouts, GPU-hours, memory per GPU."""
    from .planning import plan_rl

    return plan_rl(as_config(config, overrides))


__all__ = ["RLConfig", "RLResult", "METHODS", "STAGES", "run", "plan", "as_config", "REWARDS", "get_reward_funcs",
           "register_reward", "total_reward", "rejection_sampling_sft", "start_eval"]
