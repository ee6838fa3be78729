"""Chapter 3: each step of the synthesis pipeline, on cases where a wrong implementation fails."""

import random

import pytest

from infir_lib import synth
from infir_lib.config import ConfigError, load_config
from infir_lib.synth import SynthConfig
from infir_lib.synth.evolve import add_constraint, add_step, concretize, deepen, evolve
from infir_lib.synth.instructions import CodeInstruction, MathInstruction, seed_instructions
from infir_lib.synth.pipeline import _step
from infir_lib.synth.select import (DIFFICULTY_LABELS, difficulty_label, difficulty_score, diversity_sample,
                                    has_reasoning_steps, label_domain, pick_best, step_reward)
from infir_lib.synth.teacher import TeacherArgs, math_response


def test_pick_best_is_the_highest_score_first_on_ties():
    assert pick_best([0.1, 0.9, 0.3]) == 1
    assert pick_best([0.2, 0.1, 0.7, 0.7]) == 2
    assert pick_best([-3.0, -1.0, -2.0]) == 1
    assert pick_best([0.5]) == 0
    with pytest.raises(ValueError):
        pick_best([])


def test_step_reward_ranks_right_above_wrong_above_answer_only():
    ins = MathInstruction("Ann", "pens", 4, [("+", 3), ("-", 2)])
    right = "4+3=7. 7-2=5. Answer: 5"
    wrong_step = "4+3=8. 8-2=6. Answer: 6"
    broken_chain = "4+3=7. 6-2=4. Answer: 4"
    answer_only = "Answer: 5"
    scores = [step_reward(ins, r) for r in (right, wrong_step, broken_chain, answer_only)]
    assert scores[0] == 1.0
    assert scores[0] > scores[1] > scores[3]
    assert scores[0] > scores[2]
    assert scores[3] == 0.0
    # the reply with the wrong step is picked by rejection sampling only if nothing better exists
    assert pick_best(scores) == 0


def test_teacher_errors_are_visible_to_the_verifier():
    rng = random.Random(0)
    args = TeacherArgs(step_error=0.5, no_steps=0.0)
    for _ in range(200):
        ins = MathInstruction("Ben", "cups", rng.randint(2, 9), [("+", rng.randint(1, 9)) for _ in range(3)])
        text, wrong = math_response(ins, rng, args)
        assert (step_reward(ins, text) < 1.0) == wrong


def test_add_step_really_adds_a_step():
    rng = random.Random(1)
    ins = MathInstruction("Cat", "eggs", 5, [("+", 2)], uid="m1")
    new = add_step(ins, rng)
    assert new.n_steps == ins.n_steps + 1 and ins.n_steps == 1  # the original is untouched
    assert new.ops[:1] == ins.ops
    assert new.text.count(".") == ins.text.count(".") + 1
    assert new.reference().count("=") == 2 and new.reference().endswith(f"Answer: {new.answer}")
    code = CodeInstruction("f12", [("*", 2)], uid="c1")
    new_code = add_step(code, rng)
    assert new_code.n_steps == 2 and new_code.tests().count("assert") == 4
    assert new_code.apply(5) != code.apply(5) or new_code.ops[1] in (("*", 1), ("+", 0))


def test_add_constraint_concretize_and_deepen_change_the_instruction():
    rng = random.Random(2)
    ins = MathInstruction("Dan", "books", 6, [("+", 2), ("-", 3)], uid="m2")
    c = add_constraint(ins, rng)
    assert len(c.constraints) == 1 and c.constraints[0] in c.text and c.constraints[0] not in ins.text
    c2 = add_constraint(c, rng)
    assert len(c2.constraints) == 2 and len(set(c2.constraints)) == 2
    z = concretize(ins, rng)
    assert z.context and z.context in z.text and z.answer == ins.answer
    assert concretize(z, rng) is None  # already concrete
    d = deepen(ins, rng)
    assert any(op == "*" for op, _ in d.ops) and not any(op == "*" for op, _ in ins.ops)
    assert min(d.values()) >= 0


def test_evolve_counts_and_keeps_the_seeds():
    seeds = seed_instructions(10, 4, seed=0)
    out, counts = evolve(seeds, ["add_step", "deepen"], per_seed=2, seed=0)
    assert counts["attempted"] == 28
    assert counts["produced"] + counts["failed"] == counts["attempted"]
    assert len(out) == len(seeds) + counts["produced"]
    assert all(s in out for s in seeds)
    with pytest.raises(ValueError, match="unknown evolution operator"):
        evolve(seeds, ["make_it_better"], 1, 0)


def test_difficulty_labels_are_monotone_in_steps():
    rng = random.Random(3)
    labels = []
    for n in range(1, 8):
        ins = MathInstruction("Eve", "coins", 9, [("+", 1)] * n)
        labels.append(DIFFICULTY_LABELS.index(difficulty_label(difficulty_score(ins))))
    assert labels == sorted(labels)
    assert labels[0] == 0 and labels[-1] == len(DIFFICULTY_LABELS) - 1
    assert difficulty_label(1) == "very easy" and difficulty_label(3) == "medium" and difficulty_label(9) == "very hard"
    plain = MathInstruction("Eve", "coins", 9, [("+", 1), ("+", 2)])
    assert difficulty_score(deepen(plain, rng)) > difficulty_score(plain)


def test_rules_and_domain_labels():
    assert has_reasoning_steps("3+4=7. Answer: 7") and not has_reasoning_steps("Answer: 7")
    assert label_domain("Write a Python function f1(x) that takes x, adds 2, and returns the result.") == "code"
    assert label_domain("Ann has 3 pens. Ann buys 2. How many pens does Ann have now?") == "math"


def test_diversity_sampling_caps_domains_and_balances_difficulty():
    rows = [{"domain": "math", "difficulty": "very easy", "i": i} for i in range(50)]
    rows += [{"domain": "math", "difficulty": "hard", "i": i} for i in range(5)]
    rows += [{"domain": "code", "difficulty": "easy", "i": i} for i in range(3)]
    out = diversity_sample(rows, per_domain=10, seed=0)
    math = [r for r in out if r["domain"] == "math"]
    assert len(math) == 10 and sum(r["difficulty"] == "hard" for r in math) == 5  # all the rare level kept
    assert sum(r["domain"] == "code" for r in out) == 3


def test_funnel_step_refuses_counts_that_do_not_add_up():
    assert _step("x", 10, 7, removed={"a": 2, "b": 1})["out"] == 7
    with pytest.raises(AssertionError):
        _step("x", 10, 8, removed={"a": 1, "b": 2})


def test_toy_pipeline_end_to_end(tmp_path):
    cfg = load_config(SynthConfig, "configs/toy/synth.yaml",
                      {"n_math_seeds": 30, "n_code_seeds": 4, "n_candidates": 3, "code_bug": 0.4, "code_slow": 0.2, "sandbox_timeout": 3.0,
                       "output_dir": str(tmp_path / "s")})
    res = synth.run(cfg)
    # the funnel adds up and chains: each step starts where the previous one ended
    for prev, step in zip(res.funnel, res.funnel[1:]):
        assert step["in"] == prev["out"]
        assert step["in"] + step["added"] - sum(step["removed"].values()) == step["out"]
    assert res.funnel[-1]["out"] == len(res.rows)
    by_uid = {c["uid"]: c for c in res.candidates}
    for row in res.rows:
        rec = by_uid[row["uid"]]
        kept = row["messages"][1]["content"]
        if row["domain"] == "math":  # rejection sampling kept the best-scored candidate
            assert rec["candidates"][rec["chosen"]]["response"] == kept
            assert rec["candidates"][rec["chosen"]]["score"] == max(c["score"] for c in rec["candidates"])
            assert has_reasoning_steps(kept)
        else:  # only code that passed its tests in the sandbox
            assert rec["candidates"][rec["chosen"]]["status"] == "passed"
    # the sandbox sees what the teacher did: bugs fail, slow code times out, correct code passes
    for rec in res.candidates:
        for c in rec["candidates"]:
            if rec["domain"] == "code":
                assert c["status"] == {"ok": "passed", "bug": "failed", "slow": "timeout"}[c["kind"]]


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="n_candidatez"):
        load_config(SynthConfig, "configs/toy/synth.yaml", {"n_candidatez": 3})
    with pytest.raises((ConfigError, ValueError), match="n_candidates"):
        load_config(SynthConfig, "configs/toy/synth.yaml", {"n_candidates": 0})


def test_full_config_plans_offline():
    text = synth.plan("configs/full/synth.yaml")
    assert "Qwen/Qwen2.5-32B-Instruct" in text and "GPU-hours" in text


def test_step_and_function_rules_read_toy_and_llm_replies():
    from infir_lib.synth.pipeline import TextInstruction
    from infir_lib.synth.select import defines_function, shows_steps

    assert shows_steps("3+4=7. 7-2=5. Answer: 5") and not shows_steps("Answer: 5")
    assert not shows_steps("3+4=7. Answer: 7", 2) and shows_steps("3+4=7. 7-2=5. Answer: 5", 2)
    llm = "Step 1: add the apples.\nStep 2: count them.\nThe answer is 7."
    assert shows_steps(llm) and not shows_steps("1. The answer is 7.")
    toy = CodeInstruction("solve", [("+", 2)])
    assert defines_function(toy, toy.reference()) and not defines_function(toy, "def other(x):\n    return x")
    text = TextInstruction("Write a function that adds two.", "s0", "code")
    assert defines_function(text, "def add_two(x):\n    return x + 2") and not defines_function(text, "x + 2")
    assert not defines_function(text, None)


def test_parts_are_chosen_by_config_values():
    from infir_lib.synth.pipeline import parts_for, run_pipeline

    cfg = load_config(SynthConfig, "configs/toy/synth.yaml", {"n_math_seeds": 6, "n_code_seeds": 0})
    parts = parts_for(cfg)
    assert parts.teacher_errors_known and len(parts.seeds()) == 6
    rows, _, funnel = run_pipeline(cfg, parts)
    assert funnel[-1]["out"] == len(rows)
    with pytest.raises(ValueError, match="verifier"):
        parts_for(load_config(SynthConfig, "configs/toy/synth.yaml", {"seed_source": "seeds.jsonl",
                                                                        "teacher_model": "some/llm"}))
    with pytest.raises(ValueError, match="ground truth"):
        parts_for(load_config(SynthConfig, "configs/toy/synth.yaml", {"teacher_model": "some/llm"}))
    with pytest.raises(ValueError, match="teacher_model"):
        parts_for(load_config(SynthConfig, "configs/toy/synth.yaml", {"seed_source": "seeds.jsonl",
                                                                        "reward_model": "some/rm"}))
