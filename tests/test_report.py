"""Unit tests of the scorecard (verdicts, record/load round-trip, rendering) and the student edition.

None of these needs another chapter's notebook: results are written to a temporary cache.
"""

import json
import math

import nbformat
import pytest

from infir_lib import report
from infir_lib.report import scorecard, student_edition, timings


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INFIR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# --- verdict_from_seeds -----------------------------------------------------------------------
def test_verdict_clear_win_loss_and_tie():
    assert report.verdict_from_seeds([0.8, 0.82, 0.81], [0.5, 0.52, 0.51]) == "reproduced"
    assert report.verdict_from_seeds([0.5, 0.52, 0.51], [0.8, 0.82, 0.81]) == "not reproduced"
    # difference 0.01 is smaller than the seed spread (~0.08): cannot tell
    assert report.verdict_from_seeds([0.5, 0.7, 0.6], [0.59, 0.61, 0.57]) == "inconclusive"


def test_verdict_lower_is_better_and_margin():
    # perplexity: the treatment is lower, which is better
    assert report.verdict_from_seeds([10.0, 10.1], [12.0, 12.1], higher_is_better=False) == "reproduced"
    assert report.verdict_from_seeds([10.0, 10.1], [12.0, 12.1], higher_is_better=True) == "not reproduced"
    # one seed each: decided by the margin alone
    assert report.verdict_from_seeds([0.55], [0.5], margin=0.1) == "inconclusive"
    assert report.verdict_from_seeds([0.65], [0.5], margin=0.1) == "reproduced"


def test_verdict_difference_equal_to_the_spread_is_a_tie_despite_rounding():
    # 0.025 - 0.0375 is -0.012500000000000004 in floats; the spread is 0.0125: a tie, not a loss
    assert report.verdict_from_seeds([0.025, 0.025], [0.025, 0.05]) == "inconclusive"
    assert report.verdict_from_seeds([0.025, 0.05], [0.025, 0.025]) == "inconclusive"
    assert report.verdict_from_seeds([0.0, 0.0], [0.025, 0.05]) == "not reproduced"


def test_verdict_needs_both_arms():
    with pytest.raises(ValueError):
        report.verdict_from_seeds([], [1.0])


# --- record / load ----------------------------------------------------------------------------
def test_record_load_round_trip(cache):
    assert all(v is None for v in report.load_claims().values())
    path = report.record_claim(3, experiment="toy mix", measured={"grad_norm": [1.0, 2.0]}, verdict="inconclusive",
                               seeds=[0, 1], notes="n")
    assert path.parent == cache / "results"
    claims = report.load_claims()
    assert set(claims) == set(range(1, 15))
    assert claims[3]["experiment"] == "toy mix" and claims[3]["measured"] == {"grad_norm": [1.0, 2.0]}
    assert claims[3]["claim"] == 3 and claims[3]["chapter"] == report.CLAIMS[3]["chapter"]
    assert claims[3]["statement"] == report.CLAIMS[3]["claim"] and claims[3]["seeds"] == [0, 1]
    assert [n for n, r in claims.items() if r is None] == [n for n in range(1, 15) if n != 3]


def test_record_keeps_numpy_numbers_as_numbers(cache):
    import numpy as np
    report.record_claim(7, experiment="x", measured={"acc": np.array([0.5, 0.75], dtype=np.float32), "n": np.int64(3)},
                        verdict="inconclusive")
    rec = report.load_claims()[7]
    assert rec["measured"] == {"acc": [0.5, 0.75], "n": 3}
    assert "0.62 ± 0.12 (n=2)" in scorecard.format_measured(rec["measured"])


def test_record_rejects_bad_claim_and_verdict(cache):
    with pytest.raises(KeyError):
        report.record_claim(15, experiment="x", measured={}, verdict="reproduced")
    with pytest.raises(ValueError):
        report.record_claim(1, experiment="x", measured={}, verdict="sort of")


