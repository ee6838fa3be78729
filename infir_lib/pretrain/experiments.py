"""The chapter-2 experiments as library functions, so the notebook stays thin (InfiR §2.1-2.4, §5.1.2).

Every run goes through :func:`infir_lib.pretrain.run` (cached), every score through
:mod:`infir_lib.eval.likelihood` / :mod:`infir_lib.eval.toy_benchmarks`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random as _random
import string
from typing import Callable, Sequence

import numpy as np
import torch

from .. import sft
from ..data.sources import iter_documents, register_toy_source
from ..eval import toy_benchmarks as tb
from ..eval import competence
from ..eval.likelihood import drop_worst, multiple_choice_metrics, nll_per_document, nll_per_token, text_logprobs
from ..eval.toy_benchmarks import COLON_LEADINS, next_token_prob
from ..parallel import run_parallel
from . import run
from .packing import pack

# A small Llama for the experiments: many runs (arms x seeds) fit in the chapter's ~3 CPU minutes.
SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=256,
             max_position_embeddings=512, seq_len=128, global_batch_size=16, micro_batch_size=16,
             tokenizer_vocab_size=2048, tokenizer_train_docs=2000, warmup_steps=10, learning_rate=3e-3,
             log_every=10, eval_every=20, checkpoint_every=0)


# name -> (function, args) of every toy source this module registered, so worker processes can redo it
REGISTERED: dict[str, tuple[str, tuple]] = {}


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
    REGISTERED[name] = ("domain_subset", (source, domains, name, field))
    return "toy:" + name


def domain_shares(source: str, n_docs: int, seed: int = 0, field: str = "domain") -> dict[str, float]:
    """Share of each ``field`` value among the first ``n_docs`` documents of ``source``."""
    docs = list(iter_documents(source, n_docs=n_docs, seed=seed, limit=n_docs))
    counts: dict[str, int] = {}
    for d in docs:
        counts[d.get(field)] = counts.get(d.get(field), 0) + 1
    return {k: v / len(docs) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}


def _take_by_share(docs: list[dict], shares: dict[str, float], n: int, field: str) -> list[dict]:
    by: dict[str, list[dict]] = {}
    for d in docs:
        by.setdefault(d.get(field), []).append(d)
    total = sum(shares.values())
    want = {k: int(n * w / total) for k, w in shares.items()}
    for k in sorted(shares, key=lambda k: -(n * shares[k] / total - want[k]))[: n - sum(want.values())]:
        want[k] += 1  # largest remainders: the counts add up to n exactly
    short = {k: (len(by.get(k, [])), m) for k, m in want.items() if len(by.get(k, [])) < m}
    if short:
        raise ValueError(f"not enough documents per {field} for the asked shares (have, want): {short}")
    out = [d for k, m in want.items() for d in by[k][:m]]
    order = {id(d): i for i, d in enumerate(docs)}  # keep the source's own order (its shuffle)
    return sorted(out, key=lambda d: order[id(d)])


def domain_matched(source: str, shares: dict[str, float], name: str, oversample: int = 4,
                   field: str = "domain") -> str:
    """Register ``toy:<name>``: documents of ``source`` drawn so that each domain has the given share.

    Claim 1 compares raw and filtered data: the filtering pipeline also changes *which domains* survive
    (it drops most web pages), so the raw arm is redrawn with the filtered corpus's domain shares; then
    the arms differ in quality (spam, boilerplate, broken pages, duplicates), not in what they are about.
    ``oversample`` times ``n_docs`` documents are read to find enough of each domain.
    """
    shares = {k: float(v) for k, v in shares.items() if v > 0}

    def make(n_docs: int, seed: int) -> list[dict]:
        docs = list(iter_documents(source, n_docs=oversample * n_docs, seed=seed, limit=oversample * n_docs))
        return _take_by_share(docs, shares, n_docs, field)

    register_toy_source(name, make)
    REGISTERED[name] = ("domain_matched", (source, shares, name, oversample, field))
    return "toy:" + name


def heldout_matched(shares: dict[str, float], n: int, *, seed: int = 99, source: str = "toy:raw",
                    quality: str = "good", field: str = "domain", oversample: int = 4) -> list[str]:
    """``n`` distinct held-out documents of ``source`` (drawn with ``seed``, which training never uses) of
    the given ``quality`` label, with the given domain shares: the domain-matched held-out set on which
    claim 1's arms are compared (good text of the domains both arms train on)."""
    seen: set[str] = set()
    docs = []
    for d in iter_documents(source, n_docs=oversample * n, seed=seed, limit=oversample * n):
        if d.get("quality", "good") == quality and d.get(field) in shares and d["text"] not in seen:
            seen.add(d["text"])
            docs.append(d)
    return [d["text"] for d in _take_by_share(docs, shares, n, field)]


