"""The chapter-1 pipeline end to end (small corpus), its bad-input handling, configs and toy sources."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from infir_lib import data
from infir_lib.config import ConfigError
from infir_lib.data.pipeline import SourceReader

SMALL = {"n_docs": 1500, "recall_negatives": 400, "recall_seed_docs": 150, "quality_annotation_docs": 1500}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    return data.run("configs/toy/data.yaml", {**SMALL, "output_dir": str(out)})


def test_funnel_and_counters_are_consistent(small):
    funnel = small.funnel
    assert [f["stage"] for f in funnel] == ["raw", *data.STAGES]
    assert funnel[0]["docs"] == 1500
    docs = [f["docs"] for f in funnel]
    assert all(a >= b for a, b in zip(docs, docs[1:])) and docs[-1] > 0
    counters = small.counters()
    prev_out = counters["read"]["docs_out"]
    for stage in data.STAGES:
        c = counters[stage]
        assert c["docs_in"] == prev_out, stage  # nothing lost between stages
        assert c["docs_in"] == c["docs_out"] + c.get("dropped", 0), stage
        reasons = sum(v for k, v in c.items() if k.startswith("dropped:"))
        assert reasons == c.get("dropped", 0), stage  # every drop has a reason
        assert len(small.removed(stage)) == c.get("dropped", 0), stage  # and is written out
        prev_out = c["docs_out"]
    assert len(small.load_dataset()) == funnel[-1]["docs"]


def test_output_is_clean(small):
    ds = small.load_dataset()
    texts = ds["text"]
    assert not any(t.rstrip().endswith(":") for t in texts)
    assert not any(ds["contaminated"])  # every planted benchmark item was removed
    assert len(set(texts)) == len(texts)  # no exact duplicates survive
    removed = small.removed("decontam")
    assert all(r["filter_reason"].startswith("overlap:") for r in removed)


def test_raw_corpus_has_the_colon_pattern_and_labels():
    raw = data.raw_corpus(3000, 0)
    colon = [d for d in raw if d["text"].rstrip().endswith(":")]
    assert len(colon) > 0.04 * len(raw)
    assert all(d["domain"] == "math" for d in colon)
    assert {d["domain"] for d in raw} >= {"web", "math", "code", "encyclopedic", "reasoning"}
    assert sum(bool(d["dup_of"]) for d in raw) > 0.05 * len(raw)
    assert raw == data.raw_corpus(3000, 0)  # seeded


def test_reader_counts_empty_and_giant_documents(tmp_path):
    f = tmp_path / "docs.jsonl"
    rows = [{"id": "a", "text": "fine text"}, {"id": "b", "text": "   "}, {"id": "c", "text": "x" * 500}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    reader = SourceReader([str(f)], 0, 0, max_doc_chars=100, report_dir=str(tmp_path / "rep"))
    kept = [d.id for d in reader.run()]
    assert kept == ["a"]
    rep = json.loads((tmp_path / "rep" / "read" / "00000.json").read_text())  # one report per rank
    assert rep["counts"]["skipped:empty"] == 1 and rep["counts"]["skipped:too_long"] == 1
    assert {s["id"] for s in rep["skipped"]} == {"b", "c"}


def test_reader_names_file_and_line_of_bad_input(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_bytes(b'{"text": "ok"}\n{"text": "broken\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        list(SourceReader([str(f)], 0, 0).run())
    g = tmp_path / "latin.jsonl"
    g.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=r"latin.jsonl:2: not valid UTF-8"):
        list(SourceReader([str(g)], 0, 0).run())
    h = tmp_path / "notext.jsonl"
    h.write_text('{"id": 1, "text": 5}\n')
    with pytest.raises(ValueError, match=r"notext.jsonl:1: field .text. must be a string"):
        list(SourceReader([str(h)], 0, 0).run())


def test_configs_and_dry_run():
    with pytest.raises(ConfigError, match="minhash_treshold"):
        data.plan("configs/toy/data.yaml", ["minhash_treshold=0.5"])
    text = data.plan("configs/full/data.yaml")
    assert "open-web-math/open-web-math" in text and "SlurmPipelineExecutor" in text
    assert "HuggingFaceFW/fineweb-edu-classifier" in text
    r = subprocess.run([sys.executable, "-m", "infir_lib", "data", "--config", "configs/full/data.yaml", "--dry-run"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "bigcode/starcoderdata" in r.stdout and "the-stack-v2" not in r.stdout  # ids only, no code: not a source
    runs = [line.split() for line in r.stdout.splitlines() if line.startswith("  ") and "tasks=" in line]
    names = [w[0] for w in runs]
    assert names[:2] == ["filter", "recall_train_1"] and names[-1] == "merge"
    assert ["minhash_signature", "minhash_buckets", "minhash_cluster"] == [n for n in names if n.startswith("minhash")]
    tasks = {w[0]: int(w[1].removeprefix("tasks=")) for w in runs}
    assert tasks["filter"] == 1000 and tasks["minhash_cluster"] == 1 and tasks["minhash_buckets"] % 14 == 0
    for bench in ("gsm8k", "math", "mmlu", "humaneval", "mbpp"):  # everything chapter 5 evaluates
        assert bench in text


def test_toy_sources_registered_in_a_fresh_process():
    code = ("from infir_lib.data.sources import TOY_SOURCES, iter_documents\n"
            "assert {'raw', 'filtered', 'seed_math', 'negatives'} <= set(TOY_SOURCES), sorted(TOY_SOURCES)\n"
            "docs = list(iter_documents('toy:raw', n_docs=40, seed=1))\n"
            "assert len(docs) == 40 and all('domain' in d for d in docs)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
