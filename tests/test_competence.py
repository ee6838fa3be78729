"""The competence gate: held-out items are never trained on, a failing model is reported as failing,
one answer rule, and the batched (left-padded) generation gives the same replies as one prompt at a time."""

import random
import re

import pytest
import torch

from infir_lib.data import arith
from infir_lib.data.sources import iter_documents
from infir_lib.eval import competence as C

QUESTION = re.compile(r"Question: ([^\n]*?\?)")


def _training_questions() -> set[str]:
    """Every arithmetic question in the toy pre-training and annealing sources (and the SFT chats)."""
    from infir_lib import pretrain  # noqa: F401  (registers the toy:ch2-* sources)
    from infir_lib.config import load_config
    questions = set()
    sources = set()
    for preset in ("configs/toy/pretrain.yaml", "configs/toy/anneal.yaml"):
        cfg = load_config(pretrain.PretrainConfig, preset)
        sources.update((s, cfg.data_seed) for s in cfg.datasets)
    sources.add(("toy:ch2-instruct", 0))
    for source, seed in sorted(sources):
        for d in iter_documents(source, n_docs=600, seed=seed, limit=600):
            questions.update(QUESTION.findall(d["text"]))
            questions.update(re.findall(r"user<\|end_header_id\|>\n\n([^<]*?\?)", d["text"]))
    return questions


def test_heldout_items_never_appear_in_training_mixes():
    train = _training_questions()
    assert len(train) > 1000  # the sources were read (a broken regex would make the test vacuous)
    assert not any(arith.is_heldout(q) for q in train)
    gate = {p.question for level in C.GATE_LEVELS for p in C.heldout_items(level, n=200)}
    assert len(gate) > 700 and all(arith.is_heldout(q) for q in gate)
    assert not gate & train


def test_splits_partition_the_problems():
    rng = random.Random(0)
    anyq = [arith.make_problem(rng, 1, split="any").question for _ in range(2000)]
    share = sum(map(arith.is_heldout, anyq)) / len(anyq)
    assert 0.05 < share < 0.15  # about one in HELDOUT_EVERY
    rng = random.Random(0)
    assert not any(arith.is_heldout(arith.make_problem(rng, 2).question) for _ in range(300))
    with pytest.raises(ValueError, match="split"):
        arith.make_problem(rng, 1, split="test")


def test_heldout_items_are_seeded_and_follow_the_level():
    a, b = C.heldout_items(2, n=20, seed=3), C.heldout_items(2, n=20, seed=3)
    assert [p.question for p in a] == [p.question for p in b]
    assert [p.question for p in a] != [p.question for p in C.heldout_items(2, n=20, seed=4)]
    big = C.heldout_items({"n_steps": 1, "max_start": 20, "max_operand": 20}, n=50)
    assert all(p.n_steps == 1 for p in big) and max(p.answer for p in big) > 20
    with pytest.raises(ValueError, match="level"):
        C.heldout_items("hard")


def test_answer_rule_takes_the_first_line():
    assert C.reply_answer(" 7+3=10. Answer: 10\n\nQuestion: Ann has 2 cups. Answer: 5") == 10
    assert C.reply_answer(" 7+3=10. 10-2=8. Answer: 8") == 8
    assert C.reply_answer(" 7+3=10.\nAnswer: 10") is None  # the first line states no answer (no bare-number fallback)
    assert C.reply_answer(" 7+3=10. Answer: 9. 9+1=10. Answer: 10") == 10  # the last stated answer of the line
    assert C.reply_answer(" seven") is None
    assert C.reply_answer("") is None


def test_judge_reports_failures():
    row = lambda lvl, acc: {"level": f"{lvl} steps", "accuracy": acc}
    assert C.judge([row(1, 0.9), row(2, 0.7), row(3, 0.4)]) == (True, [])
    ok, why = C.judge([row(1, 0.5), row(2, 0.3)])
    assert not ok and "50%" in why[0]
    ok, why = C.judge([row(1, 0.85), row(2, 0.5), row(3, 0.7)])
    assert not ok and "3 steps" in why[0]
    with pytest.raises(ValueError):
        C.judge([])


def test_untrained_model_fails_the_gate_and_enforce_names_it(tmp_path, tiny_llama):
    texts = [arith.format_example(p) for p in arith.make_problems(200, seed=1)]
    folder, _, _ = tiny_llama(tmp_path / "random-llama" / "model", texts)
    res = C.check_gate(folder, levels=(1, 2), n=16)
    assert not res.passed and len(res.curve) == 2 and all(r["n"] == 16 for r in res.curve)
    assert res.accuracies[0] < C.MIN_FIRST
    with pytest.raises(C.CompetenceError, match=r"random-llama.*1 step: \d+%"):
        C.check_gate(folder, levels=(1, 2), n=16, enforce=True)
    # a curve that passes is reported as passing, with its numbers
    good = [{"level": "1 step", "accuracy": 0.9}, {"level": "2 steps", "accuracy": 0.6}]
    res = C.check_gate(folder, curve=good, enforce=True)
    assert res.passed and "90%" in res.message()


def test_batched_generation_matches_one_at_a_time(tmp_path, tiny_llama):
    texts = [arith.format_example(p) for p in arith.make_problems(200, seed=1)]
    _, model, tok = tiny_llama(tmp_path / "m", texts)
    torch.manual_seed(0)
    with torch.no_grad():  # larger random weights, so that the reply depends on the prompt
        for w in model.parameters():
            w.normal_(0, 0.3)
    model.eval()
    prompts = [arith.format_prompt(p.question) for p in arith.make_problems(6, seed=2, steps=(1, 3))]
    side = tok.padding_side
    batched = C.greedy_replies(model, tok, prompts, max_new_tokens=8)
    single = [C.greedy_replies(model, tok, [p], max_new_tokens=8)[0] for p in prompts]
    assert batched == single and len(set(batched)) > 1
    assert tok.padding_side == side  # left padding is set for the call only
