"""Offline-evaluation functions (InfiR Eq. 1-6) against distributions whose answers are known."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from infir_lib.eval.likelihood import (ContaminationLogitsProcessor, choice_scores, contaminated_generation,
                                       drop_worst, expected_tokens_between_corruptions, filtered_nll,
                                       mixture_logprob, multiple_choice_metrics, nll, nll_per_token,
                                       normalized_choice_probs, perplexity, perplexity_bound, sequence_logprobs)


class Bigram(torch.nn.Module):
    """A causal LM with a known next-token distribution: P(next | current) = softmax(table[current])."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = torch.nn.Parameter(table.clone(), requires_grad=False)

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.table[input_ids])

    def get_output_embeddings(self):
        return SimpleNamespace(weight=self.table)


def _bigram(vocab=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Bigram(torch.randn(vocab, vocab, generator=g) * 2)


def test_sequence_logprobs_equal_the_known_distribution():
    model = _bigram()
    seq = [0, 3, 1, 5, 2]
    logp = torch.log_softmax(model.table, -1)
    expected = [logp[a, b].item() for a, b in zip(seq[:-1], seq[1:])]
    (got,) = sequence_logprobs(model, [seq])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert nll(got) == pytest.approx(-sum(expected))  # Eq. 1


def test_padding_does_not_change_scores():
    model = _bigram()
    short, long = [1, 2, 3], [4, 0, 1, 2, 3, 5, 5]
    alone = sequence_logprobs(model, [short])[0]
    together = sequence_logprobs(model, [long, short], pad_id=0)[1]
    np.testing.assert_allclose(alone, together)
    assert len(together) == len(short) - 1


def test_perplexity_of_uniform_distribution_is_vocab_size():
    v = 37
    lp = np.full(100, -math.log(v))
    assert perplexity(lp) == pytest.approx(v)  # Eq. 3
    assert nll_per_token([lp[:30], lp[30:]]) == pytest.approx(math.log(v))


def test_nll_per_token_weights_by_tokens_not_by_sequence():
    a, b = np.full(1, -1.0), np.full(3, -3.0)
    assert nll_per_token([a, b]) == pytest.approx((1 + 9) / 4)  # not the mean of per-sequence means (2.0)


def test_normalized_probabilities_sum_to_one_and_follow_scores():
    rng = np.random.default_rng(0)
    for k in (2, 4, 7):
        s = rng.normal(size=(5, k)) * 30
        p = normalized_choice_probs(s)  # Eq. 2
        np.testing.assert_allclose(p.sum(-1), 1.0)
        assert (np.argmax(p, -1) == np.argmax(s, -1)).all()
        np.testing.assert_allclose(p, normalized_choice_probs(s + 1000.0))  # shift-invariant, no overflow
    np.testing.assert_allclose(normalized_choice_probs([math.log(1), math.log(3)]), [0.25, 0.75])


def test_drop_worst_removes_exactly_the_highest_twenty_percent():
    scores = [5.0, 1.0, 9.0, 2.0, 3.0, 8.0, 4.0, 0.5, 6.0, 7.0]
    keep = drop_worst(scores, 0.2)
    assert keep.sum() == 8
    assert set(np.flatnonzero(~keep)) == {2, 5}  # the two highest NLLs
    assert drop_worst(scores, 0.0).all()
    with pytest.raises(ValueError):
        drop_worst(scores, 1.0)
    with pytest.raises(ValueError):
        drop_worst([1.0, float("nan")], 0.2)


def test_filtered_nll_scores_only_the_kept_texts():
    class Tok:
        bos_token_id, pad_token_id = 0, 0

        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [[int(c) for c in t] for t in texts]}

    model = _bigram()
    texts = ["12", "34", "55", "21", "13"]
    res = filtered_nll(model, Tok(), texts, drop_fraction=0.2)
    per_text = [nll_per_token(lp) for lp in sequence_logprobs(model, [[0] + [int(c) for c in t] for t in texts])]
    worst = int(np.argmax(per_text))
    assert res["n_dropped"] == 1 and not res["keep"][worst]
    kept = [lp for i, lp in enumerate(sequence_logprobs(model, [[0] + [int(c) for c in t] for t in texts])) if i != worst]
    assert res["nll_per_token"] == pytest.approx(nll_per_token(kept))


