"""The perception gate: does a toy VLM use its image?

A model can score above zero without looking: the language model knows the answer formats, and a
fixed answer per question is right on a share of the items (the *blind baseline*). The gate asks the
same model the same held-out questions twice, once with each item's own image and once with the
image of another item of the same family (a *shuffled* image), and holds the true-image accuracy
against both the shuffled-image accuracy and the blind baseline with a declared margin.
Claims whose mechanism needs perception (12 and 13) check the gate of the model they use; when it
fails they are recorded as untestable at toy scale, with these numbers.

    probe = perception.probe(model, codec, perception.probe_items(cfg, ("grounding", "ocr", "vmath"), 100))
    gates = perception.gates(probe)          # report.Gate objects, for report.compare(..., gates=...)
"""

from __future__ import annotations

import random

from ..eval.blind import fixed_answer_accuracy
from ..eval.generate import generate as generate_text
from ..report.verdicts import gate_above, gate_off_floor
from ..runtime import torch_threads
from . import train
from .data import EMPTY, VItem, cell_words, inside, make_items, parse_click

# The gate's declared margin, fixed before any model was scored: the true image must add this much
# accuracy over the same model with a shuffled image and over the best fixed answer.
MARGIN = 0.10
MARGIN_REASON = ("10 accuracy points over the same model without its image: twice the claims' 5-point margin, so a "
                 "model that passes uses the image for at least as much as the effects the claims look for "
                 "(and more than three standard errors of a paired difference on 300 items)")
PROBE_ITEMS = 100  # probe items per family (chapters 6 and 7 read the same cached probe)
PROBE_SEED_OFFSET = 101  # probe items: cfg.eval_seed + this (held out from training and from the claims' items)


def probe_items(cfg, kinds, n: int, level: int | None = None) -> dict[str, list[VItem]]:
    """``n`` held-out items per family (``cfg.eval_seed + PROBE_SEED_OFFSET``), at ``level`` (None: mixed)."""
    return {k: make_items(k, n, cfg.eval_seed + PROBE_SEED_OFFSET, cfg.image_size, level=level) for k in kinds}


def donors(n: int, seed: int = 0) -> list[int]:
    """A seeded derangement: ``donors[i]`` is the item whose image item ``i`` gets (never ``i`` itself)."""
    if n < 2:
        raise ValueError("a shuffled-image probe needs at least two items")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    out = [0] * n
    for i in range(n):  # one cycle through a random order
        out[order[i]] = order[(i + 1) % n]
    return out


def shuffle_images(items: list[VItem], seed: int = 0) -> list[VItem]:
    """The same questions and answers, each with another item's image (see :func:`donors`)."""
    d = donors(len(items), seed)
    return [VItem(items[d[i]].image, it.prompt, it.answer, it.task, dict(it.meta)) for i, it in enumerate(items)]


def correct(items: list[VItem], predictions: list[str]) -> list[int]:
    """0/1 per item, by the curriculum's own rule (:func:`infir_lib.vlm.train.score`: click in the
    target's box for grounding/GUI steps, exact answer otherwise)."""
    return [int(hit) for hit in train.score(items, predictions)]


def blind_accuracy(items: list[VItem]) -> float:
    """The best a model that cannot see does: for clicks, the best single click among the set's own
    answers (the target's cell is drawn at random, whatever the label says); otherwise, for each
    question text, its most common answer."""
    if items[0].task in ("grounding", "gui_task"):
        cands = {parse_click(it.answer) for it in items}
        return max(sum(inside(c, it.meta["box"]) for it in items) for c in cands) / len(items)
    return fixed_answer_accuracy((it.prompt, it.answer) for it in items)


def probe(model, codec, items_by_kind: dict[str, list[VItem]], seed: int = 0) -> dict:
    """Per family and pooled: accuracy with the true image, with a shuffled image, and the blind
    baseline; plus the 0/1 outcomes per item (``true``/``shuffled``, kinds side by side)."""
    out = {"kinds": {}, "true": [], "shuffled": []}
    for kind, items in items_by_kind.items():
        t = correct(items, train.generate(model, codec, codec.encode(items)))
        sh_items = shuffle_images(items, seed)
        s = correct(sh_items, train.generate(model, codec, codec.encode(sh_items)))
        out["kinds"][kind] = {"true": sum(t) / len(t), "shuffled": sum(s) / len(s), "blind": blind_accuracy(items),
                              "n": len(items)}
        out["true"] += t
        out["shuffled"] += s
    out["pooled"] = _pooled(out["kinds"], ("true", "shuffled", "blind"))
    out["margin"] = MARGIN
    out["passed"] = passed(out)
    return out


def passed(result: dict, margin: float = MARGIN) -> bool:
    p = result["pooled"]
    return p["true"] > p["shuffled"] + margin and p["true"] > p["blind"] + margin


def gates(result: dict, who: str = "the model"):
    """The gate as :class:`infir_lib.report.Gate` objects (true image vs shuffled image, vs blind)."""
    p = result["pooled"]
    return [gate_above(f"perception: {who} with the true image beats a shuffled image", p["true"], p["shuffled"],
                       by=result["margin"], what="shuffled image"),
            gate_above(f"perception: {who} with the true image beats the blind baseline", p["true"], p["blind"],
                       by=result["margin"], what="blind (fixed answer per question) baseline")]


