"""The harness validated where the truth is known: canonical HumanEval solutions pass, mutants fail."""

from __future__ import annotations

from infir_lib.eval import code as C
from infir_lib.eval.sandbox import run_programs


def test_humaneval_canonical_pass_and_mutants_fail():
    problems = C.load_humaneval()
    assert len(problems) == 164
    progs = C.canonical_programs(problems)
    verdicts = run_programs([p for p, _ in progs], tests=[t for _, t in progs], workers=2, progress=False, timeout=15)
    failed = [(p["task_id"], v.status, v.detail) for p, v in zip(problems, verdicts) if not v.passed]
    assert failed == [], failed

    stubs = C.mutant_programs(problems, "return-none")
    sv = run_programs([m[0] for m in stubs], tests=[m[1] for m in stubs], workers=2, progress=False, timeout=15)
    assert len(stubs) == 164 and not any(v.passed for v in sv)


def test_operator_mutants_are_mostly_caught():
    problems = C.load_humaneval()[::2]  # half the problems keeps this file fast
    muts = C.mutant_programs(problems, "operator", seed=0)
    assert len(muts) > 0.85 * len(problems)
    for program, _, tid, change in muts[:20]:
        original = next(p for p in problems if p["task_id"] == tid)
        assert program != original["prompt"] + original["canonical_solution"] and "->" in change
    verdicts = run_programs([m[0] for m in muts], tests=[m[1] for m in muts], workers=2, progress=False, timeout=15)
    caught = sum(not v.passed for v in verdicts) / len(verdicts)
    assert caught > 0.85  # some mutants are equivalent to the original; most must fail


FORGING_LINES = [
    "import sys\nsys.modules['__main__']._run = lambda name: None\n",
    "import os\nos._exit = lambda *a: None\n",
    "import os, sys\nos._exit = lambda *a: None\nsys.stderr = open(os.devnull, 'w')\n",
    "import os, sys\nos._exit = lambda *a: None\nsys.exit(0)\n",
    "import sys, os\nprint(getattr(sys.modules['__main__'], 'nonce', ''))\nos._exit(0)\n",
]


def test_return_none_plus_one_forging_line_scores_zero():
    """The adversarial review's finding: ``return None`` + one line used to score pass@1 = 1.0 on 10 of 10."""
    problems = C.load_humaneval()[:10]
    for line in FORGING_LINES:
        res = C.evaluate_humaneval({p["task_id"]: ["    return None\n" + line] for p in problems}, problems, ks=(1,),
                                   progress=False)
        assert res["pass@1"] == 0.0, (line, res["statuses"])
    always_equal = ("    class _A:\n        def __eq__(self, o):\n            return True\n"
                    "        __ne__ = lambda self, o: False\n    return _A()\n")
    res = C.evaluate_humaneval({p["task_id"]: [always_equal] for p in problems}, problems, ks=(1,), progress=False)
    assert res["pass@1"] == 0.0, res["statuses"]