def test_choice_scores_pick_the_likelier_continuation():
    class Tok:
        bos_token_id, pad_token_id = 0, 0

        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [[int(c) for c in t] for t in texts]}

    table = torch.full((4, 4), -5.0)
    table[0, 1] = 5.0  # after BOS the model says 1
    table[1, 2] = 5.0  # after 1 it says 2
    model = Bigram(table)
    items = [{"context": "1", "choices": ["3", "2"], "answer": 1}, {"context": "", "choices": ["1", "3"], "answer": 0}]
    scores = choice_scores(model, Tok(), items)
    logp = torch.log_softmax(table, -1)
    assert scores[0][1] == pytest.approx(logp[1, 2].item())
    m = multiple_choice_metrics(model, Tok(), items)
    assert m["accuracy"] == 1.0 and 0.99 < m["p_norm_correct"] <= 1.0


def test_mixture_is_a_distribution_and_obeys_the_bound():
    rng = np.random.default_rng(1)
    v = 50
    logp = np.log(rng.dirichlet(np.ones(v), size=200))
    logr = np.log(rng.dirichlet(np.ones(v)))
    targets = rng.integers(0, v, size=200)
    for eps in (0.0, 0.01, 0.05, 0.3):
        logq = mixture_logprob(logp, logr[None, :], eps)  # Eq. 4
        np.testing.assert_allclose(np.exp(logq).sum(-1), 1.0)
        ppl_p = perplexity(logp[np.arange(200), targets])
        ppl_q = perplexity(logq[np.arange(200), targets])
        assert ppl_q <= perplexity_bound(eps) * ppl_p * (1 + 1e-12)  # Eq. 6
    # the bound is tight when r never puts mass on the observed tokens
    lp_t = logp[np.arange(200), targets]
    lq_t = mixture_logprob(lp_t, -np.inf, 0.05)
    assert perplexity(lq_t) / perplexity(lp_t) == pytest.approx(1 / 0.95)
    assert expected_tokens_between_corruptions(0.05) == pytest.approx(20.0)
    with pytest.raises(ValueError):
        perplexity_bound(1.0)


def test_contamination_processor_draws_from_r_at_rate_eps():
    v, n, steps, eps = 20, 400, 25, 0.1
    proc = ContaminationLogitsProcessor(eps, np.log(np.full(v, 1 / v)), seed=3)
    scores = torch.zeros(n, v)
    scores[:, 0] = 50.0  # p is (almost) a point mass on token 0
    forced_tokens = []
    for _ in range(steps):
        out = proc(None, scores.clone())
        flags = torch.as_tensor(proc.flags[-1])
        forced_tokens += out[flags].argmax(-1).tolist()
        assert torch.isfinite(out[~flags]).all()
    rate = np.mean(proc.flags)
    sd = math.sqrt(eps * (1 - eps) / (n * steps))
    assert abs(rate - eps) < 5 * sd
    assert len(set(forced_tokens)) > v // 2  # r's draws are spread over the vocabulary


def test_contaminated_generation_on_a_tiny_llama():
    from infir_lib.models import ModelArgs, build_llama, train_tokenizer

    tok = train_tokenizer(["Ann has 3 pens. Ann buys 2. Answer: 5"] * 20, vocab_size=300)
    torch.manual_seed(0)
    model = build_llama(ModelArgs(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                  intermediate_size=32), tok)
    prompts = ["Ann has 3 pens."] * 24
    clean = contaminated_generation(model, tok, prompts, 0.0, max_new_tokens=20)
    assert clean["from_r"] == 0 and clean["corrupted"] == 0
    dirty = contaminated_generation(model, tok, prompts, 0.25, max_new_tokens=20, seed=1)
    assert dirty["tokens"] > 0 and 0.1 < dirty["from_r_rate"] < 0.4
    assert dirty["corrupted"] <= dirty["from_r"]


