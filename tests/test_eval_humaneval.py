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
