"""One GRPO stage through TRL's ``GRPOTrainer`` (rule-based rewards, no vLLM, CPU or GPU).

For every prompt the policy samples a group of G completions; each completion i gets a reward r_i
(the weighted sum of the configured reward functions) and the advantage

    A_i = (r_i - mean(r)) / (std(r) + 1e-4)

shared by all its tokens. The loss is the advantage-weighted log-likelihood plus β times a per-token
KL estimate to a frozen reference model, k3 = exp(ref - logp) - (ref - logp) - 1 (TRL's
``loss_type="grpo"``, ``scale_rewards="group"``, the papers' β = 0.04). A stage starts from a saved
folder, and that folder is also its reference model, so in a curriculum each stage's KL anchor is
the previous stage's result (Curr-ReFT: "each stage starts from the previous checkpoint").
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from ..models import load_tokenizer
from ..runtime import compact_trainer_output, lean_trl_scratch, quiet_inner_progress, seed_everything
from .policy import ready_for_generation, set_stop_tokens
from .rewards import get_reward_funcs


@dataclass
class StageArgs:
    """The GRPO settings of one stage (a subset of the run config, so stages can differ).

    Fields named like a ``GRPOConfig`` field are that field (passed through by name); the others say
    how many steps, prompts and which rewards. Not itself a ``GRPOConfig``: building one validates the
    batch layout and DeepSpeed set-up, which the dry-run plans for a cluster this machine is not.
    """

    steps: int
    num_generations: int = 4
    prompts_per_step: int = 2
    beta: float = 0.04
    learning_rate: float = 1e-6
    temperature: float = 1.0
    max_completion_length: int = 64
    rewards: tuple[str, ...] = ("accuracy", "format")
    reward_weights: tuple[float, ...] = (1.0, 1.0)
    seed: int = 0
    loss_type: str = "grpo"
    bf16: bool = False
    gradient_accumulation_steps: int = 1
    deepspeed: str | None = None
    gradient_checkpointing: bool = False  # full scale: on (3B policy + reference under ZeRO-3)


LOGGED = ("reward", "reward_std", "kl", "completions/mean_length", "frac_reward_zero_std", "loss", "entropy")


def world_size() -> int:
    """Processes in this launch (``torchrun`` / ``accelerate launch`` set WORLD_SIZE; 1 otherwise)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def batch_layout(args: StageArgs, n_processes: int | None = None) -> dict:
    """How one optimisation step's prompts are spread over the devices.

    ``prompts_per_step`` counts prompts over *all* devices, so a run takes the same optimisation
    steps, and sees the same prompts per step, on one process and on N. TRL's
    ``per_device_train_batch_size`` counts completions on one device per micro-batch, so it is
    G × prompts_per_step / (processes × gradient accumulation), which must be a whole number.
    """
    n = n_processes or world_size()
    completions = args.num_generations * args.prompts_per_step
    per_device, rest = divmod(completions, n * args.gradient_accumulation_steps)
    if rest or per_device == 0:
        raise ValueError(f"prompts_per_step={args.prompts_per_step} x num_generations={args.num_generations} = "
                         f"{completions} completions per step cannot be split over {n} process(es) x "
                         f"gradient_accumulation_steps={args.gradient_accumulation_steps}; choose prompts_per_step "
                         "so that the product is divisible")
    return {"processes": n, "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "prompts_per_step": args.prompts_per_step, "completions_per_step": completions,
            "completions_per_device_batch": per_device}


def deepspeed_json(path: str | None) -> str | None:
    """What TRL's ``deepspeed=`` takes: a DeepSpeed JSON. An accelerate YAML is a launch config
    (``accelerate launch --config_file``), which sets DeepSpeed up through the environment instead."""
    if not path:
        return None
    if path.endswith(".json"):
        return path
    if path.endswith((".yaml", ".yml")):
        launched = os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
        if not launched and world_size() > 1:
            raise ValueError(f"deepspeed={path} is an accelerate config: launch with "
                             f"`accelerate launch --config_file {path} -m infir_lib rl ...`")
        return None
    raise ValueError(f"deepspeed={path!r}: expected a DeepSpeed .json or an accelerate .yaml launch config")


