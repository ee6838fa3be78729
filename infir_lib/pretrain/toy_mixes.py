"""Toy sources for the chapter-2 experiments, registered as ``toy:ch2-*`` (InfiR §2.2, §5.1.2).

- ``toy:ch2-<domain>`` (web, math, code, encyclopedic): one domain of the simple toy corpus, so a run
  can mix "narrow" (one domain) or "wide" (several) data (§5.1.2, batch size vs data width).
- ``toy:ch2-arith``: pages of worked arithmetic word problems, the reasoning-rich domain of the toy
  pre-training mix (``configs/toy/pretrain.yaml``).
- ``toy:ch2-synthetic``: curated problem-solution data, one clean step-by-step solution per problem,
  generated (a stand-in for the paper's LLM-written, reward-model-filtered synthetic data, §2.2).
  It is low-perplexity, templated text, which is the property the paper blames for the gap between
  base and post-SFT scores.
- ``toy:ch2-synthetic-plain``: the same kind of curated data in another style (steps in words, none of
  the benchmark's ``Question:``/``Solution:``/``Answer:`` lines), for the placement experiment.
- ``toy:ch2-instruct``: the same kind of problems in the Llama-3 chat format (the short "SFT" used
  when chapter 4's trainer is not at hand).

Seeds differ from the benchmark items' seeds (:mod:`infir_lib.eval.toy_benchmarks` uses 10_000+),
so no evaluation item is trained on verbatim.
"""

from __future__ import annotations

import random

from ..data.arith import format_example, format_example_plain, make_problem
from ..data.corpus import generate_simple_corpus
from ..data.sources import TOY_SOURCES, register_toy_source
from ..models import EOT, HEADER_END, HEADER_START

DOMAINS = ("web", "math", "code", "encyclopedic")


def _domain_source(domain: str):
    def make(n_docs: int, seed: int) -> list[dict]:
        docs = generate_simple_corpus(n_docs, seed, mix={domain: 1.0})
        return [{**d, "id": f"{domain}-{d['id']}"} for d in docs]
    make.__name__ = f"ch2_{domain}"
    return make


def _problem_pages(n_docs: int, rng_seed: int, prefix: str, fmt, domain: str) -> list[dict]:
    """Documents of 2-4 worked problems (1-3 steps each) written by ``fmt``; ids ``<prefix>000000``..."""
    rng = random.Random(rng_seed)
    docs = []
    for i in range(n_docs):
        problems = [make_problem(rng, rng.choice([1, 2, 3])) for _ in range(rng.randint(2, 4))]
        docs.append({"id": f"{prefix}{i:06d}", "text": "\n\n".join(fmt(p) for p in problems),
                     "domain": domain, "quality": "good"})
    return docs


def synthetic_problems(n_docs: int, seed: int) -> list[dict]:
    """Curated problem-solution documents: a few problems per document, one solution each."""
    return _problem_pages(n_docs, 1_000 + seed, "synth", format_example, "synthetic")


def synthetic_plain(n_docs: int, seed: int) -> list[dict]:
    """Curated problem-solution documents in another style than the benchmark's (steps in words, no
    ``Question:``/``Solution:``/``Answer:`` lines; :func:`infir_lib.data.arith.format_example_plain`).
    Chapter 2's placement experiment uses it, so a gain cannot come from copying the evaluation template."""
    return _problem_pages(n_docs, 4_000 + seed, "synthp", format_example_plain, "synthetic")


def arith_pages(n_docs: int, seed: int) -> list[dict]:
    """The reasoning-rich pre-training domain: pages of worked word problems, 1 to 3 steps each.

    The toy counterpart of the math and reasoning web pages the paper's pipeline recalls (§2.1): the
    base model learns to compute from them, so that SFT and RL later have something to refine.
    Problems come from the "train" split only (:func:`infir_lib.data.arith.is_heldout`).
    """
    return _problem_pages(n_docs, 3_000 + seed, "arith", format_example, "math")


def chat_text(question: str, answer: str) -> str:
    """One user/assistant exchange in the Llama-3 chat format (the toy tokenizer's special tokens)."""
    return (f"{HEADER_START}user{HEADER_END}\n\n{question}{EOT}"
            f"{HEADER_START}assistant{HEADER_END}\n\n{answer}{EOT}")


def instruct_problems(n_docs: int, seed: int) -> list[dict]:
    """Instruction-format problems (one exchange per document) for the stand-in SFT."""
    rng = random.Random(2_000 + seed)
    docs = []
    for i in range(n_docs):
        p = make_problem(rng, rng.choice([1, 2, 3]))
        docs.append({"id": f"inst{i:06d}", "text": chat_text(p.question, p.solution), "domain": "instruct",
                     "quality": "good"})
    return docs


def register() -> None:
    for domain in DOMAINS:
        if f"ch2-{domain}" not in TOY_SOURCES:
            register_toy_source(f"ch2-{domain}", _domain_source(domain))
    register_toy_source("ch2-arith", arith_pages)
    register_toy_source("ch2-synthetic", synthetic_problems)
    register_toy_source("ch2-synthetic-plain", synthetic_plain)
    register_toy_source("ch2-instruct", instruct_problems)


register()