def arm_gate(probes: dict, margin: float = MARGIN) -> tuple[str, dict]:
    """The gate of the better arm: ``probes`` maps (arm, seed) to :func:`probe` results; each arm's pooled true,
    shuffled and blind accuracies are averaged over its seeds, and the arm with the higher true-image accuracy
    is judged. Returns (that arm, ``{"pooled": ..., "margin": ...}``) for :func:`passed` and :func:`gates`."""
    arms = sorted({a for a, _ in probes})
    mean = {a: {m: sum(p["pooled"][m] for (b, _), p in probes.items() if b == a)
                / sum(1 for b, _ in probes if b == a) for m in ("true", "shuffled", "blind")} for a in arms}
    best = max(arms, key=lambda a: mean[a]["true"])
    return best, {"pooled": mean[best], "margin": margin}


def alignment_gate(runs: dict, margin: float):
    """Claim 11's precondition: cleaning can only help alignment that happens, so at least one arm's mean
    image-use gap (over every held-out caption of every seed run) must exceed ``margin``. ``runs`` maps
    (cleaned?, seed) to :func:`infir_lib.vlm.toy.alignment_run` summaries. An unbounded measure: no ceiling."""
    gaps = {"cleaned": [], "uncleaned": []}
    for (clean, _), r in runs.items():
        gaps["cleaned" if clean else "uncleaned"] += r["heldout_pair_gaps"]
    return gate_off_floor("stage 1 makes the language model use the image (an arm's mean gap above the margin)",
                          {k: sum(v) / len(v) for k, v in gaps.items()}, floor=margin, ceiling=float("inf"))


def reading_accuracy(lm, tokenizer, items_by_kind: dict[str, list[VItem]], max_new_tokens: int = 10) -> dict:
    """The language model alone, shown each picture *in words* (its 16 cell words where the 16 image
    tokens will stand, :func:`infir_lib.vlm.train.described_prompt_ids`): accuracy per family.

    This is perfect perception handed over as text: what this LM makes of a picture's content when a
    projector delivers it exactly. With the tower probe (is the information in the patches?) it says which
    half of the VLM a failed gate comes from. Scored like the gate (:func:`correct`), greedy, one torch thread.
    Returns ``{"kinds": {kind: {"accuracy", "blind", "n"}}, "pooled": {"accuracy", "blind"}}`` (pooled as in
    :func:`probe`: weighted by items)."""
    kinds = {}
    with torch_threads(1):
        for kind, items in items_by_kind.items():
            prompts = [train.described_prompt_ids(tokenizer, it.prompt, cell_words(it)) for it in items]
            replies = generate_text(lm, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=64, strip=True)
            hits = correct(items, replies)
            kinds[kind] = {"accuracy": sum(hits) / len(hits), "blind": blind_accuracy(items), "n": len(items)}
    return {"kinds": kinds, "pooled": _pooled(kinds, ("accuracy", "blind"))}


def _pooled(kinds: dict, metrics: tuple[str, ...]) -> dict:
    """Per-family rates pooled over families, weighted by their item counts ``n``."""
    total = sum(k["n"] for k in kinds.values())
    return {m: sum(k[m] * k["n"] for k in kinds.values()) / total for m in metrics}


def tower_cell_probe(vision_model, image_processor, train: list[VItem], test: list[VItem], steps: int = 100) -> dict:
    """Is the tower's output informative? A linear probe (softmax regression) from each patch's feature
    vector, as the projector receives it (the last layer, every patch), to the word of its grid cell
    (``meta["cells"]``), fitted on ``train`` and scored on ``test``.

    Returns the probe's accuracy over all cells and over the non-empty ones, and the majority baseline
    (every cell called empty). A probe near 1 means the image tokens carry what the tasks ask for: a model
    that fails the gate then fails in the projector and the language model, not in the tower.
    Runs on one torch thread (tensors this small are slower on two, and much slower on a busy machine)."""
    with torch_threads(1):
        return _tower_cell_probe(vision_model, image_processor, train, test, steps)


def _tower_cell_probe(vision_model, image_processor, train, test, steps):
    import torch

    def feats(items):
        pix = image_processor([it.image for it in items], return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            h = vision_model(pixel_values=pix, output_hidden_states=True).hidden_states[-1]
        words = [w for it in items for w in it.meta["cells"]]
        return h.reshape(-1, h.shape[-1]).float(), words

    x_train, w_train = feats(train)
    x_test, w_test = feats(test)
    vocab = sorted(set(w_train) | set(w_test))
    y_train = torch.tensor([vocab.index(w) for w in w_train])
    y_test = torch.tensor([vocab.index(w) for w in w_test])
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    head = torch.nn.Linear(x_train.shape[1], len(vocab))
    opt = torch.optim.LBFGS(head.parameters(), max_iter=steps, line_search_fn="strong_wolfe")
    z_train, z_test = (x_train - mu) / sd, (x_test - mu) / sd

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(z_train), y_train) + 1e-4 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        right = head(z_test).argmax(1) == y_test
    empty = y_test == vocab.index(EMPTY) if EMPTY in vocab else torch.zeros_like(right)
    return {"accuracy": float(right.float().mean()), "accuracy_nonempty": float(right[~empty].float().mean()),
            "majority": float(empty.float().mean()), "cells": int(len(y_test))}