def test_per_item_outcomes_match_the_means():
    """The per-item lists a paired comparison uses: item order kept, means equal to the scalars."""
    from infir_lib.eval.likelihood import nll_per_document, text_logprobs

    class Tok:
        bos_token_id, pad_token_id = 0, 0

        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [[int(c) for c in t] for t in texts]}

    model = _bigram()
    texts = ["12", "345", "55", "2132"]
    per_doc = nll_per_document(model, Tok(), texts)
    assert per_doc == pytest.approx([nll_per_token(lp) for lp in text_logprobs(model, Tok(), texts)])
    assert per_doc[::-1] == pytest.approx(nll_per_document(model, Tok(), texts[::-1]))
    assert np.argmax(per_doc) != np.argmin(per_doc)  # documents differ, so a swap of order would show
    items = [{"context": "1", "choices": ["3", "2"], "answer": 1}, {"context": "", "choices": ["1", "3"], "answer": 1},
             {"context": "2", "choices": ["4", "5", "1"], "answer": 2}]
    m = multiple_choice_metrics(model, Tok(), items)
    assert len(m["correct"]) == len(m["p_norm_per_item"]) == 3 and set(m["correct"]) <= {0, 1}
    assert np.mean(m["correct"]) == pytest.approx(m["accuracy"])
    assert np.mean(m["p_norm_per_item"]) == pytest.approx(m["p_norm_correct"])
    for item, p, hit, s in zip(items, m["p_norm_per_item"], m["correct"], choice_scores(model, Tok(), items)):
        assert p == pytest.approx(normalized_choice_probs(s)[item["answer"]])
        assert hit == int(np.argmax(s) == item["answer"])


def test_tail_scoring_equals_the_full_scoring_sliced():
    """``starts`` (what continuation scoring uses) applies the output layer only at the scored positions of a
    transformers model; the numbers are those of the full pass, sliced, padding and order included."""
    from infir_lib.eval.likelihood import continuation_logprobs
    from infir_lib.models import ModelArgs, build_llama, train_tokenizer

    tok = train_tokenizer(["Ann has 3 pens. Ann buys 2. Answer: 5"] * 20, vocab_size=300)
    torch.manual_seed(0)
    model = build_llama(ModelArgs(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                  intermediate_size=32), tok)
    seqs = [[1, 5, 9, 12, 40, 7], [1, 3, 4], [1, 8, 8, 8, 8, 8, 8, 2, 9]]
    starts = [3, 0, 6]
    full = sequence_logprobs(model, seqs, pad_id=0)
    tails = sequence_logprobs(model, seqs, pad_id=0, starts=starts, batch_size=2)
    assert [len(t) for t in tails] == [2, 2, 2]
    for f, t, st in zip(full, tails, starts):
        np.testing.assert_allclose(t, f[st:], rtol=1e-5, atol=1e-6)
    ctx, cont = ["Ann has 3 pens.", "Ann buys"], [" Answer: 5", " 2"]
    got = continuation_logprobs(model, tok, ctx, cont)
    bigram_like = _bigram(vocab=6)
    assert len(sequence_logprobs(bigram_like, [[0, 1, 2, 3]], starts=[2])[0]) == 1  # a model without a decoder: sliced
    for c, a, lp in zip(ctx, cont, got):
        ids_c, ids_a = tok(c, add_special_tokens=False)["input_ids"], tok(a, add_special_tokens=False)["input_ids"]
        whole = sequence_logprobs(model, [[tok.bos_token_id] + ids_c + ids_a])[0]
        np.testing.assert_allclose(lp, whole[len(ids_c):], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="one index per sequence"):
        sequence_logprobs(model, seqs, starts=[0])
