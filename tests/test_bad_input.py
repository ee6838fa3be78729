"""Bad input never passes silently: each case gets one error naming the file, line and key, or a counted skip.

Table-driven over the ways a config, a local corpus or a benchmark file can be wrong (issue 14), plus the
states a run can leave behind: a stale cached run after editing its input, a changed config in a finished
output_dir, a truncated newest checkpoint.
"""

from __future__ import annotations

import json
import logging

import pytest

from infir_lib import pretrain
from infir_lib.config import ConfigError, load_config
from infir_lib.data.benchmarks import gsm8k_items_and_shots, load_gsm8k
from infir_lib.data.sources import iter_documents
from infir_lib.pretrain.config import PretrainConfig

TINY = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, intermediate_size=64,
            seq_len=32, global_batch_size=4, micro_batch_size=2, toy_docs=120, tokenizer_train_docs=120,
            tokenizer_vocab_size=300, warmup_steps=2, log_every=1, eval_every=0, learning_rate=1e-2)

# (name, YAML bytes, overrides, regex the ConfigError must match: file, line and key where there is one)
CONFIG_CASES = [
    ("not utf-8", b"seed: 0\nname: caf\xe9\n", [], r"c\.yaml:2: not valid UTF-8"),
    ("empty file", b"", [], r"c\.yaml: the file is empty"),
    ("only comments", b"# nothing here\n", [], r"c\.yaml: the file is empty"),
    ("duplicate key", b"max_steps: 5\nseed: 1\nmax_steps: 6\n", [], r"c\.yaml:3: duplicate key 'max_steps' .*line 1"),
    ("not a mapping", b"- a\n- b\n", [], r"c\.yaml: the top level must be a mapping"),
    ("bad yaml", b"seed: [1,\n", [], r"c\.yaml: not valid YAML"),
    ("wrong type", b"seed: 0\nmax_steps: ten\n", [], r"c\.yaml:2: key 'max_steps': expected an integer"),
    ("micro batch 0", b"micro_batch_size: 0\n", [], r"c\.yaml:1: key 'micro_batch_size': must be > 0"),
    ("seq_len 0", b"seed: 0\nseq_len: 0\n", [], r"c\.yaml:2: key 'seq_len': must be > 0"),
    ("negative steps", b"max_steps: -5\n", [], r"c\.yaml:1: key 'max_steps': must not be negative, got -5"),
    ("negative warm-up", b"warmup_steps: -1\n", [], r"c\.yaml:1: key 'warmup_steps': must not be negative"),
    ("negative lr", b"learning_rate: -1\n", [], r"c\.yaml:1: key 'learning_rate': must not be negative"),
    ("log_every 0", b"log_every: 0\n", [], r"c\.yaml:1: key 'log_every': must be > 0"),
    ("negative count", b"toy_docs: -3\n", [], r"c\.yaml:1: key 'toy_docs': must not be negative"),
    ("nan", b"learning_rate: .nan\n", [], r"c\.yaml:1: key 'learning_rate': NaN"),
    ("unknown key", b"seed: 0\nlearning_rat: 0.1\n", [], r"c\.yaml:2: unknown key 'learning_rat'.*did you mean 'learning_rate'"),
    ("unknown override", b"seed: 0\n", ["max_step=3"], r"max_step.*did you mean 'max_steps'"),
    ("bad override value", b"seed: 0\n", ["micro_batch_size=0"], r"c\.yaml: override 'micro_batch_size': must be > 0"),
    ("negative lr override", b"seed: 0\n", ["learning_rate=-1"], r"override 'learning_rate': must not be negative"),
    ("override twice", b"seed: 0\n", ["seed=1", "seed=2"], r"override 'seed' is given twice"),
    ("override without =", b"seed: 0\n", ["seed"], r"expected key=value"),
    ("batch not a multiple", b"global_batch_size: 10\nmicro_batch_size: 4\n", [], r"c\.yaml.*multiple"),
]


