"""Chapter 7 task rows, configs, rejection-sampling selection and the full-scale dry-run (no training)."""

import collections

import pytest

from infir_lib.config import ConfigError
from infir_lib.rl import as_config, plan
from infir_lib.rl import rewards as R
from infir_lib.rl.curriculum import select_samples, verifier_judge
from infir_lib.rl.tasks import FORMATS, counting_problem, format_rows, make_family, mixed_rows


def score(rows):
    return R.total_reward([r["reference"] for r in rows], ["accuracy", "format"],
                          solution=[r["solution"] for r in rows], answer_type=[r["answer_type"] for r in rows])


@pytest.mark.parametrize("fmt", FORMATS)
def test_reference_responses_earn_full_reward(fmt):
    rows = format_rows("arith", fmt, 40, seed=3)
    assert score(rows) == [2.0] * 40


def test_judge_rows_are_balanced_and_truthful():
    rows = format_rows("arith", "judge", 200, seed=1)
    counts = collections.Counter(r["solution"] for r in rows)
    assert 60 < counts["yes"] < 140 and counts["yes"] + counts["no"] == 200
    for r in rows[:50]:
        shown = int(r["prompt"][0]["content"].split("Is the answer ")[1].split("?")[0])
        truth = int(r["reference"].split("<answer>")[0].rstrip("</think>").split("=")[-1].rstrip("."))
        assert (shown == truth) == (r["solution"] == "yes")


def test_choice_rows_have_one_right_option():
    for r in format_rows("arith", "choice", 50, seed=2):
        text = r["prompt"][0]["content"]
        opts = text.split("Options: ")[1].rstrip(".")
        values = [int(tok) for tok in opts.replace("A)", "").replace("B)", "").replace("C)", "").replace("D)", "").split()]
        assert len(values) == len(set(values)) == 4
        answer = int(r["reference"].split("=")[-1].split(".")[0])
        assert values["ABCD".index(r["solution"])] == answer


def test_counting_family_is_held_out_and_correct():
    import random

    p = counting_problem(random.Random(0), n_people=3)
    nums = [int(w) for w in p.question.replace(".", " ").split() if w.isdigit()]
    assert p.answer == sum(nums) and p.family == "counting"
    arith_q = {r["prompt"][0]["content"] for r in format_rows("arith", "open", 100, seed=0)}
    ood_q = {r["prompt"][0]["content"] for r in format_rows("counting", "open", 100, seed=0)}
    assert not arith_q & ood_q and all("in all" in q for q in ood_q)
    with pytest.raises(KeyError, match="families"):
        make_family("geometry", 3, 0)


def test_mixed_rows_keep_every_row_once():
    stages = [format_rows("arith", f, 10, seed=0) for f in FORMATS]
    mixed = mixed_rows(stages, seed=1)
    key = lambda r: (r["prompt"][0]["content"], r["solution"])
    assert sorted(map(key, mixed)) == sorted(key(r) for s in stages for r in s)
    assert [r["format"] for r in mixed] != [r["format"] for s in stages for r in s]  # actually shuffled


def test_verifier_judge_and_selection():
    row = format_rows("arith", "open", 1, seed=0)[0]
    good, wrong, unformatted = row["reference"], "<think>.</think><answer>999</answer>", row["solution"]
    assert verifier_judge(good, row) == 100.0
    assert verifier_judge(wrong, row) == 10.0
    assert verifier_judge(unformatted, row) == 0.0
    kept, scores = select_samples([row], [[good, wrong, unformatted]], threshold=85)
    assert [k["reference"] for k in kept] == [good] and scores == [100.0, 10.0, 0.0]
    kept_all, _ = select_samples([row], [[good, wrong, unformatted]], threshold=None)
    assert len(kept_all) == 3
    with pytest.raises(ValueError, match="prompts"):
        select_samples([row, row], [[good]], threshold=85)


