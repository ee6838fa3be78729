"""Chapter 4: supervised fine-tuning (InfiR §3.2, App. A-D).

    from infir_lib import sft
    result = sft.run("configs/toy/sft.yaml")                 # the toy instruct model, cached
    model, tok = result.load_model(), result.load_tokenizer()
    result = sft.run("configs/toy/sft.yaml", {"seed": 1}, rows=my_rows)   # experiments: rows passed in
    # accelerate launch --config_file configs/accelerate/fsdp_8gpu.yaml -m infir_lib sft \\
    #     --config configs/full/sft.yaml
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .. import artifacts, stages
from ..models import SavedModelMixin, build_llama, count_parameters
from ..planning import plan_training
from ..stages import StageResult, TextPlan
from .config import SFTRunConfig
from .data import chat_examples, load_rows, problem_to_row, rows_digest, to_messages, token_rows, toy_arith_rows
from .trainer import estimated_steps, train

STAGE = stages.stage("sft")


@dataclass
class SFTResult(StageResult, SavedModelMixin):
    output_dir: Path
    metrics: dict
    history: list[dict]
    config: SFTRunConfig | None = None

    @property
    def summary(self) -> dict:
        return self.metrics


def load(config, overrides=None) -> SFTRunConfig:
    """The config of a run: a preset path + overrides, or an SFTRunConfig (+ a dict of replacements)."""
    return STAGE.load(config, overrides)


def cache_spec(cfg: SFTRunConfig, rows_hash: str | None = None) -> dict:
    """The cache key (:meth:`infir_lib.stages.Stage.key`: the base model's and the synthetic set's keys in
    place of their presets); with ``rows_hash``, the rows' content instead of the config's dataset fields."""
    spec = STAGE.key(cfg)
    if rows_hash:
        spec["rows"] = rows_hash
        for k in ("dataset", "dataset_split", "messages_field", "synth_config", "n_train", "toy_steps", "data_seed"):
            spec.pop(k, None)
    return spec


def run(config: str | Path | SFTRunConfig = "configs/toy/sft.yaml", overrides: dict | list | None = None, *,
        rows: list[dict] | None = None, name: str = "sft") -> SFTResult:
    """Fine-tune as the config says (on ``rows`` when given); cached unless ``output_dir`` is set.

    ``rows`` (chat ``messages`` dicts) lets an experiment train on a set it built itself; the cache
    key then covers the rows' content instead of the config's dataset fields.
    """
    cfg = load(config, overrides)
    if rows is not None:
        rows = [{**r, "messages": to_messages(r, "messages", f"rows[{i}]")} for i, r in enumerate(rows)]
        if not rows:
            raise ValueError("rows is empty: nothing to fine-tune on")

    def get_rows():
        return rows if rows is not None else load_rows(cfg)

    key = None if cfg.output_dir else cache_spec(cfg, rows_digest(rows) if rows is not None else None)
    out = STAGE.output(cfg, lambda folder: train(cfg, get_rows(), folder), key=key, name=name)
    metrics = artifacts.load_json(out / "result.json")
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines() if line.strip()]
    return SFTResult(out, metrics, history, cfg)


def plan(config: str | Path | SFTRunConfig, overrides=None):
    """What an SFT run would cost (architecture of the base preset on the meta device, no download)."""
    cfg = load(config, overrides)
    if not cfg.base_config:
        raise ValueError("plan() needs base_config (the preset that describes the architecture)")
    arch = stages.stage("pretrain").load(cfg.base_config, list(cfg.base_overrides))
    n_params = count_parameters(build_llama(arch, device="meta"))
    n_examples = cfg.plan_examples or cfg.n_train
    avg = cfg.plan_avg_tokens or cfg.max_length // 4
    global_batch = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * cfg.n_gpus
    steps = estimated_steps(cfg, n_examples, cfg.n_gpus)
    # Unpacked rows are padded per batch; the planner counts the real (average) tokens per example.
    tokens = float(steps * global_batch * avg)
    p = plan_training(n_params=n_params, n_tokens=tokens, global_batch=global_batch, seq_len=avg,
                      n_layers=arch.num_hidden_layers, hidden=arch.hidden_size, n_heads=arch.num_attention_heads,
                      n_gpus=cfg.n_gpus, micro_batch=cfg.per_device_train_batch_size, gpu=cfg.gpu,
                      mfu=cfg.assumed_mfu, sharding=cfg.sharding, checkpointing=cfg.gradient_checkpointing)
    lines = [f"SFT of {cfg.model_name_or_path or cfg.base_config} on {cfg.dataset}: {n_examples:,} examples x "
             f"{cfg.num_train_epochs:g} epochs, lr {cfg.learning_rate:g} ({cfg.lr_scheduler_type}, warm-up "
             f"{cfg.warmup_ratio:.0%}), batch {global_batch}, max {cfg.max_length} tokens, "
             f"{'LoRA r=%d' % cfg.lora_r if cfg.use_lora else 'full fine-tuning'}, "
             f"loss on {'assistant tokens only' if cfg.assistant_only_loss else 'all tokens'}",
             str(p)]
    return TextPlan(lines)


__all__ = ["SFTRunConfig", "SFTResult", "run", "plan", "load", "train", "load_rows", "toy_arith_rows", "problem_to_row",
           "chat_examples", "token_rows", "to_messages"]
