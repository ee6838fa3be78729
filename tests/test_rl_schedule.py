"""The RL stage schedule is one code path for every method at the toy and the full scale (``schedule.run_schedule``):
the config's values choose its parts (where the rows come from, evaluation, output), and the same
functions train the stages, shuffle the control arm's rows, and resume a stage that finished.

GRPO itself is replaced here by a stand-in that copies the policy forward and records what each stage
was given (``tests/test_rl_grpo.py`` and ``tests/test_rl_hub_data.py`` train for real)."""

import json
import shutil

import pytest

from infir_lib.rl import curr_reft as C
from infir_lib.rl import schedule as S
from infir_lib.rl.tasks import mixed_chunks


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _curr_reft_files(root):
    """A local stand-in of the Curr-ReFT release's layout: judge / choice / open folders of JSONL rows."""
    qs = [f"What is {a}+{b}?" for a, b in [(1, 2), (2, 3), (3, 4), (4, 5)]]
    _jsonl(root / "judge" / "math" / "judge_math_train.jsonl",
           [{"problem": q + " Is it 5?", "solution": f"<answer>{'yes' if i == 1 else 'no'}</answer>", "task": "math"}
            for i, q in enumerate(qs)])
    _jsonl(root / "choice" / "math" / "choice_math_train.jsonl",
           [{"problem": q + " A) 3 B) 5 C) 7", "solution": "<answer>B</answer>", "task": "math"} for q in qs])
    _jsonl(root / "open" / "math" / "open_math_train.jsonl",
           [{"problem": q, "solution": f"<answer>{2 * i + 3}</answer>", "task": "math"} for i, q in enumerate(qs)])
    return [str(root / s / "*" / "*_train.jsonl") for s in ("judge", "choice", "open")], qs


class StandInGRPO:
    """``run_stage``'s signature: copies the start policy to ``out`` and records the stage's rows and steps."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = [], fail_at

    def __call__(self, start, rows, out, args, processor=None, stage=""):
        if stage == self.fail_at:
            raise KeyboardInterrupt(f"stopped during {stage}")
        self.calls.append({"stage": stage, "prompts": [r["prompt"][0]["content"] for r in rows], "steps": args.steps,
                           "processor": processor})
        shutil.copytree(start, out, dirs_exist_ok=True)
        return [{"stage": stage, "step": s + 1, "frac_reward_zero_std": 0.5} for s in range(args.steps)]


@pytest.fixture
def policy(tmp_path, tiny_llama):
    texts = ["What is 1+2? <think> </think> <answer> yes no 3 5 7 </answer>"] * 20
    return tiny_llama(tmp_path / "policy", texts)[0]


def _toy(policy, out, method="mixed"):
    from infir_lib.rl import as_config

    return as_config("configs/toy/rl_curr_reft.yaml", {
        "method": method, "model_name_or_path": str(policy), "cold_start_per_format": 0, "rows_per_stage": 4,
        "stage_steps": [1, 1, 1], "stage_generations": [2, 2, 2], "prompts_per_step": 2, "eval_n": 2,
        "eval_max_new_tokens": 4, "max_completion_length": 4, "output_dir": str(out)})


def _full(policy, out, datasets, method="mixed"):
    from infir_lib.rl import as_config

    return as_config("configs/full/rl_curr_reft_qwen.yaml", {
        "method": method, "model_name_or_path": str(policy), "output_dir": str(out), "deepspeed": None,
        "bf16": False, "datasets": datasets, "image_roots": [], "stage_generations": [2, 2, 2],
        "stage_steps": [0, 1, 0], "stage_epochs": [1, 1, 1], "prompts_per_step": 2})


def test_toy_and_full_schedules_are_one_code_path(tmp_path, policy, monkeypatch):
    """Both scales' runs go through ``rl.run`` -> ``run_schedule`` -> ``train_schedule`` -> the same stage
    runner; the control arm's rows are the curriculum's sources shuffled into its stages at both scales; the
    parts differ only where the config says: evaluation on the toy sets, or the datasets' read/kept counts."""
    from infir_lib import rl
    from infir_lib.rl.hub_data import load_stage_rows

    grpo, scales = StandInGRPO(), []
    real = S.train_schedule
    monkeypatch.setattr(S, "run_stage", grpo)
    monkeypatch.setattr(S, "train_schedule", lambda cfg, *a, **k: scales.append(cfg.scale) or real(cfg, *a, **k))
    datasets, _ = _curr_reft_files(tmp_path / "data")

    toy = rl.run(_toy(policy, tmp_path / "toy"))
    toy_calls, grpo.calls = grpo.calls, []
    full = rl.run(_full(policy, tmp_path / "full", datasets))
    assert scales == ["toy", "full"]

    toy_sources = [C.toy_rows(_toy(policy, tmp_path / "toy"), s) for s in ("judge", "choice", "open")]
    full_sources = [load_stage_rows(d, "curr_reft", s).rows for d, s in zip(datasets, ("judge", "choice", "open"))]
    for calls, sources in ((toy_calls, toy_sources), (grpo.calls, full_sources)):
        assert [c["stage"] for c in calls] == ["mixed_1", "mixed_2", "mixed_3"]
        chunks = mixed_chunks(sources, 3, seed=0)
        assert [c["prompts"] for c in calls] == [[r["prompt"][0]["content"] for r in ch] for ch in chunks]
        assert all(c["processor"] is None for c in calls)  # a text-only policy: its tokenizer
    # steps: explicit at toy; at full 0 = the stage's rows / prompts per step (4 / 2), or the explicit 1
    assert [c["steps"] for c in toy_calls] == [1, 1, 1] and [c["steps"] for c in grpo.calls] == [2, 1, 2]

    assert list(toy.summary) == ["method", "seed", "eval", "steps", "samples", "zero_variance"]
    assert set(toy.summary["eval"]) == {"id_judge", "id_choice", "id_open", "ood_open"}
    assert sorted(p.name for p in toy.output_dir.iterdir()) == ["history.json", "model", "result.json"]
    assert "eval" not in full.summary and full.summary["steps"] == 5 and full.summary["samples"] == 5 * 2 * 2
    assert {s: d["kept"] for s, d in full.summary["data"].items()} == {"judge": 4, "choice": 4, "open": 4}
    for stage in ("mixed_1", "mixed_2", "mixed_3"):  # full scale keeps every stage's checkpoint and its resume key
        assert json.loads((full.output_dir / stage / "stage.json").read_text())["key"]["dataset"] == datasets
    assert toy.config.scale == "toy" and full.config.scale == "full"


def test_a_stopped_toy_run_resumes_at_the_stage_that_did_not_finish(tmp_path, policy, monkeypatch):
    """Per-stage resume is the schedule's, so the toy scale has it too: a rerun into the same output_dir keeps
    the stages whose ``stage.json`` key matches and trains the rest."""
    from infir_lib import rl

    cfg = _toy(policy, tmp_path / "run", method="curr_reft")
    monkeypatch.setattr(S, "run_stage", StandInGRPO(fail_at="open"))
    with pytest.raises(KeyboardInterrupt):
        rl.run(cfg)
    assert (tmp_path / "run" / "choice" / "stage.json").exists()

    grpo = StandInGRPO()
    monkeypatch.setattr(S, "run_stage", grpo)
    result = rl.run(cfg)
    assert [c["stage"] for c in grpo.calls] == ["open"]
    assert [h["stage"] for h in result.history] == ["judge", "choice", "open"]
    assert not (tmp_path / "run" / "judge").exists()  # toy keeps the final policy only (model/)


def test_full_scale_checks_come_before_any_download(tmp_path):
    from infir_lib.rl import as_config

    base = {"model_name_or_path": "no/such-model", "deepspeed": None}
    with pytest.raises(ValueError, match="needs output_dir"):
        S.run_schedule(as_config("configs/full/rl_curr_reft_qwen.yaml", {**base, "output_dir": None}))
    with pytest.raises(ValueError, match="need 3 datasets"):
        S.run_schedule(as_config("configs/full/rl_curr_reft_qwen.yaml",
                                 {**base, "output_dir": str(tmp_path), "datasets": ["a.jsonl"]}))
    with pytest.raises(ValueError, match="unknown dataset format"):
        S.run_schedule(as_config("configs/full/rl_curr_reft_qwen.yaml",
                                 {**base, "output_dir": str(tmp_path), "dataset_formats": ["x", "y", "z"]}))


@pytest.mark.parametrize("method,stages", [("infi_mmr", ["text", "caption", "image"]), ("direct", ["image"])])
def test_infi_mmr_runs_through_the_same_schedule(tmp_path, policy, monkeypatch, method, stages):
    """Infi-MMR and its control go through the schedule Curr-ReFT uses (``rl.run`` -> ``run_schedule`` ->
    ``train_schedule`` -> the stage runner); their parts are the phases' rows, a text policy placed in a LLaVA
    before its first image stage (toy scale: the text phase trains the language model alone, the image
    phases get the VLM's processor) and the visual-math evaluation."""
    from infir_lib import rl
    from infir_lib.rl import infi_mmr as M

    grpo = StandInGRPO()
    monkeypatch.setattr(S, "run_stage", grpo)
    n = len(stages)
    cfg = rl.as_config(f"configs/toy/rl_{method}.yaml", {
        "model_name_or_path": str(policy), "vlm_config": None, "rows_per_stage": 4, "stage_steps": [1] * n,
        "stage_generations": [2] * n, "prompts_per_step": 2, "eval_n": 2, "eval_max_new_tokens": 4,
        "max_completion_length": 4, "output_dir": str(tmp_path / method)})
    result = rl.run(cfg)

    assert [c["stage"] for c in grpo.calls] == stages
    for call, stage in zip(grpo.calls, stages):
        rows = M.phase_rows(cfg, stage)
        assert call["prompts"] == [r["prompt"][0]["content"] for r in rows]
        assert (call["processor"] is None) == (stage == "text")  # the text phase trains the language model alone
    assert result.summary["vision_from"] == "randomly initialised tower and projector"
    assert set(result.summary["eval"]) == {"vmath_image", "vmath_caption"}
    assert result.summary["steps"] == n and result.summary["samples"] == n * 2 * 2
    assert list(result.summary["zero_variance"]) == stages
    assert sorted(p.name for p in result.output_dir.iterdir()) == ["history.json", "model", "result.json"]
    assert (result.output_dir / "model" / "processor_config.json").exists()
    assert not (result.output_dir / "model" / "stage.json").exists()


def test_full_scale_refuses_a_text_policy_on_image_rows(tmp_path, policy):
    """At full scale the policy is a VLM from the start: a text-only policy meeting image rows is refused
    (the toy scale places it in a LLaVA instead)."""
    from infir_lib.rl import as_config

    cfg = as_config("configs/full/rl_infi_mmr_qwen.yaml", {"model_name_or_path": str(policy),
                                                            "output_dir": str(tmp_path / "run")})
    rows = [{"prompt": [{"role": "user", "content": "q"}], "image": object()}]
    with pytest.raises(ValueError, match="has image rows but the policy .* has no image processor"):
        S.stage_policy(cfg, 1, policy, rows, tmp_path / "run", {})
