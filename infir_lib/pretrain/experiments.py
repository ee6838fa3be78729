"""The chapter-2 experiments as library functions, so the notebook stays thin (InfiR §2.1-2.4, §5.1.2).

Every run goes through :func:`infir_lib.pretrain.run` (cached), every score through
:mod:`infir_lib.eval.likelihood` / :mod:`infir_lib.eval.toy_benchmarks`.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Callable, Sequence

import numpy as np
import torch

from ..data.sources import iter_documents, register_toy_source
from ..eval.likelihood import drop_worst, multiple_choice_metrics, nll_per_document, nll_per_token, text_logprobs
from ..eval.toy_benchmarks import COLON_LEADINS, next_token_prob
from .packing import pack

# A small Llama for the experiments: many runs (arms x seeds) fit in the chapter's ~3 CPU minutes.
SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=256,
             max_position_embeddings=512, seq_len=128, global_batch_size=16, micro_batch_size=16,
             tokenizer_vocab_size=2048, tokenizer_train_docs=2000, warmup_steps=10, learning_rate=3e-3,
             log_every=10, eval_every=20, checkpoint_every=0)


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def domain_subset(source: str, domains: Sequence[str], name: str, field: str = "domain") -> str:
    """Register ``toy:<name>``: the documents of ``source`` whose ``field`` is in ``domains``.

    ``n_docs`` is passed to ``source``; the subset is what survives (e.g. the math pages of the crawl).
    """
    domains = tuple(domains)

    def make(n_docs: int, seed: int) -> list[dict]:
        return [d for d in iter_documents(source, n_docs=n_docs, seed=seed, limit=n_docs) if d.get(field) in domains]

    register_toy_source(name, make)
    return "toy:" + name


def without_colon_endings(source: str = "toy:raw", name: str = "ch2-nocolon") -> str:
    """Register ``toy:<name>`` = ``source`` minus documents whose text ends in ':' (the colon rule).

    Everything else is identical, so a model trained on it differs from one trained on ``source`` by
    that one rule. The number removed is kept on the function (``.removed``) and reported.
    """

    def make(n_docs: int, seed: int) -> list[dict]:
        docs = list(iter_documents(source, n_docs=n_docs, seed=seed, limit=n_docs))
        kept = [d for d in docs if not d["text"].rstrip().endswith(":")]
        make.removed[(n_docs, seed)] = len(docs) - len(kept)
        return kept

    make.removed = {}
    register_toy_source(name, make)
    return "toy:" + name


def colon_rule_counts(source: str, n_docs: int, seed: int = 0) -> dict:
    """How many of the first ``n_docs`` documents of ``source`` end in ':' (what the colon rule removes)."""
    docs = list(iter_documents(source, n_docs=n_docs, seed=seed, limit=n_docs))
    ends = sum(d["text"].rstrip().endswith(":") for d in docs)
    return {"docs": len(docs), "end_in_colon": ends, "share": ends / max(1, len(docs))}


def make_eval_fn(val_texts: Sequence[str], mc_items: Sequence[dict], colon_prompts: Sequence[str],
                 name: str = "ch2") -> Callable:
    """An ``eval_fn`` for :func:`infir_lib.pretrain.run`: what the paper watches during pre-training.

    - ``val_nll``: NLL per token on the (already filtered) held-out web sample (Eq. 1);
    - ``mc_acc`` / ``mc_pnorm``: multiple-choice accuracy and normalized choice probability (Eq. 2);
    - ``p_eos_colon``: mean probability of end-of-text right after prompts ending in ':' (§5.1.2).

    An empty list switches its measurement off (evaluation is a large share of a toy run's time).
    """
    val_texts, mc_items, colon_prompts = list(val_texts), list(mc_items), list(colon_prompts)

    def eval_fn(model, tokenizer, step: int) -> dict:
        out = {}
        if val_texts:
            out["val_nll"] = nll_per_token(text_logprobs(model, tokenizer, val_texts, max_tokens=128))
        if mc_items:
            mc = multiple_choice_metrics(model, tokenizer, mc_items)
            out.update(mc_acc=mc["accuracy"], mc_pnorm=mc["p_norm_correct"])
        if colon_prompts:
            out["p_eos_colon"] = float(next_token_prob(model, tokenizer, colon_prompts, tokenizer.eos_token_id).mean())
        return out

    eval_fn.cache_key = f"{name}-eval-{_digest([val_texts, mc_items, colon_prompts])}"
    return eval_fn


def reference_filter(texts: Sequence[str], model, tokenizer, fraction: float = 0.2) -> tuple[list[str], dict]:
    """Keep the texts a reference model finds meaningful: drop the ``fraction`` with highest NLL/token."""
    scores = [nll_per_token(lp) for lp in text_logprobs(model, tokenizer, texts, max_tokens=128)]
    keep = drop_worst(scores, fraction)
    kept = [t for t, k in zip(texts, keep) if k]
    return kept, {"n": len(texts), "kept": int(keep.sum()), "dropped": int((~keep).sum()),
                  "nll_kept": float(np.mean(np.asarray(scores)[keep])),
                  "nll_dropped": float(np.mean(np.asarray(scores)[~keep])) if (~keep).any() else float("nan")}


def web_sample(n: int, seed: int = 99, source: str = "toy:raw", max_docs: int = 5000) -> list[str]:
    """The first ``n`` distinct web pages of ``source`` (drawn with ``seed``, which the toy training runs
    do not use): the held-out web text whose NLL the paper watches (Eq. 1). Exact duplicates (the toy
    crawl has some, for chapter 1's deduplication) are kept once, so no page counts twice as an item."""
    texts: list[str] = []
    seen: set[str] = set()
    for d in iter_documents(source, n_docs=max_docs, seed=seed, limit=max_docs):
        if d.get("source") == "web" and d["text"] not in seen:
            seen.add(d["text"])
            texts.append(d["text"])
            if len(texts) == n:
                return texts
    raise ValueError(f"{source} (seed {seed}) has only {len(texts)} web pages in its first {max_docs} documents; "
                     f"asked for {n}")


def item_scores(model, tokenizer, heldout_texts: Sequence[str], mc_items: Sequence[dict], *,
                max_tokens: int = 128) -> dict:
    """One model's outcomes per item, in item order: ``doc_nll`` (NLL per token of each held-out document)
    and ``mc_pnorm`` / ``mc_correct`` (normalized probability of the right choice, argmax hit) per
    multiple-choice item. Two arms scored on the same items give the paired rows the scorecard compares."""
    out: dict = {}
    if heldout_texts:
        out["doc_nll"] = nll_per_document(model, tokenizer, heldout_texts, max_tokens=max_tokens)
    if mc_items:
        mc = multiple_choice_metrics(model, tokenizer, mc_items)
        out.update(mc_pnorm=mc["p_norm_per_item"], mc_correct=mc["correct"])
    return out


def history_series(result, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one eval key from a run's history."""
    rows = [h for h in result.history if key in h]
    return [h["step"] for h in rows], [h[key] for h in rows]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Rank correlation (ties get average ranks)."""
    def ranks(v):
        v = np.asarray(v, dtype=np.float64)
        order = v.argsort(kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for val in np.unique(v):
            m = v == val
            r[m] = r[m].mean()
        return r
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def smoothness(values: Sequence[float]) -> dict:
    """How steadily a metric moves over checkpoints.

    ``monotone``: Spearman correlation with the checkpoint index (1 = moves one way only);
    ``reversals``: share of consecutive moves against the overall direction (flat moves count half).
    """
    v = np.asarray(values, dtype=np.float64)
    d = np.diff(v)
    trend = np.sign(v[-1] - v[0]) or 1.0
    against = float(np.mean((np.sign(d) == -trend) + 0.5 * (d == 0))) if len(d) else 0.0
    return {"monotone": spearman(np.arange(len(v)), v) * trend, "reversals": against}


# ------------------------------------------------------------------------------------ gradient noise


def domain_blocks(source: str, domains: Sequence[str], tokenizer, seq_len: int, n_docs: int = 800,
                  seed: int = 0, field: str = "domain") -> np.ndarray:
    """Packed blocks made only of documents of ``source`` whose ``field`` is in ``domains``."""
    docs = [d["text"] for d in iter_documents(source, n_docs=n_docs, seed=seed, limit=n_docs) if d.get(field) in domains]
    if not docs:
        raise ValueError(f"no documents of {source} have {field} in {list(domains)}")
    ids = tokenizer([tokenizer.bos_token + t + tokenizer.eos_token for t in docs], add_special_tokens=False)["input_ids"]
    return pack(ids, seq_len)


def gradient_norms(model, blocks: np.ndarray, batch_size: int, n_batches: int, seed: int = 0) -> np.ndarray:
    """Gradient norm of the loss on ``n_batches`` random mini-batches of ``batch_size`` blocks (no update).

    At a fixed point of training, the spread of these norms is the noise of the gradient estimate
    that a step of that batch size would use; mixing domains adds the between-domain variance.
    """
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    out = []
    for _ in range(n_batches):
        idx = rng.choice(len(blocks), size=batch_size, replace=len(blocks) < batch_size)
        x = torch.as_tensor(blocks[idx], dtype=torch.long)
        model.zero_grad(set_to_none=True)
        model(input_ids=x, labels=x).loss.backward()
        out.append(math.sqrt(sum(float(p.grad.pow(2).sum()) for p in params if p.grad is not None)))
    model.zero_grad(set_to_none=True)
    return np.asarray(out)


def spike_stats(norms: Sequence[float]) -> dict:
    """Spread of gradient norms: coefficient of variation and the largest norm over the median."""
    n = np.asarray(norms, dtype=np.float64)
    return {"mean": float(n.mean()), "cv": float(n.std() / n.mean()), "max_over_median": float(n.max() / np.median(n))}


__all__ = ["SMALL", "COLON_LEADINS", "domain_subset", "without_colon_endings", "colon_rule_counts", "make_eval_fn",
           "reference_filter", "web_sample", "item_scores", "history_series", "spearman", "smoothness", "domain_blocks", "gradient_norms",
           "spike_stats"]
