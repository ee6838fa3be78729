"""GRPO batch semantics hold at any world size: two real processes (torchrun, gloo on CPU) score the
same number of prompts and completions per optimisation step, and take the same steps, as one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from infir_lib.rl.grpo import StageArgs, batch_layout, deepspeed_json

REPO = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).with_name("grpo_world_probe.py")


def test_layout_counts_prompts_over_all_devices():
    a = StageArgs(steps=1, num_generations=4, prompts_per_step=8)
    assert batch_layout(a, 1)["completions_per_device_batch"] == 32
    assert batch_layout(a, 8)["completions_per_device_batch"] == 4  # one prompt's group per GPU, as Curr-ReFT
    assert batch_layout(StageArgs(steps=1, num_generations=4, prompts_per_step=8, gradient_accumulation_steps=2),
                        8)["completions_per_device_batch"] == 2
    with pytest.raises(ValueError, match="cannot be split over 8 process"):
        batch_layout(StageArgs(steps=1, num_generations=4, prompts_per_step=3), 8)


def test_deepspeed_takes_a_json_or_an_accelerate_launch_config(monkeypatch):
    assert deepspeed_json(None) is None
    assert deepspeed_json("ds_zero3.json") == "ds_zero3.json"
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert deepspeed_json("configs/accelerate/zero3_8gpu.yaml") is None  # set up by `accelerate launch`
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    with pytest.raises(ValueError, match="accelerate launch --config_file"):
        deepspeed_json("configs/accelerate/zero3_8gpu.yaml")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert deepspeed_json("configs/accelerate/zero3_8gpu.yaml") is None
    with pytest.raises(ValueError, match="expected a DeepSpeed"):
        deepspeed_json("zero3.toml")


def _per_step(out: Path, ranks: int) -> tuple[list[int], list[int], list[int]]:
    """Distinct prompts, completions and the steps each rank took, per optimisation step over all ranks."""
    logs = [json.loads((out / f"rank{r}.json").read_text()) for r in range(ranks)]
    n_steps = {len(log["calls"]) for log in logs}
    assert len(n_steps) == 1, f"ranks disagree on the number of steps: {n_steps}"
    distinct, completions = [], []
    for k in range(n_steps.pop()):
        seen = Counter(p for log in logs for p in log["calls"][k])
        distinct.append(len(seen))
        completions.append(sum(seen.values()))
    return distinct, completions, [log["steps"] for log in logs]


@pytest.mark.slow
def test_two_processes_score_the_same_prompts_per_step_as_one(tmp_path, tiny_llama):
    from infir_lib.rl.tasks import format_rows

    texts = [r["prompt"][0]["content"] + " " + r["reference"] for r in format_rows("arith", "judge", 100, seed=1)]
    start = tiny_llama(tmp_path / "start", texts, vocab_size=300, max_position_embeddings=256)[0]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}
    single = subprocess.run([sys.executable, str(PROBE), str(start), str(tmp_path / "one")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-4000:]
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun, "torchrun not found next to the interpreter"
    double = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29531", str(PROBE), str(start),
                             str(tmp_path / "two")], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert double.returncode == 0, double.stdout[-2000:] + double.stderr[-4000:]

    one = _per_step(tmp_path / "one", 1)
    two = _per_step(tmp_path / "two", 2)
    # prompts_per_step=4, G=2: every optimisation step scores 4 distinct prompts, 8 completions, in both runs
    assert one[0] == two[0] == [4, 4, 4]
    assert one[1] == two[1] == [8, 8, 8]
    assert one[2] == [3] and two[2] == [3, 3]  # the same number of optimisation steps
    layouts = [json.loads((tmp_path / "two" / f"rank{r}.json").read_text())["layout"] for r in (0, 1)]
    assert all(lay["processes"] == 2 and lay["completions_per_device_batch"] == 4 for lay in layouts)
