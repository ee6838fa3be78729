"""A tiny SigLIP trained from scratch with the sigmoid contrastive loss, and cleaning by similarity.

InfiR's vision tower is SigLIP-So400m (Zhai et al., 2023), pre-trained on billions of pairs. At toy
scale nothing can be downloaded, so the chapter pre-trains its own tower on the captioned scenes with
the same loss (transformers' ``SiglipModel(return_loss=True)``): for a batch of n pairs,

    L = -1/n sum_i sum_j log sigmoid(z_ij (t x_i.y_j + b)),  z_ij = +1 if i == j else -1.

The same model then scores every image-text pair by the cosine of its two embeddings, which is what
InfiR Appendix E does with the Vista model before dropping pairs under a threshold.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from transformers import SiglipConfig, SiglipModel, SiglipTextConfig

from ..runtime import seed_everything
from .data import VItem
from .model import vision_config


def build_siglip(tokenizer, hidden_size: int, num_hidden_layers: int, num_attention_heads: int,
                 intermediate_size: int, image_size: int, patch_size: int, max_text_len: int = 32) -> SiglipModel:
    """A SigLIP with a vision tower of the LLaVA tower's shape (plus the pooling head) and a small text tower."""
    vis = vision_config(hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, image_size,
                        patch_size, use_head=True)
    txt = SiglipTextConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
                           num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
                           max_position_embeddings=max_text_len, pad_token_id=tokenizer.pad_token_id,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = SiglipModel(SiglipConfig(text_config=txt.to_dict(), vision_config=vis.to_dict()))
    with torch.no_grad():  # the SigLIP paper's initialisation: t' = log 10, b = -10
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-10.0)
    return model


def encode_texts(tokenizer, texts: list[str], max_len: int) -> torch.Tensor:
    """Pad every caption to ``max_len`` (SigLIP pools the last position, so all lengths must match)."""
    ids = tokenizer(texts, add_special_tokens=False, padding="max_length", truncation=True, max_length=max_len,
                    return_tensors="pt")["input_ids"]
    return ids


def pixel_values(image_processor, images) -> torch.Tensor:
    return image_processor(images, return_tensors="pt")["pixel_values"]


def train_siglip(model: SiglipModel, tokenizer, image_processor, items: list[VItem], steps: int, batch_size: int,
                 lr: float, seed: int, max_text_len: int = 32, log_every: int = 10) -> list[dict]:
    """Sigmoid-contrastive training on (image, caption) pairs; returns the loss history."""
    seed_everything(seed)
    pix = pixel_values(image_processor, [it.image for it in items])
    ids = encode_texts(tokenizer, [it.answer for it in items], max_text_len)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10) * max(0.05, 1 - s / steps))
    rng = random.Random(seed)
    model.train()
    history = []
    for step in range(1, steps + 1):
        idx = rng.sample(range(len(items)), min(batch_size, len(items)))
        out = model(input_ids=ids[idx], pixel_values=pix[idx], return_loss=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % log_every == 0 or step == steps:
            history.append({"step": step, "loss": out.loss.item()})
    model.eval()
    return history


@torch.no_grad()
def pair_similarity(model: SiglipModel, tokenizer, image_processor, items: list[VItem], max_text_len: int = 32,
                    batch: int = 256) -> np.ndarray:
    """Cosine similarity of each item's image with its own caption (the App. E score)."""
    model.eval()
    sims = []
    for i in range(0, len(items), batch):
        chunk = items[i:i + batch]
        img = model.get_image_features(pixel_values=pixel_values(image_processor, [it.image for it in chunk]))
        txt = model.get_text_features(input_ids=encode_texts(tokenizer, [it.answer for it in chunk], max_text_len))
        img = getattr(img, "pooler_output", img)
        txt = getattr(txt, "pooler_output", txt)
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        sims.append((img * txt).sum(-1).numpy())
    return np.concatenate(sims) if sims else np.zeros(0)


@torch.no_grad()
def retrieval_accuracy(model: SiglipModel, tokenizer, image_processor, items: list[VItem], max_text_len: int = 32) -> float:
    """Image -> text top-1 among the batch's captions (a caption identical to the right one counts as right)."""
    model.eval()
    img = model.get_image_features(pixel_values=pixel_values(image_processor, [it.image for it in items]))
    txt = model.get_text_features(input_ids=encode_texts(tokenizer, [it.answer for it in items], max_text_len))
    img = getattr(img, "pooler_output", img)
    txt = getattr(txt, "pooler_output", txt)
    best = (img @ txt.T).argmax(dim=1).tolist()
    return float(np.mean([items[b].answer == items[i].answer for i, b in enumerate(best)]))


def otsu_threshold(values: np.ndarray, bins: int = 64) -> float:
    """The cut that best separates a two-mode histogram (Otsu, 1979): it needs no labels.

    When several cuts tie (an empty valley between the modes), the middle of the tied range is used.
    """
    hist, edges = np.histogram(values, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    w = hist.astype(float)
    scores = np.full(bins, -1.0)
    for k in range(1, bins):
        w0, w1 = w[:k].sum(), w[k:].sum()
        if w0 == 0 or w1 == 0:
            continue
        m0 = (w[:k] * centers[:k]).sum() / w0
        m1 = (w[k:] * centers[k:]).sum() / w1
        scores[k] = w0 * w1 * (m0 - m1) ** 2
    if scores.max() < 0:
        return float(np.median(values))
    best = np.flatnonzero(scores >= scores.max() * (1 - 1e-9))
    return float((edges[best.min()] + edges[best.max()]) / 2)


def choose_threshold(sims: np.ndarray, method: str = "otsu", value: float = 0.5, quantile: float = 0.05) -> float:
    """How the cut is chosen: ``fixed`` (the paper's 0.5 on Vista's scale), ``quantile`` (drop the lowest
    share, as the paper reasons: under 5% of COCO pairs fall below 0.5) or ``otsu`` (valley of the histogram)."""
    if method == "fixed":
        return float(value)
    if method == "quantile":
        return float(np.quantile(sims, quantile))
    if method == "otsu":
        return otsu_threshold(sims)
    raise ValueError(f"unknown threshold method {method!r}; use fixed, quantile or otsu")


def cleaning_report(sims: np.ndarray, mismatched: np.ndarray, threshold: float) -> dict:
    """What a cut does, measured against the pairs we know are wrong."""
    dropped = sims < threshold
    mismatched = mismatched.astype(bool)
    n_bad, n_drop = int(mismatched.sum()), int(dropped.sum())
    caught = int((dropped & mismatched).sum())
    return {"threshold": float(threshold), "pairs": int(len(sims)), "dropped": n_drop,
            "known_mismatched": n_bad, "mismatched_caught": caught,
            "recall": caught / n_bad if n_bad else float("nan"),
            "precision": caught / n_drop if n_drop else float("nan"),
            "clean_pairs_lost": n_drop - caught}