def test_record_comparison_computes_the_verdict(cache):
    scorecard.record_comparison(1, experiment="filtered vs raw", metric="val loss", treatment=[2.0, 2.1, 2.05],
                                control=[2.5, 2.6, 2.55], labels=("filtered", "raw"), seeds=[0, 1, 2],
                                higher_is_better=False)
    rec = report.load_claims()[1]
    assert rec["verdict"] == "reproduced"
    assert rec["measured"]["arms"] == {"filtered": [2.0, 2.1, 2.05], "raw": [2.5, 2.6, 2.55]}
    with pytest.raises(ValueError):
        scorecard.record_comparison(2, experiment="x", metric="m", treatment=[1, 2], control=[1, 2], seeds=[0, 1, 2])


# --- rendering --------------------------------------------------------------------------------
def test_mean_spread_uses_population_sd():
    assert scorecard.mean_spread([1.0, 3.0]) == "2.0 ± 1.0 (n=2)"
    assert scorecard.mean_spread([0.5]) == "0.5 (1 seed)"
    assert scorecard.mean_spread([0.25, 0.25]) == "0.25 ± 0 (n=2)"
    assert scorecard.mean_spread([100.0, 140.0]) == "120 ± 20 (n=2)"


def test_effect_in_bars_matches_verdict_rule():
    m = {"arms": {"a": [1.0, 1.2], "b": [0.5, 0.7]}, "higher_is_better": True, "margin": 0.0}
    assert scorecard.effect_in_bars(m) == pytest.approx(0.5 / 0.1)
    m["higher_is_better"] = False
    assert scorecard.effect_in_bars(m) == pytest.approx(-5.0)
    assert scorecard.effect_in_bars({"x": 1}) is None
    assert math.isinf(scorecard.effect_in_bars({"arms": {"a": [1.0], "b": [0.0]}}))


def test_rows_show_every_claim_and_missing_ones(cache):
    report.record_claim(5, experiment="eps sweep", measured={"ppl_ratio": [1.01, 1.02], "note": "x|y"},
                        verdict="reproduced", seeds=[0, 1])
    rows = scorecard.scorecard_rows()
    assert [r["claim"] for r in rows] == list(range(1, 15))
    assert rows[4]["verdict"] == "reproduced" and "1.0150 ± 0.0050 (n=2)" in rows[4]["measured"]
    assert all(r["verdict"] == scorecard.NO_RESULT for r in rows if r["claim"] != 5)
    assert scorecard.missing_claims() == [n for n in range(1, 15) if n != 5]
    table = scorecard.markdown_table(rows, measured=True)
    assert table.count("\n") == 16 and "x\\|y" in table  # header, rule, 14 rows; pipes escaped
    assert "x\\|y" not in scorecard.markdown_table(rows) and "| 5 |" in scorecard.markdown_table(rows)
    assert "No result recorded" in scorecard.claim_markdown(rows[0])
    card = scorecard.claim_markdown(rows[4])
    assert "eps sweep" in card and "\n- ppl\\_ratio: 1.0150 ± 0.0050 (n=2)\n- note: x|y" in card
    counts = scorecard.verdict_counts(rows)
    assert counts["reproduced"] == 1 and counts[scorecard.NO_RESULT] == 13


def test_summary_figure_draws_one_row_per_claim(cache):
    import matplotlib
    matplotlib.use("Agg")
    scorecard.record_comparison(9, experiment="B vs A", metric="acc", treatment=[0.4, 0.5], control=[0.6, 0.7])
    fig = scorecard.summary_figure(scorecard.scorecard_rows())
    assert len(fig.axes[0].get_yticklabels()) == 14
    assert len(fig.axes[0].patches) == 1  # one claim with two arms -> one bar
    assert fig.axes[0].patches[0].get_width() < 0  # contradicted: the bar points left