def test_toy_presets_load_and_stage_lengths_are_checked():
    for name, stages in [("rl_curr_reft", 3), ("rl_mixed", 1), ("rl_infi_mmr", 3), ("rl_direct", 1)]:
        cfg = as_config(f"configs/toy/{name}.yaml")
        assert len(cfg.stages) == stages == len(cfg.stage_steps)
    cur, mix = as_config("configs/toy/rl_curr_reft.yaml"), as_config("configs/toy/rl_mixed.yaml")
    assert sum(cur.stage_steps) == sum(mix.stage_steps)  # same step budget for the two arms
    with pytest.raises((ConfigError, ValueError), match="stage_steps"):
        as_config("configs/toy/rl_curr_reft.yaml", ["stage_steps=[5, 5]"])
    with pytest.raises(ConfigError, match="unknown|not keys"):
        as_config("configs/toy/rl_curr_reft.yaml", ["group_size=4"])
    with pytest.raises((ConfigError, ValueError), match="generations"):
        as_config("configs/toy/rl_curr_reft.yaml", ["stage_generations=[4, 1, 4]"])


def test_full_dry_run_uses_the_papers_settings():
    p = plan("configs/full/rl_curr_reft_qwen.yaml")
    assert 3.5e9 < p.parameters < 4.0e9                       # Qwen2.5-VL-3B
    assert [s["generations"] for s in p.stages] == [4, 2, 4]
    assert [s["epochs"] for s in p.stages] == [1, 1, 2]
    assert p.settings["beta"] == 0.04 and p.settings["max_completion"] == 256 and p.settings["lr"] == 1e-6
    assert p.n_gpus == 8 and "zero3" in p.settings["deepspeed"]
    assert "3.755 B" in str(p)


def test_infi_mmr_forms_and_captions():
    from infir_lib.rl.vision import caption, visual_rows
    from infir_lib.vlm.data import make_visual_math
    import random

    text, cap, img = (visual_rows(f, 30, seed=2) for f in ("text", "caption", "image"))
    assert all("image" not in r for r in text) and all("image" in r for r in cap + img)
    assert [r["solution"] for r in text] == [r["solution"] for r in cap] == [r["solution"] for r in img]
    assert all("Caption:" in r["prompt"][0]["content"][1]["text"] for r in cap)
    assert all("Caption:" not in r["prompt"][0]["content"][1]["text"] for r in img)
    assert score(text + cap + img) == [2.0] * 90
    rng = random.Random(0)
    for _ in range(30):  # the caption states what the truth is computed from
        item = make_visual_math(rng, 64)
        c, meta = caption(item), item.meta
        if meta.get("kind") in ("chart_max", "chart_count"):
            assert all(str(v) in c for v in meta["values"])
        elif meta.get("kind") == "area":
            assert f"{meta['a']} wide" in c and f"{meta['b']} tall" in c
    with pytest.raises(KeyError, match="forms"):
        visual_rows("video", 1, seed=0)


