"""How long each chapter notebook took to execute, read from the notebooks themselves.

nbmake (like nbclient, which it uses) records when each cell started and finished in the cell's
``metadata.execution``. After ``scripts/build_book.sh`` has executed the book, those timestamps are in
the executed copies under ``_book/notebooks/``; the teacher's guide and chapter 8 show them
instead of typed-in estimates. A notebook with no timestamps (outputs stripped, never run) is
reported as not measured.
"""

from __future__ import annotations

import resource
import time
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


class ChapterClock:
    """A chapter's own time statement: started in its set-up cell, read in its last cell.

    The top of each chapter says how long the chapter took, and that number must be measured, not typed:
    the last cell glues :meth:`summary` and the opening paragraph shows it. CPU time includes the worker
    processes the chapter waited for (:func:`infir_lib.parallel.run_parallel`), so wall-clock below CPU
    time means the chapter used more than one core.
    """

    def __init__(self) -> None:
        self._wall0, self._cpu0 = time.perf_counter(), self._cpu()

    @staticmethod
    def _cpu() -> float:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + kids.ru_utime + kids.ru_stime

    def seconds(self) -> tuple[float, float]:
        """(wall-clock, CPU) seconds since the clock started."""
        return time.perf_counter() - self._wall0, self._cpu() - self._cpu0

    def summary(self) -> str:
        """"148 s wall-clock (263 s of CPU time)": what the chapter's opening paragraph shows."""
        wall, cpu = self.seconds()
        return f"{wall:.0f} s wall-clock ({cpu:.0f} s of CPU time)"
