"""The shape every chapter promises its readers (issue 8, CONTRIBUTING.md), checked on the stored notebooks.

Title, paper section, 3-5 learning objectives and CPU time up front; the Colab install guard and the
version print as the first code cell; "What the paper reports vs what we measured"; "Run it at full
scale" with a command cell nbmake skips; a summary; at least three exercises whose solutions are
hidden in dropdowns; citations that resolve; outputs stripped. Reads the notebooks only (fast).
"""

import re
from pathlib import Path

import nbformat
import pytest
import yaml

from infir_lib.book.student_edition import strip_solutions_text

REPO = Path(__file__).resolve().parents[1]


def toc_notebooks() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                if isinstance(v, (list, dict)):
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return [f for f in files if f.startswith("notebooks/")]


NOTEBOOKS = toc_notebooks()
BIB_KEYS = set(re.findall(r"@\w+\{([^,\s]+),", (REPO / "book" / "references.bib").read_text()))


def _headings(nb) -> list[str]:
    return [line.lstrip("#").strip().lower() for c in nb.cells if c.cell_type == "markdown"
            for line in c.source.splitlines() if line.startswith("#")]


def test_every_listed_chapter_exists():
    missing = [nb for nb in NOTEBOOKS if not (REPO / f"{nb}.ipynb").is_file()]
    assert not missing, f"listed in _toc.yml but not in the repository: {missing}"


@pytest.fixture(params=[nb for nb in NOTEBOOKS if (REPO / f"{nb}.ipynb").is_file()])
def chapter(request):
    return request.param, nbformat.read(REPO / f"{request.param}.ipynb", as_version=4)


def test_opening_states_section_objectives_and_time(chapter):
    name, nb = chapter
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), f"{name}: must open with a title"
    head = first.source.lower()
    assert "{cite}" in first.source or "§" in first.source, f"{name}: the opening names no paper section"
    assert re.search(r"objectives|you will learn|after this chapter you", head), \
        f"{name}: no learning objectives in the opening cell"
    items = re.findall(r"^\s*\d+\.\s", first.source, flags=re.M)
    assert 3 <= len(items) <= 5, f"{name}: {len(items)} numbered learning objectives (want 3-5)"
    assert "{glue:text}`chapter_time`" in first.source, \
        f"{name}: the opening does not state the chapter's measured time (glue 'chapter_time')"
    assert not re.search(r"about (a|one|two|three|\d+) (minute|second)", head), f"{name}: a typed time estimate"
    last_code = [c for c in nb.cells if c.cell_type == "code"][-1].source
    assert 'glue("chapter_time", CLOCK.summary()' in last_code, f"{name}: the last code cell does not glue the time"


def test_first_code_cell_is_colab_guard_and_versions(chapter):
    name, nb = chapter
    code = next(c for c in nb.cells if c.cell_type == "code").source
    assert '"google.colab" in sys.modules' in code and "%pip install" in code, f"{name}: no Colab install guard"
    assert "print_versions()" in code, f"{name}: first code cell does not print the package versions"


def test_paper_vs_measured_and_full_scale(chapter):
    name, nb = chapter
    heads = _headings(nb)
    assert any("what the paper reports" in h for h in heads), f"{name}: no 'What the paper reports vs what we measured'"
    idx = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                and re.search(r"^#+\s*run it at full scale", c.source, flags=re.M | re.I)), None)
    assert idx is not None, f"{name}: no 'Run it at full scale' section"
    skipped = [c for c in nb.cells[idx:] if c.cell_type == "code" and "skip-execution" in c.metadata.get("tags", [])]
    assert skipped, f"{name}: 'Run it at full scale' has no code cell tagged skip-execution"
    assert any(re.search(r"accelerate launch|sbatch|torchrun|python -m infir_lib", c.source) for c in skipped), \
        f"{name}: the full-scale cell shows no accelerate/Slurm/CLI command"


def test_summary_and_three_hidden_solutions(chapter):
    name, nb = chapter
    heads = _headings(nb)
    assert any(h.startswith("summary") for h in heads), f"{name}: no Summary section"
    assert any(h.startswith("exercises") for h in heads), f"{name}: no Exercises section"
    md = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    _, n_solutions = strip_solutions_text(md, name)
    assert n_solutions >= 3, f"{name}: {n_solutions} solutions (want at least 3 exercises with solutions)"
    for m in re.finditer(r"\{admonition\}\s*Solution[^\n]*\n(?P<opts>(?::[^\n]*\n)*)", md):
        assert ":class: dropdown" in m.group("opts"), f"{name}: a Solution is not hidden (needs ':class: dropdown')"


def test_citations_resolve(chapter):
    name, nb = chapter
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    keys = {k.strip() for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text) for k in group.split(",")}
    missing = sorted(keys - BIB_KEYS)
    assert not missing, f"{name}: cites keys not in book/references.bib: {missing}"


def test_outputs_are_stripped(chapter):
    name, nb = chapter
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{name}: cells {dirty} have stored outputs (store notebooks stripped)"


def test_front_matter_citations_resolve():
    for page in sorted((REPO / "book").glob("*.md")):
        text = page.read_text()
        keys = {k.strip() for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text) for k in group.split(",")}
        assert not keys - BIB_KEYS, f"{page.name}: cites keys not in references.bib: {sorted(keys - BIB_KEYS)}"
