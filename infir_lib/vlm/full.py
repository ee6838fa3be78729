"""The full-scale run of chapter 6: InfiR-VL's three-stage curriculum on Table 9 data, through accelerate.

    # one GPU (or CPU):
    python -m infir_lib vlm --config configs/full/vlm.yaml
    # 8 GPUs, FSDP (global batch fixed: gradient accumulation = global / (micro x processes)):
    accelerate launch --config_file configs/accelerate/fsdp_8gpu_vlm.yaml -m infir_lib vlm --config configs/full/vlm.yaml

What it does, in order:

1. assembles SigLIP + a fresh MLP projector + the LM (:func:`infir_lib.vlm.full_model.assemble`, hub ids or
   folders; ``init=random`` builds them from the config's sizes instead);
2. per stage, streams the stage's datasets (:mod:`infir_lib.vlm.hub_data`: one conversation schema, one
   adapter per supported format), mixes them uniformly (stage 2 also replays ``stage2_replay`` of stage-1
   rows), and in stage 1 drops image-text pairs whose SigLIP similarity is under the cut (App. E), counting
   what it drops;
3. trains each stage with :func:`infir_lib.vlm.train.fit_stage` -- the same function the toy run uses --
   stage 1 the projector, stage 2 the tower + projector, stage 3 everything, each at its own lr, bf16 on a
   GPU; ``ceil(stage_samples / global_batch_size)`` optimizer steps (``max_steps`` caps them);
4. checkpoints each stage with ``accelerator.save_state`` under ``output_dir/checkpoints/<stage>`` (a stage
   whose checkpoint is complete is skipped on a rerun: resume at stage granularity), then writes the
   model + processor to ``output_dir/model`` in transformers format and a ``result.json``.

Tested on local stand-ins only (tests/test_vlm_full.py: tiny SigLIP + tiny Llama saved to folders, parquet
data in two Table-9 formats, CPU, fp32); it has not been run on the real data or the real checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .config import VLMConfig
from .plan import grad_accumulation, stage_steps  # noqa: F401  (the planner's arithmetic; also used here)

RESUME_IGNORES = ("output_dir", "resume", "log_every")  # where and how a run reports, not what it trains


def resume_key(cfg: VLMConfig) -> dict:
    """What a stage checkpoint must have been made with to be kept on a rerun: the config, less the keys
    that only say where and how to report (JSON-normalised, as it is stored)."""
    from ..config import as_dict

    return json.loads(json.dumps({k: v for k, v in as_dict(cfg).items() if k not in RESUME_IGNORES}, default=str))

STAGES = (("stage1", "stage1_datasets", "stage1_lr"), ("stage2", "stage2_datasets", "stage2_lr"),
          ("stage3", "stage3_datasets", "stage3_lr"))


def make_accelerator(cfg: VLMConfig):
    from accelerate.utils import DistributedDataParallelKwargs

    from ..runtime import make_accelerator as accelerator_for

    gpu = torch.cuda.is_available()
    # DDP: frozen parts change between stages, so DDP must tolerate parameters without gradients
    # (FSDP2, as in fsdp_8gpu_vlm.yaml, handles mixed requires_grad natively).
    return accelerator_for(cfg.mixed_precision if gpu else "no", cpu=not gpu,
                           kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


def fsdp2_init_while_trainable(model) -> None:
    """FSDP2 fixes each parameter group's gradient dtypes at its first forward, from the parameters that need
    gradients *then*; a group frozen at that moment (the LM in stage 1) could not be unfrozen later (bf16
    gradients meet fp32 shards). So initialise FSDP now, while every parameter is still trainable."""
    get_state = getattr(model, "_get_fsdp_state", None)
    if get_state is not None:
        for p in model.parameters():
            p.requires_grad_(True)
        get_state()._lazy_init()


def stage_rows(cfg: VLMConfig, name: str, rank: int, world: int, cleaner_factory, counts: dict):
    """The conversation stream of one stage (stage-1 rows cleaned; stage 2 with stage-1 replay)."""
    from .hub_data import DatasetStream, mix

    def streams(key: str, seed: int):
        entries = getattr(cfg, key)
        if not entries:
            raise ValueError(f"{key} is empty: list the stage's datasets (hub ids or local folders)")
        return [DatasetStream(e, seed, rank, world, cfg.shuffle_buffer) for e in entries]

    def stage1(seed: int):
        src = streams("stage1_datasets", seed)
        counts["sources"].update({str(s.spec): s.stats for s in src})
        rows = mix(src, seed)
        if cfg.clean and cleaner_factory is not None:
            rows = cleaner_factory(rows)
            counts["cleaning"] = rows.counts
        return rows

    if name == "stage1":
        return stage1(cfg.seed)
    own = streams(f"{name}_datasets", cfg.seed + int(name[-1]))
    counts["sources"].update({str(s.spec): s.stats for s in own})
    rows = mix(own, cfg.seed + 10 + int(name[-1]))
    if name == "stage2" and cfg.stage2_replay > 0:
        replay = stage1(cfg.seed + 100)
        return mix([rows, replay], cfg.seed + 20, [1 - cfg.stage2_replay, cfg.stage2_replay])
    return rows


def run_full(cfg: VLMConfig):
    """Train InfiR-VL through the curriculum; returns :class:`~infir_lib.vlm.model.VLMResult`."""
    from accelerate.utils import set_seed

    from .. import artifacts
    from .full_model import CleanedStream, PairScorer, assemble
    from .hub_data import ConversationCollator, batches
    from .model import VLMResult, params_by_part
    from .train import fit_stage

    if cfg.schedule != "curriculum":
        raise ValueError("the full path runs the curriculum (schedule=curriculum); end_to_end is a toy comparison")
    if not cfg.output_dir:
        raise ValueError("a full run needs output_dir (checkpoints and the model are written there)")
    acc = make_accelerator(cfg)
    world, rank = acc.num_processes, acc.process_index
    accum = grad_accumulation(cfg, world)
    steps = stage_steps(cfg)
    out = Path(cfg.output_dir)
    ckpt = out / "checkpoints"
    set_seed(cfg.seed)
    fsdp = acc.distributed_type.name == "FSDP"
    model, processor = assemble(cfg, "cpu" if fsdp else acc.device)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    parts = params_by_part(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.stage1_lr, weight_decay=0.0)
    model, optimizer = acc.prepare(model, optimizer)
    fsdp2_init_while_trainable(acc.unwrap_model(model))
    acc.print(f"vlm full: {acc.distributed_type.name} x {world} processes, mixed precision {acc.mixed_precision}, "
              f"micro-batch {cfg.micro_batch_size} x accumulation {accum} = global batch {cfg.global_batch_size}; "
              f"steps per stage {steps}")
    collate = ConversationCollator(processor, cfg.seq_len)

    scorer = None
    cleaning_note = None
    if cfg.clean:
        path = cfg.clean_model_name_or_path or (cfg.vision_name_or_path if cfg.init == "pretrained" else None)
        if path:
            scorer = PairScorer(path, acc.device, cfg.clean_text_len)
        else:
            cleaning_note = "skipped: init=random and no clean_model_name_or_path (no SigLIP weights to score with)"

    def cleaner(rows):
        return CleanedStream(rows, scorer, cfg.threshold_method, cfg.threshold_value, cfg.threshold_quantile,
                             cfg.clean_calibration)

    summary = {"scale": "full", "init": cfg.init, "world_size": world, "grad_accumulation": accum,
               "micro_batch_size": cfg.micro_batch_size, "global_batch_size": cfg.global_batch_size,
               "parameters": parts, "per_stage": {}, "history": [], "schedule": cfg.schedule, "seed": cfg.seed}
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    finished = []  # resume: the leading stages whose checkpoint is complete; only the last one is loaded
    key = resume_key(cfg)
    for name, _, _ in STAGES:
        if not (cfg.resume and (ckpt / name / "stage.json").exists()):
            break
        saved = json.loads((ckpt / name / "stage.json").read_text()).get("key")
        if saved != key:  # made with another config: keeping it would return the old run as the new one
            changed = sorted(k for k in set(saved or {}) | set(key) if (saved or {}).get(k) != key.get(k))
            acc.print(f"{name}: its checkpoint was made with another config (changed: {', '.join(changed[:6]) or 'unknown'}); "
                      f"training again from {name}")
            break
        finished.append(name)
    if finished:
        acc.load_state(str(ckpt / finished[-1]))
        acc.print(f"resuming after {finished[-1]} (checkpoint {ckpt / finished[-1]})")
    for (name, _, lr_key), n_steps in zip(STAGES, steps):
        done = ckpt / name / "stage.json"
        if name in finished:
            record = {k: v for k, v in json.loads(done.read_text()).items() if k != "key"}
            summary["per_stage"][name] = {**record, "resumed": True}
            summary["history"] += record.get("history", [])
            continue
        counts = {"sources": {}}
        rows = stage_rows(cfg, name, rank, world, cleaner if scorer is not None else None, counts)
        hist = fit_stage(model, batches(rows, collate, cfg.micro_batch_size, acc.device), name, n_steps,
                         getattr(cfg, lr_key), optimizer=optimizer, accelerator=acc, accum=accum, stage=name,
                         log_every=cfg.log_every, progress=True)
        record = {"steps": n_steps, "lr": getattr(cfg, lr_key), "samples": n_steps * cfg.global_batch_size,
                  "history": hist, "sources": {k: v.to_dict() for k, v in counts["sources"].items()}}
        if "cleaning" in counts:
            record["cleaning"] = dict(counts["cleaning"])
        elif name == "stage1" and cfg.clean:
            record["cleaning"] = {"note": cleaning_note}
        acc.save_state(str(ckpt / name))
        if acc.is_main_process:
            done.write_text(json.dumps({**record, "key": key}, indent=1, default=str))
        acc.wait_for_everyone()
        summary["per_stage"][name] = record
        summary["history"] += hist
    summary["metrics"] = {f"final_loss_{k}": v["history"][-1]["loss"] for k, v in summary["per_stage"].items()
                          if v.get("history")}
    state = acc.get_state_dict(model)
    if acc.is_main_process:
        acc.unwrap_model(model).save_pretrained(out / "model", state_dict=state)
        processor.save_pretrained(out / "model")
        summary["cleaning"] = summary["per_stage"].get("stage1", {}).get("cleaning")
        artifacts.save_json(summary, out / "result.json")
    acc.wait_for_everyone()
    acc.end_training()
    return VLMResult(out, summary)
