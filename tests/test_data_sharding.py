"""Each task reads only its share of a source: hub datasets by shard, local folders by file, generated toy
sources by global index; the shares are disjoint and together are the whole source, ids unchanged."""

from __future__ import annotations

import json

import datasets
import pytest

from infir_lib.data import sources
from infir_lib.data.pipeline import SourceReader


def _folder(tmp_path, n_files: int, rows_per_file: int = 5):
    for f in range(n_files):
        with open(tmp_path / f"part-{f}.jsonl", "w") as out:
            for r in range(rows_per_file):
                out.write(json.dumps({"id": f"f{f}r{r}", "text": f"document {f}-{r}"}) + "\n")
    return str(tmp_path)


def _ids(rows):
    return [r["id"] for r in rows]


def test_a_local_folder_is_split_by_file(tmp_path):
    src = _folder(tmp_path, 4)
    whole = _ids(sources.iter_documents(src))
    shares = [_ids(sources.iter_documents(src, rank=r, world_size=2)) for r in range(2)]
    assert {i[:2] for i in shares[0]} == {"f0", "f2"} and {i[:2] for i in shares[1]} == {"f1", "f3"}
    assert sorted(shares[0] + shares[1]) == sorted(whole)


def test_fewer_files_than_tasks_falls_back_to_every_nth_row(tmp_path):
    src = _folder(tmp_path, 1, rows_per_file=7)
    shares = [_ids(sources.iter_documents(src, rank=r, world_size=3)) for r in range(3)]
    assert [len(s) for s in shares] == [3, 2, 2]
    assert sorted(sum(shares, [])) == sorted(_ids(sources.iter_documents(src)))


def test_a_toy_source_keeps_its_global_index():
    whole = list(sources.iter_documents("toy:simple", n_docs=30, seed=1))
    parts = [list(sources.iter_documents("toy:simple", n_docs=30, seed=1, rank=r, world_size=4)) for r in range(4)]
    assert sorted(r["_index"] for p in parts for r in p) == list(range(30))
    assert all(r["text"] == whole[r["_index"]]["text"] for p in parts for r in p)


def test_a_hub_dataset_is_split_by_shard(monkeypatch):
    def gen(shards):
        for s in shards:
            for r in range(3):
                yield {"id": f"s{s}r{r}", "text": f"shard {s} row {r}"}

    stream = datasets.IterableDataset.from_generator(gen, gen_kwargs={"shards": [0, 1, 2, 3]})
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: stream)
    shares = [_ids(sources.iter_documents("someone/corpus", rank=r, world_size=2)) for r in range(2)]
    assert {i[:2] for i in shares[0]}.isdisjoint({i[:2] for i in shares[1]})  # whole shards per task
    assert sorted(shares[0] + shares[1]) == sorted(_ids(gen([0, 1, 2, 3])))


def test_bad_rank_is_refused():
    with pytest.raises(ValueError, match="rank 2 is not in"):
        list(sources.iter_documents("toy:simple", n_docs=3, rank=2, world_size=2))


@pytest.mark.parametrize("source", ["folder", "toy:simple"])
def test_source_reader_shares_are_the_whole_source(tmp_path, source):
    src = _folder(tmp_path, 3) if source == "folder" else source

    def read(rank, world):
        return [(d.id, d.text) for d in SourceReader([src], 40, 0).run(rank=rank, world_size=world)]

    whole = read(0, 1)
    parts = [read(r, 2) for r in range(2)]
    assert sorted(parts[0] + parts[1]) == sorted(whole)  # same ids and texts: no document read twice or lost
    assert all("_index" not in d.metadata for r in range(2) for d in SourceReader([src], 40, 0).run(rank=r, world_size=2))
