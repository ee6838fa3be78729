"""Sandbox throughput: programs per second for the 164 canonical HumanEval solutions, 1 vs 2 workers.

    python benchmarks/sandbox_throughput.py [--workers 1 2 4] [--repeats 1] [--backend bwrap|rlimit]

A script, not a test: timings depend on the machine and on what else runs on it. Each program is a
fresh sandbox (bubblewrap namespaces, a per-run cgroup where one can be made, a new Python interpreter
for the judge and a fork of it for the program; the tests call the program over a pipe), so the cost
per program is mostly process start-up; workers overlap those start-ups. Prints one line per setting
and a JSON summary (with the load average: compare runs made under the same load).
"""

from __future__ import annotations

import argparse
import json
import os
import time

from infir_lib.eval.code import canonical_programs, load_humaneval
from infir_lib.eval.sandbox import available_backend, run_programs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--backend", choices=["bwrap", "rlimit"], default=None)
    parser.add_argument("--timeout", type=float, default=15.0)
    args = parser.parse_args()
    backend = args.backend or available_backend()
    progs = canonical_programs(load_humaneval())
    codes, tests = [p for p, _ in progs], [t for _, t in progs]
    print(f"backend {backend}, {len(codes)} programs, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    results = []
    for w in args.workers:
        for r in range(args.repeats):
            start, t0 = time.perf_counter(), os.times()
            verdicts = run_programs(codes, tests=tests, workers=w, progress=False, backend=backend, timeout=args.timeout)
            secs = time.perf_counter() - start
            t1 = os.times()
            # CPU time of this process and every sandbox it waited for: far less sensitive to other load
            cpu = (t1.user - t0.user) + (t1.system - t0.system) + (t1.children_user - t0.children_user) + \
                (t1.children_system - t0.children_system)
            passed = sum(v.passed for v in verdicts)
            rec = {"workers": w, "repeat": r, "seconds": round(secs, 2), "programs_per_s": round(len(codes) / secs, 2),
                   "passed": passed, "mean_program_s": round(sum(v.seconds for v in verdicts) / len(verdicts), 3),
                   "cpu_ms_per_program": round(1000 * cpu / len(codes), 1)}
            results.append(rec)
            print(f"workers={w} repeat={r}: {secs:.1f} s, {rec['programs_per_s']:.1f} programs/s, "
                  f"{passed}/{len(codes)} passed, mean {rec['mean_program_s']:.3f} s per program, "
                  f"{rec['cpu_ms_per_program']:.1f} ms CPU per program")
    print(json.dumps({"backend": backend, "results": results}))


if __name__ == "__main__":
    main()
