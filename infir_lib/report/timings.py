"""How long each chapter notebook took to execute, read from the notebooks themselves.

nbmake (like nbclient, which it uses) records when each cell started and finished in the cell's
``metadata.execution``. After ``scripts/build_book.sh`` has executed the book, those timestamps are in
the executed copies under ``_book/notebooks/``; the teacher's guide and chapter 8 show them
instead of typed-in estimates. A notebook with no timestamps (outputs stripped, never run) is
reported as not measured.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import nbformat


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def notebook_seconds(path: str | Path) -> dict:
    """``{"notebook", "cells", "seconds"}``: seconds from the first cell's start to the last cell's end.

    Kernel start-up (about a second) is not included. ``seconds`` is ``None`` when the notebook
    carries no execution timestamps.
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    starts, ends, cells = [], [], 0
    for cell in nb.cells:
        ex = cell.get("metadata", {}).get("execution", {})
        start = ex.get("iopub.execute_input") or ex.get("shell.execute_request")
        end = ex.get("shell.execute_reply") or ex.get("iopub.status.idle")
        if start and end:
            starts.append(_ts(start))
            ends.append(_ts(end))
            cells += 1
    seconds = (max(ends) - min(starts)).total_seconds() if starts else None
    return {"notebook": path.stem, "cells": cells, "seconds": seconds}


def notebook_durations(folder: str | Path, pattern: str = "[0-9][0-9]_*.ipynb") -> list[dict]:
    """Durations of every chapter notebook in ``folder`` (sorted by name)."""
    return [notebook_seconds(p) for p in sorted(Path(folder).glob(pattern))]