def test_cli_check_fails_on_missing_claims(cache, capsys):
    assert report.cli([]) == 0
    assert report.cli(["--check"]) == 1
    for n in report.CLAIMS:
        report.record_claim(n, experiment="e", measured={"v": 1}, verdict="inconclusive")
    assert report.cli(["--check"]) == 0
    assert "14 inconclusive" in capsys.readouterr().out


# --- student edition --------------------------------------------------------------------------
PAGE = """# Exercises

1. Why?

```{admonition} Solution
:class: dropdown
Because.
```

2. How?

````{admonition} Solution to exercise 2
:class: dropdown
Like this:
```python
print("answer")
```
````

:::{admonition} Solution
:class: dropdown
colon fenced
:::

```{admonition} Hint
:class: tip
Keep me.
```

```{note}
Also kept.
```
"""


def test_strip_solutions_text_removes_only_solutions():
    text, n = student_edition.strip_solutions_text(PAGE)
    assert n == 3
    for gone in ("Because.", 'print("answer")', "colon fenced", "Solution"):
        assert gone not in text
    for kept in ("1. Why?", "2. How?", "Keep me.", "Also kept.", "```{note}"):
        assert kept in text
    # the remaining fences are balanced
    assert text.count("```") % 2 == 0


def test_unclosed_solution_names_file_and_line():
    with pytest.raises(student_edition.UnclosedSolution, match=r"page\.md:3"):
        student_edition.strip_solutions_text("a\n\n```{admonition} Solution\n:class: dropdown\nno end\n", "page.md")


def test_student_edition_of_a_tree(tmp_path):
    src = tmp_path / "src"
    (src / "notebooks").mkdir(parents=True)
    (src / "book").mkdir()
    (src / ".venv").mkdir()
    (src / ".venv" / "x.md").write_text(PAGE)
    (src / "book" / "page.md").write_text(PAGE)
    (src / "_toc.yml").write_text("root: book/page\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("## Exercises\n\n```{admonition} Solution\n:class: dropdown\nsecret\n```"),
                nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("answer = 42", metadata={"tags": ["solution"]})]
    nbformat.write(nb, src / "notebooks" / "01_x.ipynb")
    dst = tmp_path / "student"
    rep = student_edition.build_student_edition(src, dst)
    assert rep.removed == {"book/page.md": 3, "notebooks/01_x.ipynb": 2}
    assert not (dst / ".venv").exists() and (dst / "_toc.yml").read_text() == "root: book/page\n"
    out = nbformat.read(dst / "notebooks" / "01_x.ipynb", as_version=4)
    assert [c.source for c in out.cells if c.cell_type == "code"] == ["x = 1"]
    assert "secret" not in out.cells[0].source and "## Exercises" in out.cells[0].source
    assert "secret" in (src / "notebooks" / "01_x.ipynb").read_text()  # the source is untouched
    with pytest.raises(FileExistsError):
        student_edition.build_student_edition(src, dst)
    with pytest.raises(ValueError):
        student_edition.build_student_edition(src, src / "inside")
    assert student_edition.main([str(src), str(dst), "--force"]) == 0


# --- notebook timings -------------------------------------------------------------------------
def test_notebook_seconds_from_cell_timestamps(tmp_path):
    nb = nbformat.v4.new_notebook()
    c1 = nbformat.v4.new_code_cell("a")
    c1.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00.000000Z",
                                "shell.execute_reply": "2026-01-01T00:00:02.500000Z"}
    c2 = nbformat.v4.new_code_cell("b")
    c2.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:03Z",
                                "shell.execute_reply": "2026-01-01T00:01:00Z"}
    nb.cells = [nbformat.v4.new_markdown_cell("t"), c1, c2, nbformat.v4.new_code_cell("never run")]
    nbformat.write(nb, tmp_path / "03_x.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "04_y.ipynb")
    got = timings.notebook_durations(tmp_path)
    assert got == [{"notebook": "03_x", "cells": 2, "seconds": 60.0}, {"notebook": "04_y", "cells": 0, "seconds": None}]
    json.dumps(got)