def source_token_shares(datasets: Sequence[str], weights: Sequence[float], tokenizer, n_docs: int,
                        seed: int = 0) -> dict[str, float]:
    """Share of the packed training tokens that each source contributes, for a toy mix of ``n_docs``
    documents drawn with these ``weights`` (as :func:`infir_lib.pretrain.packing.get_packed_data` draws them).

    Weights count documents; tokens are what a run sees, so designs that must give two arms the same
    number of tokens of a source (claim 4) are computed with this."""
    total_w = sum(weights)
    counts = {}
    for source, w in zip(datasets, weights):
        k = max(1, round(n_docs * w / total_w))
        texts = [d["text"] for d in iter_documents(source, n_docs=k, seed=seed, limit=k)]
        counts[source] = sum(len(x) + 2 for x in tokenizer(texts, add_special_tokens=False)["input_ids"])
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()}


def steps_to_reach(steps: Sequence[int], values: Sequence[float], target: float) -> float:
    """First step (linearly interpolated between checkpoints) at which ``values`` fall to ``target``.

    A curve that never gets there returns its last step (censored: the true number is larger), so a
    comparison of steps can only understate how much slower such an arm is."""
    steps, values = list(steps), list(values)
    if not steps:
        raise ValueError("no checkpoints")
    prev_s, prev_v = 0, None
    for s, v in zip(steps, values):
        if v <= target:
            if prev_v is None or prev_v == v:
                return float(s)
            return float(prev_s + (s - prev_s) * (prev_v - target) / (prev_v - v))
        prev_s, prev_v = s, v
    return float(steps[-1])


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
    REGISTERED[name] = ("without_colon_endings", (source, name))
    return "toy:" + name


def colon_rule_counts(source: str, n_docs: int, seed: int = 0) -> dict:
    """How many of the first ``n_docs`` documents of ``source`` end in ':' (what the colon rule removes)."""
    docs = list(iter_documents(source, n_docs=n_docs, seed=seed, limit=n_docs))
    ends = sum(d["text"].rstrip().endswith(":") for d in docs)
    return {"docs": len(docs), "end_in_colon": ends, "share": ends / max(1, len(docs))}


class LikelihoodEval:
    """An ``eval_fn`` for :func:`infir_lib.pretrain.run`: what the paper watches during pre-training.

    - ``val_nll``: NLL per token on the (already filtered) held-out web sample (Eq. 1);
    - ``mc_acc`` / ``mc_pnorm``: multiple-choice accuracy and normalized choice probability (Eq. 2);
    - ``p_eos_colon``: mean probability of end-of-text right after prompts ending in ':' (§5.1.2).

    An empty list switches its measurement off (evaluation is a large share of a toy run's time). A
    class rather than a closure, so runs can be trained in worker processes (:func:`run_many`).
    """

    def __init__(self, val_texts: Sequence[str], mc_items: Sequence[dict], colon_prompts: Sequence[str],
                 name: str = "ch2"):
        self.val_texts, self.mc_items, self.colon_prompts = list(val_texts), list(mc_items), list(colon_prompts)
        self.cache_key = f"{name}-eval-{_digest([self.val_texts, self.mc_items, self.colon_prompts])}"

    def __call__(self, model, tokenizer, step: int) -> dict:
        out = {}
        if self.val_texts:
            out["val_nll"] = nll_per_token(text_logprobs(model, tokenizer, self.val_texts, max_tokens=128))
        if self.mc_items:
            mc = multiple_choice_metrics(model, tokenizer, self.mc_items)
            out.update(mc_acc=mc["accuracy"], mc_pnorm=mc["p_norm_correct"])
        if self.colon_prompts:
            out["p_eos_colon"] = float(next_token_prob(model, tokenizer, self.colon_prompts, tokenizer.eos_token_id).mean())
        return out


