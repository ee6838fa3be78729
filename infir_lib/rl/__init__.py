"""Chapter 7: curriculum reinforcement learning — Curr-ReFT and Infi-MMR on top of GRPO.

    from infir_lib import rl
    result = rl.run("configs/toy/rl_curr_reft.yaml")          # toy text curriculum on CPU, cached
    result = rl.run("configs/toy/rl_infi_mmr.yaml")           # toy VLM, three phases
    print(rl.plan("configs/full/rl_curr_reft_qwen.yaml"))     # the paper's run, dry-run only
    # accelerate launch --config_file configs/accelerate/zero3_8gpu.yaml -m infir_lib rl \\
    #     --config configs/full/rl_curr_reft_qwen.yaml

Rewards are pure functions chosen by name and weight in the YAML (:mod:`.rewards`); each stage is
one TRL ``GRPOTrainer`` run (:mod:`.grpo`); :mod:`.schedule` is the one stage schedule of every
method at both scales (``run_schedule``: toy rows or released datasets, cold start or a hub policy, a text
policy placed in the toy VLM or not, chosen by the config); :mod:`.curr_reft` holds Curr-ReFT's parts
(judge -> choice -> open rows, evaluation, rejection-sampling self-improvement), :mod:`.infi_mmr`
Infi-MMR's (text -> caption -> image rows, the toy VLM, visual-math evaluation).
"""

from __future__ import annotations

from pathlib import Path

from ..runtime import torch_threads
from ..stages import stage
from .config import METHODS, STAGES, RLConfig
from .curr_reft import rejection_sampling_sft, start_eval  # noqa: F401
from .planning import plan_rl
from .rewards import REWARDS, get_reward_funcs, register_reward, total_reward
from .schedule import RLResult, run_schedule


def as_config(config, overrides=None) -> RLConfig:
    """The config of a run: a preset path + overrides, or an RLConfig (+ a dict of replacements)."""
    return stage("rl").load(config, overrides)


def run(config: str | Path | RLConfig, overrides: dict | list | None = None) -> RLResult:
    """Run the schedule the config's ``method`` names (:func:`.schedule.run_schedule`, one code path for every
    method and both scales, its parts chosen by the config). Toy: on this machine, cached. Full: under accelerate."""
    cfg = as_config(config, overrides)
    with torch_threads(cfg.num_threads if cfg.scale == "toy" else 0):
        return run_schedule(cfg)


def plan(config: str | Path | RLConfig, overrides=None):
    """The dry-run: policy size from a meta-device build, stages, rollouts, GPU-hours, memory per GPU."""
    return plan_rl(as_config(config, overrides))


__all__ = ["RLConfig", "RLResult", "METHODS", "STAGES", "run", "plan", "as_config", "REWARDS", "get_reward_funcs",
           "register_reward", "total_reward", "rejection_sampling_sft", "run_schedule", "start_eval"]
