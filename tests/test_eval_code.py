"""Code evaluation: unbiased pass@k, HumanEval canonical solutions pass and mutants fail, MBPP-style slice."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from infir_lib.eval import code as C


def _brute_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of the n samples that contain at least one pass."""
    samples = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n, c, k", [(5, 0, 1), (5, 1, 1), (5, 2, 3), (6, 3, 2), (7, 1, 5), (4, 4, 2), (10, 3, 10)])
def test_pass_at_k_matches_enumeration(n, c, k):
    assert C.pass_at_k(n, c, k) == pytest.approx(_brute_pass_at_k(n, c, k))


def test_pass_at_k_closed_forms_and_errors():
    assert C.pass_at_k(200, 37, 1) == pytest.approx(37 / 200)
    assert C.pass_at_k(200, 37, 10) == pytest.approx(1 - math.comb(163, 10) / math.comb(200, 10))
    assert C.pass_at_k(10, 0, 5) == 0.0 and C.pass_at_k(10, 6, 5) == 1.0
    with pytest.raises(ValueError):
        C.pass_at_k(3, 1, 5)
    with pytest.raises(ValueError):
        C.pass_at_k(3, 4, 1)
    m = C.mean_pass_at_k([(4, 1), (4, 0)], ks=(1, 2, 8))
    assert m["pass@1"] == pytest.approx(0.125) and m["pass@2"] == pytest.approx(0.25) and "pass@8" not in m


def test_pass_at_k_is_unbiased_by_simulation():
    rng = random.Random(0)
    p, n, k = 0.3, 10, 3
    est = []
    for _ in range(3000):
        c = sum(rng.random() < p for _ in range(n))
        est.append(C.pass_at_k(n, c, k))
    assert sum(est) / len(est) == pytest.approx(1 - (1 - p) ** k, abs=0.01)


def test_evaluate_humaneval_counts_and_pass_at_k():
    problems = C.load_humaneval()[:3]
    comps = {p["task_id"]: [p["canonical_solution"], "    return None\n", "```python\n" + p["prompt"] + p["canonical_solution"] + "```"]
             for p in problems}
    res = C.evaluate_humaneval(comps, problems, ks=(1, 2), progress=False)
    assert all(v == {"n": 3, "c": 2} for v in res["per_task"].values())
    assert res["pass@1"] == pytest.approx(2 / 3) and res["pass@2"] == pytest.approx(1.0)
    with pytest.raises(KeyError):
        C.evaluate_humaneval({"HumanEval/9999": ["pass"]}, problems, progress=False)


def test_mbpp_style_slice_reference_solutions_pass(tmp_path):
    rows = C.load_mbpp_style()
    assert len(rows) == 20 and all(len(r["test_list"]) == 3 for r in rows)
    res = C.evaluate_mbpp({r["task_id"]: [r["code"], "def nothing():\n    pass\n"] for r in rows}, rows, ks=(1,),
                          progress=False)
    assert res["pass@1"] == pytest.approx(0.5)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": 1, "text": "x", "code": "", "test_list": []}\n{"task_id": 2}\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        C.load_mbpp_style(bad)


def test_extract_code_prefers_fenced_block():
    assert C.extract_code("Here you go:\n```python\ndef f():\n    return 1\n```\nThanks") == "def f():\n    return 1\n"
    assert C.extract_code("    return 1\n") == "    return 1\n"
