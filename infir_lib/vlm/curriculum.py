"""The one stage loop of chapter 6 (InfiR §4.3), at both scales: build the model, then per stage unfreeze its
parts and train them (:func:`infir_lib.vlm.train.fit_stage`), record, checkpoint; save the model.

    summary = train_curriculum(cfg, folder, parts_for(cfg))      # what vlm.run builds (infir_lib.vlm.build)

The loop knows nothing of scale; the parts it is given do (chosen by config values in
:func:`infir_lib.vlm.build.parts_for`), each behind one small interface:

=================  ===========================================  ==============================================
part               toy (``scale: toy``)                         full (``scale: full``)
=================  ===========================================  ==============================================
model builder      :func:`infir_lib.vlm.toy.build_toy_model`    :func:`infir_lib.vlm.hub_model.assemble`
``(cfg, device)``  (warmed-up toy LM + pre-trained tiny tower)  (SigLIP + LM by hub id or folder, or random)
data               :class:`infir_lib.vlm.toy.ToyData`           :class:`infir_lib.vlm.hub_data.HubData`
                   (generated items, cleaned offline; the       (Table-9 datasets streamed and mixed, stage 1
                   ``Codec`` collator)                          cleaned by a SigLIP scorer; the
                                                                ``ConversationCollator``)
evaluation         :class:`infir_lib.vlm.toy.ToyEvaluation`     :class:`LossOnly` (final loss per stage)
runtime            :class:`LocalRuntime` (plain PyTorch on      :class:`AcceleratedRuntime` (accelerate: DDP /
                   the CPU, a fresh AdamW per stage)            FSDP, bf16, one optimizer, stage checkpoints
                                                                and resume)
=================  ===========================================  ==============================================

A data part gives the stages (:class:`CurriculumStage`), each stage's endless batches (``input_ids``,
``attention_mask``, ``labels`` on the answer tokens only, ``pixel_values``: both collators make that batch,
tests/test_vlm_full.py checks they make the same one for the same row), the stage's record and the
cleaning report. The model is built, and every stage starts, from the runtime's seeding of ``cfg.seed``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .. import artifacts
from ..config import as_dict
from ..runtime import make_accelerator, seed_everything, torch_threads
from .config import CurriculumStage, VLMConfig  # noqa: F401  (CurriculumStage: the parts' stage type)
from .model import params_by_part
from .planning import grad_accumulation
from .train import fit_stage

RESUME_IGNORES = ("output_dir", "resume", "log_every")  # where and how a run reports, not what it trains


@dataclass
class Parts:
    """What one run is made of (see the module docstring); each is called once with what it needs."""

    runtime: Callable[[], Any]  # () -> LocalRuntime | AcceleratedRuntime
    build_model: Callable[[VLMConfig, Any], tuple]  # (cfg, device) -> (model, processor)
    data: Callable[[Any, Any], Any]  # (processor, runtime) -> a data part
    evaluation: Callable[[Any], Any]  # processor -> an evaluation part


class LossOnly:
    """The evaluation part of a run with no held-out sets (full scale): the final training loss per stage."""

    def after_stage(self, model) -> dict:
        return {}

    def final(self, model, per_stage: dict) -> dict:
        return {f"final_loss_{k}": v["history"][-1]["loss"] for k, v in per_stage.items() if v.get("history")}


def resume_key(cfg: VLMConfig) -> dict:
    """What a stage checkpoint must have been made with to be kept on a rerun: the config, less the keys
    that only say where and how to report (JSON-normalised, as it is stored)."""
    return json.loads(json.dumps({k: v for k, v in as_dict(cfg).items() if k not in RESUME_IGNORES}, default=str))


# --------------------------------------------------------------------------- runtimes

class LocalRuntime:
    """Plain PyTorch on the CPU with ``threads`` torch threads (0: leave as is): the toy runtime. Each stage
    gets a fresh AdamW over its trainable parameters, each optimizer step ``accum`` batches (the toy: 1); no
    stage checkpoints (the artifact cache keeps whole runs, built atomically)."""

    accelerator, progress, device, rank, world, is_main = None, False, "cpu", 0, 1, True

    def __init__(self, threads: int = 0, accum: int = 1):
        self.threads, self.accum = threads, accum

    def context(self):
        return torch_threads(self.threads)

    def seed(self, seed: int) -> None:
        seed_everything(seed)  # and deterministic kernels: the toy runs are bit-for-bit repeatable

    def describe(self) -> dict:
        return {}

    def print(self, *args) -> None:
        pass

    def prepare(self, model):
        return model, None

    def finished_stages(self, names: list[str]) -> list[str]:
        return []

    def resume(self, name: str) -> dict:
        raise RuntimeError("a local run keeps no stage checkpoints")

    def save_stage(self, name: str, record: dict) -> None:
        pass

    def save_model(self, model, processor, folder: Path, summary: dict) -> None:
        model.save_pretrained(folder / "model")
        processor.save_pretrained(folder / "model")
        artifacts.save_json(summary, folder / "result.json")

    def end(self) -> None:
        pass


class AcceleratedRuntime:
    """accelerate on one or more processes (DDP, or FSDP2 as in configs/accelerate/fsdp_8gpu_vlm.yaml), bf16
    on a GPU, fp32 on the CPU: the full runtime. The global batch is fixed (gradient accumulation = global /
    (micro x processes)); one optimizer over every parameter (frozen ones get no gradient, so AdamW skips
    them; :func:`fit_stage` resets its moments per stage). Each stage is checkpointed with
    ``accelerator.save_state`` under ``folder/checkpoints/<stage>`` with a ``stage.json`` holding its record
    and :func:`resume_key`; a rerun skips the leading stages whose checkpoint is complete and was made with
    the same config (``resume``)."""

    progress = True

    def __init__(self, cfg: VLMConfig, folder: Path):
        from accelerate.utils import DistributedDataParallelKwargs  # heavy: accelerate

        gpu = torch.cuda.is_available()
        # DDP: frozen parts change between stages, so DDP must tolerate parameters without gradients
        # (FSDP2 handles mixed requires_grad natively).
        self.accelerator = make_accelerator(cfg.mixed_precision if gpu else "no", cpu=not gpu,
                                            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
        acc = self.accelerator
        self.cfg, self.world, self.rank, self.is_main = cfg, acc.num_processes, acc.process_index, acc.is_main_process
        self.accum = grad_accumulation(cfg, self.world)
        self.fsdp = acc.distributed_type.name == "FSDP"
        self.device = "cpu" if self.fsdp else acc.device  # FSDP shards from the CPU copy
        self.ckpt = Path(folder) / "checkpoints"
        self.key = resume_key(cfg)

    def context(self):
        return torch_threads(0)

    def seed(self, seed: int) -> None:
        from accelerate.utils import set_seed  # heavy: accelerate

        set_seed(seed)  # every process alike; no deterministic-kernel mode on GPUs

    def describe(self) -> dict:
        return {"scale": "full", "init": self.cfg.init, "world_size": self.world, "grad_accumulation": self.accum,
                "micro_batch_size": self.cfg.micro_batch_size, "global_batch_size": self.cfg.global_batch_size}

    def print(self, *args) -> None:
        self.accelerator.print(*args)

    def prepare(self, model):
        optimizer = torch.optim.AdamW(model.parameters(), lr=self.cfg.stage1_lr, weight_decay=0.0)
        model, optimizer = self.accelerator.prepare(model, optimizer)
        fsdp2_init_while_trainable(self.accelerator.unwrap_model(model))
        acc = self.accelerator
        self.print(f"vlm full: {acc.distributed_type.name} x {self.world} processes, mixed precision "
                   f"{acc.mixed_precision}, micro-batch {self.cfg.micro_batch_size} x accumulation {self.accum} = "
                   f"global batch {self.cfg.global_batch_size}")
        return model, optimizer

    def finished_stages(self, names: list[str]) -> list[str]:
        """The leading stages whose checkpoint is complete and made with this config; loads the last one."""
        finished = []
        for name in names:
            if not (self.cfg.resume and (self.ckpt / name / "stage.json").exists()):
                break
            saved = json.loads((self.ckpt / name / "stage.json").read_text()).get("key")
            if saved != self.key:  # made with another config: keeping it would return the old run as the new one
                changed = sorted(k for k in set(saved or {}) | set(self.key) if (saved or {}).get(k) != self.key.get(k))
                self.print(f"{name}: its checkpoint was made with another config (changed: "
                           f"{', '.join(changed[:6]) or 'unknown'}); training again from {name}")
                break
            finished.append(name)
        if finished:
            self.accelerator.load_state(str(self.ckpt / finished[-1]))
            self.print(f"resuming after {finished[-1]} (checkpoint {self.ckpt / finished[-1]})")
        return finished

    def resume(self, name: str) -> dict:
        return {k: v for k, v in json.loads((self.ckpt / name / "stage.json").read_text()).items() if k != "key"}

    def save_stage(self, name: str, record: dict) -> None:
        self.accelerator.save_state(str(self.ckpt / name))
        if self.is_main:
            (self.ckpt / name / "stage.json").write_text(json.dumps({**record, "key": self.key}, indent=1, default=str))
        self.accelerator.wait_for_everyone()

    def save_model(self, model, processor, folder: Path, summary: dict) -> None:
        acc = self.accelerator
        state = acc.get_state_dict(model)
        if self.is_main:
            acc.unwrap_model(model).save_pretrained(folder / "model", state_dict=state)
            processor.save_pretrained(folder / "model")
            artifacts.save_json(summary, folder / "result.json")
        acc.wait_for_everyone()

    def end(self) -> None:
        self.accelerator.end_training()


def fsdp2_init_while_trainable(model) -> None:
    """FSDP2 fixes each parameter group's gradient dtypes at its first forward, from the parameters that need
    gradients *then*; a group frozen at that moment (the LM in stage 1) could not be unfrozen later (bf16
    gradients meet fp32 shards). So initialise FSDP now, while every parameter is still trainable."""
    get_state = getattr(model, "_get_fsdp_state", None)
    if get_state is not None:
        for p in model.parameters():
            p.requires_grad_(True)
        get_state()._lazy_init()


# --------------------------------------------------------------------------- the loop

def train_curriculum(cfg: VLMConfig, folder: Path, parts: Parts) -> dict:
    """Train the VLM through ``cfg.schedule`` with ``parts``; writes ``folder/model`` (weights + processor)
    and ``folder/result.json``; returns the summary (metrics, per_stage, cleaning, history, parameters)."""
    rt = parts.runtime()
    with rt.context():
        rt.seed(cfg.seed)
        model, processor = parts.build_model(cfg, rt.device)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        n_params = params_by_part(model)
        model, optimizer = rt.prepare(model)
        data, evaluation = parts.data(processor, rt), parts.evaluation(processor)
        stages = data.stages()
        rt.print(f"stages: {', '.join(f'{s.name} {s.steps} steps' for s in stages)}")
        folder.mkdir(parents=True, exist_ok=True)
        finished = rt.finished_stages([s.name for s in stages])
        history, per_stage = [], {}
        for stage in stages:
            if stage.name in finished:
                record = rt.resume(stage.name)
                per_stage[stage.name] = {**record, "resumed": True}
                history += record.get("history", [])
                continue
            rt.seed(cfg.seed)
            hist = fit_stage(model, data.batches(stage, rt.device), stage.parts, stage.steps, stage.lr,
                             optimizer=optimizer, accelerator=rt.accelerator, accum=rt.accum, stage=stage.name,
                             log_every=cfg.log_every, progress=rt.progress)
            record = {**data.record(stage, hist), **evaluation.after_stage(model)}
            rt.save_stage(stage.name, record)
            per_stage[stage.name] = record
            history += hist
        summary = {**rt.describe(), "metrics": evaluation.final(model, per_stage), "per_stage": per_stage,
                   "cleaning": data.cleaning(per_stage), "history": history, "parameters": n_params,
                   "schedule": cfg.schedule, "seed": cfg.seed}
        rt.save_model(model, processor, folder, summary)
        rt.end()
    return summary
