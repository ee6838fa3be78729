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


def _labelled_docs(n, seed):
    rng = np.random.default_rng(seed)
    doms = rng.choice(["a", "b", "c"], size=n, p=[0.6, 0.3, 0.1])
    return [{"id": f"{seed}-{i}", "text": f"doc {seed} {i} " + "x" * int(rng.integers(1, 20)), "domain": str(d),
             "quality": "bad" if i % 5 == 0 else "good"} for i, d in enumerate(doms)]


def test_domain_matched_source_has_the_asked_shares_and_heldout_is_clean_and_distinct():
    register_toy_source("test-lab", _labelled_docs)
    try:
        shares = {"a": 0.25, "b": 0.25, "c": 0.5}
        name = ex.domain_matched("toy:test-lab", shares, "test-lab-matched", oversample=8)
        docs = list(iter_documents(name, n_docs=40, seed=0, limit=40))
        assert len(docs) == 40
        got = ex.domain_shares(name, 40)
        assert got == {"c": 0.5, "a": 0.25, "b": 0.25}
        held = ex.heldout_matched(shares, 20, seed=3, source="toy:test-lab", oversample=20)
        assert len(held) == 20 == len(set(held))
        lab = {d["text"]: d for d in _labelled_docs(400, 3)}
        assert all(lab[t]["quality"] == "good" for t in held)
        with pytest.raises(ValueError, match="not enough documents"):
            ex.domain_matched("toy:test-lab", {"c": 1.0}, "test-lab-short", oversample=1)
            list(iter_documents("toy:test-lab-short", n_docs=40, seed=0, limit=40))
        assert ex.REGISTERED["test-lab-matched"][0] == "domain_matched"
    finally:
        for k in ("test-lab", "test-lab-matched", "test-lab-short"):
            TOY_SOURCES.pop(k, None)
            ex.REGISTERED.pop(k, None)


def test_steps_to_reach_interpolates_and_censors():
    assert ex.steps_to_reach([10, 20, 30], [5.0, 4.0, 3.0], 3.5) == pytest.approx(25.0)
    assert ex.steps_to_reach([10, 20, 30], [5.0, 4.0, 3.0], 6.0) == 10.0   # already there at the first checkpoint
    assert ex.steps_to_reach([10, 20, 30], [5.0, 4.0, 3.9], 3.0) == 30.0   # never: the last step (censored)
    with pytest.raises(ValueError):
        ex.steps_to_reach([], [], 1.0)


def test_instability_counts_clipped_steps_spikes_and_divergence():
    norms = [5.0, 5.0] + [0.5] * 10 + [1.5] + [0.5] * 7   # warm-up, calm, one clipped spike, calm
    st = ex.instability(norms, 1.0, skip=2)
    assert st["steps"] == 18 and st["clipped"] == pytest.approx(1 / 18) and st["spikes"] == pytest.approx(1 / 18)
    assert st["unstable"] == pytest.approx(1 / 18) and not st["diverged"] and st["median_norm"] == 0.5
    drift = ex.instability([0.2] * 12 + [0.5] + [0.2] * 5, 1.0)   # a spike below the clipping threshold
    assert drift["clipped"] == 0.0 and drift["spikes"] > 0
    bad = ex.instability([0.5] * 5 + [float("inf")] + [0.5] * 4, 1.0, losses=[3.0, 2.0])
    assert bad["nonfinite"] == 1 and bad["diverged"] and bad["clipped"] == pytest.approx(0.1)
    assert ex.instability([0.5] * 4, 1.0, losses=[2.0, 2.5])["diverged"]   # the loss went up


def test_corrupted_source_replaces_about_eps_of_the_characters_reproducibly():
    register_toy_source("test-clean", lambda n, seed: [{"id": str(i), "text": "abcdefghij" * 50} for i in range(n)])
    try:
        same = ex.corrupted_source("toy:test-clean", 0.0, "test-eps0")
        assert [d["text"] for d in iter_documents(same, n_docs=3, limit=3)] == ["abcdefghij" * 50] * 3
        noisy = ex.corrupted_source("toy:test-clean", 0.1, "test-eps1", alphabet="#")
        texts = [d["text"] for d in iter_documents(noisy, n_docs=4, limit=4)]
        share = np.mean([t.count("#") / len(t) for t in texts])
        assert 0.07 < share < 0.13 and all(len(t) == 500 for t in texts)
        assert texts == [d["text"] for d in iter_documents(noisy, n_docs=4, limit=4)]
        with pytest.raises(ValueError):
            ex.corrupted_source("toy:test-clean", 1.0, "test-eps-bad")
    finally:
        for k in ("test-clean", "test-eps0", "test-eps1"):
            TOY_SOURCES.pop(k, None)
            ex.REGISTERED.pop(k, None)


class _CharTok:
    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[ord(c) for c in t] for t in texts]}


