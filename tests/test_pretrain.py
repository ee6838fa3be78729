"""The pre-training / annealing stage: exact resume, schedules, data order, annealing start, full plans."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infir_lib import pretrain
from infir_lib.config import ConfigError, load_config
from infir_lib.pretrain.config import PretrainConfig
from infir_lib.pretrain.loop import lr_lambda, weights_digest
from infir_lib.pretrain.packing import batch_indices, pack

TINY = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, intermediate_size=64,
            seq_len=32, global_batch_size=4, micro_batch_size=2, toy_docs=120, tokenizer_train_docs=120,
            tokenizer_vocab_size=300, warmup_steps=2, log_every=1, eval_every=0, learning_rate=1e-2)


def test_exact_resume_equals_uninterrupted(tmp_path):
    full = pretrain.run("configs/toy/pretrain.yaml", dict(TINY, max_steps=6, checkpoint_every=2,
                                                           output_dir=str(tmp_path / "full")))
    stopped = pretrain.run("configs/toy/pretrain.yaml", dict(TINY, max_steps=6, checkpoint_every=2, stop_after_steps=5,
                                                              output_dir=str(tmp_path / "resumed")))
    assert stopped.summary == {"interrupted_at": 5}
    assert not (tmp_path / "resumed" / "model").exists()
    # the "killed" run left checkpoints at 2 and 4; resuming restarts from 4 and redoes step 5
    assert [p.name for p in stopped.checkpoints()] == ["step_2", "step_4"]
    resumed = pretrain.run("configs/toy/pretrain.yaml", dict(TINY, max_steps=6, checkpoint_every=2,
                                                              output_dir=str(tmp_path / "resumed")))
    assert resumed.summary["weights_sha256"] == full.summary["weights_sha256"]
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    # and the digest is a real function of the weights: a different seed gives different weights
    other = pretrain.run("configs/toy/pretrain.yaml", dict(TINY, max_steps=6, seed=1, output_dir=str(tmp_path / "s1")))
    assert other.summary["weights_sha256"] != full.summary["weights_sha256"]
    assert weights_digest(full.load_model()) == full.summary["weights_sha256"]


def test_history_logs_grad_norm_lr_and_throughput(tmp_path):
    r = pretrain.run("configs/toy/pretrain.yaml", dict(TINY, max_steps=4, output_dir=str(tmp_path)))
    assert [h["step"] for h in r.history] == [1, 2, 3, 4]
    for h in r.history:
        assert h["grad_norm"] > 0 and h["grad_norm_max"] >= h["grad_norm"] - 1e-6 and h["tokens_per_s"] > 0
        assert h["nonfinite_grad_steps"] == 0
    assert r.history[0]["lr"] == pytest.approx(1e-2 * 2 / 2)  # after step 1 the scheduler is at step 1 (end of warmup)
    assert r.summary["tokens"] == 4 * 4 * 32


def test_schedules():
    cfg = load_config(PretrainConfig, None, dict(warmup_steps=10, learning_rate=1.0, min_lr_ratio=0.1))
    f = lr_lambda(cfg, 100)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(100) == pytest.approx(0.1)
    assert f(55) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    lin = lr_lambda(load_config(PretrainConfig, None, dict(warmup_steps=0, schedule="linear_to_zero")), 50)
    assert lin(0) == pytest.approx(1.0) and lin(25) == pytest.approx(0.5) and lin(50) == 0.0
    wsd = lr_lambda(load_config(PretrainConfig, None, dict(warmup_steps=0, schedule="wsd", decay_fraction=0.2)), 100)
    assert wsd(50) == 1.0 and wsd(79) == 1.0 and wsd(90) == pytest.approx(0.5) and wsd(100) == 0.0


def test_batch_order_is_a_function_of_the_step_and_covers_each_epoch():
    n, b = 10, 4
    steps = [batch_indices(s, b, n, seed=3) for s in range(5)]  # 20 draws = 2 epochs
    flat = np.concatenate(steps)
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    assert (batch_indices(2, b, n, seed=3) == steps[2]).all()
    assert not (batch_indices(0, b, n, seed=4) == steps[0]).all()


def test_pack_cuts_full_blocks_only():
    blocks = pack([[1, 2, 3], [4, 5], [6, 7, 8, 9]], 4)
    assert blocks.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_annealing_starts_from_the_checkpoint_with_its_tokenizer(tmp_path):
    base = pretrain.run("configs/toy/pretrain.yaml", dict(TINY, max_steps=3, output_dir=str(tmp_path / "base")))
    anneal = pretrain.run("configs/toy/anneal.yaml", dict(
        TINY, warmup_steps=0, max_steps=0, init_from=str(base.model_dir), datasets=["toy:ch2-synthetic"], weights=[1.0],
        output_dir=str(tmp_path / "anneal")))
    assert anneal.summary["weights_sha256"] == base.summary["weights_sha256"]  # zero steps: the same weights
    assert anneal.load_tokenizer().get_vocab() == base.load_tokenizer().get_vocab()
    more = pretrain.run("configs/toy/anneal.yaml", dict(
        TINY, warmup_steps=0, max_steps=3, init_from=str(base.model_dir), datasets=["toy:ch2-synthetic"], weights=[1.0],
        output_dir=str(tmp_path / "anneal3")))
    assert more.history[-1]["lr"] == 0.0  # decayed to zero
    assert more.summary["weights_sha256"] != base.summary["weights_sha256"]


def test_bad_configs_name_the_key():
    with pytest.raises(ConfigError, match="learning_rte"):
        load_config(PretrainConfig, "configs/toy/pretrain.yaml", {"learning_rte": "1"})
    with pytest.raises(ConfigError, match="weights"):
        load_config(PretrainConfig, "configs/toy/pretrain.yaml", {"weights": "[0.3, 0.3, 0.4]"})  # one per dataset


@pytest.mark.parametrize("preset,tokens", [("configs/full/pretrain.yaml", 900e9), ("configs/full/anneal.yaml", 40e9)])
def test_full_configs_carry_the_paper_numbers(preset, tokens):
    cfg = load_config(PretrainConfig, preset)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (2048, 16, 32, 8)
    assert cfg.learning_rate == 1.4e-3 and cfg.global_batch_size == 2048 and cfg.seq_len == 4096
    assert cfg.total_tokens == tokens and cfg.sharding == "fsdp"
    plan = pretrain.plan(preset)
    assert 1.23e9 < plan.parameters < 1.24e9  # Llama-3.2-1B: 1.236 B with tied embeddings
    assert plan.steps == int(tokens // (2048 * 4096))
    if "anneal" in preset:
        assert cfg.schedule == "linear_to_zero"


def test_cli_dry_run_prints_the_plan(capsys):
    from infir_lib.cli import main

    assert main(["anneal", "--config", "configs/full/anneal.yaml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1.236 B" in out and "40.00 B" in out


def test_eval_fn_runs_on_its_own_schedule_and_keys_the_cache(tmp_path):
    seen = []

    def eval_fn(model, tokenizer, step):
        seen.append(step)
        return {"probe": float(step)}

    r = pretrain.run("configs/toy/pretrain.yaml", dict(TINY, max_steps=5, log_every=3, eval_every=2,
                                                        output_dir=str(tmp_path)), eval_fn=eval_fn)
    assert seen == [2, 4, 5]
    assert [h["step"] for h in r.history if "probe" in h] == [2, 4, 5]
    assert [h["step"] for h in r.history] == [2, 3, 4, 5]
    from infir_lib.pretrain import cache_spec
    cfg = load_config(PretrainConfig, "configs/toy/pretrain.yaml")
    eval_fn.cache_key = "v1"
    assert cache_spec(cfg, eval_fn) != cache_spec(cfg) and cache_spec(cfg, eval_fn)["eval_fn"] == "v1"


def test_log_grad_norms_records_every_step_and_stays_out_of_the_default_key(tmp_path):
    from infir_lib.pretrain import cache_spec
    from infir_lib.pretrain.experiments import instability, run_grad_norms

    r = pretrain.run("configs/toy/pretrain.yaml", dict(TINY, max_steps=5, log_every=2, log_grad_norms=True,
                                                        output_dir=str(tmp_path / "g")))
    norms = run_grad_norms(r)
    assert len(norms) == 5 and np.all(norms > 0)
    assert [len(h["grad_norms"]) for h in r.history] == [2, 2, 1]
    assert norms[1] == pytest.approx(r.history[0]["grad_norm"])   # the logged step's norm is the last of its list
    assert instability(norms, 1e9)["clipped"] == 0.0
    plain = load_config(PretrainConfig, "configs/toy/pretrain.yaml")
    assert "log_grad_norms" not in cache_spec(plain)
    assert cache_spec(load_config(PretrainConfig, "configs/toy/pretrain.yaml", {"log_grad_norms": True}))["log_grad_norms"]
