"""Build a student edition of the book: the same pages with every exercise solution removed.

Chapters hide their solutions in dropdown admonitions (MyST)::

    ```{admonition} Solution
    :class: dropdown
    ...
    ```

A dropdown only hides the answer until a click; a teacher who wants students to work without it
needs the answer gone from the files. This module copies a book tree (or a single ``.md`` /
``.ipynb`` file) and deletes every admonition whose title starts with "Solution" (the ``{dropdown}``
directive of sphinx-design too), and every notebook cell tagged ``solution``. It counts what it
removed per file and refuses to guess: a solution block that is never closed is an error naming the
file and line, not a silently truncated page.

Command line::

    python -m infir_lib.book.student_edition SRC DST [--force]

``SRC`` is the repository (or ``book/`` / ``notebooks/`` or one file); ``DST`` a new folder (or
file). Build the HTML of the student edition with ``jupyter-book build DST``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

# An opening fence of a solution block: backticks or colons (MyST colon_fence), then the directive.
_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|:{3,})\s*\{(?P<directive>admonition|dropdown)\}\s*(?P<title>.*)$")
SKIP_DIRS = {".git", ".venv", ".cache", "_build", "_book", "_student-book", "__pycache__", ".ipynb_checkpoints", ".pytest_cache"}
SOLUTION_TAG = "solution"


class UnclosedSolution(ValueError):
    """A solution block whose closing fence is missing."""


@dataclass
class Report:
    """What the stripper did, per file (so nothing is removed without being counted)."""
    removed: dict[str, int] = field(default_factory=dict)
    files: int = 0

    @property
    def total(self) -> int:
        return sum(self.removed.values())


def _is_solution_title(title: str) -> bool:
    return title.strip().lower().startswith("solution")


def strip_solutions_text(text: str, source: str = "<text>") -> tuple[str, int]:
    """Remove solution blocks from MyST markdown; return the new text and how many were removed.

    A block closes at the first line that is only the same fence character, at least as long as the
    opening fence (CommonMark's rule, the one MyST itself uses), so a code block nested inside a
    longer fence stays inside the solution.
    """
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    removed = 0
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i].rstrip("\r\n"))
        if not (m and _is_solution_title(m.group("title"))):
            out.append(lines[i])
            i += 1
            continue
        fence = m.group("fence")
        char, n = fence[0], len(fence)
        j = i + 1
        while j < len(lines):
            s = lines[j].strip()
            if s and set(s) == {char} and len(s) >= n:
                break
            j += 1
        if j == len(lines):
            raise UnclosedSolution(f"{source}:{i + 1}: solution block opened with {fence!r} is never closed")
        removed += 1
        i = j + 1
        # Drop one blank line left behind so pages do not collect gaps.
        if out and not out[-1].strip() and i < len(lines) and not lines[i].strip():
            i += 1
    return "".join(out), removed


def strip_notebook(nb: nbformat.NotebookNode, source: str = "<notebook>") -> int:
    """Strip solutions from a notebook in place; return how many blocks/cells were removed."""
    removed = 0
    kept = []
    for idx, cell in enumerate(nb.cells):
        if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            removed += 1
            continue
        if cell.cell_type == "markdown":
            cell.source, n = strip_solutions_text(cell.source, f"{source} cell {idx}")
            removed += n
        kept.append(cell)
    nb.cells = kept
    return removed


def strip_file(src: Path, dst: Path) -> int:
    """Write the student version of one file; return how many solutions it removed."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.suffix == ".md":
        text, n = strip_solutions_text(src.read_text(encoding="utf-8"), str(src))
        dst.write_text(text, encoding="utf-8")
        return n
    if src.suffix == ".ipynb":
        nb = nbformat.read(src, as_version=4)
        n = strip_notebook(nb, str(src))
        nbformat.write(nb, dst)
        return n
    shutil.copy2(src, dst)
    return 0


def build_student_edition(src: str | Path, dst: str | Path, force: bool = False) -> Report:
    """Copy ``src`` (a folder or one file) to ``dst`` with every solution removed."""
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such file or folder")
    report = Report()
    if src.is_file():
        report.removed[str(src)] = strip_file(src, dst)
        report.files = 1
        return report
    if dst.resolve().is_relative_to(src.resolve()):
        raise ValueError(f"{dst} is inside {src}; choose a destination outside the source tree")
    if dst.exists() and any(dst.iterdir()):
        if not force:
            raise FileExistsError(f"{dst} exists and is not empty (pass --force to replace it)")
        shutil.rmtree(dst)
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in SKIP_DIRS for part in rel.parts) or not path.is_file():
            continue
        n = strip_file(path, dst / rel)
        report.files += 1
        if path.suffix in (".md", ".ipynb"):
            report.removed[rel.as_posix()] = n
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infir_lib.book.student_edition",
                                     description="Copy the book with every exercise solution removed.")
    parser.add_argument("src", help="the repository, a folder of pages, or one .md/.ipynb file")
    parser.add_argument("dst", help="a new folder (or file) for the student edition")
    parser.add_argument("--force", action="store_true", help="replace dst if it exists")
    args = parser.parse_args(argv)
    try:
        report = build_student_edition(args.src, args.dst, force=args.force)
    except (UnclosedSolution, FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"student edition: {e}", file=sys.stderr)
        return 2
    for name, n in sorted(report.removed.items()):
        if n:
            print(f"{name}: removed {n} solution(s)")
    print(f"{report.files} file(s) copied to {args.dst}; {report.total} solution(s) removed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
