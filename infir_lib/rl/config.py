"""The RL stage config (Infi-MMR and Curr-ReFT): a YAML preset plus ``key=value`` overrides.

One dataclass serves both methods and both scales. ``method`` picks the schedule:

- ``curr_reft``: judge -> choice -> open, each stage from the previous checkpoint (the curriculum);
- ``mixed``: Curr-ReFT's control arm: the same rows shuffled together, run on the curriculum's own
  schedule (three stages with the same steps, group sizes and reference resets), so the two arms
  differ only in which answer formats each stage holds;
- ``infi_mmr``: text-only -> image + caption -> image only (the three phases);
- ``direct``: image-only RL for the same total steps (Infi-MMR's control arm).

The papers' settings are the full preset's values: G = 4 / 2 / 4 per Curr-ReFT
stage, β = 0.04, temperature 1, 256 completion tokens, learning rate 1e-6, one prompt per GPU on
8 GPUs with DeepSpeed ZeRO-3, bf16.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import setting

METHODS = ("curr_reft", "mixed", "infi_mmr", "direct")
STAGES = {"curr_reft": ["judge", "choice", "open"], "mixed": ["mixed_1", "mixed_2", "mixed_3"],
          "infi_mmr": ["text", "caption", "image"], "direct": ["image"]}
VISION_METHODS = ("infi_mmr", "direct")  # the methods whose policy is chapter 6's VLM


def uses_toy_base(cfg: "RLConfig") -> bool:
    """Whether the policy starts from the pretrain stage's output (no hub model named): the stage's input."""
    return not cfg.model_name_or_path


def uses_vlm(cfg: "RLConfig") -> bool:
    """Whether the policy is chapter 6's VLM (the vlm stage's output is an input)."""
    return cfg.method in VISION_METHODS


@dataclass
class RLConfig:
    scale: Literal["toy", "full"] = "toy"
    method: Literal["curr_reft", "mixed", "infi_mmr", "direct"] = "curr_reft"
    seed: int = 0
    num_threads: int = 1  # torch intra-op threads for toy runs (tiny models are fastest on one; 0 = leave as is)
    # --- the policy RL starts from
    base_config: str | None = "configs/toy/pretrain.yaml"  # toy: the chapter-2 model (cold-started here)
    model_name_or_path: str | None = None  # full: a hub id (Qwen/Qwen2.5-VL-3B-Instruct) or a folder
    vlm_config: str | None = "configs/toy/vlm.yaml"  # Infi-MMR toy: the chapter-6 VLM preset
    cold_start_per_format: int = 200  # toy: formatted SFT rows per answer format before RL (0 = none)
    cold_start_steps: int = 80
    cold_start_lr: float = 1.0e-3
    # --- the schedule: one entry per stage of the method
    stage_steps: list[int] = field(default_factory=lambda: [20, 20, 20])
    stage_generations: list[int] = field(default_factory=lambda: [4, 2, 4])  # G per stage (Curr-ReFT: 4/2/4)
    rows_per_stage: int = 200
    train_steps: list[int] = field(default_factory=lambda: [1, 2])  # difficulty of the training items
    data_seed: int = 0
    # --- GRPO (TRL GRPOTrainer)
    rewards: list[str] = field(default_factory=lambda: ["accuracy", "format"])
    reward_weights: list[float] = field(default_factory=lambda: [1.0, 1.0])
    beta: float = 0.04
    learning_rate: float = 1.0e-6
    temperature: float = 1.0
    max_completion_length: int = 256
    prompts_per_step: int = 8  # per optimisation step, over all devices
    gradient_accumulation_steps: int = 1
    bf16: bool = True  # used only where the device supports it
    # --- rejection-sampling self-improvement (Curr-ReFT stage 2)
    rs_samples: int = setting(4, key=False)  # samples per prompt
    rs_threshold: float = setting(85.0, key=False)  # keep samples the judge scores above this (0-100)
    rs_judge: str = setting("verifier", key=False)  # toy: the rule-based verifier; full: a judge model id
    rs_prompts: int = setting(100, key=False)  # toy: prompts sampled (split over the three formats)
    rs_text_rows: int = setting(50, key=False)  # text-only rows mixed in ("general language data")
    rs_sft_steps: int = setting(30, key=False)
    rs_sft_lr: float = setting(2.0e-7, key=False)
    # full: the kept set as Curr-ReFT describes it (1,520 judged examples: math 700, science 320,
    # general multimodal/language 500; SFT 3 epochs, warm-up 5%, vision tower trainable)
    rs_kept: int = setting(0, key=False)  # examples kept after judging (0 = every sample above the threshold)
    rs_domains: list[str] = setting(factory=list, key=False)
    rs_domain_kept: list[int] = setting(factory=list, key=False)  # examples kept per domain, same order as rs_domains
    rs_sft_epochs: float = setting(0.0, key=False)  # 0 = rs_sft_steps steps
    rs_sft_warmup_ratio: float = setting(0.0, key=False)
    # --- evaluation (greedy)
    eval_n: int = 64
    eval_seed: int = 10_001
    eval_steps: list[int] = field(default_factory=lambda: [1, 2])
    eval_max_new_tokens: int = 64
    # the out-of-domain set (never trained on): a family of :func:`.tasks.make_family` and its step counts
    # (counting: several people's items summed; large: the in-domain problems from start values above
    # every training item's); the chapter picks the level from a measured per-level curve
    ood_family: str = "counting"
    ood_steps: list[int] = field(default_factory=lambda: [1, 2])
    # --- full scale: data and launch
    datasets: list[str] = setting(factory=list, key="full")  # hub ids or local JSON(L) paths, one per stage (full scale)
    # full: the adapter of :mod:`.hub_data` that turns each stage's released rows into this chapter's rows
    # (curr_reft, deepscaler, geo170k, geometry3k, chapter); empty = the rows are already in shape ("chapter")
    dataset_formats: list[str] = setting(factory=list, key="full")
    image_roots: list[str] = setting(factory=list, key="full")  # full: where each stage's image paths resolve ("" = none)
    train_examples_per_stage: list[int] = setting(factory=list, key="full")  # for the plan
    stage_epochs: list[float] = setting(factory=list, key="full")
    deepspeed: str | None = setting(None, key="full")
    output_dir: str | None = setting(None, key=False)
    # --- planning (dry-run) only
    n_gpus: int = setting(1, key=False)
    gpu: str = setting("cpu", key=False)
    assumed_mfu: float = setting(0.2, key=False)
    prompt_tokens: int = setting(512, key=False)  # average prompt length incl. image tokens (plan)

    def __post_init__(self):
        n = len(STAGES[self.method])
        for name in ("stage_steps", "stage_generations"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"method {self.method!r} has {n} stage(s) {STAGES[self.method]} but {name} has "
                                 f"{len(getattr(self, name))} value(s)")
        if len(self.rewards) != len(self.reward_weights):
            raise ValueError(f"rewards has {len(self.rewards)} names but reward_weights has {len(self.reward_weights)}")
        if any(g < 2 for g in self.stage_generations):
            raise ValueError("every stage needs at least 2 generations per prompt (a group of one has no advantage)")
        if not 0 <= self.rs_threshold <= 100:
            raise ValueError(f"rs_threshold is a 0-100 judge score, got {self.rs_threshold}")
        if len(self.rs_domains) != len(self.rs_domain_kept):
            raise ValueError(f"rs_domains has {len(self.rs_domains)} names but rs_domain_kept has "
                             f"{len(self.rs_domain_kept)} counts")
        if self.rs_domain_kept and self.rs_kept and sum(self.rs_domain_kept) != self.rs_kept:
            raise ValueError(f"rs_domain_kept sums to {sum(self.rs_domain_kept)}, but rs_kept is {self.rs_kept}")

    @property
    def stages(self) -> list[str]:
        return STAGES[self.method]

