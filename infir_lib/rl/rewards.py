"""Rule-based rewards for GRPO, as pure functions ``f(completions, **kwargs) -> list[float]``.

This is open-r1's design: each reward is a plain function of the sampled completions and of the
dataset's extra columns (TRL passes every column it does not consume, e.g. ``solution`` and
``answer_type``, as keyword lists aligned with ``completions``). A YAML names the rewards and their
weights; :func:`get_reward_funcs` turns the names into functions. Nothing here needs a model, so
every checker is unit-tested on hand-written outputs, adversarial ones included.

The answer checkers follow Curr-ReFT's released code:

- ``yes_no``: the extracted answer must be exactly ``yes`` or ``no`` and equal the truth;
- ``choice``: option letters are extracted, de-duplicated and compared with the true set exactly
  (classification items may have several right options; listing extra options is wrong);
- ``math``: symbolic equivalence with math-verify;
- ``iou``: a box ``[x1, y1, x2, y2]`` counts when IoU with the truth is above 0.5;
- ``label_set``: |P ∩ G| / |P ∪ G| over label sets.

``accuracy`` dispatches on each row's ``answer_type``, which is what makes the reward
*difficulty-aware*: the same completion is judged more strictly as the curriculum moves from a
yes/no judgement to a choice among options to an open answer.

Adversarial outputs are scored conservatively and on purpose: a completion with more than one
``<answer>`` block gets accuracy 0 (a policy must not be able to hedge by listing several
answers), a missing tag gets format 0, and a malformed box gets IoU 0.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from ..config import ConfigError

RewardFunc = Callable[..., list[float]]

THINK_ANSWER = re.compile(r"^\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*$", re.DOTALL)
ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
NUMBER = r"[-+]?\d+(?:\.\d+)?"
BOX = re.compile(rf"\[\s*({NUMBER})\s*,\s*({NUMBER})\s*,\s*({NUMBER})\s*,\s*({NUMBER})\s*\]")
ANSWER_TYPES = ("math", "yes_no", "choice", "box", "labels")


def completion_text(completion: Any) -> str:
    """The text of one completion: a string (standard format) or a list of messages (conversational)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        parts = []
        for message in completion:
            content = message.get("content", "") if isinstance(message, dict) else message
            if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            parts.append(str(content))
        return "".join(parts)
    if isinstance(completion, dict):
        return completion_text([completion])
    raise TypeError(f"a completion must be a string or a list of messages, got {type(completion).__name__}")


def extract_answer(text: str) -> str | None:
    """The content of the single ``<answer>…</answer>`` block; ``None`` if there is none or several."""
    found = ANSWER.findall(text)
    if len(found) != 1:
        return None
    return found[0].strip()


def _check_lengths(name: str, completions: list, **columns) -> None:
    for key, values in columns.items():
        if values is None:
            raise ValueError(f"reward '{name}' needs the dataset column '{key}' (it was not passed)")
        if len(values) != len(completions):
            raise ValueError(f"reward '{name}': column '{key}' has {len(values)} values for {len(completions)} completions")


# --- format rewards ---------------------------------------------------------------------------

def format_reward(completions: list, answer_type: list[str] | None = None, **kwargs) -> list[float]:
    """1 if the completion is exactly ``<think>…</think> <answer>…</answer>`` (each tag once), else 0.

    Rows whose ``answer_type`` is ``box`` also need a box ``[x1,y1,x2,y2]`` inside the answer
    (Curr-ReFT's detection format).
    """
    out = []
    for i, c in enumerate(completions):
        text = completion_text(c)
        m = THINK_ANSWER.match(text)
        ok = bool(m) and all(text.count(tag) == 1 for tag in ("<think>", "</think>", "<answer>", "</answer>"))
        if ok and answer_type is not None and answer_type[i] == "box":
            ok = BOX.search(m.group("answer")) is not None
        out.append(1.0 if ok else 0.0)
    return out


def tag_count_reward(completions: list, **kwargs) -> list[float]:
    """Partial credit, 0.25 per tag that appears exactly once (open-r1's shaping term).

    An untrained policy almost never writes the whole format; this gives GRPO a non-zero spread of
    rewards inside a group, hence a gradient, before the first fully formatted answer appears.
    """
    out = []
    for c in completions:
        text = completion_text(c)
        out.append(sum(0.25 for tag in ("<think>", "</think>", "<answer>", "</answer>") if text.count(tag) == 1))
    return out


# --- answer checkers on extracted strings (pure, reused by evaluation) ------------------------------

def normalise_yes_no(answer: str | None) -> str | None:
    if answer is None:
        return None
    a = answer.strip().strip(".!").strip().lower()
    return a if a in ("yes", "no") else None


def choice_letters(answer: str | None) -> str | None:
    """Option letters in order of first appearance, de-duplicated: ``"B, A, B"`` -> ``"BA"``."""
    if answer is None:
        return None
    letters = re.findall(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])", answer)
    seen: list[str] = []
    for letter in letters:
        if letter not in seen:
            seen.append(letter)
    return "".join(seen) or None


