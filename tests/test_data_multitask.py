"""The multi-stage data pipeline (``multi_stage: true``): several datatrove tasks give the same result as one.

The toy corpus is written to local JSONL files and read back with per-file sharding; near-duplicates are
planted so that each copy sits in a different task's files, which a per-task dedup would miss.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from infir_lib import data
from infir_lib.config import load_config
from infir_lib.data import steps
from infir_lib.data.pipeline import DataConfig, stage_table
from infir_lib.data.sources import register_toy_source

SMALL = {"n_docs": 2000, "recall_negatives": 300, "recall_seed_docs": 100, "quality_annotation_docs": 600,
         "sources": ["toy:planted"], "multi_stage": True, "input_files": 4}
N_PLANTED = 12


def planted_corpus(n_docs: int, seed: int) -> list[dict]:
    """The toy crawl plus edited copies of early documents appended at the end (other files, other tasks)."""
    rows = data.raw_corpus(n_docs, seed)
    rng = random.Random(seed)
    good = [r for r in rows[: n_docs // 8] if r["domain"] == "reasoning" and r["quality"] == "good"
            and not r["dup_of"] and not r["contaminated"]][:N_PLANTED]
    copies = []
    for k, r in enumerate(good):
        words = r["text"].split(" ")
        i = rng.randrange(len(words))
        words[i] = words[i] + " indeed"  # a one-word edit: a near, not an exact, duplicate
        copies.append({**r, "id": f"planted-{k}", "text": " ".join(words), "dup_of": r["id"], "dup_kind": "near"})
    return rows + copies


register_toy_source("planted", planted_corpus)


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines() if line]


def _clusters(res: data.DataResult) -> set[frozenset]:
    """The dedup clusters as sets of document ids, from every document that left the dedup stage."""
    rows = [r for s in ("dedup", "quality", "decontam") for r in res.removed(s)] + res.load_dataset().to_list()
    by_id: dict = {}
    for r in rows:
        if r["dup_cluster"] != -1:
            by_id.setdefault(r["dup_cluster"], set()).add(r["id"])
    return {frozenset(v) for v in by_id.values()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("multitask")
    one = data.run("configs/toy/data.yaml", {**SMALL, "tasks": 1, "output_dir": str(out / "t1")})
    four = data.run("configs/toy/data.yaml", {**SMALL, "tasks": 4, "output_dir": str(out / "t4")})
    return one, four


def test_four_tasks_keep_what_one_task_keeps(runs):
    one, four = runs
    assert [f["docs"] for f in one.funnel][:4] == [f["docs"] for f in four.funnel][:4]  # raw .. dedup
    for stage in ("heuristic", "recall"):  # same documents dropped, for the same reasons
        assert ({(r["id"], r["filter_reason"]) for r in one.removed(stage)}
                == {(r["id"], r["filter_reason"]) for r in four.removed(stage)}), stage
    recalled = [{r["id"] for r in _rows(res.output_dir / "work" / "recalled")} for res in runs]
    assert recalled[0] == recalled[1] and len(recalled[0]) > 500
    # the same global clusters; each keeps exactly one member
    c1, c4 = _clusters(one), _clusters(four)
    assert c1 == c4 and len(c1) >= N_PLANTED
    for res in runs:
        dropped = {r["id"] for r in res.removed("dedup")}
        assert all(len(c - dropped) == 1 for c in c1)
        assert res.counters()["dedup"]["dropped"] == sum(len(c) - 1 for c in c1)


def test_planted_near_duplicates_in_different_shards_are_caught(runs):
    _, four = runs
    shard = {}
    reader = steps.JsonReader(str(four.output_dir / "input"))
    for rank in range(4):  # which task read which document: its own input files (files[rank::4])
        for f in reader.files(rank, 4):
            for line in (four.output_dir / "input" / f).read_text().splitlines():
                shard[json.loads(line)["id"]] = rank
    recalled = {r["id"] for r in _rows(four.output_dir / "work" / "recalled")}
    clusters = _clusters(four)
    pairs = [(f"planted-{k}", orig) for k, orig in enumerate(
        r["dup_of"] for r in planted_corpus(SMALL["n_docs"], 0)[SMALL["n_docs"]:])]
    tested = 0
    for copy, orig in pairs:
        if copy in recalled and orig in recalled:
            assert shard[copy] != shard[orig]  # the planted copy sits in another task
            assert any({copy, orig} <= c for c in clusters), (copy, orig)
            tested += 1
    assert tested >= N_PLANTED // 2


def test_reports_are_per_rank_and_merged(runs):
    _, four = runs
    reports = four.output_dir / "reports"
    for stage in ("read", "heuristic", "recall", "dedup", "quality", "decontam"):
        parts = [json.loads(p.read_text()) for p in sorted((reports / stage).glob("*.json"))]
        assert [p["rank"] for p in parts] == [0, 1, 2, 3], stage
        merged = four.reports[stage]
        assert merged["tasks"] == 4
        for key in ("docs_in", "docs_out"):
            assert merged["counts"].get(key, 0) == sum(p["counts"].get(key, 0) for p in parts), (stage, key)
    counters = four.counters()
    prev = counters["read"]["docs_out"]
    for stage in data.STAGES:
        c = counters[stage]
        assert c["docs_in"] == prev and c["docs_in"] == c["docs_out"] + c.get("dropped", 0), stage
        assert len(four.removed(stage)) == c.get("dropped", 0), stage
        assert len(list((four.output_dir / "removed" / stage).glob("*.jsonl"))) > 1, stage  # one file per rank
        prev = c["docs_out"]
    assert len(four.load_dataset()) == four.funnel[-1]["docs"]
    assert not any(four.load_dataset()["contaminated"])
    rounds = four.reports["recall"]["rounds"]  # precision/recall re-derived from the summed counts
    parts = [json.loads(p.read_text())["rounds"] for p in sorted((reports / "recall").glob("*.json"))]
    assert rounds[-1]["any"]["tp"] == sum(p[-1]["any"]["tp"] for p in parts)
    any_ = rounds[-1]["any"]
    assert any_["precision"] == any_["tp"] / (any_["tp"] + any_["fp"])


def test_merge_reports_sums_counts_and_rederives_ratios(tmp_path):
    steps.write_rank_report(tmp_path, "x", 0, {"stage": "x", "rank": 0, "counts": {"docs_in": 3, "dropped": 1},
                                                "evaluation": {"tp": 1, "fp": 1, "fn": 0, "precision": 0.5, "recall": 1.0},
                                                "removed": [{"id": "a"}], "threshold": 0.5})
    steps.write_rank_report(tmp_path, "x", 1, {"stage": "x", "rank": 1, "counts": {"docs_in": 2, "dropped:y": 1},
                                                "evaluation": {"tp": 3, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.75},
                                                "removed": [{"id": "b"}], "threshold": 0.5})
    rep = steps.merge_reports(tmp_path)["x"]
    assert rep["counts"] == {"docs_in": 5, "dropped": 1, "dropped:y": 1}
    assert rep["evaluation"]["tp"] == 4 and rep["evaluation"]["precision"] == 0.8 and rep["evaluation"]["recall"] == 0.8
    assert rep["removed"] == [{"id": "a"}, {"id": "b"}] and rep["threshold"] == 0.5 and rep["tasks"] == 2
    assert json.loads((tmp_path / "x.json").read_text()) == rep


def test_many_tasks_need_the_multi_stage_pipeline():
    with pytest.raises(ValueError, match="multi_stage"):
        load_config(DataConfig, "configs/toy/data.yaml", ["tasks=4"])
    full = load_config(DataConfig, "configs/full/data.yaml")
    table = stage_table(full)
    assert [t for name, t, _ in table if name == "filter"] == [full.tasks]
    assert [t for name, t, _ in table if name in ("minhash_cluster", "decontam_index", "merge")] == [1, 1, 1]
    assert [name for name, _, _ in table if name.startswith("recall_train")] == [
        f"recall_train_{k}" for k in range(1, full.recall_rounds + 1)]


def test_file_shards_and_the_read_stage_count_what_they_skip(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rows = [{"id": f"d{i}", "text": t, "origin_source": "toy"} for i, t in enumerate(["fine text", "  ", "x" * 500, "ok"])]
    for i in range(3):  # three files over two tasks: task 0 reads files 0 and 2, task 1 reads file 1
        (folder / f"{i:05d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[i::3]))
    reader = steps.JsonReader(str(folder))
    assert reader.files(0, 2) == ["00000.jsonl", "00002.jsonl"] and reader.files(1, 2) == ["00001.jsonl"]
    read = steps.ReadCounter(max_doc_chars=100, source_kinds={"toy": "wiki"}, report_dir=str(tmp_path / "rep"))
    kept = [d for rank in (0, 1) for d in read.run(reader.run(None, rank, 2), rank, 2)]
    assert sorted(d.id for d in kept) == ["d0", "d3"] and {d.metadata["source"] for d in kept} == {"wiki"}
    merged = steps.merge_reports(tmp_path / "rep")["read"]
    assert merged["counts"]["docs_in"] == 4 and merged["counts"]["skipped:empty"] == 1
    assert merged["counts"]["skipped:too_long"] == 1 and {s["id"] for s in merged["skipped"]} == {"d1", "d2"}
    (folder / "00001.jsonl").write_text('{"id": "a", "text": "ok"}\n{"id": "b", "text": \n')
    with pytest.raises(ValueError, match=r"00001.jsonl:2"):
        list(reader.run(None, 1, 2))


def test_slurm_submission_chains_one_job_per_stage(tmp_path, monkeypatch):
    """Without a cluster: the jobs submit_slurm would launch, their task counts and dependencies."""
    from datatrove.executor import SlurmPipelineExecutor

    launched = []
    monkeypatch.setattr(SlurmPipelineExecutor, "run", lambda self: launched.append(self))
    cfg = load_config(DataConfig, "configs/toy/data.yaml",
                      {"multi_stage": True, "executor": "slurm", "tasks": 3, "n_docs": 60, "output_dir": str(tmp_path)})
    data.run(cfg)
    assert len(launched) == 1  # the last job; each job names the one before as its dependency
    chain, job = [], launched[0]
    while job is not None:
        chain.append(job)
        job = job.depends
    chain.reverse()
    assert [(j.job_name, j.world_size) for j in chain] == [(f"infir-data-{n}", t) for n, t, _ in stage_table(cfg)]
    assert len(list((tmp_path / "input").glob("*.jsonl"))) >= 3  # toy input written to files for per-file shards
