"""The dry-run of an RL run: policy size (built on the meta device), stages, rollouts, cost, memory.

GRPO's cost per step is dominated by sampling: G completions of up to L tokens for each prompt, then
one forward of the reference model and one forward+backward of the policy over prompt+completion.
FLOPs ≈ 2·N·(tokens generated) + 2·N·(tokens scored by the reference) + 6·N·(tokens trained).
Generation runs far below peak (memory-bound, one token at a time), so the estimate charges it at a
tenth of the assumed MFU. Memory under ZeRO-3: bf16 weights + grads + fp32 Adam state, sharded over
the GPUs, plus the frozen reference model's bf16 weights, also sharded. GPU-hours and the training
state come from the spine's planner (:mod:`infir_lib.planning`), so every chapter's dry-run counts alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..dataset_ids import parse_dataset_id
from ..models import build_llama, count_parameters
from ..planning import GPU_MEMORY_GIB, gpu_hours as gpu_hours_for, state_memory_gib
from ..stages import Plan, stage
from .config import RLConfig
from .grpo import batch_layout
from .schedule import stage_args, stage_steps

# Qwen2.5-VL-3B-Instruct (its config.json), written here so the dry-run downloads nothing.
QWEN25_VL_3B = {
    "text": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                 num_key_value_heads=2, vocab_size=151936, max_position_embeddings=128000, rope_theta=1000000.0,
                 tie_word_embeddings=True),
    "vision": dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048,
                   patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                   fullatt_block_indexes=[7, 15, 23, 31], window_size=112),
}


def count_policy_parameters(cfg: RLConfig) -> tuple[int, str]:
    """Parameters of the policy, from a model built on the meta device (no download, no memory)."""
    name = cfg.model_name_or_path or "toy"
    if "Qwen2.5-VL-3B" in name:
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration  # heavy: Qwen2.5-VL's modeling code, this preset only

        qcfg = Qwen2_5_VLConfig(text_config=QWEN25_VL_3B["text"], vision_config=QWEN25_VL_3B["vision"],
                                tie_word_embeddings=True)
        with torch.device("meta"):
            model = Qwen2_5_VLForConditionalGeneration(qcfg)
        return count_parameters(model), "Qwen2.5-VL-3B-Instruct architecture (meta device)"
    text_only = cfg.method in ("curr_reft", "mixed") and cfg.scale == "toy"
    if text_only and cfg.base_config and not cfg.model_name_or_path:
        return count_parameters(build_llama(stage("pretrain").load(cfg.base_config), device="meta")), \
            f"toy Llama of {cfg.base_config} (meta device)"
    if cfg.vlm_config:
        from ..vlm import plan as plan_vlm  # lazy: rl's dry-run loads the vlm stage only for a vlm_config

        p = plan_vlm(cfg.vlm_config)
        n = getattr(p, "parameters", None) or getattr(p, "total_parameters", None)
        if n is None and hasattr(p, "to_dict"):
            d = p.to_dict()
            n = d.get("parameters") or d.get("total_parameters")
        if n is not None:
            return int(n if not isinstance(n, dict) else sum(n.values())), f"the book's VLM ({cfg.vlm_config})"
    raise ValueError(f"cannot size policy {name!r} offline; set model_name_or_path to Qwen/Qwen2.5-VL-3B-Instruct "
                     "or vlm_config to a chapter-6 preset")


@dataclass
class RLPlan(Plan):
    method: str
    policy: str
    parameters: int
    stages: list[dict]
    n_gpus: int
    gpu: str
    rollouts: int
    generated_tokens: float
    total_flops: float
    gpu_hours: float
    wall_hours: float
    memory_per_gpu_gib: float
    memory_breakdown_gib: dict
    settings: dict
    batch: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what would stop or mislead the run, found offline

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        lines = [f"method              {self.method}", f"policy              {self.policy}",
                 f"parameters          {self.parameters / 1e9:.3f} B ({self.parameters:,})",
                 "stages:"]
        for s in self.stages:
            lines.append(f"  {s['name']:<10} data {s['dataset'] or '-'}; {s['examples']:,} prompts x {s['epochs']:g} "
                         f"epoch(s) = {s['steps']:,} steps, G={s['generations']}, {s['rollouts']:,} rollouts")
        mem = ", ".join(f"{k} {v:.1f}" for k, v in self.memory_breakdown_gib.items())
        lines += [
            "settings            " + ", ".join(f"{k}={v}" for k, v in self.settings.items()),
            f"devices             {self.n_gpus} x {self.gpu}",
            f"rollouts            {self.rollouts:,} completions, {self.generated_tokens / 1e6:.1f} M tokens at most",
            f"compute             {self.total_flops:.3e} FLOPs",
            f"estimated time      {self.gpu_hours:,.1f} GPU-hours = {self.wall_hours:,.2f} h wall-clock",
            f"memory per GPU      {self.memory_per_gpu_gib:.1f} GiB (zero3: {mem}) of {GPU_MEMORY_GIB.get(self.gpu, '?')} GiB",
        ]
        if self.batch:
            b = self.batch
            lines.append(f"batch per step      {b['prompts_per_step']} prompts x G = {b['completions_per_step']} completions "
                         f"over {b['processes']} GPU(s): {b['completions_per_device_batch']} per GPU per micro-batch, "
                         f"gradient accumulation {b['gradient_accumulation_steps']}")
        lines += [f"note                {n}" for n in self.notes]
        if self.problems:
            lines.append(f"NOT READY           {len(self.problems)} problem(s) found before any download:")
            lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


# Released RL sets whose rows carry no caption column (Infi-MMR's phase 2 needs one).
NO_CAPTION_FORMATS = ("curr_reft", "deepscaler", "geo170k", "geometry3k")
CAPTION_STAGES = ("caption",)


def _is_local(ds: str) -> bool:
    return ds.endswith((".json", ".jsonl")) or Path(ds).exists()


def full_scale_problems(cfg: RLConfig) -> list[str]:
    """What a full-scale preset gets wrong, found offline, so the dry-run can refuse instead of
    printing a healthy plan: missing captions, placeholder folders, batch layouts that do not split,
    missing rejection-sampling settings, a missing launch config."""
    if cfg.scale != "full":
        return []
    problems = []
    if not cfg.output_dir:
        problems.append("output_dir is not set (every stage's checkpoint is written there)")
    if len(cfg.datasets) != len(cfg.stages):
        problems.append(f"{len(cfg.stages)} stages {cfg.stages} need {len(cfg.stages)} datasets, got {len(cfg.datasets)}")
    for i, stage in enumerate(cfg.stages):
        ds = cfg.datasets[i] if i < len(cfg.datasets) else ""
        fmt = cfg.dataset_formats[i] if i < len(cfg.dataset_formats) else "chapter"
        if stage in CAPTION_STAGES and fmt in NO_CAPTION_FORMATS and not _is_local(ds):
            problems.append(f"stage {stage!r}: {ds} (format {fmt}) has no 'caption' column; run an image captioner "
                            f"over its images, save the rows with a 'caption' field as JSONL and point datasets[{i}] at it")
        root = cfg.image_roots[i] if i < len(cfg.image_roots) else ""
        try:  # a folder here, or a folder of a hub dataset (infir_lib/dataset_ids.py)
            local_root = bool(root) and parse_dataset_id(root).local
        except ValueError as e:
            problems.append(f"stage {stage!r}: image_roots[{i}]: {e}")
            local_root = False
        if local_root and not Path(root).is_dir():
            problems.append(f"stage {stage!r}: image_roots[{i}] = {root!r} is not a folder here (extract the "
                            "dataset's images there first)")
        try:
            batch_layout(stage_args(cfg, i), cfg.n_gpus)
        except ValueError as e:
            problems.append(f"stage {stage!r}: {e}")
    if cfg.deepspeed and not Path(cfg.deepspeed).exists():
        problems.append(f"deepspeed = {cfg.deepspeed!r} does not exist")
    if cfg.method == "curr_reft":
        if cfg.rs_judge == "verifier":
            problems.append("rejection sampling: rs_judge is the toy verifier; name the judge model (Curr-ReFT: a strong VLM)")
        if not cfg.rs_kept or not cfg.rs_domain_kept:
            problems.append("rejection sampling: set rs_kept and rs_domains / rs_domain_kept (Curr-ReFT keeps 1,520: "
                            "math 700, science 320, general 500)")
    return problems


def plan_rl(cfg: RLConfig) -> RLPlan:
    n, policy = count_policy_parameters(cfg)
    stages, rollouts, gen_tokens, flops = [], 0, 0.0, 0.0
    for i, name in enumerate(cfg.stages):
        examples = cfg.train_examples_per_stage[i] if i < len(cfg.train_examples_per_stage) else cfg.rows_per_stage
        epochs = cfg.stage_epochs[i] if i < len(cfg.stage_epochs) else 1.0
        steps = stage_steps(cfg, i, examples) if cfg.train_examples_per_stage else cfg.stage_steps[i]  # the run's rule
        g = cfg.stage_generations[i]
        r = steps * cfg.prompts_per_step * g
        toks = r * cfg.max_completion_length
        seq = r * (cfg.prompt_tokens + cfg.max_completion_length)
        stages.append({"name": name, "dataset": cfg.datasets[i] if i < len(cfg.datasets) else None,
                       "examples": examples, "epochs": epochs, "steps": steps, "generations": g, "rollouts": r})
        rollouts += r
        gen_tokens += toks
        flops += 2.0 * n * toks / 0.1 + (2.0 * n * seq if cfg.beta else 0.0) + 6.0 * n * seq
    gpu_hours = gpu_hours_for(flops, cfg.gpu, cfg.assumed_mfu)
    k = max(1, cfg.n_gpus)
    state = state_memory_gib(n, k, "zero3")  # the policy's weights, grads and Adam state, sharded
    breakdown = {"policy": state["weights"], "grads": state["grads"], "optimizer": state["optimizer"],
                 "reference": state["weights"] if cfg.beta else 0.0}  # frozen bf16 copy, sharded alike
    settings = {"beta": cfg.beta, "lr": cfg.learning_rate, "temperature": cfg.temperature,
                "max_completion": cfg.max_completion_length, "prompts/step": cfg.prompts_per_step,
                "rewards": "+".join(f"{w:g}*{r}" for r, w in zip(cfg.rewards, cfg.reward_weights)),
                "deepspeed": cfg.deepspeed}
    try:
        batch = batch_layout(stage_args(cfg, 0), k)
    except ValueError:
        batch = {}  # reported among the problems
    notes = []
    if cfg.scale == "full" and cfg.method == "curr_reft":
        split = ", ".join(f"{d} {c}" for d, c in zip(cfg.rs_domains, cfg.rs_domain_kept)) or "not set"
        notes.append(f"rejection-sampling SFT (Curr-ReFT's second stage) is not run by this command at full scale "
                     f"(the toy run implements it); its settings: judge {cfg.rs_judge}, {cfg.rs_samples} samples per "
                     f"prompt, keep > {cfg.rs_threshold:g}, {cfg.rs_kept:,} kept ({split}), SFT lr {cfg.rs_sft_lr:g}, "
                     f"{cfg.rs_sft_epochs:g} epochs, warm-up {cfg.rs_sft_warmup_ratio:g}")
    if cfg.scale == "full" and cfg.deepspeed:
        notes.append(f"launch: accelerate launch --config_file {cfg.deepspeed} -m infir_lib rl --config <this preset>")
    return RLPlan(cfg.method, policy, n, stages, cfg.n_gpus, cfg.gpu, rollouts, gen_tokens, flops, gpu_hours,
                  gpu_hours / k, sum(breakdown.values()), breakdown, settings, batch, notes, full_scale_problems(cfg))
