"""Toy instructions with structure: arithmetic word problems and small Python-function tasks.

An instruction is kept as data (start value, operations, constraints, context) and rendered to
text, so evolution operators can change it in ways a test can check (one more step, one more
constraint) and the ground truth (answer, unit tests, reference solution) follows automatically.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

from ..data.arith import ITEMS, NAMES, VERBS

# Things a math instruction can require of its answer (each one a checkable demand on the response).
MATH_CONSTRAINTS = ["Show every intermediate total.", "Write one equation per step.",
                    "End with the line 'Answer: N'.", "Do not skip any step."]
CODE_CONSTRAINTS = ["Use one statement per line.", "Do not import any module.", "Name the result y.",
                    "Return an integer."]
PLACES = ["at the market", "at school", "on a trip", "at the fair", "in the park", "at home"]
DAYS = ["on Monday", "on Tuesday", "on Friday", "on Sunday", "in the morning", "in the evening"]
CODE_OPS = {"+": "adds {k}", "-": "subtracts {k}", "*": "multiplies by {k}"}


@dataclass
class MathInstruction:
    """``name`` starts with ``start`` ``item``; ``ops`` is a list of (op, k) applied in order."""

    name: str
    item: str
    start: int
    ops: list[tuple[str, int]]
    constraints: list[str] = field(default_factory=list)
    context: str = ""
    uid: str = ""
    history: list[str] = field(default_factory=list)
    domain: str = "math"

    @property
    def n_steps(self) -> int:
        return len(self.ops)

    def values(self) -> list[int]:
        v, out = self.start, [self.start]
        for op, k in self.ops:
            v = v + k if op == "+" else v - k if op == "-" else v * k
            out.append(v)
        return out

    @property
    def answer(self) -> int:
        return self.values()[-1]

    def step_strings(self) -> list[str]:
        vals = self.values()
        return [f"{vals[i]}{op}{k}={vals[i + 1]}." for i, (op, k) in enumerate(self.ops)]

    @property
    def text(self) -> str:
        s = [f"{self.name} has {self.start} {self.item}{(' ' + self.context) if self.context else ''}."]
        for i, (op, k) in enumerate(self.ops):
            verb = VERBS["*"][0] if op == "*" else VERBS[op][(self.start + i + k) % len(VERBS[op])]
            s.append(f"{self.name} {verb} {k}.")
        s.append(f"How many {self.item} does {self.name} have now?")
        return " ".join(s + self.constraints)

    def reference(self) -> str:
        return " ".join(self.step_strings()) + f" Answer: {self.answer}"


@dataclass
class CodeInstruction:
    """Write ``fname(x)`` applying ``ops`` to x in order; unit tests come from the ops."""

    fname: str
    ops: list[tuple[str, int]]
    constraints: list[str] = field(default_factory=list)
    context: str = ""
    uid: str = ""
    history: list[str] = field(default_factory=list)
    domain: str = "code"

    @property
    def n_steps(self) -> int:
        return len(self.ops)

    def apply(self, x: int) -> int:
        for op, k in self.ops:
            x = x + k if op == "+" else x - k if op == "-" else x * k
        return x

    @property
    def text(self) -> str:
        desc = ", then ".join(CODE_OPS[op].format(k=k) for op, k in self.ops)
        ctx = f" {self.context}" if self.context else ""
        return " ".join([f"Write a Python function {self.fname}(x) that takes x, {desc}, and returns the result{ctx}."]
                        + self.constraints)

    def reference(self) -> str:
        lines = [f"def {self.fname}(x):", "    y = x"]
        lines += [f"    y = y {op} {k}" for op, k in self.ops]
        return "\n".join(lines + ["    return y"])

    def tests(self, inputs: tuple[int, ...] = (0, 1, 5, 12)) -> str:
        return "\n".join(f"assert {self.fname}({x}) == {self.apply(x)}" for x in inputs)


def _math_op(rng: random.Random, value: int, allow_multiply: bool) -> tuple[str, int]:
    ops = ["+", "-"] + (["*"] if allow_multiply else [])
    op = rng.choice(ops)
    if op == "-" and value <= 1:
        op = "+"
    if op == "*":
        return op, rng.randint(2, 3)
    return op, rng.randint(1, 9 if op == "+" else min(9, value - 1) or 1)


def seed_math(rng: random.Random, n_steps: int, uid: str) -> MathInstruction:
    ins = MathInstruction(rng.choice(NAMES), rng.choice(ITEMS), rng.randint(2, 9), [], uid=uid)
    for _ in range(n_steps):
        ins.ops.append(_math_op(rng, ins.answer, False))
    return ins


def seed_code(rng: random.Random, n_steps: int, uid: str) -> CodeInstruction:
    ins = CodeInstruction("solve", [], uid=uid)  # one name: the toy model need not learn to copy names
    for _ in range(n_steps):
        op = rng.choice(["+", "-", "*"])
        ins.ops.append((op, rng.randint(2, 3) if op == "*" else rng.randint(1, 9)))
    return ins


def seed_instructions(n_math: int, n_code: int, seed: int, steps: tuple[int, ...] = (1, 2)) -> list:
    """The seed set: short, simple instructions (the paper's seeds come from Infinity-Instruct)."""
    rng = random.Random(seed)
    out: list = [seed_math(rng, steps[i % len(steps)], f"m{i:04d}") for i in range(n_math)]
    out += [seed_code(rng, steps[i % len(steps)], f"c{i:04d}") for i in range(n_code)]
    return out


def copy(ins, suffix: str):
    new = dataclasses.replace(ins, ops=list(ins.ops), constraints=list(ins.constraints), history=list(ins.history))
    new.uid = f"{ins.uid}{suffix}"
    return new


@dataclass
class TextInstruction:
    """An instruction known only as text (a seed from a dataset, or an LLM's evolution of one)."""

    text: str
    uid: str
    domain: str
    given_domain: str | None = None  # the seed's own label, if it had one
    history: list[str] = field(default_factory=list)
    n_steps: int | None = None
    fname: str | None = None  # any function name will do for the definition rule

    def reference(self) -> None:
        return None
