"""The blind baseline: the best accuracy an answerer reaches without looking at the input it is asked
about. Per distinct question text it always gives the answer most common among the items asking it,
an upper bound for any model that ignores the image. Chapter 6's perception gate and chapter 7's
visual-math arms are compared against it."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Iterable


def fixed_answer_accuracy(pairs: Iterable[tuple[str, str]]) -> float:
    """Share of ``(question, answer)`` pairs a fixed answer per question gets right."""
    by_question: dict[str, Counter] = defaultdict(Counter)
    n = 0
    for question, answer in pairs:
        by_question[question][answer] += 1
        n += 1
    if not n:
        raise ValueError("fixed_answer_accuracy: no items")
    return sum(c.most_common(1)[0][1] for c in by_question.values()) / n
