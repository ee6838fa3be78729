"""The competence gate: can a base model compute at all before we post-train it?

SFT and RL refine what pre-training put in (InfiR §2, §3). A base model that cannot do one-step
arithmetic gives the later chapters nothing to refine, and their comparisons measure noise at the
floor. So chapters 4 and 7 check, before they start, that the model they start from passes this gate:
zero-shot, greedy, on held-out word problems whose difficulty is a dial (number of steps, size of the
numbers), it must solve at least ``min_first`` of the easiest level and get no better as levels get
harder (up to ``slack`` of sampling noise).

Held out by construction: the items come from the "heldout" split of :mod:`infir_lib.data.arith`
(a hash of the question), which no training source ever draws from.

Answer rule (the book's one toy rule, for every level): the reply is cut at its first line break (the
solution is one line, ``7+3=10. Answer: 10``), and its answer is :func:`infir_lib.eval.extract.toy_answer`
of that line: the integer the line states after ``Answer:``. Text the model goes on to write (a next
"Question:") does not count, and neither does a bare number without ``Answer:``.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


from .. import artifacts, stages
from ..data.arith import format_prompt, make_problem
from ..models import load_model, load_tokenizer
from .extract import toy_answer
from .generate import generate

GATE_LEVELS = (1, 2, 3, 4)  # number of steps; numbers as in the training data (start 2-9, operands 1-9)
GATE_SEED = 0
MIN_FIRST = 0.80   # one-step accuracy the base must reach
SLACK = 0.05       # a harder level may beat an easier one by at most this much (200-item sampling noise)


class CompetenceError(RuntimeError):
    """The model a chapter starts from fails the competence gate."""


def _level_kwargs(level) -> dict:
    """A level is a step count, or a dict of :func:`make_problem` arguments (``n_steps``, ``max_start``...)."""
    if isinstance(level, int):
        return {"n_steps": level}
    if isinstance(level, dict) and "n_steps" in level:
        return dict(level)
    raise ValueError(f"a level is a number of steps or a dict with 'n_steps', got {level!r}")


def level_name(level) -> str:
    kw = _level_kwargs(level)
    extra = ", ".join(f"{k}={v}" for k, v in kw.items() if k != "n_steps")
    return f"{kw['n_steps']} step{'s' if kw['n_steps'] > 1 else ''}" + (f" ({extra})" if extra else "")


def heldout_items(level, n: int = 200, seed: int = GATE_SEED) -> list:
    """``n`` held-out problems of one level (seeded; the seed also depends on the level)."""
    kw = _level_kwargs(level)
    rng = random.Random(f"competence-{seed}-{sorted(kw.items())}")
    return [make_problem(rng, split="heldout", **kw) for _ in range(n)]


def reply_answer(reply: str) -> int | None:
    """The module's answer rule: :func:`~infir_lib.eval.extract.toy_answer` of the reply's first line."""
    return toy_answer(reply.split("\n", 1)[0])


def greedy_replies(model, tokenizer, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
    """Greedy continuations of BOS + each prompt (the library's batched generator)."""
    return generate(model, tokenizer, list(prompts), max_new_tokens=max_new_tokens, batch_size=max(1, len(prompts)))


def _first_int(text: str) -> int | None:
    m = re.search(r"\d+", text)
    return int(m.group(0)) if m else None


def _max_new_tokens(kw: dict) -> int:
    # "a+b=c. " is at most 9 single-digit tokens per step, plus " Answer: ccc"
    return 10 * kw["n_steps"] + 12


def competence_curve(model_dir, levels: Sequence = GATE_LEVELS, n: int = 200, seed: int = GATE_SEED,
                     tokenizer=None) -> list[dict]:
    """Zero-shot greedy accuracy per level on ``n`` held-out problems each.

    ``model_dir`` is a saved model folder (or a loaded model, with ``tokenizer``). Returns one row per
    level: ``level``, ``n``, ``accuracy``, ``starts_right`` (the share of replies whose first step
    starts from the question's own number) and one example reply.
    """
    if isinstance(model_dir, (str, Path)):
        model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    else:
        model = model_dir
        if tokenizer is None:
            raise ValueError("competence_curve: pass tokenizer= with a loaded model")
    was_training = model.training
    model.eval()
    rows = []
    try:
        for level in levels:
            kw = _level_kwargs(level)
            items = heldout_items(level, n, seed)
            replies = greedy_replies(model, tokenizer, [format_prompt(p.question) for p in items],
                                     _max_new_tokens(kw))
            correct = [reply_answer(r) == p.answer for r, p in zip(replies, items)]
            starts = [_first_int(r) == _first_int(p.question) for r, p in zip(replies, items)]
            rows.append({"level": level_name(level), "n_steps": kw["n_steps"], "n": n,
                         "accuracy": sum(correct) / n, "starts_right": sum(starts) / n,
                         "example": f"{items[0].question} -> {replies[0].split(chr(10))[0].strip()}"})
    finally:
        model.train(was_training)
    return rows


@dataclass
class GateResult:
    model: str
    curve: list[dict]
    passed: bool
    reasons: list[str]

    @property
    def accuracies(self) -> list[float]:
        return [r["accuracy"] for r in self.curve]

    def message(self) -> str:
        nums = ", ".join(f"{r['level']}: {r['accuracy']:.0%}" for r in self.curve)
        verdict = "passes" if self.passed else "FAILS (" + "; ".join(self.reasons) + ")"
        return f"competence gate of {self.model}: {verdict} [{nums}]"


def judge(curve: list[dict], min_first: float = MIN_FIRST, slack: float = SLACK) -> tuple[bool, list[str]]:
    """Pass/fail of a curve: the first level reaches ``min_first``; no later level beats an earlier one by > ``slack``."""
    if not curve:
        raise ValueError("an empty competence curve cannot be judged")
    acc = [r["accuracy"] for r in curve]
    reasons = []
    if acc[0] < min_first:
        reasons.append(f"{curve[0]['level']} accuracy {acc[0]:.0%} < {min_first:.0%}")
    for i in range(1, len(acc)):
        if acc[i] > min(acc[:i]) + slack:
            reasons.append(f"{curve[i]['level']} ({acc[i]:.0%}) beats an easier level by more than {slack:.0%}")
    return not reasons, reasons


def check_gate(model_dir, levels: Sequence = GATE_LEVELS, n: int = 200, seed: int = GATE_SEED,
               min_first: float = MIN_FIRST, slack: float = SLACK, enforce: bool = False,
               name: str | None = None, curve: list[dict] | None = None) -> GateResult:
    """Measure (or take ``curve``) and judge; ``enforce=True`` raises :class:`CompetenceError` on a failure."""
    curve = curve if curve is not None else competence_curve(model_dir, levels, n, seed)
    passed, reasons = judge(curve, min_first, slack)
    label = name or (Path(model_dir).parent.name if isinstance(model_dir, (str, Path)) else type(model_dir).__name__)
    result = GateResult(label, curve, passed, reasons)
    if enforce and not passed:
        raise CompetenceError(result.message() + ": the later chapters would compare methods at the floor. "
                              "Train the base longer or on more reasoning-rich data (configs/toy/pretrain.yaml).")
    return result


def preset_gate(preset: str = "configs/toy/pretrain.yaml", levels: Sequence = GATE_LEVELS, n: int = 200,
                seed: int = GATE_SEED, enforce: bool = True) -> GateResult:
    """The gate of the model a pre-training/annealing preset makes (both cached): what chapters 4 and 7 call.

    The curve is an artifact keyed by the model's own cache key, so it is measured once per model and
    the later chapters read it back; ``enforce`` (default) raises :class:`CompetenceError` on a failure.
    """
    model_stage = stages.stage("pretrain")
    result = model_stage.run(preset)
    spec = {"model": model_stage.key(model_stage.load(preset)),
            "levels": [_level_kwargs(lv) for lv in levels], "n": n, "seed": seed, "rule": "first-line toy_answer"}

    def build(folder: Path) -> None:
        (folder / "curve.json").write_text(json.dumps(competence_curve(result.model_dir, levels, n, seed), indent=1))

    curve = json.loads((artifacts.cached("gate", spec, build, name="competence") / "curve.json").read_text())
    return check_gate(result.model_dir, levels, n, seed, enforce=enforce, name=preset, curve=curve)


__all__ = ["GATE_LEVELS", "MIN_FIRST", "SLACK", "CompetenceError", "GateResult", "heldout_items", "reply_answer",
           "competence_curve", "judge", "check_gate", "preset_gate"]