def math_equal(answer: str | None, gold: str) -> bool:
    """Symbolic equivalence (math-verify); falls back to exact string equality if parsing fails."""
    if answer is None or not answer.strip():
        return False
    from math_verify import parse, verify  # heavy: math-verify (sympy), only for a non-empty math answer

    try:
        gold_parsed = parse(gold if "$" in gold else f"${gold}$")
        pred_parsed = parse(answer if "$" in answer else f"${answer}$")
        if gold_parsed and pred_parsed:
            return bool(verify(gold_parsed, pred_parsed))
    except Exception:  # math-verify raises on odd input; a wrong answer, not a crash
        pass
    return answer.strip() == gold.strip()


def parse_box(answer: str | None) -> list[float] | None:
    """The one box ``[x1, y1, x2, y2]`` in an answer; ``None`` if absent, several, or degenerate."""
    if answer is None:
        return None
    boxes = BOX.findall(answer)
    if len(boxes) != 1:
        return None
    x1, y1, x2, y2 = (float(v) for v in boxes[0])
    if x2 <= x1 or y2 <= y1:
        return None
    return [x1, y1, x2, y2]


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def label_set(text: str | None) -> set[str]:
    if text is None:
        return set()
    parts = re.split(r",|;|\band\b|\n", text.lower())
    return {p.strip().strip(".").strip() for p in parts if p.strip().strip(".").strip()}


def _gold_box(gold: str) -> list[float]:
    try:
        box = json.loads(gold)
    except json.JSONDecodeError as e:
        raise ValueError(f"gold box {gold!r} is not a JSON list [x1, y1, x2, y2]") from e
    if not (isinstance(box, list) and len(box) == 4):
        raise ValueError(f"gold box {gold!r} must have four numbers")
    return [float(v) for v in box]


def score_answer(answer: str | None, gold: str, answer_type: str) -> float:
    """Accuracy of one extracted answer against the truth, by answer type (Curr-ReFT's rules)."""
    if answer_type == "yes_no":
        return float(normalise_yes_no(answer) is not None and normalise_yes_no(answer) == gold.strip().lower())
    if answer_type == "choice":
        letters = choice_letters(answer)
        return float(letters is not None and "".join(sorted(letters)) == "".join(sorted(set(gold.strip().upper()))))
    if answer_type == "math":
        return float(math_equal(answer, gold))
    if answer_type == "box":
        pred = parse_box(answer)
        return float(pred is not None and iou(pred, _gold_box(gold)) > 0.5)
    if answer_type == "labels":
        p, g = label_set(answer), label_set(gold)
        return len(p & g) / len(p | g) if (p | g) and answer is not None else 0.0
    raise ValueError(f"unknown answer_type {answer_type!r}; known: {list(ANSWER_TYPES)}")


# --- accuracy rewards (registry entries) ----------------------------------------------------------

def _typed_accuracy(kind: str) -> RewardFunc:
    def reward(completions: list, solution: list[str] | None = None, **kwargs) -> list[float]:
        _check_lengths(kind, completions, solution=solution)
        return [score_answer(extract_answer(completion_text(c)), str(s), kind) for c, s in zip(completions, solution)]

    reward.__name__ = f"{kind}_accuracy"
    reward.__doc__ = f"Accuracy of the ``<answer>`` block as a {kind!r} answer against the ``solution`` column."
    return reward


def accuracy_reward(completions: list, solution: list[str] | None = None, answer_type: list[str] | None = None,
                    **kwargs) -> list[float]:
    """Difficulty-aware accuracy: each row is checked by the rule of its ``answer_type``."""
    _check_lengths("accuracy", completions, solution=solution, answer_type=answer_type)
    return [score_answer(extract_answer(completion_text(c)), str(s), t)
            for c, s, t in zip(completions, solution, answer_type)]


REWARDS: dict[str, RewardFunc] = {
    "format": format_reward,
    "tag_count": tag_count_reward,
    "accuracy": accuracy_reward,
    "math": _typed_accuracy("math"),
    "yes_no": _typed_accuracy("yes_no"),
    "choice": _typed_accuracy("choice"),
    "iou": _typed_accuracy("box"),
    "label_set": _typed_accuracy("labels"),
}


def register_reward(name: str, fn: RewardFunc) -> None:
    """Add a reward to the registry (a chapter exercise adds a length penalty this way)."""
    REWARDS[name] = fn


def get_reward_funcs(names: list[str], weights: list[float] | None = None) -> tuple[list[RewardFunc], list[float]]:
    """Functions and weights for the names a config lists; an unknown name is a :class:`ConfigError`."""
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise ConfigError(f"unknown reward(s) {unknown}; known rewards: {sorted(REWARDS)}")
    weights = list(weights) if weights else [1.0] * len(names)
    if len(weights) != len(names):
        raise ConfigError(f"rewards has {len(names)} names but reward_weights has {len(weights)} values")
    return [REWARDS[n] for n in names], weights


def total_reward(completions: list, names: list[str], weights: list[float] | None = None, **columns) -> list[float]:
    """The weighted sum GRPO uses (``sum_then_normalize``), for evaluation and rejection sampling."""
    funcs, weights = get_reward_funcs(names, weights)
    totals = [0.0] * len(completions)
    for f, w in zip(funcs, weights):
        for i, r in enumerate(f(completions, **columns)):
            totals[i] += w * r
    return totals
