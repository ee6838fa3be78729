"""Instruction evolution (InfiR §3.1, Figure 2; in the spirit of WizardLM's Evol-Instruct).

Each operator returns a new, harder instruction and leaves the original alone:

- ``add_step``: one more operation, so one more reasoning step;
- ``add_constraint``: one more requirement the response has to meet;
- ``concretize``: a concrete setting (place, time) in place of a bare statement;
- ``deepen``: a deeper operation (a multiplication) in place of the first addition or subtraction.

At full scale the same operators are prompts for an instruct LLM (``prompts/evolve_*.txt``).
"""

from __future__ import annotations

import random
from typing import Callable

from .instructions import (CODE_CONSTRAINTS, DAYS, MATH_CONSTRAINTS, PLACES, CodeInstruction, MathInstruction,
                           _math_op, copy)


def add_step(ins, rng: random.Random):
    new = copy(ins, "+s")
    if isinstance(new, MathInstruction):
        new.ops.append(_math_op(rng, new.answer, False))
    else:
        op = rng.choice(["+", "-", "*"])
        new.ops.append((op, rng.randint(2, 3) if op == "*" else rng.randint(1, 9)))
    new.history.append("add_step")
    return new


def add_constraint(ins, rng: random.Random):
    new = copy(ins, "+c")
    pool = [c for c in (MATH_CONSTRAINTS if isinstance(new, MathInstruction) else CODE_CONSTRAINTS)
            if c not in new.constraints]
    if not pool:
        return None  # nothing left to add: counted as a failed evolution
    new.constraints.append(rng.choice(pool))
    new.history.append("add_constraint")
    return new


def concretize(ins, rng: random.Random):
    if ins.context:
        return None
    new = copy(ins, "+z")
    new.context = f"{rng.choice(PLACES)} {rng.choice(DAYS)}" if isinstance(new, MathInstruction) \
        else rng.choice(["for a shop's price list", "for a game score", "for a school report"])
    new.history.append("concretize")
    return new


def deepen(ins, rng: random.Random):
    idx = [i for i, (op, _) in enumerate(ins.ops) if op in "+-"]
    if not idx:
        return None
    new = copy(ins, "+d")
    new.ops[idx[0]] = ("*", rng.randint(2, 3))
    if isinstance(new, MathInstruction):  # keep later subtractions from going below one
        v, fixed = new.start, []
        for op, k in new.ops:
            if op == "-" and v <= 1:
                op = "+"
            if op == "-":
                k = min(k, v - 1)
            v = v + k if op == "+" else v - k if op == "-" else v * k
            fixed.append((op, k))
        new.ops = fixed
    new.history.append("deepen")
    return new


OPERATORS: dict[str, Callable] = {"add_step": add_step, "add_constraint": add_constraint, "concretize": concretize,
                                  "deepen": deepen}


def evolve(instructions: list, ops: list[str], per_seed: int, seed: int) -> tuple[list, dict]:
    """Each seed plus ``per_seed`` evolved variants (operators drawn from ``ops``, applied in a chain).

    Returns the instructions and counts: attempted, produced, failed (an operator that does not
    apply, e.g. ``deepen`` on an all-multiplication task) per operator.
    """
    unknown = sorted(set(ops) - set(OPERATORS))
    if unknown:
        raise ValueError(f"unknown evolution operator(s) {unknown}; known: {sorted(OPERATORS)}")
    rng = random.Random(seed)
    out, counts = [], {"attempted": 0, "produced": 0, "failed": 0, "by_operator": {op: 0 for op in ops}}
    for ins in instructions:
        out.append(ins)
        current = ins
        for _ in range(per_seed):
            op = rng.choice(ops)
            counts["attempted"] += 1
            new = OPERATORS[op](current, rng)
            if new is None:
                counts["failed"] += 1
                continue
            counts["produced"] += 1
            counts["by_operator"][op] += 1
            out.append(new)
            current = new
    return out, counts


__all__ = ["OPERATORS", "add_step", "add_constraint", "concretize", "deepen", "evolve", "CodeInstruction",
           "MathInstruction"]
