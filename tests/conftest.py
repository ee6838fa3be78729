import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A fresh artifact cache for tests that must build from nothing."""
    monkeypatch.setenv("INFIR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_llama():
    """``make(folder, texts, ...)``: a byte-level BPE trained on ``texts`` and a one-layer random Llama, seeded,
    saved together to ``folder`` (a stand-in for a hub model); returns (folder, model, tokenizer)."""
    import torch

    from infir_lib.models import ModelArgs, build_llama, train_tokenizer

    def make(folder, texts, vocab_size=300, max_position_embeddings=512, use_cache=True):
        tok = train_tokenizer(texts, vocab_size=vocab_size)
        torch.manual_seed(0)
        model = build_llama(ModelArgs(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                      intermediate_size=64, max_position_embeddings=max_position_embeddings), tok)
        model.config.use_cache = use_cache
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        return folder, model, tok

    return make
