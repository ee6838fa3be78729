"""Offline evaluation by likelihood (InfiR §2.3, Eq. 1-6).

During pre-training the paper cares about *recall* and scores models by negative log-likelihood:

- NLL per token on a held-out web sample, after dropping the 20% of samples that a reference model
  finds least meaningful (highest NLL) (Eq. 1, :func:`filtered_nll`);
- NLL per token on the correct answers of downstream items (:func:`answer_nll`) and, for multiple
  choice, the normalized choice probability, a softmax of the options' scores (Eq. 2,
  :func:`normalized_choice_probs`, :func:`multiple_choice_metrics`);
- perplexity, the exponential of the NLL per token (Eq. 3, :func:`perplexity`).

During annealing it switches to few-shot *generation*, because perplexity hides damage that
generation shows: mixing a fraction ε of a corrupting distribution r into the model's next-token
distribution p (Eq. 4, :func:`mixture_logprob`) raises perplexity by at most 1/(1-ε) ≈ 1+ε (Eq. 5-6,
:func:`perplexity_bound`), yet a sampler then emits a corrupted token about every 1/ε tokens
(:func:`contaminated_generation`).

Pure functions take arrays of log-probabilities and are unit-tested on known distributions; the
model-facing functions take a causal LM and its tokenizer and batch the forward passes.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..runtime import pad_batch
from .extract import toy_answer as extract_answer
from .generate import generate

# ----------------------------------------------------------------------------------------------
# pure functions on log-probabilities


def nll(logprobs: Sequence[float] | np.ndarray) -> float:
    """Eq. 1: NLL = -sum_i log P(t_i | t_<i) of one sequence (natural log)."""
    return float(-np.sum(np.asarray(logprobs, dtype=np.float64)))


def nll_per_token(logprobs: Sequence[np.ndarray] | np.ndarray) -> float:
    """Total NLL divided by the number of tokens, over one sequence or a list of sequences."""
    if isinstance(logprobs, np.ndarray) and logprobs.dtype != object:
        arrays = [logprobs]
    else:
        arrays = [np.asarray(a, dtype=np.float64) for a in logprobs]
    n = sum(a.size for a in arrays)
    if n == 0:
        raise ValueError("no tokens to score")
    return float(-sum(a.sum() for a in arrays) / n)


def perplexity(logprobs: Sequence[np.ndarray] | np.ndarray) -> float:
    """Eq. 3: ppl = exp(1/n sum_i log 1/p(t_i | t_<i)) = exp(NLL per token)."""
    return math.exp(nll_per_token(logprobs))


def drop_worst(scores: Sequence[float], fraction: float = 0.2) -> np.ndarray:
    """Boolean keep-mask that drops the ``fraction`` of samples with the highest score (NLL).

    The paper ranks web samples by a reference model's NLL and discards the worst 20% as meaningless
    text before measuring convergence (§2.3.1). ``round(fraction * n)`` samples are dropped; ties are
    broken by position, so the mask is deterministic.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    n_drop = int(round(fraction * scores.size))
    keep = np.ones(scores.size, dtype=bool)
    if n_drop:
        order = np.argsort(-scores, kind="stable")  # highest first
        keep[order[:n_drop]] = False
    return keep


