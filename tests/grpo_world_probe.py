"""Run one tiny GRPO stage and log, per rank, the prompts each optimisation step scored.

Launched by tests/test_rl_distributed.py, once as a plain process and once under
``torchrun --nproc_per_node 2``; not a test module itself (pytest collects ``test_*.py`` only).
Usage: python grpo_world_probe.py MODEL_DIR OUT_DIR
"""

import json
import os
import sys
from pathlib import Path

from infir_lib.rl import rewards as R
from infir_lib.rl.grpo import StageArgs, batch_layout, run_stage
from infir_lib.rl.tasks import format_rows

model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
rank = int(os.environ.get("RANK", "0"))
calls = []


def probe(completions, prompts=None, **kwargs):
    """A shaping reward with spread inside each group; records what this rank scored at this call."""
    calls.append([json.dumps(p, sort_keys=True) for p in prompts])
    return [float(sum(ch.isdigit() for ch in R.completion_text(c))) for c in completions]


R.register_reward("probe", probe)
args = StageArgs(steps=3, num_generations=2, prompts_per_step=4, beta=0.0, learning_rate=1e-3,
                 max_completion_length=4, rewards=("probe",), reward_weights=(1.0,), seed=1)
history = run_stage(model_dir, format_rows("arith", "judge", 24, seed=0), out / "policy", args, stage="judge")
out.mkdir(parents=True, exist_ok=True)
(out / f"rank{rank}.json").write_text(json.dumps({"calls": calls, "steps": len(history),
                                                  "layout": batch_layout(args)}))