def make_eval_fn(val_texts: Sequence[str], mc_items: Sequence[dict], colon_prompts: Sequence[str],
                 name: str = "ch2") -> LikelihoodEval:
    """:class:`LikelihoodEval` of these sets (see there)."""
    return LikelihoodEval(val_texts, mc_items, colon_prompts, name)


def _register(sources: tuple) -> None:
    import infir_lib.data  # noqa: F401  (chapter 1's toy:raw and toy:filtered)

    for fname, args in sources:  # the toy sources this chapter registered, registered again in a worker
        globals()[fname](*args)


def _run_one(preset: str, overrides: dict, eval_fn, sources: tuple):
    _register(sources)
    return run(preset, overrides, eval_fn=eval_fn)


def placement_arm(pretrain_overrides: dict, anneal_overrides: dict, sft_overrides: dict | None, items: Sequence[dict],
                  sources: tuple = (), eval_fn=None) -> dict:
    """One arm × seed of the synthetic-data placement experiment (InfiR §5.1.2): pre-train
    (``configs/toy/pretrain.yaml`` + overrides), anneal from it (``configs/toy/anneal.yaml`` + overrides),
    fine-tune the annealed model with chapter 4's SFT (``configs/toy/sft.yaml`` + overrides); every stage
    cached. Returns the 0/1 outcome per word problem of ``items`` (same order): ``base`` (few-shot, the
    annealed model) and ``sft`` (chat format, the tuned model), the answer NLLs, and the SFT's losses.

    ``sft_overrides=None`` stops after the annealed base (``sft`` and its NLL are then ``None``): a pilot
    whose base half sits at the floor decides the claim as untestable whatever the SFT half would show,
    so it does not spend the SFT's compute."""
    _register(sources)
    base = run("configs/toy/pretrain.yaml", pretrain_overrides, eval_fn=eval_fn)  # eval_fn: reuse a cached run
    ann = run("configs/toy/anneal.yaml", dict(anneal_overrides, init_from=str(base.model_dir)))
    m, tok = ann.load_model(), ann.load_tokenizer()
    out = {"base": tb.arith_accuracy(m, tok, items)["correct"], "base_answer_nll": tb.arith_answer_nll(m, tok, items[:60]),
           "sft": None, "sft_answer_nll": None, "sft_losses": []}
    if sft_overrides is None:
        return out

    tuned = sft.run("configs/toy/sft.yaml", dict(sft_overrides, model_name_or_path=str(ann.model_dir)))
    tm, ttok = tuned.load_model(), tuned.load_tokenizer()
    out.update(sft=tb.chat_accuracy(tm, ttok, items)["correct"], sft_answer_nll=tb.chat_answer_nll(tm, ttok, items[:60]),
               sft_losses=[h["loss"] for h in getattr(tuned, "history", []) or [] if "loss" in h])
    return out


def run_placement(calls: Sequence[tuple], items: Sequence[dict], *, threads: int = 1) -> list[dict]:
    """:func:`placement_arm` for each (pretrain, anneal, sft overrides or None, pre-training eval_fn) call,
    side by side in workers."""
    sources = tuple(REGISTERED.values())
    return run_parallel(placement_arm, [(dict(p), dict(a), None if f is None else dict(f), list(items), sources, e)
                                        for p, a, f, e in calls], threads=threads)


def tokens_per_doc(source: str, tokenizer, n_docs: int = 300, seed: int = 0) -> float:
    """Mean tokens per document of ``source`` (BOS and EOS included), as the packer counts them."""
    texts = [d["text"] for d in iter_documents(source, n_docs=n_docs, seed=seed, limit=n_docs)]
    return float(np.mean([len(x) + 2 for x in tokenizer(texts, add_special_tokens=False)["input_ids"]]))


