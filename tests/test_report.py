"""Unit tests of the scorecard (record/load round-trip, rendering) and the student edition.

None of these needs another chapter's notebook: results are written to a temporary cache.
"""

import json
import math

import nbformat
import pytest

from infir_lib import report
from infir_lib.book import student_edition, timings
from infir_lib.report import scorecard


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INFIR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _shape(claim, part):
    d = report.CLAIMS[claim]["parts"][part]
    return d["n_seeds"], 1 if d["outcome"] == "seed" else d["n_items"]


def _part(claim=7, part="test accuracy", effect=0.3, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    seeds, items = _shape(claim, part)
    c = (rng.random((seeds, items)) < 0.3).astype(float)
    t = (rng.random((seeds, items)) < 0.3 + effect).astype(float)
    return report.compare(claim, part, t, c, labels=("new", "old"))


# --- record / load ----------------------------------------------------------------------------
def test_record_load_round_trip(cache):
    assert all(v is None for v in report.load_claims().values())
    p = _part()
    path = report.record_experiment(7, experiment="toy SFT", parts=[p], seeds=[0, 1, 2], extra={"rows": 40},
                                    notes="n")
    assert path.parent == cache / "results"
    claims = report.load_claims()
    assert set(claims) == set(range(1, 15))
    rec = claims[7]
    assert rec["experiment"] == "toy SFT" and rec["measured"] == {"rows": 40} and rec["seeds"] == [0, 1, 2]
    assert rec["verdict"] == p.verdict == "reproduced"
    back = report.claim_parts(rec)[0]
    assert back.interval == p.interval and back.labels == ("new", "old") and back.margin == 0.05
    assert [n for n, r in claims.items() if r is None] == [n for n in range(1, 15) if n != 7]


def test_margin_and_kind_come_from_the_declaration():
    p = _part(claim=9, part="35% of B nearly matches B", effect=0.0)
    assert p.kind == "noninferiority" and p.margin == report.CLAIMS[9]["parts"][p.name]["margin"]
    with pytest.raises(KeyError, match="declares the parts"):
        report.compare(9, "made up", [[1.0, 0.0]], [[0.0, 0.0]])
    with pytest.raises(KeyError, match="unknown claim"):
        report.compare(15, "x", [[1.0, 0.0]], [[0.0, 0.0]])


def test_record_refuses_parts_that_are_not_declared(cache):
    with pytest.raises(ValueError, match="declares the parts"):
        report.record_experiment(9, experiment="x", parts=[_part(claim=9, part="B beats A on hard")])
    with pytest.raises(ValueError):
        report.record_experiment(7, experiment="x", parts=[_part(), _part()])


def test_old_records_are_not_results(cache):
    (cache / "results").mkdir(parents=True)
    (cache / "results" / "claim_03.json").write_text(json.dumps({"claim": 3, "verdict": "not reproduced"}))
    assert report.load_claims()[3] is None


def test_check_part():
    ok = report.check_part(5, "perplexity within the bound", -0.001, detail="ratios under the bound")
    bad = report.check_part(5, "perplexity within the bound", 0.01, detail="over")
    assert ok.verdict == "reproduced" and bad.verdict == "opposite"
    with pytest.raises(ValueError, match="not a check"):
        report.check_part(7, "test accuracy", 0.0, detail="")


# --- rendering --------------------------------------------------------------------------------
def test_rows_show_every_claim_and_missing_ones(cache):
    gate = report.gate_off_floor("off the floor", {"new": 0.0, "old": 0.0})
    import numpy as np
    z = np.zeros(_shape(10, "hard accuracy"))
    stuck = report.compare(10, "hard accuracy", z, z, labels=("a|b", "c"), gates=[gate])
    report.record_experiment(10, experiment="long CoT | short", parts=[stuck], seeds=[0, 1])
    rows = scorecard.scorecard_rows()
    assert [r["claim"] for r in rows] == list(range(1, 15))
    assert rows[9]["verdict"] == "untestable at toy scale"
    assert all(r["verdict"] == scorecard.NO_RESULT for r in rows if r["claim"] != 10)
    assert scorecard.missing_claims() == [n for n in range(1, 15) if n != 10]
    table = scorecard.markdown_table(rows)
    assert table.count("\n") == 16 and "| {}×{} |".format(*_shape(10, "hard accuracy")) in table
    assert "No result recorded" in scorecard.claim_markdown(rows[0])
    card = scorecard.claim_markdown(rows[9])
    assert "long CoT | short" in card and "gate *off the floor*: **failed**" in card
    assert "margin ±0.05" in card and "untestable" in card
    counts = scorecard.verdict_counts(rows)
    assert counts["untestable at toy scale"] == 1 and counts[scorecard.NO_RESULT] == 13


def test_summary_figure_draws_every_comparison(cache):
    import matplotlib
    matplotlib.use("Agg")
    report.record_experiment(7, experiment="x", parts=[_part()])
    report.record_experiment(9, experiment="y", parts=[_part(9, "B beats A on hard", effect=-0.3),
                                                      _part(9, "35% of B nearly matches B", effect=0.0)])
    rows = scorecard.scorecard_rows()
    items = scorecard.interval_rows(rows)
    assert len(items) == 15  # 12 unrecorded claims + claim 7 + claim 9's two parts
    by = {i["label"]: i for i in items}
    d, lo, hi = by["7: test accuracy"]["scaled"]
    assert lo > 1  # reproduced: the whole interval beyond +margin
    assert by["9: B beats A on hard"]["scaled"][2] < -1 and rows[8]["verdict"] == "opposite"
    fig = scorecard.summary_figure(rows)
    assert len(fig.axes[0].get_yticklabels()) == 15


def test_cli_check_fails_on_missing_claims(cache, capsys):
    assert report.cli([]) == 0
    assert report.cli(["--check"]) == 1
    import numpy as np
    for n, meta in report.CLAIMS.items():
        parts = []
        for name, d in meta["parts"].items():
            if d["outcome"] == "check":
                parts.append(report.check_part(n, name, 0.0, detail="d"))
            else:
                x = np.arange(np.prod(_shape(n, name)), dtype=float).reshape(_shape(n, name))
                parts.append(report.compare(n, name, x, x))
        report.record_experiment(n, experiment="e", parts=parts)
    capsys.readouterr()
    assert report.cli(["--check"]) == 0
    out = capsys.readouterr().out
    assert "Reproduction scorecard" in out and "no result recorded" not in out.split("\n")[0]


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


def test_a_part_not_run_because_a_gate_failed(tmp_path, monkeypatch):
    """Arms that would start from a model failing a gate are not trained: untestable, gate numbers shown."""
    import pytest

    from infir_lib import report
    from infir_lib.report import scorecard

    monkeypatch.setenv("INFIR_CACHE", str(tmp_path))
    failed = report.gate_above("the model uses its image", 0.11, 0.11, by=0.10, what="shuffled-image accuracy")
    assert not failed.passed
    with pytest.raises(ValueError, match="needs a failed gate"):
        report.not_run_part(13, "visual-math accuracy", [])
    part = report.not_run_part(13, "visual-math accuracy", [failed], labels=("phased", "direct"))
    assert part.not_run and part.verdict == "untestable at toy scale"
    assert "not run" in part.sentence() and failed.detail in part.sentence()
    report.record_experiment(13, experiment="not run: the perception gate failed", parts=[part], seeds=[])
    rec = report.load_claims()[13]
    assert rec["verdict"] == "untestable at toy scale"
    row = next(r for r in scorecard.scorecard_rows() if r["claim"] == 13)
    assert "not run" in scorecard.claim_markdown(row) and "not run" in scorecard.markdown_table([row])
    assert next(i for i in scorecard.interval_rows([row]))["not_run"]
    scorecard.summary_figure([row])  # draws without an interval
