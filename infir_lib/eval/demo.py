"""Chapter 5's demonstrations: how an extractor turns formatting into fake accuracy changes (§5.1.2),
and a pool of code samples with known sandbox verdicts for pass@k.

Everything starts from real items: GSM8K reference solutions (always correct) are re-rendered in the
styles models actually produce, so any accuracy below 100% on them is an extraction error.
"""

from __future__ import annotations

import random
import re
from typing import Callable

from .extract import extract_answer, first_number, is_equivalent
from .harness import MATH_STOPS, cut_at_stops

STYLES = ("gsm8k ####", "the answer is", "boxed", "dollars and LaTeX", "run-on (next question)")


def _reasoning(answer: str) -> str:
    """The reference solution without its ``#### N`` line and without GSM8K's <<a*b=c>> annotations."""
    body = answer.rsplit("####", 1)[0].strip()
    return re.sub(r"<<[^>]*>>", "", body)


def render(row: dict, style: str, next_question: str = "", value: str | None = None) -> str:
    """A model-like reply to a GSM8K ``row`` in one of :data:`STYLES` (final answer ``value``, default the true one)."""
    v = row["final"] if value is None else value
    body = _reasoning(row["answer"])
    if style == "gsm8k ####":
        return f"{body}\n#### {v}"
    if style == "the answer is":
        return f"{body}\nThe answer is {v}."
    if style == "boxed":
        return f"{body}\nTherefore, the final answer is $\\boxed{{{v}}}$."
    if style == "dollars and LaTeX":
        return f"{body}\nSo the answer is: $\\${v}$ in total."
    if style == "run-on (next question)":
        return f"{body}\nThe answer is {v}.\n\nQuestion: {next_question}\nAnswer:"
    raise ValueError(f"unknown style {style!r}; styles: {STYLES}")


def _hash_only(text: str) -> str | None:
    m = re.search(r"####\s*(-?[\d,\.]+)", text)
    return m.group(1).replace(",", "") if m else None


def _last_number(text: str) -> str | None:
    nums = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
    return nums[-1].replace(",", "") if nums else None


# name -> extractor; the last two are the book's (with and without cutting at stop strings)
EXTRACTORS: dict[str, Callable[[str], str | None]] = {
    "first number": first_number,
    "'####' only": _hash_only,
    "last number": _last_number,
    "extract_answer": extract_answer,
    "extract_answer + stops": lambda t: extract_answer(cut_at_stops(t, MATH_STOPS)),
}


def extraction_table(rows: list[dict], seed: int = 0) -> list[dict]:
    """For every style x extractor: the share of (correct) reference replies scored correct."""
    rng = random.Random(seed)
    nexts = [rows[rng.randrange(len(rows))]["question"] for _ in rows]
    out = []
    for style in STYLES:
        replies = [render(r, style, nq) for r, nq in zip(rows, nexts)]
        rec = {"style": style}
        for name, fn in EXTRACTORS.items():
            rec[name] = sum(is_equivalent(fn(t), r["final"]) for t, r in zip(replies, rows)) / len(rows)
        out.append(rec)
    return out


def drifting_checkpoints(rows: list[dict], true_accuracy: float = 0.6, n_checkpoints: int = 8, seed: int = 0):
    """Simulated checkpoints whose *true* accuracy is fixed while their answer format drifts.

    Checkpoint t answers a fixed ``true_accuracy`` share of the items right (the same items every
    time, wrong answers are off by a few units) but writes a growing share of its replies in the
    ``boxed`` style instead of ``#### N`` (as a model does when math data with LaTeX enters training).
    Returns per checkpoint the measured accuracy under every extractor.
    """
    rng = random.Random(seed)
    right = [rng.random() < true_accuracy for _ in rows]
    wrong_value = [str(int(float(r["final"])) + rng.choice([-3, -2, -1, 1, 2, 3])) if "." not in r["final"]
                   else r["final"] + "1" for r in rows]
    order = list(range(len(rows)))
    rng.shuffle(order)
    curves = []
    for t in range(n_checkpoints):
        boxed_share = t / max(1, n_checkpoints - 1) * 0.9
        boxed = set(order[: int(boxed_share * len(rows))])
        replies = [render(r, "boxed" if i in boxed else "gsm8k ####", value=r["final"] if right[i] else wrong_value[i])
                   for i, r in enumerate(rows)]
        rec = {"checkpoint": t, "boxed share": boxed_share, "true accuracy": sum(right) / len(rows)}
        for name in ("first number", "'####' only", "extract_answer"):
            fn = EXTRACTORS[name]
            rec[name] = sum(is_equivalent(fn(x), r["final"]) for x, r in zip(replies, rows)) / len(rows)
        curves.append(rec)
    return curves


# Attacks for the sandbox's verdict table. Run them ONLY with the bubblewrap backend: under the rlimit
# fallback (as root) a fork bomb is not stopped and a program can delete system files or kill its parent.
HOSTILE_PROGRAMS = {
    "infinite loop": "while True:\n    pass\n",
    "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "memory hog": "blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))\n",
    "huge output": "while True:\n    print('spam' * 1000)\n",
    "recursion bomb": "def f(n):\n    return f(n + 1)\nf(0)\n",
    "delete outside scratch": "import shutil\nshutil.rmtree('/usr')\n",
    "read parent's secrets": "import os\nprint(open('/proc/1/environ').read() or os.environ.get('HF_TOKEN', 'no token visible'))\n",
    "open a socket": "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\n",
    "kill the parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
    "os._exit(0) before the tests": "import os\nos._exit(0)\n",
    # forging a pass: patch the runner, or return an object that equals everything
    "patch the runner's _run": "import sys\nsys.modules['__main__']._run = lambda name: None\n",
    "always-equal answer": ("class Yes:\n    def __eq__(self, other):\n        return True\n"
                            "def candidate(*a):\n    return Yes()\n"),
}
# The tests the forging programs are run against (they must fail however the program behaves).
HOSTILE_TESTS = {"os._exit(0) before the tests": "assert False, 'the tests must run'",
                 "patch the runner's _run": "assert False, 'the tests must run'",
                 "always-equal answer": "assert candidate(1) == 2"}
