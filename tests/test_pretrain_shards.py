"""Full-scale pre-training data: datatrove token files, the weighted block sampler, the loop reading them."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from infir_lib import pretrain
from infir_lib.config import ConfigError
from infir_lib.data.sources import iter_documents
from infir_lib.pretrain import shards
from infir_lib.pretrain.packing import get_tokenizer

SEQ = 64
OVERRIDES = {"datasets": ["toy:simple", "toy:raw"], "weights": [3.0, 1.0], "toy_docs": 200, "val_blocks": 2,
             "seq_len": SEQ, "global_batch_size": 8, "micro_batch_size": 4}


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokens")
    ov = {**OVERRIDES, "tokenized_path": str(root)}
    result = shards.run("configs/toy/pretrain.yaml", ov)
    cfg = pretrain.load("configs/toy/pretrain.yaml", ov)
    return cfg, get_tokenizer(cfg), result


def test_largest_remainder_is_exact_and_proportional():
    shares = shards.largest_remainder([0.45, 0.15, 0.15, 0.25], 2048)
    assert sum(shares) == 2048
    assert shares == [922, 307, 307, 512]
    assert shards.largest_remainder([1, 1, 1], 4) in ([2, 1, 1], [1, 2, 1], [1, 1, 2])
    for w, total in [([0.7, 0.3], 7), ([1.0], 5), ([0.2, 0.2, 0.6], 9)]:
        s = shards.largest_remainder(w, total)
        assert sum(s) == total and all(abs(x - total * wi / sum(w)) < 1 for x, wi in zip(s, w))


def test_token_files_hold_every_document_with_bos_and_eos(tokenized):
    cfg, tok, result = tokenized
    for source, n_docs in zip(cfg.datasets, (150, 50)):  # toy_docs split 3:1 by weight
        docs = [d["text"] for d in iter_documents(source, n_docs=n_docs, seed=cfg.data_seed, limit=n_docs)]
        expected = sum(len(tok(tok.bos_token + d + tok.eos_token, add_special_tokens=False)["input_ids"]) for d in docs)
        assert result["tokens_per_source"][source] == expected


def test_batches_keep_the_mixture_and_cover_each_source_once_per_epoch(tokenized):
    cfg, tok, _ = tokenized
    tb = shards.TokenBlocks.open(cfg, SEQ, tok)
    rows = tb.batch_rows(5, 8, seed=0)
    assert Counter(rows[:, 0].tolist()) == {0: 6, 1: 2}  # weights 3:1 of a batch of 8
    assert np.array_equal(rows, tb.batch_rows(5, 8, seed=0))  # a function of the step alone
    assert not np.array_equal(rows, tb.batch_rows(5, 8, seed=1))
    n1 = tb.n_train(1)
    seen = np.concatenate([tb.batch_rows(s, 8, 0) for s in range((n1 + 1) // 2)])
    seen = seen[seen[:, 0] == 1][:n1, 1]  # source 1 gets 2 blocks a step: one epoch = its first n1 rows
    assert sorted(seen.tolist()) == list(range(cfg.val_blocks, cfg.val_blocks + n1))  # each once, no val block
    blocks = tb.blocks(rows[:3])
    assert blocks.shape == (3, SEQ) and blocks.dtype == np.int64
    assert tb.val.shape == (2 * cfg.val_blocks, SEQ)


def test_loop_trains_from_token_files(tokenized, tmp_path):
    cfg, _, _ = tokenized
    r = pretrain.run("configs/toy/pretrain.yaml", {**OVERRIDES, "tokenized_path": cfg.tokenized_path, "max_steps": 3,
                                                   "eval_every": 3, "output_dir": str(tmp_path)})
    assert r.summary["steps"] == 3 and r.summary["train_blocks"] > 8
    assert np.isfinite(r.history[-1]["loss"]) and np.isfinite(r.history[-1]["val_loss"])


def test_clear_errors(tmp_path, tokenized):
    with pytest.raises(ConfigError, match="tokenized_path"):
        shards.run("configs/toy/pretrain.yaml", {**OVERRIDES})
    cfg, tok, _ = tokenized
    missing = pretrain.load("configs/toy/pretrain.yaml", {**OVERRIDES, "tokenized_path": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="toy:simple"):
        shards.TokenBlocks.open(missing, SEQ, tok)
    too_many = pretrain.load("configs/toy/pretrain.yaml", {**OVERRIDES, "tokenized_path": cfg.tokenized_path,
                                                                 "val_blocks": 10**6})
    with pytest.raises(ValueError, match="val_blocks"):
        shards.TokenBlocks.open(too_many, SEQ, tok)


def test_new_fields_at_defaults_leave_toy_cache_keys_alone():
    cfg = pretrain.load("configs/toy/pretrain.yaml")
    spec = pretrain.cache_spec(cfg)
    assert "tokenized_path" not in spec and "val_blocks" not in spec and "tokenize_tasks" not in spec
    assert pretrain.cache_spec(pretrain.load("configs/toy/pretrain.yaml", {"tokenized_path": "/x"}))[
        "tokenized_path"] == "/x"


def test_text_fields_name_each_sources_column():
    """Full presets read sources whose text sits in other columns (starcoderdata: content; a problem and
    its solution in two columns): text_fields names them per source, 'a+b' joins two columns."""
    import pytest

    from infir_lib.config import ConfigError, load_config
    from infir_lib.data.pipeline import SourceReader
    from infir_lib.pretrain.config import PretrainConfig

    full = load_config(PretrainConfig, "configs/full/anneal.yaml")
    assert dict(zip(full.datasets, full.text_fields))["bigcode/starcoderdata"] == "content"
    rows = [{"problem": "2+3?", "generated_solution": "2+3=5"}]
    reader = SourceReader(["x"], 1, 0, "problem+generated_solution")
    import infir_lib.data.pipeline as P
    real = P.iter_documents
    P.iter_documents = lambda *a, **k: iter(rows)
    try:
        docs = list(reader.run())
    finally:
        P.iter_documents = real
    assert [d.text for d in docs] == ["2+3?\n\n2+3=5"]
    with pytest.raises((ConfigError, ValueError), match="text_fields"):
        load_config(PretrainConfig, "configs/full/anneal.yaml", ["text_fields=[content]"])
