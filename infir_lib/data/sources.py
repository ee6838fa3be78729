"""Where documents come from: a toy generator, a local file, or a hub dataset by id.

A source is named by a string, so configs stay plain data:
- ``toy:<name>``: a generator registered in :data:`TOY_SOURCES` (seeded, offline);
- a local path (``.jsonl``, ``.json``, ``.parquet``, ``.txt`` or a folder of them);
- a hub id, optionally ``id:config_name`` (full scale; streamed so nothing is downloaded up front).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Iterator

from .corpus import generate_simple_corpus

log = logging.getLogger(__name__)

# name -> fn(n_docs, seed) -> list of {"id", "text", ...}. Chapter 1 registers its corpora here.
TOY_SOURCES: dict[str, Callable[[int, int], list[dict]]] = {"simple": generate_simple_corpus}


def register_toy_source(name: str, fn: Callable[[int, int], list[dict]]) -> None:
    TOY_SOURCES[name] = fn


def read_jsonl_numbered(path: str | Path, text_field: str | None = "text",
                        required: tuple[str, ...] = ()) -> Iterator[tuple[int, dict]]:
    """``(line number, row)`` of a JSONL file; a malformed line, a missing field or a text field that is
    not a string is an error naming file, line and field (blank lines are skipped)."""
    path = Path(path)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid UTF-8 ({e.reason} at byte {e.start})") from e
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            for key in ((text_field,) if text_field else ()) + tuple(required):
                if key not in row:
                    raise ValueError(f"{path}:{lineno}: no '{key}' field (fields: {sorted(row)})")
            if text_field and not isinstance(row[text_field], str):
                raise ValueError(f"{path}:{lineno}: field '{text_field}' must be a string, "
                                 f"got {type(row[text_field]).__name__} {str(row[text_field])[:40]!r}")
            yield lineno, row


def read_jsonl(path: str | Path, text_field: str | None = "text", required: tuple[str, ...] = ()) -> Iterator[dict]:
    """Read a JSONL file; a malformed line or a missing field is an error naming file and line."""
    for _, row in read_jsonl_numbered(path, text_field, required):
        yield row


def read_text_lines(path: str | Path, text_field: str = "text") -> Iterator[dict]:
    """One document per non-blank line of a ``.txt`` file; bytes that are not UTF-8 name file and line."""
    path = Path(path)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid UTF-8 ({e.reason} at byte {e.start})") from e
            if line.strip():
                yield {"id": f"{path.name}:{lineno - 1}", text_field: line}


LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet", ".txt")


def _read_local_file(f: Path, text_field: str) -> Iterator[dict]:
    if f.suffix == ".jsonl":
        yield from read_jsonl(f, text_field)
    elif f.suffix == ".txt":
        yield from read_text_lines(f, text_field)
    else:
        import datasets
        kind = "json" if f.suffix == ".json" else "parquet"
        ds = datasets.load_dataset(kind, data_files=str(f), split="train")
        if text_field not in ds.column_names:
            raise ValueError(f"{f}: no '{text_field}' column (columns: {ds.column_names})")
        for i, row in enumerate(ds):
            if not isinstance(row[text_field], str):
                raise ValueError(f"{f}: row {i}: field '{text_field}' must be a string, got {type(row[text_field]).__name__}")
            yield row


def local_files(path: Path) -> tuple[list[Path], list[Path]]:
    """(files read, files skipped) of a local source: a file, or every supported file under a folder."""
    if path.is_file():
        if path.suffix not in LOCAL_SUFFIXES:
            raise ValueError(f"{path}: unsupported file type {path.suffix!r} (supported: {', '.join(LOCAL_SUFFIXES)})")
        return [path], []
    found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [p for p in found if p.suffix in LOCAL_SUFFIXES], [p for p in found if p.suffix not in LOCAL_SUFFIXES]


def iter_documents(source: str, *, n_docs: int = 1000, seed: int = 0, split: str = "train",
                   text_field: str = "text", limit: int | None = None, rank: int = 0,
                   world_size: int = 1) -> Iterator[dict]:
    """Yield documents (dicts with at least ``text_field``) from any source.

    ``rank``/``world_size``: this task's share, read without reading the others'. A hub dataset is split
    by its shards (``datasets.distributed.split_dataset_by_node``: whole files per task when the shards
    divide evenly); a local folder by files (``files[rank::world_size]``, datatrove's rule) when it has
    at least one file per task. A generated toy source, and a local source with fewer files than tasks,
    give every task every ``world_size``-th document of the same stream (each document has a global
    index, so ids stay the same whatever the number of tasks).
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"{source}: rank {rank} is not in [0, {world_size})")
    count = 0

    def capped(rows):
        nonlocal count
        for row in rows:
            if limit is not None and count >= limit:
                return
            count += 1
            yield row

    if source.startswith("toy:"):
        name = source[4:]
        if name not in TOY_SOURCES:
            raise KeyError(f"unknown toy source {source!r}; known: {sorted('toy:' + k for k in TOY_SOURCES)}")
        yield from capped(_every_nth(TOY_SOURCES[name](n_docs, seed), rank, world_size, source))
        return
    path = Path(source).expanduser()
    if path.exists():
        files, skipped = local_files(path)
        if skipped:  # counted and reported, never dropped silently
            log.warning("%s: skipped %d file(s) of unsupported type: %s", path, len(skipped),
                        ", ".join(p.name for p in skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
        if not files:
            raise ValueError(f"{path}: no {'/'.join(LOCAL_SUFFIXES)} files to read")
        by_file = len(files) >= world_size
        for f in (files[rank::world_size] if by_file else files):
            n_before = count
            rows = _read_local_file(f, text_field)
            yield from capped(rows if by_file else _every_nth(rows, rank, world_size, f"{f}"))
            if count == n_before and (limit is None or count < limit) and by_file:
                raise ValueError(f"{f}: no documents (the file is empty or has only blank lines)")
        return
    if source.startswith(("/", "./", "../", "~")):
        raise FileNotFoundError(f"{source}: no such file or folder (a local source; if it is another stage's output, "
                                f"run that stage first, e.g. `python -m infir_lib data --config configs/full/data.yaml`)")
    import datasets  # full scale: stream from the hub (needs network)
    from datasets.distributed import split_dataset_by_node

    name, _, config_name = source.partition(":")
    ds = datasets.load_dataset(name, config_name or None, split=split, streaming=True)
    if world_size > 1:
        ds = split_dataset_by_node(ds, rank=rank, world_size=world_size)
    yield from capped(ds)


def _every_nth(rows: Iterator[dict], rank: int, world_size: int, where: str) -> Iterator[dict]:
    """Every ``world_size``-th row from ``rank`` on, each carrying its index in the whole stream (``_index``)."""
    for k, row in enumerate(rows):
        if k % world_size == rank:
            yield row if world_size == 1 else {**row, "_index": k}
