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


# --------------------------------------------------------------------------- TRL scratch memory on CPU

@contextmanager
def no_scratch_fill():
    """Train without NaN-filling fresh tensors (``torch.utils.deterministic.fill_uninitialized_memory``).

    ``seed_everything`` turns on deterministic algorithms, and with them PyTorch fills every
    ``torch.empty`` with NaN, a guard against kernels that read memory they never wrote. TRL's
    chunked log-prob kernel allocates a [tokens x 32,768] scratch tile per call (sized for big
    vocabularies; ours has 4,096 entries) and writes it before reading it, so the fill changes no
    result, but on a CPU it costs about 0.2 s per call: most of a toy SFT or GRPO step. The
    deterministic algorithms themselves stay on (``tests/test_rl_grpo.py`` checks that a stage is
    still bit-for-bit repeatable).
    """
    import torch.utils.deterministic as det

    old = det.fill_uninitialized_memory
    det.fill_uninitialized_memory = False
    try:
        yield
    finally:
        det.fill_uninitialized_memory = old


@contextmanager
def logprob_tiles_fit_vocab(vocab_size: int):
    """Size TRL's fused LM-head tiles to the vocabulary instead of 32,768 columns (same numbers, less memory).

    ``SFTTrainer`` computes the loss with a chunked log-prob kernel whose scratch buffer is
    ``[tokens, 32768]`` floats, allocated twice per step whatever the vocabulary. For the toy model
    (vocabulary 1,377, about 1,500 tokens a batch) that is 200 MB touched per pass and about 40%
    of a toy run's CPU time spent in page faults. While the vocabulary fits in one tile, the tile
    width does not change the arithmetic (one tile covers all columns either way), so the loss and
    gradients are the same; only the buffer shrinks. Restored on exit.
    """
    from trl.trainer import utils as trl_utils

    old = trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE
    if vocab_size <= old:
        trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = max(256, -(-vocab_size // 256) * 256)
    try:
        yield trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE
    finally:
        trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = old


@contextmanager
def lean_trl_scratch(vocab_size: int):
    """Both of the above around a TRL ``trainer.train()``: the toy runs' numbers stay bit-identical."""
    with no_scratch_fill(), logprob_tiles_fit_vocab(vocab_size):
        yield


def make_accelerator(mixed_precision: str, cpu: bool, **kwargs):
    """An ``Accelerator`` with this run's mixed precision, also when an earlier run in the same process
    (a notebook kernel: an SFT trainer, then a bf16 pre-training run) left accelerate's global state set to
    another one; accelerate would refuse that. Under a distributed launch the state is never reset."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1
    if single and state and state.get("_mixed_precision") not in (None, mixed_precision):
        AcceleratorState._reset_state()
    return Accelerator(mixed_precision=mixed_precision, cpu=cpu, **kwargs)