def test_cli_dry_run_toy_and_full(capsys):
    from infir_lib.cli import main

    assert main(["rl", "--config", "configs/toy/rl_curr_reft.yaml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "toy Llama" in out and "judge" in out and "open" in out


@pytest.mark.parametrize("path", ["configs/full/rl_curr_reft_qwen.yaml", "configs/full/rl_curr_reft_infir.yaml",
                                  "configs/full/rl_infi_mmr_qwen.yaml", "configs/toy/rl_infi_mmr.yaml",
                                  "configs/toy/rl_direct.yaml", "configs/toy/rl_mixed.yaml"])
def test_every_preset_dry_runs_with_the_shared_planner(path):
    """The RL dry-run's GPU-hours and training state are the spine planner's (one formula for the book)."""
    from infir_lib.plan import gpu_hours, state_memory_gib

    cfg = as_config(path)
    p = plan(cfg)
    assert p.parameters > 0 and len(p.stages) == len(cfg.stages) and p.rollouts > 0
    assert p.gpu_hours == pytest.approx(gpu_hours(p.total_flops, cfg.gpu, cfg.assumed_mfu))
    state = state_memory_gib(p.parameters, max(1, cfg.n_gpus), "zero3")
    assert p.memory_breakdown_gib["policy"] == pytest.approx(state["weights"])
    assert p.memory_breakdown_gib["optimizer"] == pytest.approx(state["optimizer"])
    assert p.memory_breakdown_gib["reference"] == pytest.approx(state["weights"] if cfg.beta else 0.0)
    if cfg.scale == "full":
        assert all(s["dataset"] for s in p.stages) and "8 x H800" in str(p)


def test_dataset_ids_name_config_files_and_split():
    from infir_lib.rl.config import parse_dataset_id

    assert parse_dataset_id("agentica-org/DeepScaleR-Preview-Dataset") == {
        "path": "agentica-org/DeepScaleR-Preview-Dataset", "split": "train"}
    assert parse_dataset_id("Luckyjhg/Geo170K@qa_tuning") == {"path": "Luckyjhg/Geo170K", "split": "qa_tuning"}
    assert parse_dataset_id("a/b:cfg@test") == {"path": "a/b", "name": "cfg", "split": "test"}
    assert parse_dataset_id("ZTE-AIM/Curr-ReFT-data:grpo_data/train/open/*/*_train.jsonl") == {
        "path": "ZTE-AIM/Curr-ReFT-data", "data_files": "grpo_data/train/open/*/*_train.jsonl", "split": "train"}
    with pytest.raises(ValueError, match="owner/name"):
        parse_dataset_id("Geo170K")
    for path in ("configs/full/rl_curr_reft_qwen.yaml", "configs/full/rl_curr_reft_infir.yaml",
                 "configs/full/rl_infi_mmr_qwen.yaml"):
        for ds in as_config(path).datasets:
            parse_dataset_id(ds)


def test_fixed_answer_baseline_and_item_matrix_pairing(monkeypatch):
    """The blind baseline is the best image-free answer per question text; arms scored on other items
    than the first arm cannot be paired."""
    from types import SimpleNamespace

    from infir_lib.rl import experiments as X

    def row(q, sol, image=True):
        content = [{"type": "image"}, {"type": "text", "text": q}] if image else q
        return {"prompt": [{"role": "user", "content": content}], "solution": sol}

    rows = [row("bars?", "3"), row("bars?", "3"), row("bars?", "5"), row("sum?", "7")]
    assert X.fixed_answer_baseline(rows) == 3 / 4
    assert X.fixed_answer_baseline([row("a", "1", image=False), row("b", "2", image=False)]) == 1.0
    with pytest.raises(ValueError):
        X.fixed_answer_baseline([])

    runs = {"t": [SimpleNamespace(summary={"seed": 0}), SimpleNamespace(summary={"seed": 1})],
            "c": [SimpleNamespace(summary={"seed": 0}), SimpleNamespace(summary={"seed": 1})]}
    table = {("t", 0): [1, 0], ("t", 1): [1, 1], ("c", 0): [0, 0], ("c", 1): [0, 1]}
    monkeypatch.setattr(X, "item_outcomes", lambda r, config, name, n=None: {
        "correct": table[(config, r.summary["seed"])], "keys": ["k1", "k2"]})
    assert X.item_matrix(runs, {"t": "t", "c": "c"}, "ood_open") == {"t": [[1, 0], [1, 1]], "c": [[0, 0], [0, 1]]}
    monkeypatch.setattr(X, "item_outcomes", lambda r, config, name, n=None: {
        "correct": [0, 0], "keys": ["k1", "k2"] if config == "t" else ["k2", "k1"]})
    with pytest.raises(ValueError, match="other items"):
        X.item_matrix(runs, {"t": "t", "c": "c"}, "ood_open")
