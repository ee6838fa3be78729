"""Tokenize documents and pack them into fixed-length blocks (no padding is ever trained on).

Documents are joined as ``<|begin_of_text|> doc <|end_of_text|>`` and cut into blocks of
``seq_len`` tokens. Both the toy tokenizer and the packed blocks are cached artifacts, keyed by the
data part of the config.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import artifacts
from ..data.sources import iter_documents
from ..models import PRE_TOKENIZER, load_tokenizer, train_tokenizer
from .config import DataArgs


def _init_key(init_from: str) -> object:
    """What identifies the model an annealing run starts from: its cache spec, else its path."""
    manifest = Path(init_from).parent / artifacts.MANIFEST
    return artifacts.load_json(manifest)["spec"] if manifest.exists() else str(init_from)


def tokenizer_spec(cfg: DataArgs) -> dict:
    """The cache key of the tokenizer a config uses (a hub id, the init model's, or the toy BPE's)."""
    if cfg.tokenizer_name_or_path:
        return {"tokenizer": cfg.tokenizer_name_or_path}
    init_from = getattr(cfg, "init_from", None)
    if init_from:
        return {"tokenizer_of": _init_key(init_from)}
    return {"tokenizer": None, "pre": PRE_TOKENIZER, "vocab": cfg.tokenizer_vocab_size,
            "datasets": list(cfg.tokenizer_datasets or cfg.datasets), "n": cfg.tokenizer_train_docs,
            "seed": cfg.data_seed}


def get_tokenizer(cfg: DataArgs):
    """The tokenizer a config names; an annealing run keeps its initial model's; else the toy BPE.

    The toy BPE is trained on ``tokenizer_datasets`` (default: the run's own ``datasets``) and cached.
    """
    if cfg.tokenizer_name_or_path:
        return load_tokenizer(cfg.tokenizer_name_or_path)
    init_from = getattr(cfg, "init_from", None)
    if init_from:
        return load_tokenizer(init_from)
    spec = tokenizer_spec(cfg)

    def build(folder: Path) -> None:
        texts = []
        for source in spec["datasets"]:
            texts += [d[cfg.text_field] for d in iter_documents(source, n_docs=cfg.tokenizer_train_docs,
                                                                seed=cfg.data_seed, text_field=cfg.text_field,
                                                                limit=cfg.tokenizer_train_docs)]
        train_tokenizer(texts, cfg.tokenizer_vocab_size).save_pretrained(folder)

    return load_tokenizer(artifacts.cached("tokenizer", spec, build, name="toy-bpe"))


@dataclass
class PackedData:
    train: np.ndarray  # [n_blocks, seq_len] int32
    val: np.ndarray
    n_docs: int

    @property
    def train_tokens(self) -> int:
        return int(self.train.size)

    # The sampler interface the loop uses (shared with shards.TokenBlocks, the full-scale data).
    def __len__(self) -> int:
        return len(self.train)

    def batch_rows(self, step: int, global_batch: int, seed: int) -> np.ndarray:
        return batch_indices(step, global_batch, len(self.train), seed)

    def blocks(self, rows: np.ndarray) -> np.ndarray:
        return self.train[rows]


def pack(token_lists: list[list[int]], seq_len: int) -> np.ndarray:
    """Concatenate token lists and cut into full blocks; the ragged tail is dropped (and counted)."""
    flat = np.fromiter((t for toks in token_lists for t in toks), dtype=np.int32)
    n_blocks = len(flat) // seq_len
    return flat[: n_blocks * seq_len].reshape(n_blocks, seq_len)


def get_packed_data(cfg: DataArgs, seq_len: int, tokenizer) -> PackedData:
    """Blocks for training and validation; documents are split into train/val before packing."""
    spec = {"tok": tokenizer_spec(cfg), "seq_len": seq_len, "datasets": cfg.datasets, "weights": cfg.weights,
            "n": cfg.toy_docs, "seed": cfg.data_seed, "val": cfg.val_fraction, "field": cfg.text_field}

    def build(folder: Path) -> None:
        rng = random.Random(cfg.data_seed)
        total_w = sum(cfg.weights)
        docs = []
        for source, w in zip(cfg.datasets, cfg.weights):
            n = max(1, round(cfg.toy_docs * w / total_w))
            docs += [d[cfg.text_field] for d in iter_documents(source, n_docs=n, seed=cfg.data_seed,
                                                               text_field=cfg.text_field, limit=n)]
        rng.shuffle(docs)
        n_val = max(1, int(len(docs) * cfg.val_fraction))
        enc = tokenizer([tokenizer.bos_token + d + tokenizer.eos_token for d in docs],
                        add_special_tokens=False)["input_ids"]
        np.save(folder / "val.npy", pack(enc[:n_val], seq_len))
        np.save(folder / "train.npy", pack(enc[n_val:], seq_len))
        (folder / "n_docs.txt").write_text(str(len(docs)))

    folder = artifacts.cached("packed", spec, build, name=f"blocks{seq_len}")
    return PackedData(np.load(folder / "train.npy"), np.load(folder / "val.npy"),
                      int((folder / "n_docs.txt").read_text()))


def batch_indices(step: int, global_batch: int, n_blocks: int, seed: int) -> np.ndarray:
    """The block indices of global step ``step``: a fresh permutation per epoch, fixed by the seed.

    A function of the step alone, so a resumed run (or one on more devices) sees the same data.
    """
    start = step * global_batch
    out = []
    while len(out) < global_batch:
        epoch, offset = divmod(start + len(out), n_blocks)
        perm = np.random.default_rng([seed, epoch]).permutation(n_blocks)
        take = min(global_batch - len(out), n_blocks - offset)
        out.extend(perm[offset: offset + take].tolist())
    return np.asarray(out, dtype=np.int64)
