"""Helpers behind the chapter-2 experiments: smoothness, colon rule, gradient-norm probe, toy benchmarks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infir_lib.data.sources import TOY_SOURCES, iter_documents, register_toy_source
from infir_lib.eval import toy_benchmarks as tb
from infir_lib.pretrain import experiments as ex


def test_spearman_and_smoothness():
    assert ex.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert ex.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    steady = ex.smoothness([0.1, 0.2, 0.3, 0.4, 0.5])
    jumpy = ex.smoothness([0.1, 0.4, 0.2, 0.5, 0.3, 0.6])
    assert steady["monotone"] == pytest.approx(1.0) and steady["reversals"] == 0.0
    assert jumpy["monotone"] < steady["monotone"] and jumpy["reversals"] == pytest.approx(0.4)
    falling = ex.smoothness([5.0, 4.0, 3.0])  # a metric that improves downwards is monotone too
    assert falling["monotone"] == pytest.approx(1.0)


def test_colon_rule_removes_exactly_the_colon_endings():
    docs = [{"id": str(i), "text": t} for i, t in enumerate(["a b c", "The steps are:", "x:  ", "ok: fine", "end."])]
    register_toy_source("test-colon", lambda n, seed: docs[:n])
    try:
        name = ex.without_colon_endings("toy:test-colon")
        kept = [d["text"] for d in iter_documents(name, n_docs=5, limit=5)]
        assert kept == ["a b c", "ok: fine", "end."]
        assert ex.colon_rule_counts("toy:test-colon", 5) == {"docs": 5, "end_in_colon": 2, "share": 0.4}
    finally:
        TOY_SOURCES.pop("test-colon", None)


def test_gradient_norms_shrink_with_batch_and_match_autograd():
    from infir_lib.models import ModelArgs, build_llama

    torch.manual_seed(0)
    model = build_llama(ModelArgs(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                  intermediate_size=32, vocab_size=50))
    blocks = np.random.default_rng(0).integers(0, 50, size=(64, 16))
    (g,) = ex.gradient_norms(model, blocks[:1], batch_size=1, n_batches=1, seed=0)
    x = torch.as_tensor(blocks[:1])
    model.zero_grad()
    model(input_ids=x, labels=x).loss.backward()
    ref = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters() if p.grad is not None)).item()
    assert g == pytest.approx(ref, rel=1e-5)
    small = ex.spike_stats(ex.gradient_norms(model, blocks, 2, 12, seed=1))
    large = ex.spike_stats(ex.gradient_norms(model, blocks, 32, 12, seed=1))
    assert large["cv"] < small["cv"]  # averaging more sequences gives a less noisy gradient estimate


def test_benchmark_items_are_well_formed():
    items = tb.arith_items(9, steps=(1, 2, 3))
    assert [it["n_steps"] for it in items] == [1, 2, 3] * 3
    assert all(it["prompt"].endswith("Solution:") and it["prompt"].count("Question:") == 3 for it in items)
    assert tb.extract_answer(" 3+4=7. Answer: 7\nQuestion") == 7 and tb.extract_answer("no answer") is None
    for it in tb.arith_choice_items(20):
        assert len(set(it["choices"])) == 4 and it["context"].endswith("=")
        right = int(it["choices"][it["answer"]])
        assert it["context"].split("\n")[-1].count("=") == it["n_steps"]
        assert right >= 0
    for it in tb.fact_items():
        assert len(it["choices"]) == 4 and it["choices"][it["answer"]].split()[-1] in " ".join(it["choices"])
    for it in tb.code_items(6):
        assert not it["prompt"].endswith("\n")
    assert all(p.endswith(":") for p in tb.colon_prompts(12) + tb.colon_prompts(4, kind="benchmark"))


def test_arith_choice_answer_is_the_true_result():
    for it in tb.arith_choice_items(30, seed=3):
        last = it["context"].split("Solution: ")[-1]
        expr = last.rsplit(" ", 1)[-1].rstrip("=")
        assert eval(expr) == int(it["choices"][it["answer"]])  # noqa: S307 - digits and + - * only


def test_eval_fn_measures_only_what_it_is_given():
    from infir_lib.models import ModelArgs, build_llama, train_tokenizer

    tok = train_tokenizer(["Ann has 3 pens. The steps are: 3+1=4. Answer: 4"] * 10, vocab_size=300)
    torch.manual_seed(0)
    model = build_llama(ModelArgs(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                  intermediate_size=32), tok)
    colon_only = ex.make_eval_fn([], [], ["The steps are:"], name="t")
    out = colon_only(model, tok, 1)
    assert set(out) == {"p_eos_colon"} and 0.0 < out["p_eos_colon"] < 1.0
    full = ex.make_eval_fn(["Ann has 3 pens."], tb.arith_choice_items(2, k_shot=1), ["The steps are:"], name="t")
    assert set(full(model, tok, 1)) == {"val_nll", "mc_acc", "mc_pnorm", "p_eos_colon"}
    assert full.cache_key != colon_only.cache_key


def test_per_item_scores_and_web_sample():
    """item_scores keeps item order and agrees with eval_fn's means; web_sample returns distinct web pages."""
    from infir_lib.eval.likelihood import nll_per_token, text_logprobs
    from infir_lib.models import ModelArgs, build_llama, train_tokenizer

    docs = [{"id": str(i), "text": f"page {i % 7} text", "source": "web" if i % 2 else "code"} for i in range(40)]
    register_toy_source("test-web", lambda n, seed: docs[:n])
    try:
        pages = ex.web_sample(5, source="toy:test-web", max_docs=40)
        assert len(pages) == len(set(pages)) == 5 and all(p.startswith("page") for p in pages)
        with pytest.raises(ValueError, match="only 7 web pages"):
            ex.web_sample(8, source="toy:test-web", max_docs=40)  # 7 distinct web texts exist
    finally:
        TOY_SOURCES.pop("test-web", None)
    tok = train_tokenizer(["Ann has 3 pens. The steps are: 3+1=4. Answer: 4"] * 10, vocab_size=300)
    torch.manual_seed(0)
    model = build_llama(ModelArgs(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                  intermediate_size=32), tok)
    texts = ["Ann has 3 pens.", "The steps are: 3+1=4.", "Answer: 4 4 4 4"]
    mc = tb.arith_choice_items(6, k_shot=1)
    out = ex.item_scores(model, tok, texts, mc)
    one_by_one = [nll_per_token(text_logprobs(model, tok, [t], max_tokens=128)[0]) for t in texts]
    assert out["doc_nll"] == pytest.approx(one_by_one, rel=1e-5)  # batched with padding, same numbers, same order
    ev = ex.make_eval_fn([], mc, [], name="t")(model, tok, 1)
    assert len(out["mc_pnorm"]) == len(out["mc_correct"]) == 6
    assert np.mean(out["mc_pnorm"]) == pytest.approx(ev["mc_pnorm"]) and np.mean(out["mc_correct"]) == pytest.approx(ev["mc_acc"])
    assert set(ex.item_scores(model, tok, texts, [])) == {"doc_nll"}


def test_code_correct_scores_each_item_by_its_pattern():
    items = tb.code_items(3)
    right = ["a + b + 7", "+= 1", "+= 1\nmore"]
    assert tb.code_correct(right, items) == [1, 1, 1]
    assert tb.code_correct(["+= 1", "a + b + 7", "x"], items) == [0, 0, 0]
    with pytest.raises(ValueError, match="2 generations for 3"):
        tb.code_correct(right[:2], items)