@dataclass
class BookGRPOConfig(GRPOConfig):
    """TRL's ``GRPOConfig`` with the book's fixed GRPO choices as its defaults (subclassed, as open-r1 does).

    The papers' objective (module doc): ``loss_type="grpo"``, group-scaled rewards, one optimisation
    pass per generation batch, a constant learning rate; no vLLM, no checkpoints (the stage saves its
    model), no printed logs. What a stage varies comes from :class:`StageArgs`, whose fields carry
    TRL's names and are passed through by name (:func:`grpo_config`).
    """

    loss_type: str = "grpo"
    scale_rewards: str = "group"
    num_iterations: int = 1
    lr_scheduler_type: str = "constant"
    warmup_steps: float = 0
    logging_steps: float = 1
    save_strategy: str = "no"
    report_to: str | list[str] | None = "none"
    use_vllm: bool = False
    dataloader_num_workers: int = 0
    disable_tqdm: bool | None = True
    log_completions: bool = False
    remove_unused_columns: bool | None = False  # the reward functions read the extra columns
    use_cpu: bool = field(default_factory=lambda: not torch.cuda.is_available())


# StageArgs fields that are not GRPOConfig fields of the same meaning (the rest pass through by name)
NOT_TRL = frozenset({"steps", "prompts_per_step", "rewards",  # -> max_steps, the batch layout, reward_funcs
                     "reward_weights",  # a tuple here, a list in TRL
                     "deepspeed",  # a DeepSpeed JSON or an accelerate launch config (deepspeed_json)
                     "gradient_checkpointing"})  # TRL's name is activation_checkpointing (the old one warns)


def grpo_config(args: StageArgs, output_dir: str, n_processes: int | None = None) -> BookGRPOConfig:
    """The TRL ``GRPOConfig`` of a stage (also what the full-scale dry-run shows)."""
    layout = batch_layout(args, n_processes)
    trl_names = {f.name for f in fields(BookGRPOConfig)}
    same = {f.name: getattr(args, f.name) for f in fields(args) if f.name in trl_names and f.name not in NOT_TRL}
    return BookGRPOConfig(
        **same, output_dir=output_dir, max_steps=args.steps, data_seed=args.seed,
        per_device_train_batch_size=layout["completions_per_device_batch"],
        reward_weights=list(args.reward_weights), deepspeed=deepspeed_json(args.deepspeed),
        activation_checkpointing=args.gradient_checkpointing)


def run_stage(model_path: str | Path, rows: list[dict], out: Path, args: StageArgs, processor=None,
              stage: str = "") -> list[dict]:
    """Train from ``model_path`` on ``rows`` for ``args.steps`` GRPO steps; save to ``out``.

    Returns the per-step log (reward, reward_std, kl, mean completion length, ...), each record
    tagged with ``stage``.
    """
    if not rows:
        raise ValueError(f"stage {stage!r} has no training rows")
    seed_everything(args.seed)
    funcs, weights = get_reward_funcs(list(args.rewards), list(args.reward_weights))
    args.reward_weights = tuple(weights)
    tokenizer = load_tokenizer(model_path)
    keep = [{k: v for k, v in r.items() if k != "reference"} for r in rows]
    dataset = Dataset.from_list(keep)
    with tempfile.TemporaryDirectory() as tmp:
        with quiet_inner_progress():  # loading the policy and the reference: no weight-loading bars
            trainer = GRPOTrainer(model=str(model_path), reward_funcs=funcs, args=grpo_config(args, tmp),
                                  train_dataset=dataset, processing_class=processor or tokenizer)
        compact_trainer_output(trainer, f"grpo {stage}".strip())  # one bar, not a printed log dict per step
        set_stop_tokens(trainer.model, tokenizer)
        ready_for_generation(trainer.model)  # sample with the KV cache (a cold start saves use_cache=False)
        with lean_trl_scratch(trainer.model.get_output_embeddings().weight.shape[0]):
            trainer.train()
        history = []
        for h in trainer.state.log_history:
            if "reward" in h:
                rec = {"stage": stage, "step": int(h["step"])}
                rec.update({k: float(h[k]) for k in LOGGED if k in h})
                history.append(rec)
        ready_for_generation(trainer.model)
        trainer.save_model(str(out))
    (processor or tokenizer).save_pretrained(str(out))
    return history