@pytest.mark.parametrize("name,text,overrides,pattern", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_is_refused_with_file_line_and_key(tmp_path, name, text, overrides, pattern):
    path = tmp_path / "c.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError, match=pattern):
        load_config(PretrainConfig, path, overrides)


def test_sensible_values_still_load(tmp_path):
    """The refusals above do not catch legitimate values: -1 "unset" steps, workers=-1, zero warm-up."""
    from infir_lib.data.pipeline import DataConfig
    from infir_lib.sft.config import SFTRunConfig

    (tmp_path / "c.yaml").write_text("warmup_steps: 0\ncheckpoint_every: 0\nlearning_rate: 0.0\nseed: -3\n")
    cfg = load_config(PretrainConfig, tmp_path / "c.yaml")
    assert (cfg.warmup_steps, cfg.learning_rate, cfg.seed) == (0, 0.0, -3)
    assert load_config(SFTRunConfig, "configs/toy/sft.yaml", ["max_steps=-1"]).max_steps == -1
    assert load_config(DataConfig, "configs/toy/data.yaml", ["workers=-1"]).workers == -1
    with pytest.raises(ConfigError, match="override 'max_steps': must not be negative.*-1 means unset"):
        load_config(SFTRunConfig, "configs/toy/sft.yaml", ["max_steps=-5"])


# (name, file name, bytes, regex of the ValueError: the file, the line and the field)
CORPUS_CASES = [
    ("empty jsonl", "x.jsonl", b"", r"x\.jsonl: no documents"),
    ("blank jsonl", "x.jsonl", b"\n\n", r"x\.jsonl: no documents"),
    ("numeric text", "x.jsonl", b'{"text": "ok"}\n{"text": 12}\n', r"x\.jsonl:2: field 'text' must be a string"),
    ("no text field", "x.jsonl", b'{"body": "a"}\n', r"x\.jsonl:1: no 'text' field"),
    ("bad json", "x.jsonl", b'{"text": "a"}\n{"text": \n', r"x\.jsonl:2: not valid JSON"),
    ("not an object", "x.jsonl", b'["a"]\n', r"x\.jsonl:1: expected a JSON object"),
    ("jsonl not utf-8", "x.jsonl", b'{"text": "a"}\n{"text": "caf\xe9"}\n', r"x\.jsonl:2: not valid UTF-8"),
    ("txt not utf-8", "x.txt", b"fine line\ncaf\xe9\n", r"x\.txt:2: not valid UTF-8"),
    ("empty txt", "x.txt", b"\n  \n", r"x\.txt: no documents"),
    ("unsupported type", "x.csv", b"text\na\n", r"x\.csv: unsupported file type"),
]


@pytest.mark.parametrize("name,filename,data,pattern", CORPUS_CASES, ids=[c[0] for c in CORPUS_CASES])
def test_bad_local_corpus_names_file_and_line(tmp_path, name, filename, data, pattern):
    path = tmp_path / filename
    path.write_bytes(data)
    with pytest.raises(ValueError, match=pattern):
        list(iter_documents(str(path)))


def test_folder_skips_are_counted_and_reported(tmp_path, caplog):
    (tmp_path / "a.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    (tmp_path / "notes.md").write_text("not a corpus")
    (tmp_path / "b.txt").write_text("three\n\nfour\n")
    with caplog.at_level(logging.WARNING, logger="infir_lib.data.sources"):
        docs = list(iter_documents(str(tmp_path)))
    assert [d["text"] for d in docs] == ["one", "two", "three", "four"]
    assert "skipped 1 file(s) of unsupported type: notes.md" in caplog.text
    (tmp_path / "a.jsonl").unlink()
    (tmp_path / "b.txt").unlink()
    with pytest.raises(ValueError, match="no .jsonl/.json/.parquet/.txt files"):
        list(iter_documents(str(tmp_path)))


def test_empty_local_corpus_fails_before_the_tokenizer(tmp_path):
    """It used to be an IndexError deep inside tokenizer training."""
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"empty\.jsonl: no documents"):
        pretrain.run("configs/toy/pretrain.yaml", dict(TINY, datasets=[str(tmp_path / "empty.jsonl")], weights=[1.0], max_steps=1,
                                                       output_dir=str(tmp_path / "run")))


def gsm8k_row(q, final="7"):
    return {"question": q, "answer": f"Work it out.\n#### {final}"}


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GSM8K_CASES = [
    ("no answer", [gsm8k_row("a"), {"question": "b"}], r"g\.jsonl:2: no 'answer' field"),
    ("no question", [{"answer": "#### 1"}], r"g\.jsonl:1: no 'question' field"),
    ("no ####", [gsm8k_row("a"), {"question": "b", "answer": "it is 4"}], r"g\.jsonl:2: no '#### answer' line"),
    ("numeric answer", [{"question": "a", "answer": 4}], r"g\.jsonl:1: field 'answer' must be a string"),
    ("empty file", [], r"g\.jsonl: no GSM8K items"),
]


@pytest.mark.parametrize("name,rows,pattern", GSM8K_CASES, ids=[c[0] for c in GSM8K_CASES])
def test_bad_gsm8k_file_names_file_and_line(tmp_path, name, rows, pattern):
    path = write_jsonl(tmp_path / "g.jsonl", rows)
    with pytest.raises(ValueError, match=pattern):
        load_gsm8k("test", str(path))
    folder = tmp_path / "gsm8k"
    folder.mkdir()
    write_jsonl(folder / "test.jsonl", rows)
    with pytest.raises(ValueError, match=pattern.replace("g\\.jsonl", "test\\.jsonl")):
        load_gsm8k("test", str(folder))


def test_single_file_gsm8k_never_scores_its_own_few_shot_examples(tmp_path):
    path = write_jsonl(tmp_path / "one.jsonl", [gsm8k_row(f"question {i}", str(i)) for i in range(10)])
    items, shots = gsm8k_items_and_shots(str(path), 4)
    assert len(shots) == 4 and len(items) == 6
    assert not {s["question"] for s in shots} & {it["question"] for it in items}
    # through the eval stage too (it used to read the same file for both splits)
    from infir_lib.eval.stage import EvalConfig, benchmark_items
    items, pool = benchmark_items("gsm8k", EvalConfig(gsm8k_source=str(path), gsm8k_shots=4, limit=3))
    assert len(items) == 3 and len(pool) == 4
    assert not {s["question"] for s in pool} & {it["question"] for it in items}
    with pytest.raises(ValueError, match="too few for 4 few-shot"):
        gsm8k_items_and_shots(str(write_jsonl(tmp_path / "two.jsonl", [gsm8k_row("a"), gsm8k_row("b")])), 4)


def test_harness_refuses_shots_that_are_scored_items():
    from infir_lib.eval import harness as H

    items = [{"question": "1+1?", "final": "2"}, {"question": "2+2?", "final": "4"}]
    with pytest.raises(ValueError, match="few-shot example.*also scored"):
        H.eval_math(None, None, items, shots=[("2+2?", "4")])
    with pytest.raises(ValueError, match="no items"):
        H.eval_math(None, None, [], shots=[])


def test_gsm8k_falls_back_to_the_hub_id_and_says_so_offline(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setenv("INFIR_SHARED_DATA", str(tmp_path / "nothing"))
    calls = []

    def fake_load(name, config=None, split=None, **kw):
        calls.append((name, config, split))
        return [gsm8k_row("hub question", "3")]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    rows = load_gsm8k("test")
    assert calls == [("openai/gsm8k", "main", "test")] and rows[0]["final"] == "3"

    def offline(*a, **kw):
        raise ConnectionError("Couldn't reach the Hub (offline mode is enabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(FileNotFoundError, match=r"no local copy at .*nothing/gsm8k/test\.jsonl.*'openai/gsm8k'.*offline"):
        load_gsm8k("test")


def test_editing_a_local_corpus_rebuilds_the_cached_run(tmp_path, isolated_cache, monkeypatch):
    """The cache key covers the file's contents, not only its path."""
    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, [{"text": f"the river {i} flows to the sea and the sea is wide"} for i in range(60)])
    cfg = dict(TINY, datasets=[str(corpus)], weights=[1.0], max_steps=2, toy_docs=60, tokenizer_train_docs=60)
    first = pretrain.run("configs/toy/pretrain.yaml", cfg)
    again = pretrain.run("configs/toy/pretrain.yaml", cfg)
    assert again.output_dir == first.output_dir
    write_jsonl(corpus, [{"text": f"a bee {i} collects nectar from many flowers all day"} for i in range(60)])
    edited = pretrain.run("configs/toy/pretrain.yaml", cfg)
    assert edited.output_dir != first.output_dir
    assert edited.summary["weights_sha256"] != first.summary["weights_sha256"]


def test_changed_config_in_a_finished_output_dir_is_refused(tmp_path):
    out = str(tmp_path / "run")
    first = pretrain.run("configs/toy/pretrain.yaml", dict(TINY, max_steps=3, output_dir=out))
    with pytest.raises(ValueError, match=r"another config \(changed: learning_rate 0\.01 -> 0\.02\).*overwrite_output_dir"):
        pretrain.run("configs/toy/pretrain.yaml", dict(TINY, max_steps=3, learning_rate=2e-2, output_dir=out))
    fresh = pretrain.run("configs/toy/pretrain.yaml", dict(TINY, max_steps=3, learning_rate=2e-2, output_dir=out,
                                                           overwrite_output_dir=True))
    assert fresh.summary["weights_sha256"] != first.summary["weights_sha256"]
    other = pretrain.run("configs/toy/pretrain.yaml", dict(TINY, max_steps=3, learning_rate=2e-2,
                                                           output_dir=str(tmp_path / "other")))
    assert fresh.summary["weights_sha256"] == other.summary["weights_sha256"]  # really fresh, not resumed
    # reporting-only keys (log_every) do not count as another config
    pretrain.run("configs/toy/pretrain.yaml", dict(TINY, max_steps=3, learning_rate=2e-2, log_every=2, output_dir=out))


def test_resume_falls_back_past_a_truncated_newest_checkpoint(tmp_path):
    full = pretrain.run("configs/toy/pretrain.yaml", dict(TINY, max_steps=6, output_dir=str(tmp_path / "full")))
    run = dict(TINY, max_steps=6, checkpoint_every=2, output_dir=str(tmp_path / "resumed"))
    stopped = pretrain.run("configs/toy/pretrain.yaml", dict(run, stop_after_steps=5))
    assert [c.name for c in stopped.checkpoints()] == ["step_2", "step_4"]
    state = tmp_path / "resumed" / "checkpoints" / "step_4" / "trainer_state.json"
    state.write_text(state.read_text()[:10])  # killed while writing
    resumed = pretrain.run("configs/toy/pretrain.yaml", run)
    assert resumed.summary["unusable_checkpoints_skipped"] == ["step_4"]
    assert resumed.summary["weights_sha256"] == full.summary["weights_sha256"]
