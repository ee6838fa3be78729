"""Chapter 7 task rows, configs, rejection-sampling selection and the full-scale dry-run (no training)."""

import collections

import pytest

from infir_lib.config import ConfigError
from infir_lib.rl import as_config, plan
from infir_lib.rl import rewards as R
from infir_lib.rl.curr_reft import select_samples, verifier_judge
from infir_lib.rl.schedule import rollouts, zero_variance_by_stage
from infir_lib.rl.tasks import (FORMATS, ITEMS, LARGE_START, NEW_ITEMS, counting_problem, format_rows, generation_prompt_ids,
                                make_family, mixed_chunks, mixed_rows, sft_token_rows)


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
    for name, stages in [("rl_curr_reft", 3), ("rl_mixed", 3), ("rl_infi_mmr", 3), ("rl_direct", 1)]:
        cfg = as_config(f"configs/toy/{name}.yaml")
        assert len(cfg.stages) == stages == len(cfg.stage_steps)
    cur, mix = as_config("configs/toy/rl_curr_reft.yaml"), as_config("configs/toy/rl_mixed.yaml")
    # claim 14's arms: the same schedule (steps, group sizes), hence the same GRPO steps and rollouts
    assert cur.stage_steps == mix.stage_steps and cur.stage_generations == mix.stage_generations
    assert rollouts(cur) == rollouts(mix) and sum(cur.stage_steps) == sum(mix.stage_steps)
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
    from infir_lib.planning import gpu_hours, state_memory_gib

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
    from infir_lib.dataset_ids import parse_dataset_id as parse

    def parse_dataset_id(text):  # the load_dataset keyword arguments a dataset id gives
        return parse(text).load_kwargs()

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
    monkeypatch.setattr(X, "item_outcomes", lambda r, config, name, n=None, overrides=None: {
        "correct": table[(config, r.summary["seed"])], "keys": ["k1", "k2"]})
    assert X.item_matrix(runs, {"t": "t", "c": "c"}, "ood_open") == {"t": [[1, 0], [1, 1]], "c": [[0, 0], [0, 1]]}
    monkeypatch.setattr(X, "item_outcomes", lambda r, config, name, n=None, overrides=None: {
        "correct": [0, 0], "keys": ["k1", "k2"] if config == "t" else ["k2", "k1"]})
    with pytest.raises(ValueError, match="other items"):
        X.item_matrix(runs, {"t": "t", "c": "c"}, "ood_open")


def test_mixed_chunks_fill_the_curriculum_stages_with_every_format():
    stages = [format_rows("arith", fmt, 30, seed=0) for fmt in FORMATS]
    chunks = mixed_chunks(stages, 3, seed=2)
    assert [len(c) for c in chunks] == [30, 30, 30]
    key = lambda r: (r["format"], r["prompt"][0]["content"], r["solution"])  # noqa: E731
    assert sorted(key(r) for c in chunks for r in c) == sorted(key(r) for s in stages for r in s)
    assert all({r["format"] for r in c} == set(FORMATS) for c in chunks)  # each stage mixes the formats
    assert [len(c) for c in mixed_chunks(stages[:1] + [stages[1][:1]], 3, seed=0)] == [11, 10, 10]


def test_zero_variance_share_per_stage():
    history = [{"stage": "judge", "frac_reward_zero_std": 0.0}, {"stage": "judge", "frac_reward_zero_std": 0.5},
               {"stage": "open", "frac_reward_zero_std": 1.0}, {"stage": "open"}]
    assert zero_variance_by_stage(history) == {"judge": 0.25, "open": 1.0}


@pytest.mark.parametrize("family", ["large", "new_items"])
def test_out_of_domain_families_are_correct_and_never_trained_on(family):
    import re

    train = {r["prompt"][0]["content"] for fmt in FORMATS for r in format_rows("arith", fmt, 200, seed=0)}
    rows = format_rows(family, "open", 60, seed=3, steps=[1, 2])
    assert not {r["prompt"][0]["content"] for r in rows} & train
    for r in rows:
        q = r["prompt"][0]["content"]
        nums = [int(x) for x in re.findall(r"\d+", q)]
        verbs = re.findall(r"(buys|finds|gets|wins|gives away|loses|sells|eats)", q)
        value = nums[0]
        for k, v in zip(nums[1:], verbs):
            value += k if v in ("buys", "finds", "gets", "wins") else -k
        assert str(value) == r["solution"] and r["family"] == family
        if family == "large":
            assert LARGE_START[0] <= nums[0] <= LARGE_START[1]
        else:
            assert not any(re.search(rf"\b{w}\b", q) for w in ITEMS) and any(w in q for w in NEW_ITEMS)


def test_choose_level_picks_the_level_nearest_half_inside_the_band():
    from infir_lib.rl.experiments import choose_level

    curve = [{"family": "a", "steps": 1, "accuracy": 0.9}, {"family": "a", "steps": 2, "accuracy": 0.3},
             {"family": "b", "steps": 1, "accuracy": 0.62}, {"family": "b", "steps": 2, "accuracy": 0.05}]
    assert choose_level(curve) == curve[2]
    assert choose_level([c for c in curve if c["family"] == "a"]) == curve[1]
    assert choose_level([curve[0], curve[3]]) is None  # every level at the floor or the ceiling


def _toy_tokenizer():
    from infir_lib.models import train_tokenizer

    texts = [r["prompt"][0]["content"] + " " + r["reference"] for fmt in FORMATS for r in format_rows("arith", fmt, 100, seed=1)]
    return train_tokenizer(texts, vocab_size=400)


def test_cold_start_rows_train_on_the_prompt_as_it_is_sampled():
    """The tokenized sampling prompt is a prefix of every cold-start row, and the loss starts right after it."""
    tok = _toy_tokenizer()
    rows = [r for fmt in FORMATS for r in format_rows("arith", fmt, 20, seed=5)]
    for r, t in zip(rows, sft_token_rows(tok, rows)):
        prompt = generation_prompt_ids(tok, r["prompt"])
        # what TRL's GRPOTrainer feeds to generate, and what evaluation uses
        trl_style = tok.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True)
        assert prompt == list(trl_style["input_ids"])
        assert t["input_ids"][:len(prompt)] == prompt
        assert t["completion_mask"] == [0] * len(prompt) + [1] * (len(t["input_ids"]) - len(prompt))
        completion = tok.decode(t["input_ids"][len(prompt):])
        assert completion == r["reference"].strip() + "<|eot_id|>"
