"""The eval stage: presets resolve, full configs dry-run offline, bad configs are named, tables are laid out."""

from __future__ import annotations

import subprocess
import sys

import pytest

from infir_lib.config import ConfigError
from infir_lib.eval import stage, tables


def test_presets_load_and_protocols():
    toy = stage.load("configs/toy/eval.yaml")
    full = stage.load("configs/full/eval.yaml")
    assert toy.scale == "toy" and full.scale == "full" and full.dtype == "bfloat16"
    assert set(full.models) == set(tables.HUB_IDS.values())
    assert {stage.is_instruct(m) for m in full.models} == {True, False}
    assert [stage.is_instruct(m) for m in full.models].count(True) == 3
    assert stage.is_instruct("configs/toy/sft.yaml") and not stage.is_instruct("configs/toy/pretrain.yaml")
    assert stage.is_instruct("meta-llama/Llama-3.2-1B", chat="yes")


def test_full_plan_is_offline_and_complete():
    text = stage.plan("configs/full/eval.yaml")
    for model in tables.HUB_IDS.values():
        assert model in text
    assert "few-shot (Table 1)" in text and "zero-shot (Table 2)" in text
    assert "1319 items" in text and "164 items" in text and "GPU-hours" in text


def test_cli_dry_run_and_errors():
    ok = subprocess.run([sys.executable, "-m", "infir_lib", "eval", "--config", "configs/full/eval.yaml", "--dry-run"],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and "InfiX-ai/InfiR-1B-Instruct" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "infir_lib", "eval", "--config", "configs/toy/eval.yaml", "--dry-run",
                          "benchmarks=[gsm8k,nope]"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "nope" in bad.stderr


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="bogus"):
        stage.load("configs/toy/eval.yaml", ["bogus=1"])
    with pytest.raises(ConfigError, match="n_samples"):
        stage.load("configs/toy/eval.yaml", ["temperature=0", "n_samples=4", "ks=[1]"])
    with pytest.raises(ConfigError, match="pass@10"):
        stage.load("configs/toy/eval.yaml", ["temperature=0.8", "n_samples=4", "ks=[1,10]"])
    bad = tmp_path / "e.yaml"
    bad.write_text("limit: many\n")
    with pytest.raises(ConfigError, match="limit"):
        stage.load(str(bad))


def test_benchmark_items_offline():
    cfg = stage.load("configs/toy/eval.yaml", ["limit=5"])
    items, shots = stage.benchmark_items("toy_arith", cfg)
    assert len(items) == 5 and len(shots) == cfg.toy_shots and all("final" in it for it in items)
    he, _ = stage.benchmark_items("humaneval", cfg)
    assert len(he) == 5 and he[0]["task_id"] == "HumanEval/0"
    mb, mb_shots = stage.benchmark_items("mbpp_style", cfg)
    assert len(mb_shots) == 3 and not {r["task_id"] for r in mb} & {r["task_id"] for r in mb_shots}
    facts, fshots = stage.benchmark_items("toy_facts", cfg)
    assert len(facts) == 5 and all(0 <= it["answer"] < len(it["choices"]) for it in facts + fshots)


def test_paper_tables_layout():
    t1 = tables.paper_table(1, measured={"toy": {"HumanEval": 0.0}})
    assert list(t1.index) == ["Llama-3.2-1B", "Qwen-2.5-1.5B", "InfiR-1B-Base", "toy"]
    assert t1.loc["InfiR-1B-Base", "GSM8K paper"] == "63.46"
    assert t1.loc["Qwen-2.5-1.5B", "MMLU paper"] == "63.03 (60.9)"
    assert t1.loc["toy", "HumanEval ours"] == "0.00" and t1.loc["toy", "GSM8K ours"] == "—"
    t2 = tables.paper_table(2)
    assert t2.loc["InfiR-1B-Instruct", "HumanEval paper"] == "58.54"
    assert len(t2.columns) == 2 * len(tables.TABLE2_COLUMNS)
    with pytest.raises(ValueError):
        tables.paper_table(3)
    t5, t6 = tables.paper_table(5), tables.paper_table(6)
    assert t5.loc["+ opc-sft-stage2 + ScaleQuest-Code", "HumanEval paper"] == "60.98"
    assert t5.loc["Llama-3.2 1B Instruct", "MATH paper"] == "15.98 (30.6)"
    assert t6.loc["InfiR-1B-Instruct (2M Long CoT)", "MATH500 paper"] == "0.620"


def test_full_preset_runs_on_local_standin_models(tmp_path):
    """The full eval path (models by folder/hub id, real GSM8K and HumanEval) on two tiny random models."""
    import json

    from infir_lib.data.benchmarks import shared_data_dir
    from infir_lib.models import ModelArgs, build_llama, train_tokenizer

    gsm8k = shared_data_dir() / "gsm8k"
    if not (gsm8k / "test.jsonl").exists():
        pytest.skip("../shared/data/gsm8k is not beside the checkout")
    tok = train_tokenizer(["Question: 3+4? Answer: 7", "def f(x):\n    return x + 1"] * 20, vocab_size=300)
    models = []
    for name in ("tiny-base", "tiny-instruct"):
        m = build_llama(ModelArgs(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                  intermediate_size=64, max_position_embeddings=4096), tok)
        m.save_pretrained(tmp_path / name)
        tok.save_pretrained(tmp_path / name)
        models.append(str(tmp_path / name))
    res = stage.run("configs/full/eval.yaml", {
        "models": models, "benchmarks": ["gsm8k", "humaneval"], "limit": 2, "max_new_tokens": 8, "dtype": "float32",
        "device": "cpu", "batch_size": 2, "sandbox_workers": 1, "gsm8k_source": str(gsm8k),
        "output_dir": str(tmp_path / "out")})
    for m in models:
        assert set(res.scores[m]) == {"gsm8k", "humaneval"}
        assert all(0.0 <= v <= 100.0 for v in res.scores[m].values())
        assert len(res.details[m]["gsm8k"]["replies"]) == 2
    # base models are prompted few-shot, instruct models through their chat template
    assert not stage.is_instruct(models[0]) and stage.is_instruct(models[1])
    saved = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert saved["config"]["scale"] == "full"
