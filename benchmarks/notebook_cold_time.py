"""Wall and CPU time of one chapter notebook with the artifacts it builds itself removed from the cache.

    .venv/bin/python benchmarks/notebook_cold_time.py notebooks/04_sft_and_long_cot.ipynb --drop sft

Reproduces CI's situation for a chapter: the cache holds what the earlier chapters built, but not
the kinds listed in ``--drop`` (for chapter 4: every ``sft`` artifact, the instruct model included).
The current cache (``$INFIR_CACHE`` or ``.cache/``) is copied to a temporary folder, the dropped
kinds are deleted from the copy, and the notebook is executed with nbmake against the copy (the
stored notebook is not modified). CPU time is user + system of the notebook's processes and their
waited children (the sandbox runs included), the number to compare on a shared machine; wall time
is what CI reports. A script, not a test: timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from infir_lib.artifacts import cache_root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebook")
    ap.add_argument("--drop", nargs="*", default=["sft"], help="cache kinds the chapter builds itself")
    ap.add_argument("--timeout", type=int, default=1500)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="infir-cold-") as tmp:
        cache = Path(tmp) / "cache"
        shutil.copytree(cache_root(), cache, symlinks=True)
        for kind in args.drop:
            shutil.rmtree(cache / kind, ignore_errors=True)
        env = {**os.environ, "INFIR_CACHE": str(cache)}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbmake",
               f"--nbmake-timeout={args.timeout}", args.notebook]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.time()
        rc = subprocess.run(cmd, env=env).returncode
        wall = time.time() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"{args.notebook}: exit {rc}, wall {wall:.0f} s, cpu {cpu:.0f} s (dropped from the cache: {args.drop})")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