def normalized_choice_probs(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Eq. 2: P_normalized(c_i) = exp(s_i) / sum_j exp(s_j) over the k options (last axis)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.shape[-1] == 0:
        raise ValueError("no choices")
    z = s - s.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def mixture_logprob(logp: np.ndarray | float, logr: np.ndarray | float, eps: float) -> np.ndarray:
    """Eq. 4 in log space: log q = log((1-ε) p + ε r)."""
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    logp = np.asarray(logp, dtype=np.float64)
    if eps == 0.0:
        return logp
    return np.logaddexp(math.log1p(-eps) + logp, math.log(eps) + np.asarray(logr, dtype=np.float64))


def perplexity_bound(eps: float) -> float:
    """Eq. 6: ppl_q <= ppl_p / (1-ε), whatever r is (because q >= (1-ε) p token by token)."""
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    return 1.0 / (1.0 - eps)


def perplexity_bound_approx(eps: float) -> float:
    """The paper's first-order form of Eq. 6: 1/(1-ε) ≈ 1+ε for small ε."""
    return 1.0 + eps


def expected_tokens_between_corruptions(eps: float) -> float:
    """A sampler that draws from r with probability ε per token is corrupted every 1/ε tokens on average."""
    if not 0.0 < eps <= 1.0:
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    return 1.0 / eps


# ----------------------------------------------------------------------------------------------
# model-facing functions


def _encode(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []


def _bos(tokenizer) -> list[int]:
    return [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []


@torch.no_grad()
def _tail_logprobs(model, chunk: list[list[int]], starts: Sequence[int], ids, mask, device) -> list[np.ndarray]:
    """log P(t_i | t_<i) for i > start of each sequence, with the output layer applied only at those
    positions (a multiple-choice item scores a short continuation after a long few-shot context, so most
    of the vocabulary-sized logits would be thrown away)."""
    hidden = model.get_decoder()(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
    rows = [i for i, (s, st) in enumerate(zip(chunk, starts)) for _ in range(st, len(s) - 1)]
    cols = [p for s, st in zip(chunk, starts) for p in range(st, len(s) - 1)]
    rows_t, cols_t = torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)
    logits = model.get_output_embeddings()(hidden[rows_t, cols_t]).float()
    picked = torch.log_softmax(logits, dim=-1).gather(-1, ids.to(device)[rows_t, cols_t + 1].unsqueeze(-1)).squeeze(-1)
    picked = picked.cpu().numpy().astype(np.float64)
    out, k = [], 0
    for s, st in zip(chunk, starts):
        n = max(0, len(s) - 1 - st)
        out.append(picked[k: k + n])
        k += n
    return out


@torch.no_grad()
def sequence_logprobs(model, sequences: Sequence[Sequence[int]], *, batch_size: int = 16,
                      pad_id: int = 0, return_ranks: bool = False, starts: Sequence[int] | None = None):
    """log P(t_i | t_<i) for i = 1..n-1 of each token-id sequence (the first token is context only).

    With ``return_ranks`` also the rank of each actual token in the model's distribution (0 = argmax).
    With ``starts`` (one index per sequence, not with ``return_ranks``) only the log-probabilities from
    index ``start`` on are returned, i.e. ``full[start:]``, computed at those positions alone.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[np.ndarray] = []
    ranks: list[np.ndarray] = []
    if starts is not None and (return_ranks or len(starts) != len(sequences)):
        raise ValueError("starts: one index per sequence, and not with return_ranks")
    for b in range(0, len(sequences), batch_size):
        chunk = [list(s) for s in sequences[b: b + batch_size]]
        ids, mask = pad_batch(chunk, pad_id)
        if starts is not None and hasattr(model, "get_decoder"):  # a transformers causal LM
            out += _tail_logprobs(model, chunk, starts[b: b + batch_size], ids, mask, device)
            continue
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        target = ids[:, 1:].to(device)
        picked_t = logp.gather(-1, target.unsqueeze(-1))
        picked = picked_t.squeeze(-1).cpu().numpy().astype(np.float64)
        rank = (logp > picked_t).sum(-1).cpu().numpy() if return_ranks else None
        for i, s in enumerate(chunk):
            out.append(picked[i, : len(s) - 1])
            if return_ranks:
                ranks.append(rank[i, : len(s) - 1])
    if was_training:
        model.train()
    if starts is not None and not hasattr(model, "get_decoder"):  # scored in full above: keep the asked tails
        out = [lp[st:] for lp, st in zip(out, starts)]
    return (out, ranks) if return_ranks else out


def text_logprobs(model, tokenizer, texts: Sequence[str], *, batch_size: int = 16,
                  max_tokens: int = 512) -> list[np.ndarray]:
    """Per-token log-probabilities of each text after a BOS token (truncated to ``max_tokens``)."""
    seqs = [_bos(tokenizer) + ids[:max_tokens] for ids in _encode(tokenizer, texts)]
    empty = [i for i, s in enumerate(seqs) if len(s) < 2]
    if empty:
        raise ValueError(f"texts {empty[:5]} have no tokens to score")
    return sequence_logprobs(model, seqs, batch_size=batch_size, pad_id=tokenizer.pad_token_id or 0)


def continuation_logprobs(model, tokenizer, contexts: Sequence[str], continuations: Sequence[str], *,
                          batch_size: int = 16) -> list[np.ndarray]:
    """log P(continuation tokens | BOS + context), one array per pair.

    Context and continuation are tokenized separately and concatenated, so the continuation's
    tokens are exactly the ones scored (no merge across the boundary).
    """
    if len(contexts) != len(continuations):
        raise ValueError(f"{len(contexts)} contexts but {len(continuations)} continuations")
    ctx_ids, cont_ids = _encode(tokenizer, contexts), _encode(tokenizer, continuations)
    seqs, starts = [], []
    for c, a in zip(ctx_ids, cont_ids):
        if not a:
            raise ValueError("an empty continuation cannot be scored")
        prefix = _bos(tokenizer) + c
        seqs.append(prefix + a)
        starts.append(len(prefix) - 1)  # logprob index of the first continuation token
    return sequence_logprobs(model, seqs, batch_size=batch_size, pad_id=tokenizer.pad_token_id or 0, starts=starts)


def filtered_nll(model, tokenizer, texts: Sequence[str], *, reference_model=None, reference_tokenizer=None,
                 drop_fraction: float = 0.2, batch_size: int = 16, max_tokens: int = 512) -> dict:
    """NLL per token on a web sample after dropping the least meaningful ``drop_fraction`` (Eq. 1).

    "Least meaningful" is judged by the reference model (the paper uses existing LLMs; default: the
    model itself) as the highest NLL per token. The same kept set is then scored by ``model``, so
    models compared with one reference are scored on the same texts.
    """
    ref_model = reference_model if reference_model is not None else model
    ref_tok = reference_tokenizer if reference_tokenizer is not None else tokenizer
    ref = [nll_per_token(lp) for lp in text_logprobs(ref_model, ref_tok, texts, batch_size=batch_size,
                                                      max_tokens=max_tokens)]
    keep = drop_worst(ref, drop_fraction)
    kept_texts = [t for t, k in zip(texts, keep) if k]
    lps = text_logprobs(model, tokenizer, kept_texts, batch_size=batch_size, max_tokens=max_tokens)
    return {"nll_per_token": nll_per_token(lps), "perplexity": perplexity(lps), "n_kept": int(keep.sum()),
            "n_dropped": int((~keep).sum()), "keep": keep}


def nll_per_document(model, tokenizer, texts: Sequence[str], *, batch_size: int = 16,
                     max_tokens: int = 512) -> list[float]:
    """NLL per token of each text separately, in text order (the mean over documents, not over tokens,
    is what a per-document paired comparison of two models uses)."""
    return [nll_per_token(lp) for lp in text_logprobs(model, tokenizer, texts, batch_size=batch_size,
                                                      max_tokens=max_tokens)]


def answer_nll(model, tokenizer, prompts: Sequence[str], answers: Sequence[str], *, batch_size: int = 16) -> float:
    """NLL per token on the correct answers of downstream items, given their prompts (§2.3.1)."""
    return nll_per_token(continuation_logprobs(model, tokenizer, prompts, answers, batch_size=batch_size))


def choice_scores(model, tokenizer, items: Sequence[dict], *, length_normalize: bool = False,
                  batch_size: int = 32) -> list[np.ndarray]:
    """Score s_i of every choice of every item: log P(choice | context), summed (or per token).

    An item is ``{"context": str, "choices": [str, ...], "answer": int}``.
    """
    ctx, cont, owner = [], [], []
    for j, item in enumerate(items):
        for choice in item["choices"]:
            ctx.append(item["context"])
            cont.append(choice)
            owner.append(j)
    lps = continuation_logprobs(model, tokenizer, ctx, cont, batch_size=batch_size)
    per = [float(lp.mean() if length_normalize else lp.sum()) for lp in lps]
    scores: list[list[float]] = [[] for _ in items]
    for j, s in zip(owner, per):
        scores[j].append(s)
    return [np.asarray(s) for s in scores]


def multiple_choice_metrics(model, tokenizer, items: Sequence[dict], *, length_normalize: bool = False,
                            batch_size: int = 32) -> dict:
    """Accuracy (argmax), the mean normalized probability of the correct choice (Eq. 2), and its NLL."""
    scores = choice_scores(model, tokenizer, items, length_normalize=length_normalize, batch_size=batch_size)
    correct_p, hits = [], []
    for item, s in zip(items, scores):
        p = normalized_choice_probs(s)
        correct_p.append(p[item["answer"]])
        hits.append(int(np.argmax(s) == item["answer"]))
    return {"accuracy": float(np.mean(hits)), "p_norm_correct": float(np.mean(correct_p)),
            "nll_norm_correct": float(-np.mean(np.log(np.maximum(correct_p, 1e-300)))), "n": len(items),
            # per item, in item order: what a paired comparison of two models on the same items needs
            "correct": hits, "p_norm_per_item": [float(p) for p in correct_p]}


# ----------------------------------------------------------------------------------------------
# the contamination bound (Eq. 4-6), measured on a real model


def uniform_logr(vocab_size: int) -> np.ndarray:
    """log r for a uniform corrupting distribution over the vocabulary."""
    return np.full(vocab_size, -math.log(vocab_size))


def contaminated_perplexity(model, tokenizer, texts: Sequence[str], eps_values: Sequence[float],
                            logr: np.ndarray | None = None, *, batch_size: int = 16) -> list[dict]:
    """ppl of the clean model p and of q = (1-ε) p + ε r on the same texts, beside the bound 1/(1-ε)."""
    vocab = model.get_output_embeddings().weight.shape[0]
    logr = uniform_logr(vocab) if logr is None else np.asarray(logr, dtype=np.float64)
    seqs = [_bos(tokenizer) + ids for ids in _encode(tokenizer, texts)]
    lps = sequence_logprobs(model, seqs, batch_size=batch_size, pad_id=tokenizer.pad_token_id or 0)
    targets = [np.asarray(s[1:]) for s in seqs]
    ppl_p = perplexity(lps)
    rows = []
    for eps in eps_values:
        lq = [mixture_logprob(lp, logr[t], eps) for lp, t in zip(lps, targets)]
        ppl_q = perplexity(lq)
        rows.append({"eps": eps, "ppl_p": ppl_p, "ppl_q": ppl_q, "ratio": ppl_q / ppl_p,
                     "bound": perplexity_bound(eps), "approx": perplexity_bound_approx(eps)})
    return rows


class ContaminationLogitsProcessor:
    """Decode from q = (1-ε) p + ε r (Eq. 4), drawing the ε branch explicitly so it can be counted.

    At each step and for each sequence, with probability ε the next token is drawn from r (the
    scores become one-hot on it); otherwise the scores are p's, and the decoder proceeds as usual
    (greedy, as the few-shot benchmark does, or sampling, which then samples exactly from q).
    ``flags[t][b]`` records whether step t of sequence b came from r.
    """

    def __init__(self, eps: float, logr: np.ndarray, seed: int = 0):
        if not 0.0 <= eps < 1.0:
            raise ValueError(f"eps must be in [0, 1), got {eps}")
        self.eps = eps
        self.r = torch.as_tensor(np.exp(np.asarray(logr, dtype=np.float64)), dtype=torch.float64)
        self.gen = torch.Generator().manual_seed(seed)
        self.flags: list[list[bool]] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = torch.log_softmax(scores.float(), dim=-1)
        n, vocab = scores.shape
        use_r = torch.rand(n, generator=self.gen) < self.eps
        self.flags.append(use_r.tolist())
        if use_r.any():
            r = self.r[:vocab] / self.r[:vocab].sum()
            draws = torch.multinomial(r.float().expand(int(use_r.sum()), vocab), 1, generator=self.gen).squeeze(-1)
            forced = torch.full((int(use_r.sum()), vocab), float("-inf"))
            forced[torch.arange(len(draws)), draws] = 0.0
            scores[use_r.to(scores.device)] = forced.to(scores.device)
        return scores


@torch.no_grad()
def contaminated_generation(model, tokenizer, prompts: Sequence[str], eps: float, logr: np.ndarray | None = None,
                            *, answers: Sequence[int] | None = None, do_sample: bool = False,
                            max_new_tokens: int = 40, seed: int = 0, corrupt_rank: int = 20,
                            batch_size: int = 64) -> dict:
    """Decode the prompts from q = (1-ε) p + ε r and count what the ε branch does to the output.

    Returned: the share of generated tokens drawn from r (≈ ε: one every ~1/ε tokens), the share of
    generated tokens that are *corrupted* (drawn from r and outside the clean model's
    ``corrupt_rank`` most likely tokens in their context), tokens per corruption, and, given
    ``answers``, the exact-answer accuracy of the generations (the few-shot metric the paper uses
    during annealing because perplexity hides this damage).
    """
    vocab = model.get_output_embeddings().weight.shape[0]
    logr = uniform_logr(vocab) if logr is None else np.asarray(logr, dtype=np.float64)
    proc = ContaminationLogitsProcessor(eps, logr, seed=seed)
    torch.manual_seed(seed)
    gens = generate(model, tokenizer, list(prompts), max_new_tokens=max_new_tokens, do_sample=do_sample,
                    logits_processor=[proc], batch_size=len(prompts), return_ids=True, fit_context=False)
    flags = np.asarray(proc.flags, dtype=bool).T if proc.flags else np.zeros((len(prompts), 0), dtype=bool)
    prompt_ids = [_bos(tokenizer) + ids for ids in _encode(tokenizer, prompts)]
    keep = [i for i, g in enumerate(gens) if g]
    seqs = [prompt_ids[i] + gens[i] for i in keep]
    _, ranks = sequence_logprobs(model, seqs, batch_size=batch_size, pad_id=tokenizer.pad_token_id or 0,
                                 return_ranks=True)
    n = from_r = bad = 0
    for i, rank in zip(keep, ranks):
        g_rank = rank[len(prompt_ids[i]) - 1:]
        f = flags[i, : len(gens[i])]
        n += len(gens[i])
        from_r += int(f.sum())
        bad += int((f & (g_rank >= corrupt_rank)).sum())
    out = {"eps": eps, "tokens": n, "from_r": from_r, "from_r_rate": from_r / n if n else float("nan"),
           "corrupted": bad, "corrupted_rate": bad / n if n else float("nan"),
           "tokens_per_corruption": (n / bad) if bad else float("inf")}
    texts = [tokenizer.decode(g, skip_special_tokens=True).split("\n")[0] for g in gens]
    out["texts"] = texts  # first line of each generation, for task-specific scoring
    if answers is not None:
        out["accuracy"] = float(np.mean([extract_answer(t) == a for t, a in zip(texts, answers)]))
    return out


__all__ = ["nll", "nll_per_token", "perplexity", "drop_worst", "normalized_choice_probs", "mixture_logprob",
           "perplexity_bound", "perplexity_bound_approx", "expected_tokens_between_corruptions",
           "sequence_logprobs", "text_logprobs", "continuation_logprobs", "filtered_nll", "nll_per_document", "answer_nll",
           "choice_scores", "multiple_choice_metrics", "uniform_logr", "contaminated_perplexity",
           "ContaminationLogitsProcessor", "contaminated_generation"]
