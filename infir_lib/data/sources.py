"""Where documents come from: a toy generator, a local file, or a hub dataset by id.

A source is named by a string, so configs stay plain data:
- ``toy:<name>``: a generator registered in :data:`TOY_SOURCES` (seeded, offline);
- a local path (``.jsonl``, ``.json``, ``.parquet``, ``.txt`` or a folder of them);
- a hub id, optionally ``id:config_name`` (full scale; streamed so nothing is downloaded up front).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

from .corpus import generate_simple_corpus

# name -> fn(n_docs, seed) -> list of {"id", "text", ...}. Chapter 1 registers its corpora here.
TOY_SOURCES: dict[str, Callable[[int, int], list[dict]]] = {"simple": generate_simple_corpus}


def register_toy_source(name: str, fn: Callable[[int, int], list[dict]]) -> None:
    TOY_SOURCES[name] = fn


def read_jsonl(path: str | Path, text_field: str | None = "text") -> Iterator[dict]:
    """Read a JSONL file; a malformed line or a missing field is an error naming file and line."""
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
            if text_field and text_field not in row:
                raise ValueError(f"{path}:{lineno}: no '{text_field}' field (fields: {sorted(row)})")
            yield row


def iter_documents(source: str, *, n_docs: int = 1000, seed: int = 0, split: str = "train",
                   text_field: str = "text", limit: int | None = None) -> Iterator[dict]:
    """Yield documents (dicts with at least ``text_field``) from any source."""
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
        yield from capped(TOY_SOURCES[name](n_docs, seed))
        return
    path = Path(source).expanduser()
    if path.exists():
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if f.suffix == ".jsonl":
                yield from capped(read_jsonl(f, text_field))
            elif f.suffix == ".txt":
                yield from capped({"id": f"{f.name}:{i}", text_field: line.rstrip("\n")}
                                  for i, line in enumerate(f.read_text(encoding="utf-8").splitlines()) if line.strip())
            elif f.suffix in (".json", ".parquet"):
                import datasets
                kind = "json" if f.suffix == ".json" else "parquet"
                yield from capped(datasets.load_dataset(kind, data_files=str(f), split="train"))
        return
    import datasets  # full scale: stream from the hub (needs network)
    name, _, config_name = source.partition(":")
    ds = datasets.load_dataset(name, config_name or None, split=split, streaming=True)
    yield from capped(ds)