def weight_for_token_share(datasets: Sequence[str], weights: Sequence[float], source: str, share: float,
                           tokenizer, n_docs: int = 300) -> float:
    """The document weight of ``source`` that makes it ``share`` of the tokens of a mix with the other
    ``datasets`` at their relative ``weights`` (they then share 1 − that weight). Weights count
    documents and documents differ in length, so equal *tokens* need this (claim 4's two placements)."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be in (0, 1), got {share}")
    total = sum(weights)
    t_other = sum(w / total * tokens_per_doc(d, tokenizer, n_docs) for d, w in zip(datasets, weights))
    t_src = tokens_per_doc(source, tokenizer, n_docs)
    return float(share * t_other / (t_src * (1 - share) + share * t_other))


def run_many(preset: str, overrides: Sequence[dict], *, eval_fn=None, threads: int = 1) -> list:
    """``[pretrain.run(preset, o, eval_fn) for o in overrides]``, side by side in worker processes
    (:func:`infir_lib.parallel.run_parallel`, one torch thread each; the runs are independent, seeded and
    cached, so the result does not depend on where each was built). Sources registered here by
    :func:`domain_subset`, :func:`domain_matched`, :func:`without_colon_endings` or
    :func:`corrupted_source` are registered again in each worker."""
    sources = tuple(REGISTERED.values())
    return run_parallel(_run_one, [(str(preset), dict(o), eval_fn, sources) for o in overrides], threads=threads)


class ItemScorer:
    """Per-item outcomes of a trained model, in item order: ``doc_nll`` per held-out document, ``mc_pnorm`` /
    ``mc_correct`` per multiple-choice item (:func:`item_scores`), and for each named prompt set in
    ``eos_prompts`` P(end-of-text | prompt) per prompt. Given to :func:`train_and_score`, it runs in the
    worker that trained the model (one thread, beside the other worker) instead of in the notebook after
    every run has finished. A class, so it pickles into a worker."""

    def __init__(self, heldout_texts: Sequence[str] = (), mc_items: Sequence[dict] = (),
                 eos_prompts: dict[str, Sequence[str]] | None = None, *, max_tokens: int = 128):
        self.heldout_texts, self.mc_items = list(heldout_texts), list(mc_items)
        self.eos_prompts = {k: list(v) for k, v in (eos_prompts or {}).items()}
        self.max_tokens = max_tokens

    def __call__(self, model, tokenizer) -> dict:
        out = item_scores(model, tokenizer, self.heldout_texts, self.mc_items, max_tokens=self.max_tokens)
        for name, prompts in self.eos_prompts.items():
            out[name] = [float(p) for p in next_token_prob(model, tokenizer, prompts, tokenizer.eos_token_id)]
        return out


def _train_and_score(preset: str, overrides: dict, eval_fn, score, sources: tuple):
    result = _run_one(preset, overrides, eval_fn, sources)
    return result, (score(result.load_model(), result.load_tokenizer()) if score is not None else {})


def train_and_score(preset: str, overrides: Sequence[dict], *, eval_fn=None, score=None,
                    threads: int = 1) -> list[tuple]:
    """:func:`run_many`, and each trained model scored by ``score(model, tokenizer) -> dict`` (e.g. an
    :class:`ItemScorer`) in the worker that trained it; returns ``[(result, scores), ...]`` in call order.
    Accepts a list of ``(preset, overrides, eval_fn, score)`` jobs instead (``preset`` then ignored), so runs of
    several designs share one pool of workers (one start-up, no idle core while the last runs finish)."""
    sources = tuple(REGISTERED.values())
    jobs = [o if isinstance(o, tuple) else (preset, o, eval_fn, score) for o in overrides]
    return run_parallel(_train_and_score, [(str(p), dict(o), e, sc, sources) for p, o, e, sc in jobs], threads=threads)


def model_gate(preset: str, overrides: dict | None = None, sources: tuple = ()):
    """The model a preset (+ overrides) makes, trained or read from the cache, and its competence gate
    (:mod:`infir_lib.eval.competence`, zero-shot on the held-out levels). Without overrides the gate is
    the cached one chapters 4 and 7 read back (:func:`~infir_lib.eval.competence.preset_gate`). Returns
    ``(result, GateResult)``."""
    _register(sources)
    if not overrides:
        gate = competence.preset_gate(preset, enforce=False)
        return run(preset), gate
    result = run(preset, overrides)
    return result, competence.check_gate(result.model_dir, enforce=False, name=f"{preset} + {sorted(overrides)}")


def gates_side_by_side(jobs: Sequence[tuple[str, dict | None]], *, threads: int = 1) -> list[tuple]:
    """:func:`model_gate` for each ``(preset, overrides)``, side by side in workers (an annealing run of the
    shared base and its gate's generations use one core each)."""
    sources = tuple(REGISTERED.values())
    return run_parallel(model_gate, [(str(p), dict(o) if o else None, sources) for p, o in jobs], threads=threads)


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


def run_grad_norms(result) -> np.ndarray:
    """Every step's gradient norm (before clipping) of a run trained with ``log_grad_norms=True``."""
    rows = [h["grad_norms"] for h in result.history if "grad_norms" in h]
    if not rows:
        raise ValueError("this run did not log its gradient norms (train it with log_grad_norms=true)")
    return np.asarray([g for r in rows for g in r], dtype=np.float64)


def instability(norms: Sequence[float], max_norm: float, *, skip: int = 0, window: int = 10,
                spike_factor: float = 2.0, losses: Sequence[float] | None = None) -> dict:
    """How unstable a training run was, counted step by step from its gradient norms (before clipping).

    - ``clipped``: share of steps whose norm exceeded ``max_norm`` (clipping changed the update);
    - ``spikes``: share of steps whose norm exceeded ``spike_factor`` × the median of the ``window``
      steps before (a sudden jump, whatever the level);
    - ``unstable``: share of steps that were clipped or spiked;
    - ``nonfinite``: steps with an infinite or NaN norm (overflow); ``diverged``: any such step, or a
      final logged loss above the first (given ``losses``).
    The first ``skip`` steps (warm-up, when every run has large gradients) are left out.
    """
    n = np.asarray(norms, dtype=np.float64)
    finite = np.isfinite(n)
    body = n[skip:]
    if len(body) == 0:
        raise ValueError(f"no steps after skipping {skip}")
    clipped = ~np.isfinite(body) | (body > max_norm)
    spikes = np.zeros(len(body), dtype=bool)
    for i in range(len(body)):
        j = skip + i
        if j >= window:
            past = n[j - window: j]
            past = past[np.isfinite(past)]
            spikes[i] = bool(len(past)) and (not np.isfinite(n[j]) or n[j] > spike_factor * np.median(past))
    diverged = bool((~finite).any())
    if losses is not None and len(losses) > 1:
        diverged = diverged or not np.isfinite(losses[-1]) or losses[-1] > losses[0]
    return {"steps": int(len(body)), "clipped": float(clipped.mean()), "spikes": float(spikes.mean()),
            "unstable": float((clipped | spikes).mean()), "nonfinite": int((~finite).sum()), "diverged": diverged,
            "median_norm": float(np.median(body[np.isfinite(body)])) if np.isfinite(body).any() else float("nan")}


def corrupted_source(source: str, eps: float, name: str, alphabet: str | None = None) -> str:
    """Register ``toy:<name>`` = ``source`` with each character replaced, with probability ``eps``, by one
    drawn uniformly from ``alphabet`` (printable ASCII by default): Eq. 4's q = (1-ε) p + ε r written into
    the training text, r uniform. Seeded by the document, so the corruption is reproducible."""
    alphabet = alphabet or (string.ascii_letters + string.digits + string.punctuation + " ")
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")

    def make(n_docs: int, seed: int) -> list[dict]:
        out = []
        for d in iter_documents(source, n_docs=n_docs, seed=seed, limit=n_docs):
            rng = _random.Random(_digest([name, d.get("id"), d["text"][:64]]))
            chars = [rng.choice(alphabet) if rng.random() < eps else c for c in d["text"]]
            out.append({**d, "text": "".join(chars)})
        return out

    register_toy_source(name, make)
    REGISTERED[name] = ("corrupted_source", (source, eps, name, alphabet))
    return "toy:" + name


def spike_stats(norms: Sequence[float]) -> dict:
    """Spread of gradient norms: coefficient of variation and the largest norm over the median."""
    n = np.asarray(norms, dtype=np.float64)
    return {"mean": float(n.mean()), "cv": float(n.std() / n.mean()), "max_over_median": float(n.max() / np.median(n))}


__all__ = ["SMALL", "COLON_LEADINS", "domain_subset", "domain_shares", "domain_matched", "heldout_matched",
           "source_token_shares", "steps_to_reach", "run_many", "train_and_score", "ItemScorer", "model_gate",
           "gates_side_by_side", "placement_arm", "run_placement", "tokens_per_doc", "weight_for_token_share", "LikelihoodEval", "run_grad_norms", "instability", "corrupted_source", "without_colon_endings", "colon_rule_counts", "make_eval_fn",
           "reference_filter", "web_sample", "item_scores", "history_series", "spearman", "smoothness", "domain_blocks", "gradient_norms",
           "spike_stats"]
