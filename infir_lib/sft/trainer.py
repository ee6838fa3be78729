"""One SFT run with TRL's ``SFTTrainer`` (InfiR §3.2), at toy or full scale.

The rows reach TRL tokenized (:func:`.data.token_rows`): each assistant turn after its context exactly as
the model is sampled from it, the reply tokenized on its own; with ``assistant_only_loss`` the loss covers
the replies and their end-of-turn tokens only (TRL's ``completion_mask``). Cosine schedule with warm-up
ratio 0.1, optional LoRA through PEFT (merged into the weights when saved), DeepSpeed / FSDP passed
through to ``TrainingArguments`` at full scale.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from datasets import Dataset
from trl import SFTConfig

from .. import pretrain
from ..data.arith import make_problems
from ..models import count_parameters, load_model, load_tokenizer
from ..runtime import compact_trainer_output, lean_trl_scratch, quiet_inner_progress, seed_everything
from .config import SFTRunConfig
from .data import token_rows
from .evaluate import arith_accuracy


def resolve_base(cfg: SFTRunConfig) -> str:
    """The folder (or hub id) of the model to fine-tune: an explicit path, else the base stage's output."""
    if cfg.model_name_or_path:
        return cfg.model_name_or_path
    return str(pretrain.run(cfg.base_config, list(cfg.base_overrides)).model_dir)


@dataclass
class BookSFTConfig(SFTConfig):
    """TRL's ``SFTConfig`` with the book's fixed choices as its defaults (subclassed, as open-r1 does).

    A run config (:class:`.config.SFTRunConfig`) names its trainer settings with TRL's own field names;
    :func:`trl_args` passes every such field through by name, so a TRL setting is written once, in the
    preset. What the book never varies lives here.
    """

    save_strategy: str = "no"  # the stage saves the (merged) model itself
    report_to: str | list[str] | None = "none"
    disable_tqdm: bool | None = True  # one line per run instead (runtime.compact_trainer_output)
    dataloader_num_workers: int = 0
    use_cpu: bool = field(default_factory=lambda: not torch.cuda.is_available())


# run-config fields that share a name with a TRL field but mean something else there
NOT_TRL = frozenset({"output_dir",  # the stage's folder; the trainer writes into out/"trainer"
                     "assistant_only_loss",  # TRL's completion_only_loss on the pre-tokenized rows (data.token_rows)
                     "eval_steps",  # reasoning-step counts of the toy evaluation, not an eval interval
                     "gradient_checkpointing",  # TRL's name is activation_checkpointing (the old one warns)
                     "bf16",  # only where the device has it
                     "fsdp"})  # "" when unset (the run config allows None)


def trl_args(cfg: SFTRunConfig, out: Path) -> BookSFTConfig:
    """The TRL config of a run: every run-config field named like a TRL field, plus what differs by name.

    transformers 5 takes the warm-up ratio as a float ``warmup_steps``; ``bf16`` applies only on CUDA. The
    rows are tokenized by the stage (:func:`.data.token_rows`), so the prompt mask is TRL's
    ``completion_only_loss`` over their ``completion_mask`` (TRL's ``assistant_only_loss`` needs text rows).
    """
    trl_names = {f.name for f in fields(BookSFTConfig)}
    same = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name in trl_names and f.name not in NOT_TRL}
    return BookSFTConfig(**same, output_dir=str(out / "trainer"), warmup_steps=cfg.warmup_ratio,
                         activation_checkpointing=cfg.gradient_checkpointing,
                         assistant_only_loss=False, completion_only_loss=cfg.assistant_only_loss,
                         bf16=bool(cfg.bf16 and torch.cuda.is_available()), fsdp=cfg.fsdp or "")


def lora_config(cfg: SFTRunConfig):
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.lora_target_modules), task_type="CAUSAL_LM")


def train(cfg: SFTRunConfig, rows: list[dict], out: Path) -> dict:
    """Fine-tune the base model on ``rows`` (chat messages) and save it to ``out/model``."""
    from trl import SFTTrainer

    out = Path(out)
    seed_everything(cfg.seed)
    base = resolve_base(cfg)
    tokenizer = load_tokenizer(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # fp32 master weights; ``bf16`` makes the trainer compute in bf16 autocast. Loading the weights in bf16
    # would make AdamW update bf16 weights, which rounds away most lr-2e-5 steps (8 mantissa bits).
    model = load_model(base, dtype=torch.float32)
    n_params = count_parameters(model)
    examples = token_rows(tokenizer, rows)  # the sampling context + each reply, tokenized here, not by TRL
    ds = Dataset.from_list(examples)
    with quiet_inner_progress():  # TRL's passes over the dataset (labels, truncation): no bar per pass
        trainer = SFTTrainer(model=model, args=trl_args(cfg, out), train_dataset=ds, processing_class=tokenizer,
                             peft_config=lora_config(cfg) if cfg.use_lora else None)
    compact_trainer_output(trainer, "sft")  # one bar, not a printed log dict per logging step
    n_examples = len(trainer.train_dataset)
    label_tokens = sum(sum(1 for t in ex["labels"] if t != -100) for ex in trainer.train_dataset) \
        if "labels" in trainer.train_dataset.column_names else None
    t0 = time.time()
    with lean_trl_scratch(model.get_output_embeddings().weight.shape[0]):
        result = trainer.train()
    seconds = time.time() - t0
    model = trainer.model
    trainable = count_parameters(model, trainable_only=True)
    if cfg.use_lora:
        model = model.merge_and_unload()
    history = [h for h in trainer.state.log_history if "loss" in h]
    summary = {"base": base, "train_rows": len(rows), "train_examples": n_examples,
               "dropped_examples": len(examples) - n_examples, "loss_tokens": label_tokens,
               "steps": trainer.state.global_step, "epochs": trainer.state.epoch,
               "train_loss": result.training_loss, "final_loss": history[-1]["loss"] if history else None,
               "parameters": n_params, "trainable_parameters": trainable, "train_seconds": round(seconds, 2)}
    if trainer.accelerator.is_main_process:
        model.save_pretrained(out / "model", safe_serialization=True)
        tokenizer.save_pretrained(out / "model")
        with open(out / "history.jsonl", "w") as f:
            for h in history:
                f.write(json.dumps(h) + "\n")
    if cfg.eval_n > 0:
        summary.update(evaluate_toy(cfg, model, tokenizer))
    if trainer.accelerator.is_main_process:
        (out / "result.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def evaluate_toy(cfg: SFTRunConfig, model, tokenizer) -> dict:
    """Greedy accuracy on held-out toy arithmetic (a seed disjoint from the training data's)."""
    problems = make_problems(cfg.eval_n, cfg.eval_seed, tuple(cfg.eval_steps))
    scores = arith_accuracy(model, tokenizer, problems, cfg.eval_max_new_tokens)
    scores.pop("replies")
    return {f"eval_{k}": v for k, v in scores.items()}


def estimated_steps(cfg: SFTRunConfig, n_examples: int, world: int = 1) -> int:
    if cfg.max_steps > 0:
        return cfg.max_steps
    per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * world
    return math.ceil(cfg.num_train_epochs * math.ceil(n_examples / per_step))
