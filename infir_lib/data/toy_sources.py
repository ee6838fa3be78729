"""The toy sources chapter 1 registers: ``toy:raw``, ``toy:filtered``, recall seeds and quality annotations.

Each is ``fn(n_docs, seed) -> list of {"id", "text", ...labels}`` (see :mod:`infir_lib.data.sources`).
"""

from __future__ import annotations

import random
import warnings

from . import toy_web
from .benchmarks import load_benchmarks
from .pipeline import run
from .sources import register_toy_source

TOY_CONFIG = "configs/toy/data.yaml"


def planted_benchmarks() -> dict[str, list[str]]:
    """Benchmark items planted in the raw corpus: toy items and HumanEval always, GSM8K when its copy is found."""
    out = load_benchmarks(["humaneval", "toy_arith"])
    try:
        out.update(load_benchmarks(["gsm8k"]))
    except FileNotFoundError as e:  # e.g. on Colab without the shared data folder
        warnings.warn(f"GSM8K not planted in the toy corpus ({e})", stacklevel=2)
    return out


def raw_corpus(n_docs: int = 20000, seed: int = 0) -> list[dict]:
    """The messy generated corpus before any filtering (with ground-truth labels)."""
    return toy_web.generate_messy_corpus(n_docs, seed, benchmarks=planted_benchmarks())


def filtered_corpus(n_docs: int = 4000, seed: int = 0) -> list[dict]:
    """The first ``n_docs`` documents of the toy pipeline's output (runs the cached pipeline)."""
    res = run(TOY_CONFIG, {"seed": seed} if seed else None)
    ds = res.load_dataset()
    if n_docs > len(ds):
        raise ValueError(f"toy:filtered has {len(ds)} documents (from {res.summary['n_raw']} raw, seed {seed}); "
                         f"{n_docs} were asked for: raise n_docs in {TOY_CONFIG} or ask for fewer")
    return ds.select(range(n_docs)).to_list()


def _seed_docs(make, n_docs: int, seed: int, prefix: str) -> list[dict]:
    rng = random.Random(seed)
    out = []
    while len(out) < n_docs:
        d = make(rng)
        if d.get("quality", "good") == "good":
            out.append({"id": f"{prefix}{len(out):05d}", **d})
    return out


def seed_math(n_docs: int, seed: int) -> list[dict]:
    """Math seeds (OpenWebMath stands in at full scale): narrower than the corpus, worked problems only."""
    def make(rng):
        text = "\n".join(toy_web._worked_problem(rng, True) for _ in range(rng.randint(2, 4)))
        return {"text": text, "domain": "math"}
    return _seed_docs(make, n_docs, seed, "seedmath")


def seed_code(n_docs: int, seed: int) -> list[dict]:
    """Code-related seeds (StackOverflow at full scale)."""
    return _seed_docs(toy_web.code_question, n_docs, seed, "seedcode")


def seed_reasoning(n_docs: int, seed: int) -> list[dict]:
    """General reasoning seeds (LLM-annotated pages at full scale)."""
    return _seed_docs(toy_web.reasoning_page, n_docs, seed, "seedreason")


def negatives(n_docs: int, seed: int) -> list[dict]:
    """Random negatives for recall: general web pages and encyclopedia-like book text (no reasoning pages)."""
    rng = random.Random(seed)
    return [{"id": f"neg{i:05d}", **(toy_web.web_page(rng) if rng.random() < 0.7 else toy_web.wiki_article(rng))}
            for i in range(n_docs)]


def annotations(n_docs: int, seed: int) -> list[dict]:
    """Labelled documents for training the quality scorers (an LLM annotates a sample at full scale)."""
    return toy_web.generate_messy_corpus(n_docs, seed, benchmarks={}, exact_dup_rate=0, near_dup_rate=0)


def register_all() -> None:
    register_toy_source("raw", raw_corpus)
    register_toy_source("filtered", filtered_corpus)
    register_toy_source("seed_math", seed_math)
    register_toy_source("seed_code", seed_code)
    register_toy_source("seed_reasoning", seed_reasoning)
    register_toy_source("negatives", negatives)
    register_toy_source("annotations", annotations)
