"""Seeding, device choice and the package versions every notebook prints first."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
from contextlib import contextmanager

import numpy as np
import torch

KEY_PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "trl", "peft", "accelerate",
                "datasketch", "fasttext-numpy2", "datatrove", "math-verify", "numpy")


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; on CPU the toy runs are then bit-for-bit repeatable."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def pick_device(prefer: str = "auto") -> torch.device:
    """cuda, then mps, then cpu (``prefer`` may force one)."""
    if prefer != "auto":
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def versions(packages: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def print_versions() -> None:
    """What a notebook prints in its first cell, so a reader can compare their set-up with ours."""
    v = versions()
    device = pick_device()
    print(" | ".join(f"{k} {val}" for k, val in v.items()))
    print(f"device: {device}  threads: {torch.get_num_threads()}")


@contextmanager
def torch_threads(n: int):
    """Run with ``n`` intra-op threads (0: leave as is), then restore.

    A model of a million parameters is fastest on one thread, and on a shared 2-core machine two
    threads can be several times slower than one, so the toy presets pin it.
    """
    old = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def pad_batch(seqs: list[list[int]], pad_id: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> (ids, attention mask). Left padding for generation, right padding for scoring."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        span = slice(width - len(s), width) if left else slice(0, len(s))
        ids[i, span] = torch.as_tensor(s, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask
