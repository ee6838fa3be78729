"""Answer extraction from free text, and answer equivalence through ``math-verify``.

Why this matters (InfiR §5.1.2): the authors' early GSM8K/MATH curves "lacked consistency" until they
found that the evaluation framework extracted the base model's answers wrongly. A model that writes
``#### 42``, ``\\boxed{42}``, ``The answer is $42$.`` or ``42 apples`` has given the same answer; a
comparer that reads the first number, or compares strings, scores them differently and turns
formatting drift during training into fake accuracy changes.

:func:`extract_answer` looks for the answer in the order a careful grader would: the last
``\\boxed{}``, then ``####``, then "the (final) answer is", then "Answer:", then the last number.
:func:`toy_answer` is the same rule for the toy world's integer answers, without the bare-number fallback.
:func:`is_equivalent` compares with ``math-verify`` (sympy underneath: ``1/2`` = ``0.5`` =
``\\frac{1}{2}``), not with a hand-written comparer. :func:`first_number` is the faulty extractor
the notebook uses as a foil.
"""

from __future__ import annotations

import re
import threading

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+"
_NUMBER_RE = re.compile(_NUMBER)
_MARKERS = tuple(re.compile(p, re.IGNORECASE) for p in (r"####\s*", r"(?:final answer|the answer)\s*(?:is|=|:)\s*:?\s*",
                                                         r"(?:^|(?<=\s))answer\s*:\s*"))


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced; ``None`` if absent."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    if not starts:
        m = re.findall(r"\\boxed ([^\s$]+)", text)  # \boxed 5
        return m[-1] if m else None
    i = starts[-1]
    depth, j = 1, i
    while j < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        j += 1
    return text[i:j - 1] if depth == 0 else None


def _clean(ans: str) -> str:
    ans = ans.strip()
    ans = re.sub(r"^\$+|\$+$", "", ans).strip()              # $42$
    ans = re.sub(r"^\\\(|\\\)$", "", ans).strip()             # \(42\)
    ans = re.sub(r"\\text\{\s*([^}]*)\}", r"\1", ans)        # \text{...}
    ans = ans.replace("\\$", "").replace("\\!", "").replace("\\,", "")
    ans = re.sub(r"^\\(?:dfrac|tfrac)", r"\\frac", ans)
    ans = ans.rstrip(" .;:!").strip()
    ans = re.sub(r"^\$+|\$+$", "", ans).strip()
    # "1,234" -> "1234" (a thousands separator, not a tuple)
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", ans):
        ans = ans.replace(",", "")
    return ans


def _leading_value(s: str) -> str:
    """From "42 apples." keep "42"; from "$\\frac{1}{2}$ of it" keep the LaTeX; else the first clause."""
    s = s.replace("\\$", "").strip()  # an escaped dollar is a currency sign, not LaTeX
    m = re.match(r"\$([^$]+)\$", s)
    if m:
        return m.group(1)
    m = re.match(r"\\\((.+?)\\\)", s)
    if m:
        return m.group(1)
    m = re.match(r"(\\[a-z]*frac\{[^{}]*\}\{[^{}]*\})", s)
    if m:
        return m.group(1)
    m = re.match(r"\\?\$?\s*(" + _NUMBER + r")", s)
    if m:
        return m.group(1)
    return re.split(r"[\n]|\.\s|\.$", s)[0]


def extract_answer(text: str | None, number_fallback: bool = True) -> str | None:
    """The final answer written in ``text``, or ``None`` when there is none.

    Order: last ``\\boxed{}``; ``#### X``; "the (final) answer is X"; "Answer: X"; the last number
    (integers, decimals, ``3/4``, thousands separators). Within each form the last occurrence counts:
    a model that corrects itself is graded on its correction. ``number_fallback=False`` drops the last
    step (a reply must state its answer; :func:`toy_answer`).
    """
    if not text:
        return None
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return _clean(boxed)
    for marker in _MARKERS:
        last = None
        for m in marker.finditer(text):  # the last marker of this form; its value runs to the end of its line
            last = m
        if last is not None:
            value = _clean(_leading_value(text[last.end():].split("\n", 1)[0]))
            if value:
                return value
    numbers = _NUMBER_RE.findall(text) if number_fallback else []
    if numbers:
        return _clean(re.sub(r"\s+", "", numbers[-1]))
    return None


def toy_answer(text: str | None) -> int | None:
    """The toy world's scoring rule, used by every toy score in the book: the integer of the answer the reply
    states (:func:`extract_answer` without the bare-number fallback, so the last ``Answer: N`` counts).

    Every toy solution ends with ``Answer: N``; writing that line is part of what pre-training and SFT
    teach, so a reply that never states an answer scores 0 even if a number in it is right. Cut a base
    model's continuation at the end of its line first (it goes on to invent the next question).
    """
    value = extract_answer(text, number_fallback=False)
    if value is None or not re.fullmatch(r"-?\d+", value):
        return None
    return int(value)


def first_number(text: str | None) -> str | None:
    """The faulty extractor: the first number in the text (what a careless harness does)."""
    if not text:
        return None
    m = _NUMBER_RE.search(text)
    return _clean(m.group(0)) if m else None


def _parse(s: str):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse
    timeout = 5 if threading.current_thread() is threading.main_thread() else None  # math-verify uses SIGALRM
    cfg = [LatexExtractionConfig(), ExprExtractionConfig()]
    s = s.strip()
    if not s.startswith("$") and not s.startswith("\\boxed"):
        parsed = parse(f"${s}$", extraction_config=cfg, parsing_timeout=timeout)
        if parsed:
            return parsed
    return parse(s, extraction_config=cfg, parsing_timeout=timeout)


def is_equivalent(pred: str | None, gold: str | None) -> bool:
    """Whether the extracted ``pred`` means the same as ``gold`` (``math_verify.verify`` on both parses).

    Exact string equality short-cuts; ``None`` or an empty prediction is never correct.
    """
    if pred is None or gold is None or not str(pred).strip():
        return False
    pred, gold = str(pred).strip(), str(gold).strip()
    if _clean(pred) == _clean(gold):
        return True
    from math_verify import verify
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    g, p = _parse(_clean(gold)), _parse(_clean(pred))
    if not g or not p:
        return False
    return bool(verify(g, p, timeout_seconds=timeout))


def score_math(completion: str, gold: str) -> dict:
    """Extract and compare in one go: ``{"pred", "correct"}`` (what the harness records per item)."""
    pred = extract_answer(completion)
    return {"pred": pred, "correct": is_equivalent(pred, gold)}
