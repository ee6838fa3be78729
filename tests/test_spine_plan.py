"""The compute planner, checked against hand arithmetic and the paper's budget."""

import pytest

from infir_lib.book.orientation import paper_check
from infir_lib.planning import grad_accum_steps, implied_throughput, plan_training, training_flops


def test_grad_accum_keeps_global_batch():
    assert grad_accum_steps(2048, 4, 64) == 8
    assert grad_accum_steps(2048, 4, 8) == 64
    assert grad_accum_steps(16, 8, 1) == 2
    with pytest.raises(ValueError, match="not divisible"):
        grad_accum_steps(2048, 3, 64)


def test_flops_and_hours():
    assert training_flops(1e9, 1e9, 0, 0, 0) == 6e18
    p = plan_training(n_params=10**9, n_tokens=1e12, global_batch=1000, seq_len=1000, n_layers=1, hidden=1,
                      n_heads=1, n_gpus=10, micro_batch=10, gpu="A100", mfu=0.5, sharding="ddp")
    flops = 6e9 * 1e12 + 6 * 1000 * 1e12
    assert p.total_flops == pytest.approx(flops)
    assert p.gpu_hours == pytest.approx(flops / (312e12 * 0.5) / 3600)
    assert p.steps == 10**6 and p.grad_accum_steps == 10
    sharded = plan_training(n_params=10**9, n_tokens=1e12, global_batch=1000, seq_len=1000, n_layers=1, hidden=1,
                            n_heads=1, n_gpus=10, micro_batch=10, sharding="fsdp")
    assert sharded.memory_breakdown_gib["optimizer"] == pytest.approx(p.memory_breakdown_gib["optimizer"] / 10)


def test_paper_budget_is_consistent():
    check = paper_check(1_235_814_400)
    assert implied_throughput(940e9, 5760) == pytest.approx(45_332, rel=1e-3)
    assert 0.2 < check["implied_mfu"] < 0.6
    assert check["planner_gpu_hours_at_implied_mfu"] == pytest.approx(5760, rel=1e-6)


def test_full_pretraining_reads_the_data_stages_output():
    """The full pre-training mix is the full data pipeline's output, one folder per kind of document; until
    that folder exists the plan says so (a note, not a download)."""
    from pathlib import Path

    from infir_lib import data, pretrain
    from infir_lib.config import load_config
    from infir_lib.pretrain.config import PretrainConfig

    dcfg = load_config(data.DataConfig, "configs/full/data.yaml")
    pcfg = load_config(PretrainConfig, "configs/full/pretrain.yaml")
    kinds = set(dcfg.source_kinds.values()) | {"web"}  # sources without a kind are routed as web pages
    out = Path(dcfg.output_dir) / "output"
    assert {Path(d).parent for d in pcfg.datasets} == {out}
    assert {Path(d).name for d in pcfg.datasets} <= kinds
    plan = pretrain.plan("configs/full/pretrain.yaml")
    if not out.exists():
        assert len(plan.notes) == len(pcfg.datasets) and "run `python -m infir_lib data" in str(plan)


def test_a_missing_local_source_names_the_stage_that_makes_it(tmp_path):
    from infir_lib.data.sources import iter_documents

    with pytest.raises(FileNotFoundError, match="no such file or folder.*run that stage first"):
        list(iter_documents(str(tmp_path / "not-built" / "output" / "web")))
