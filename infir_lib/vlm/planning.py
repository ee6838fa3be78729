"""``--dry-run`` for the VLM: the model of Figure 3 built on the meta device from config numbers only.

At full scale that is SigLIP-So400m (patch 14, 384 px, no pooling head) + an MLP projector + the
Llama-3.2-1B-shaped InfiR-1B: about 1.6 B parameters, the "1.6B" of InfiR-VL-1.6B. Nothing is
downloaded: the LM's sizes come from its pretrain preset, the tower's from this config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import stages
from ..models import count_parameters, llama_config
from ..planning import TrainingPlan, plan_training
from ..stages import Plan
from .config import VLMConfig
from .hub_data import FORMATS
from .model import STAGE_TRAINABLE, build_llava, params_by_part, vision_config


def _fmt(n: float) -> str:
    return f"{n / 1e9:.3f} B" if n >= 1e9 else f"{n / 1e6:,.1f} M" if n >= 1e6 else f"{n / 1e3:,.1f} k"


def stage_steps(cfg: VLMConfig) -> list[int]:
    """Optimizer steps per stage: the stage's samples over the global batch, capped by ``max_steps``."""
    steps = [math.ceil(n / cfg.global_batch_size) if n else 0 for n in cfg.stage_samples]
    if cfg.max_steps > 0:
        steps = [min(s, cfg.max_steps) if s else cfg.max_steps for s in steps]
    return steps


def grad_accumulation(cfg: VLMConfig, world_size: int) -> int:
    """Global batch = micro batch x processes x accumulation, so one GPU optimises like 64."""
    per_step = cfg.micro_batch_size * world_size
    if cfg.global_batch_size % per_step:
        raise ValueError(f"global_batch_size={cfg.global_batch_size} is not a multiple of micro_batch_size="
                         f"{cfg.micro_batch_size} x {world_size} processes")
    return cfg.global_batch_size // per_step


@dataclass
class VLMPlan(Plan):
    parameters: int
    by_part: dict
    trainable_by_stage: dict
    image_tokens: int
    datasets: dict
    training: TrainingPlan | None
    note: str = ""

    def to_dict(self) -> dict:
        return {"parameters": self.parameters, "by_part": self.by_part, "trainable_by_stage": self.trainable_by_stage,
                "image_tokens": self.image_tokens, "datasets": self.datasets,
                "training": self.training.to_dict() if self.training else None}

    def __str__(self) -> str:
        lines = [f"VLM parameters      {self.parameters / 1e9:.3f} B ({self.parameters:,})"]
        lines += [f"  {k:<17} {_fmt(v)}" for k, v in self.by_part.items()]
        lines.append(f"image tokens        {self.image_tokens} per image")
        for stage, n in self.trainable_by_stage.items():
            lines.append(f"{stage:<19} trains {_fmt(n)} parameters; data: {self.datasets.get(stage) or '(toy generators)'}")
        if self.note:
            lines.append(self.note)
        if self.training is not None:
            lines += ["compute (all stages, as if every parameter trained):", str(self.training)]
        return "\n".join(lines)


def meta_model(cfg: VLMConfig):
    text = llama_config(stages.stage("pretrain").load(cfg.lm_config))
    vis = vision_config(cfg.vision_hidden_size, cfg.vision_layers, cfg.vision_heads, cfg.vision_intermediate_size,
                        cfg.image_size, cfg.patch_size)
    return build_llava(vis, text, image_token_id=text.vocab_size - 1, device="meta")


def plan_vlm(cfg: VLMConfig) -> VLMPlan:
    model = meta_model(cfg)
    by_part = params_by_part(model)
    total = count_parameters(model)
    trainable = {s: sum(by_part[p] for p in parts) for s, parts in STAGE_TRAINABLE.items() if s != "end_to_end"}
    n_img = (cfg.image_size // cfg.patch_size) ** 2
    datasets = {"stage1": cfg.stage1_datasets, "stage2": cfg.stage2_datasets, "stage3": cfg.stage3_datasets}
    training = None
    samples = sum(cfg.stage_samples)
    if samples:
        text = model.config.text_config
        training = plan_training(n_params=total, n_tokens=float(samples * cfg.seq_len),
                                 global_batch=cfg.global_batch_size, seq_len=cfg.seq_len,
                                 n_layers=text.num_hidden_layers, hidden=text.hidden_size,
                                 n_heads=text.num_attention_heads, n_gpus=cfg.n_gpus,
                                 micro_batch=cfg.micro_batch_size, gpu=cfg.gpu, mfu=cfg.assumed_mfu,
                                 sharding=cfg.sharding, checkpointing=True)
    note = ("note: the LM is counted with the config's vocab_size; the toy tokenizer trained in chapter 2 is "
            "smaller, so the built toy model (result.summary['parameters']) is smaller too") if cfg.scale == "toy" else ""
    if cfg.scale == "full":
        try:
            accum = f"{cfg.micro_batch_size} x {grad_accumulation(cfg, cfg.n_gpus)} accumulation x {cfg.n_gpus} GPUs"
        except ValueError as e:
            accum = f"invalid: {e}"
        note = (f"training (infir_lib/vlm/build.py, scale full, init={cfg.init}): optimizer steps per stage {stage_steps(cfg)}, "
                f"global batch {cfg.global_batch_size} = micro-batch {accum}; lr {cfg.stage1_lr:g} / "
                f"{cfg.stage2_lr:g} / {cfg.stage3_lr:g}; cleaning {'on' if cfg.clean else 'off'} "
                f"({cfg.threshold_method}); dataset formats read: {', '.join(FORMATS)}")
    return VLMPlan(total, by_part, trainable, n_img, datasets, training, note)
