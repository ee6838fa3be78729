"""The SFT stage config (InfiR §3.2): a YAML preset plus ``key=value`` overrides.

The paper: Llama-3 chat template, cross-entropy on the response tokens only (prompt masked),
4 epochs, learning rate 2e-5, batch 128, cosine schedule with warm-up ratio 0.1, 4096 tokens.
The toy preset keeps every one of those choices except the sizes (and a larger learning rate,
because a 1 M-parameter model trained for seconds needs one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import setting


def uses_toy_base(cfg: "SFTRunConfig") -> bool:
    """Whether the model to fine-tune is the pretrain stage's output (no folder or hub id named)."""
    return cfg.model_name_or_path is None


def uses_synth_data(cfg: "SFTRunConfig") -> bool:
    """Whether the rows are chapter 3's synthesized data (the synth stage's output is an input)."""
    return cfg.dataset == "toy:synth"


@dataclass
class SFTRunConfig:
    """Everything one supervised fine-tuning run depends on."""

    scale: Literal["toy", "full"] = "toy"
    seed: int = 0
    # --- the model to fine-tune
    base_config: str | None = "configs/toy/pretrain.yaml"  # a pretrain/anneal preset: its (cached) output
    base_overrides: list[str] = field(default_factory=list)  # key=value overrides of base_config
    model_name_or_path: str | None = None  # a folder or hub id; wins over base_config when set
    # --- the data
    dataset: str = "toy:arith"  # toy:arith | toy:synth | a .jsonl path | a hub id ("id:subset" allowed)
    dataset_split: str = "train"  # split of a hub dataset
    messages_field: str = "messages"  # also accepts ShareGPT "conversations" rows (from/value)
    synth_config: str | None = None  # for dataset=toy:synth (the chapter-3 pipeline's output)
    n_train: int = 400  # toy:arith size, or a cap on the other sources (0 = everything)
    toy_steps: list[int] = field(default_factory=lambda: [1, 2, 3])  # toy:arith: reasoning steps of the problems
    data_seed: int = 0
    # --- training (TRL SFTTrainer)
    num_train_epochs: float = 4.0
    max_steps: int = -1  # > 0 overrides the epochs
    learning_rate: float = 2e-5
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_length: int = 4096
    warmup_ratio: float = 0.1
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    assistant_only_loss: bool = True
    packing: bool = False
    bf16: bool = True  # used only where the device supports it
    gradient_checkpointing: bool = False
    # --- LoRA through PEFT (merged into the weights when saved, so loading is the same either way)
    use_lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    # --- distributed (full scale; passed to TrainingArguments)
    deepspeed: str | None = None
    fsdp: str = ""
    logging_steps: int = setting(10, key=False)
    output_dir: str | None = setting(None, key=False)  # None -> the artifact cache decides (notebooks)
    # --- toy evaluation after training: greedy accuracy on held-out arithmetic items per step count
    eval_n: int = 0
    eval_steps: list[int] = field(default_factory=lambda: [1, 2, 3])
    eval_seed: int = 10_001
    eval_max_new_tokens: int = 64
    # --- planning (dry-run) only
    plan_examples: int = setting(0, key=False)  # 0 -> n_train
    plan_avg_tokens: int = setting(0, key=False)  # 0 -> max_length / 4
    n_gpus: int = setting(1, key=False)
    gpu: str = setting("cpu", key=False)
    assumed_mfu: float = setting(0.3, key=False)
    sharding: Literal["ddp", "fsdp", "zero2", "zero3"] = setting("ddp", key=False)

    def __post_init__(self):
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.dataset == "toy:synth" and not self.synth_config:
            raise ValueError("dataset 'toy:synth' needs synth_config (e.g. configs/toy/synth.yaml)")
        if self.base_config is None and self.model_name_or_path is None:
            raise ValueError("set base_config (a pretrain preset) or model_name_or_path")