def test_weight_for_token_share_gives_that_share_of_tokens():
    register_toy_source("test-long", lambda n, seed: [{"id": str(i), "text": "x" * 98} for i in range(n)])
    register_toy_source("test-short", lambda n, seed: [{"id": str(i), "text": "y" * 18} for i in range(n)])
    try:
        tok = _CharTok()
        w = ex.weight_for_token_share(["toy:test-long"], [1.0], "toy:test-short", 0.2, tok, n_docs=10)
        shares = ex.source_token_shares(["toy:test-long", "toy:test-short"], [1 - w, w], tok, 10_000)
        assert shares["toy:test-short"] == pytest.approx(0.2, abs=0.002)
        assert w > 0.2   # short documents: more of them for the same tokens
    finally:
        TOY_SOURCES.pop("test-long", None)
        TOY_SOURCES.pop("test-short", None)


def test_plain_synthetic_style_shares_no_line_with_the_benchmark_template():
    import random

    from infir_lib.data.arith import format_example, format_example_plain, make_problem
    from infir_lib.pretrain.toy_mixes import synthetic_plain

    p = make_problem(random.Random(0), 3)
    plain = format_example_plain(p)
    assert plain.endswith(f"So the result is {p.answer}.") and p.question in plain
    assert not any(k in plain for k in ("Question:", "Solution:", "Answer:"))
    assert "Answer:" in format_example(p)
    docs = synthetic_plain(5, 0)
    assert len(docs) == 5 and all("Answer:" not in d["text"] for d in docs)


def test_item_scorer_gives_the_per_item_outcomes_in_order():
    from infir_lib.models import ModelArgs, build_llama, train_tokenizer

    tok = train_tokenizer(["Ann has 3 pens. The steps are: 3+1=4. Answer: 4"] * 10, vocab_size=300)
    torch.manual_seed(0)
    model = build_llama(ModelArgs(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                  intermediate_size=32), tok)
    texts, mc = ["Ann has 3 pens.", "Answer: 4 4 4"], tb.arith_choice_items(3, k_shot=1)
    prompts = ["The steps are:", "Ann has 3 pens.", "Solution:"]
    out = ex.ItemScorer(texts, mc, {"colon": prompts})(model, tok)
    assert set(out) == {"doc_nll", "mc_pnorm", "mc_correct", "colon"}
    assert out["doc_nll"] == pytest.approx(ex.item_scores(model, tok, texts, [])["doc_nll"])
    assert out["colon"] == pytest.approx(tb.next_token_prob(model, tok, prompts, tok.eos_token_id).tolist())
    assert out["colon"][0] != pytest.approx(out["colon"][1])  # one value per prompt, in prompt order
    assert ex.ItemScorer(eos_prompts={"x": prompts[:1]})(model, tok).keys() == {"x"}


def test_train_and_score_scores_each_model_where_it_was_trained(tmp_path, monkeypatch):
    """Two tiny runs in worker processes: results in call order, each scored as the same scorer scores the
    saved model here; a job tuple without a scorer returns no scores."""
    monkeypatch.setenv("INFIR_CACHE", str(tmp_path / "cache"))
    tiny = dict(ex.SMALL, hidden_size=16, num_hidden_layers=1, intermediate_size=32, toy_docs=120, max_steps=3,
                warmup_steps=1, eval_every=0, tokenizer_vocab_size=300, tokenizer_train_docs=120)
    scorer = ex.ItemScorer(["Ann has 3 pens.", "The cat sat."], eos_prompts={"colon": ["The steps are:"]})
    out = ex.train_and_score("configs/toy/pretrain.yaml",
                             [dict(tiny, seed=0),
                              ("configs/toy/pretrain.yaml", dict(tiny, seed=1), None, None)], score=scorer)
    assert [r.summary["steps"] for r, _ in out] == [3, 3]
    (r0, s0), (r1, s1) = out
    assert s1 == {} and r0.summary["weights_sha256"] != r1.summary["weights_sha256"]
    here = scorer(r0.load_model(), r0.load_tokenizer())
    assert s0["doc_nll"] == pytest.approx(here["doc_nll"]) and s0["colon"] == pytest.approx(here["colon"])


def test_placement_arm_without_sft_stops_at_the_annealed_base(tmp_path, monkeypatch):
    monkeypatch.setenv("INFIR_CACHE", str(tmp_path / "cache"))
    tiny = dict(ex.SMALL, hidden_size=16, num_hidden_layers=1, intermediate_size=32, toy_docs=120, max_steps=2,
                warmup_steps=1, eval_every=0, tokenizer_vocab_size=300, tokenizer_train_docs=120)
    items = tb.arith_items(3, seed=0)
    out = ex.placement_arm(tiny, dict(toy_docs=60, max_steps=2, eval_every=0), None, items)
    assert len(out["base"]) == 3 and set(out["base"]) <= {0, 1} and np.isfinite(out["base_answer_nll"])
    assert out["sft"] is None and out["sft_answer_nll"] is None and out["sft_losses"] == []
