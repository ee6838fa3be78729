"""Independent toy runs side by side: one worker process per core, one torch thread each.

A chapter's arms x seeds are independent, seeded and cached runs. A million-parameter model uses
a second core poorly (small matrices, and generation is a chain of tiny steps), so two runs on one
thread each finish sooner than the same two runs one after the other on two threads. Each call is
seeded by its own config, so a run's result does not depend on which process built it or in which
order (``tests/test_parallel.py`` checks this against in-process calls).

Workers are spawned (not forked: a forked copy of a process whose OpenMP pool is running can
hang), so ``fn`` must be importable: a module-level function or a ``functools.partial`` of one.
What a call prints (stdout and stderr) is captured in its worker and replayed in call order by
the caller, so a notebook cell shows the same lines whichever way it ran.

The workers are kept for the next call (:func:`shutdown` ends them; so does the end of the process):
starting one costs about as much as importing torch, transformers and datasets (~9 s on the book's
2-core machine), and a chapter calls :func:`run_parallel` five or ten times. A pool is reused only
while the working directory and the environment it was started with are unchanged, since a spawned
worker sees those as they were at its start.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from . import runtime
from .runtime import in_notebook, torch_threads


class RunError(RuntimeError):
    """A call failed in a worker; the message names the call and carries the worker's traceback."""


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers(threads: int = 1, n_calls: int | None = None) -> int:
    """Cores // threads, at least 1 and at most the number of calls."""
    n = max(1, _cores() // max(1, threads))
    return n if n_calls is None else max(1, min(n, n_calls))


def _split(call: tuple | dict) -> tuple[tuple, dict]:
    if isinstance(call, dict):
        return (), call
    if isinstance(call, tuple):
        return call, {}
    raise TypeError(f"run_parallel: a call is a tuple of arguments or a dict of keyword arguments, "
                    f"not {type(call).__name__}: {call!r}")


def _init_worker(threads: int, notebook: bool) -> None:
    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if notebook:  # behave as the kernel does: one-line progress, no per-file bars, the book's warning filters
        os.environ[runtime.NOTEBOOK_WORKER] = "1"
        runtime.notebook_defaults()


def _run_captured(fn: Callable, args: tuple, kwargs: dict) -> tuple[bool, Any, str, str]:
    """In a worker: the call's result (or its formatted traceback) and what it printed to stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            ok, value = True, fn(*args, **kwargs)
        except BaseException:  # reported to the caller, with the call named
            ok, value = False, traceback.format_exc()
    return ok, value, out.getvalue(), err.getvalue()


def _describe(fn: Callable, args: tuple, kwargs: dict) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(getattr(fn, "func", None), "__qualname__", repr(fn))
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    text = ", ".join(parts)
    return f"{name}({text if len(text) < 200 else text[:197] + '...'})"


_POOLS: dict[tuple, ProcessPoolExecutor] = {}


def _pool(n: int, threads: int) -> ProcessPoolExecutor:
    """The kept pool of ``n`` workers on ``threads`` threads, started anew when the working directory or
    the environment changed since it started (a spawned worker would not see the change)."""
    key = (n, threads, in_notebook(), os.getcwd(), tuple(sorted(os.environ.items())))
    if key not in _POOLS:
        stale = [k for k in _POOLS if k[:2] == (n, threads)]
        for k in stale:
            _POOLS.pop(k).shutdown()
        _POOLS[key] = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                                          initializer=_init_worker, initargs=(threads, in_notebook()))
    return _POOLS[key]


def _warm() -> None:
    """In a worker: import what every toy run needs (torch is imported by the initializer)."""
    import datasets  # noqa: F401
    import transformers  # noqa: F401

    from . import artifacts, models  # noqa: F401  lazy: this is the import being done ahead of time


def start_workers(threads: int = 1) -> None:
    """Start the worker processes now, without waiting for them: they import the libraries (~9 s each)
    while the caller goes on (a notebook's first cells), so the first :func:`run_parallel` finds them
    ready. Does nothing on a one-core machine."""
    n = default_workers(threads)
    if n > 1:
        pool = _pool(n, threads)
        for _ in range(n):
            pool.submit(_warm)


def shutdown() -> None:
    """End the kept worker processes (the next :func:`run_parallel` starts new ones)."""
    while _POOLS:
        _POOLS.popitem()[1].shutdown()


atexit.register(shutdown)


def run_parallel(fn: Callable, calls: Sequence[tuple | dict], *, threads: int = 1,
                 workers: int | None = None) -> list:
    """``[fn(*args, **kwargs) for each call]``, computed in ``workers`` spawned processes.

    ``calls``: tuples of positional arguments or dicts of keyword arguments. ``threads``: torch
    threads per worker. ``workers``: default cores // threads; with one worker (or one call) the
    calls run here, in order, on ``threads`` threads, with no process start-up cost. The workers stay
    up for the next call (see the module docstring). Results come back in call order; a failing call
    raises :class:`RunError` naming it, after the others finish.
    """
    split = [_split(c) for c in calls]
    if not split:
        return []
    n = default_workers(threads, len(split)) if workers is None else max(1, min(int(workers), len(split)))
    if n == 1:
        with torch_threads(threads):
            return [fn(*a, **k) for a, k in split]

    pool = _pool(default_workers(threads) if workers is None else int(workers), threads)  # one kept pool per size
    try:
        futures = [pool.submit(_run_captured, fn, a, k) for a, k in split]
        outcomes = [f.result() for f in futures]
    except BrokenProcessPool:  # a worker died (e.g. out of memory): the next call starts fresh workers
        shutdown()
        raise
    results, failures = [], []
    for (a, k), (ok, value, printed, warned) in zip(split, outcomes):
        sys.stdout.write(printed)
        sys.stderr.write(warned)  # replayed, not dropped: a warning in a worker is still a warning
        if ok:
            results.append(value)
        else:
            failures.append(f"{_describe(fn, a, k)} failed in a worker process:\n{value}")
    if failures:
        raise RunError("\n".join(failures))
    return results
