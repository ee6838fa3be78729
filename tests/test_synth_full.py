"""The full-scale synthesis path (InfiR §3.1) on local stand-ins: a tiny instruct LM and a tiny reward model
saved to folders, seeds from a local JSONL. Nothing is downloaded; the models are random, so the test
checks the plumbing (batched generation, rejection sampling by the reward model, counted funnel),
not the quality of what they write."""

from __future__ import annotations

import json

import pytest
from transformers import LlamaConfig, LlamaForSequenceClassification

from infir_lib import synth
from infir_lib.config import load_config
from infir_lib.synth.config import SynthConfig
from infir_lib.synth.full import RewardModel
from infir_lib.synth.teacher import LLMTeacher

TEXTS = ["Solve the problem step by step. Step 1: 3+4=7. Answer: 7",
         "Complete the programming task below. ```python\ndef f(x):\n    return x\n```",
         "Rate the difficulty: very easy, easy, medium, hard, very hard."] * 30


@pytest.fixture(scope="module")
def standins(tmp_path_factory, tiny_llama):
    root = tmp_path_factory.mktemp("standins")
    _, _, tok = tiny_llama(root / "teacher", TEXTS, vocab_size=400, max_position_embeddings=2048)
    rm = LlamaForSequenceClassification(LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                                    num_attention_heads=2, num_key_value_heads=1,
                                                    intermediate_size=64, num_labels=1,
                                                    pad_token_id=tok.pad_token_id or tok.eos_token_id))
    rm.save_pretrained(root / "rm")
    tok.save_pretrained(root / "rm")
    seeds = root / "seeds.jsonl"
    seeds.write_text("".join(json.dumps(r) + "\n" for r in [
        {"instruction": "Ann has 3 apples and buys 4 more. How many?", "domain": "math"},
        {"instruction": "A box holds 5 pens; 2 are taken. How many are left?", "domain": "math"},
        {"instruction": "Tom runs 2 km a day for 3 days. How far?", "domain": "math"},
        {"instruction": "Write a function add_two(x) that returns x + 2.", "domain": "code"}]))
    return root


def test_batched_generation_returns_n_replies_per_prompt(standins):
    teacher = LLMTeacher(str(standins / "teacher"), max_new_tokens=6, batch_size=2)
    out = teacher.complete_many(["one", "two two", "three three three"], n=2)
    assert [len(r) for r in out] == [2, 2, 2]
    assert all(isinstance(t, str) for r in out for t in r)


def test_full_pipeline_on_local_standins(standins, tmp_path):
    cfg = load_config(SynthConfig, "configs/full/synth.yaml", {
        "seed_source": str(standins / "seeds.jsonl"), "plan_seeds": 0, "n_math_seeds": 3, "n_code_seeds": 1,
        "evolver_model": str(standins / "teacher"), "teacher_model": str(standins / "teacher"),
        "reward_model": str(standins / "rm"), "evolutions_per_seed": 1, "n_candidates": 2, "max_new_tokens": 8,
        "generation_batch": 3, "sandbox_workers": 1, "per_domain": 0, "output_dir": str(tmp_path / "out"),
        # the random stand-in reward model's scores are arbitrary: keep every reply (the threshold is tested below)
        "min_quality": -1e30})
    result = synth.run(cfg)
    steps = {s["step"]: s for s in result.funnel}
    assert steps["seed instructions"]["out"] == 4
    assert steps["instruction evolution"]["out"] == 8  # every seed evolved once
    # the random teacher writes no ```python blocks: both code instructions are dropped, and counted
    assert steps["rejection sampling / sandbox"]["removed"]["code: no candidate passed"] == 2
    labels = steps["labels (domain, difficulty, quality)"]
    assert 0 <= labels["difficulty_unparsed_set_to_medium"] <= labels["in"]
    rm = RewardModel(str(standins / "rm"))
    math = [c for c in result.candidates if c["domain"] == "math"]
    assert len(math) == 6 and all(len(c["candidates"]) == 2 for c in math)
    for ins in math:  # rejection sampling kept the reward model's favourite
        scores = [rm.score(ins["instruction"], c["response"]) for c in ins["candidates"]]
        assert scores == pytest.approx([c["score"] for c in ins["candidates"]], abs=1e-4)
        assert ins["chosen"] == max(range(len(scores)), key=lambda i: (scores[i], -i))
    rows = [json.loads(line) for line in (tmp_path / "out" / "sft.jsonl").read_text().splitlines()]
    assert len(rows) == steps["diversity sampling"]["out"]


def test_full_parts_go_through_the_same_rules(standins, tmp_path):
    """The reward threshold and the rule filters are the same code at full scale (one pipeline, LLM parts)."""
    cfg = load_config(SynthConfig, "configs/full/synth.yaml", {
        "seed_source": str(standins / "seeds.jsonl"), "plan_seeds": 0, "teacher_model": str(standins / "teacher"),
        "evolver_model": str(standins / "teacher"), "reward_model": str(standins / "rm"), "evolutions_per_seed": 0,
        "n_candidates": 2, "max_new_tokens": 8, "generation_batch": 4, "sandbox_workers": 1, "per_domain": 0,
        "min_quality": 1e30, "output_dir": str(tmp_path / "strict")})
    steps = {s["step"]: s for s in synth.run(cfg).funnel}
    assert steps["rejection sampling / sandbox"]["removed"] == {"math: best reward too low": 3,
                                                                "code: no candidate passed": 1}
    assert steps["diversity sampling"]["out"] == 0
