"""The synthesis stage config (InfiR §3.1, Figure 2): a YAML preset plus ``key=value`` overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import setting


@dataclass
class SynthConfig:
    scale: Literal["toy", "full"] = "toy"
    seed: int = 0
    # seeds
    seed_source: str = "toy"  # toy | a .jsonl of {"instruction", "domain"} | a hub id (full)
    seed_split: str = "train"  # split of a hub seed_source
    n_math_seeds: int = 120  # toy: math seed instructions
    n_code_seeds: int = 40  # toy: code seed instructions
    seed_steps: list[int] = field(default_factory=lambda: [1, 2])  # toy: reasoning steps of the math seeds
    # instruction evolution
    evolution_ops: list[str] = field(default_factory=lambda: ["add_step", "add_constraint", "concretize", "deepen"])
    evolutions_per_seed: int = 2  # evolution rounds per seed (each evolves the previous one)
    evolver_model: str | None = None  # full: an instruct LLM by hub id
    # responses
    n_candidates: int = 4
    teacher_model: str | None = None  # full: Qwen/Qwen2.5-32B-Instruct
    # full-scale generation (evolver, teacher and difficulty judge)
    temperature: float = setting(0.8, key="full")
    max_new_tokens: int = setting(2048, key="full")
    generation_batch: int = setting(8, key="full")  # prompts per generate() call
    step_error: float = 0.25  # toy teacher: chance a math reply has a wrong step
    no_steps: float = 0.1  # toy teacher: chance a math reply skips its steps
    code_bug: float = 0.3  # toy teacher: chance a code reply is wrong
    code_slow: float = 0.1  # toy teacher: chance a code reply is too slow for the sandbox
    # rejection sampling and verification
    reward_model: str = "verifier"  # toy: the step verifier; full: an open reward model by hub id
    sandbox_timeout: float = 1.0
    sandbox_workers: int = setting(2, key=False)
    min_reasoning_steps: int = 1  # math replies with fewer steps are dropped
    min_quality: float = 0.0  # drop kept replies whose reward is at or below this
    # labels and diversity sampling
    per_domain: int = 0  # 0 -> no cap
    output_dir: str | None = setting(None, key=False)
    # planning only
    plan_seeds: int = setting(0, key=False)
    plan_tokens_per_response: int = setting(600, key=False)  # planning: tokens per generated reply
    plan_tokens_per_second: float = setting(2500.0, key=False)  # generation throughput per GPU (vLLM-class server)
    n_gpus: int = setting(8, key=False)

    def __post_init__(self):
        if self.n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {self.n_candidates}")
        for name in ("step_error", "no_steps", "code_bug", "code_slow"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {v}")
        if self.code_bug + self.code_slow > 1.0:
            raise ValueError("code_bug + code_slow must not exceed 1")
