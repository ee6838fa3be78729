"""Responses: a "step by step" teacher that produces several candidates per instruction.

Toy: a programmatic solver that can be wrong, the way a sampled LLM is: each arithmetic step is
miscalculated with probability ``step_error`` (the error then carries through), some replies skip
the reasoning and give only an answer, and code replies may carry a bug (a wrong constant or
operator) or be needlessly slow (a loop that runs out the sandbox's time limit).
Full: an instruct LLM by hub id (the paper: Qwen-2.5-32B-Instruct), sampled ``n`` times with the
prompts in ``prompts/``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from ..eval.generate import generate
from .instructions import CodeInstruction, MathInstruction

PROMPTS = Path(__file__).parent / "prompts"


def load_prompt(name: str) -> str:
    path = PROMPTS / f"{name}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"prompt {name!r} not found at {path}")
    return path.read_text()


@dataclass
class TeacherArgs:
    step_error: float = 0.25
    no_steps: float = 0.1
    code_bug: float = 0.3
    code_slow: float = 0.1


def math_response(ins: MathInstruction, rng: random.Random, args: TeacherArgs) -> tuple[str, bool]:
    """A step-by-step reply; returns (text, whether the teacher made an error)."""
    v, steps, wrong = ins.start, [], False
    for op, k in ins.ops:
        true = v + k if op == "+" else v - k if op == "-" else v * k
        got = true
        if rng.random() < args.step_error:
            got = true + rng.choice([-2, -1, 1, 2])
            wrong = True
        steps.append(f"{v}{op}{k}={got}.")
        v = got
    if rng.random() < args.no_steps:
        return f"Answer: {v}", wrong
    return " ".join(steps) + f" Answer: {v}", wrong


def code_response(ins: CodeInstruction, rng: random.Random, args: TeacherArgs) -> tuple[str, str]:
    """A code reply; returns (code, kind) with kind in ok / bug / slow."""
    ops = list(ins.ops)
    kind = "ok"
    r = rng.random()
    if r < args.code_bug:
        i = rng.randrange(len(ops))
        op, k = ops[i]
        ops[i] = (op, k + rng.choice([-1, 1])) if rng.random() < 0.5 or op == "*" else ("-" if op == "+" else "+", k)
        kind = "bug"
    elif r < args.code_bug + args.code_slow:
        kind = "slow"
    lines = [f"def {ins.fname}(x):", "    y = x"]
    if kind == "slow":  # correct but needlessly slow: counts up one at a time
        lines += ["    n = 0", "    while n < 10 ** 9:", "        n += 1"]
    lines += [f"    y = y {op} {k}" for op, k in ops]
    return "\n".join(lines + ["    return y"]), kind


def toy_candidates(ins, n: int, rng: random.Random, args: TeacherArgs) -> list[dict]:
    out = []
    for j in range(n):
        if isinstance(ins, MathInstruction):
            text, wrong = math_response(ins, rng, args)
            out.append({"response": text, "teacher_error": wrong})
        else:
            code, kind = code_response(ins, rng, args)
            out.append({"response": code, "teacher_error": kind != "ok", "kind": kind})
    return out


class LLMTeacher:
    """Full scale: sample step-by-step replies from an instruct LLM (hub id or local folder), in batches.

    Prompts are left-padded and generated together (``batch_size`` prompts x ``n`` samples per call);
    a serving engine (vLLM, TGI) is faster still, and the plan's throughput assumes one.
    """

    def __init__(self, model_id: str, temperature: float = 0.8, max_new_tokens: int = 2048, batch_size: int = 8):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model_id, padding_side="left")
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model_id, dtype="auto", device_map="auto")
        self.temperature, self.max_new_tokens, self.batch_size = temperature, max_new_tokens, batch_size

    def complete_many(self, prompts: list[str], n: int) -> list[list[str]]:
        """``n`` sampled replies for each prompt (user turn of the model's chat template)."""
        out = []
        for b in range(0, len(prompts), self.batch_size):
            chats = [[{"role": "user", "content": p}] for p in prompts[b: b + self.batch_size]]
            texts = generate(self.model, self.tok, chats, max_new_tokens=self.max_new_tokens, do_sample=True,
                             temperature=self.temperature, top_p=None, top_k=None, n=n, batch_size=len(chats),
                             fit_context=False)  # top-p/top-k: the model's own generation config
            out += texts if n > 1 else [[t] for t in texts]
        return out

    def complete(self, prompt: str, n: int) -> list[str]:
        return self.complete_many([prompt], n)[0]

    def candidates_many(self, items: list[tuple[str, str]], n: int) -> list[list[dict]]:
        """Candidates for many (instruction, domain) pairs: code asks for code + tests, the rest for steps."""
        prompts = [load_prompt("respond_code" if domain == "code" else "respond_step_by_step").format(
            instruction=instruction) for instruction, domain in items]
        return [[{"response": r, "teacher_error": None} for r in replies] for replies in self.complete_many(prompts, n)]

    def evolve_many(self, items: list[tuple[str, str]]) -> list[str]:
        """One evolved instruction per (instruction, operator) pair, with the operator's prompt."""
        prompts = [load_prompt(f"evolve_{op}").format(instruction=instruction) for instruction, op in items]
        return [r[0].strip() for r in self.complete_many(prompts, 1)]
