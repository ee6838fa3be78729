"""The toy pre-training corpus: seeded documents with ground-truth labels.

A first, small version used by the spine (tokenizer, toy base model). Chapter 1 grows it into the
full messy web-like corpus with spam, duplicates and contamination. Every document is a dict with
``id``, ``text``, ``domain`` (web/math/code/encyclopedic) and ``quality`` (good/bad) so every
filtering step can be scored against the truth.
"""

from __future__ import annotations

import random

from .arith import format_example, make_problem

TOPICS = {
    "rivers": "A river is a natural stream of water that flows toward an ocean, a lake or another river.",
    "volcanoes": "A volcano is an opening in the crust of a planet through which molten rock escapes.",
    "bees": "Bees are flying insects that collect nectar and pollen and help flowers make seeds.",
    "glaciers": "A glacier is a large body of ice that moves slowly over land under its own weight.",
    "comets": "A comet is an icy body that releases gas and dust when it passes close to the Sun.",
    "deserts": "A desert is a region that receives very little rain and has sparse plant life.",
    "tides": "Tides are the regular rise and fall of the sea caused by the pull of the Moon and the Sun.",
    "magnets": "A magnet is an object that produces a field which attracts iron and some other metals.",
}

FACT_TEMPLATES = [
    "{topic} are studied by scientists who measure them carefully.",
    "Students learn about {topic} because they shape the world around us.",
    "Many books describe {topic} with diagrams and simple examples.",
    "The study of {topic} explains why the same patterns appear again and again.",
]

WEB_BOILERPLATE = ["Home | About | Contact | Login", "Click here to subscribe!!!", "Cookie policy: we use cookies.",
                   "BUY NOW cheap deals best price free shipping", "Share on social media. Like and follow."]

CODE_TEMPLATES = [
    "def add_{n}(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b + {k}\n",
    "def count_{n}(items):\n    total = 0\n    for item in items:\n        if item > {k}:\n            total += 1\n    return total\n",
    "class Counter{n}:\n    def __init__(self):\n        self.value = {k}\n\n    def step(self):\n        self.value += 1\n        return self.value\n",
]


def _encyclopedic(rng: random.Random) -> str:
    topic = rng.choice(list(TOPICS))
    lines = [TOPICS[topic]] + [t.format(topic=topic.capitalize() if i == 0 else topic)
                                for i, t in enumerate(rng.sample(FACT_TEMPLATES, 3))]
    return " ".join(lines)


def _math(rng: random.Random) -> str:
    return "\n\n".join(format_example(make_problem(rng, rng.choice([1, 2, 3]))) for _ in range(rng.randint(2, 4)))


def _code(rng: random.Random) -> str:
    return "\n\n".join(rng.choice(CODE_TEMPLATES).format(n=rng.randint(0, 999), k=rng.randint(0, 9))
                       for _ in range(rng.randint(1, 3)))


def _web(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.4:
        return " ".join(rng.choice(WEB_BOILERPLATE) for _ in range(rng.randint(2, 6))), "bad"
    return f"{rng.choice(WEB_BOILERPLATE)}\n{_encyclopedic(rng)}\n{_encyclopedic(rng)}", "good"


def generate_simple_corpus(n_docs: int, seed: int, mix: dict[str, float] | None = None) -> list[dict]:
    """``n_docs`` labelled documents drawn from the domains in ``mix`` (weights)."""
    mix = mix or {"web": 0.3, "math": 0.3, "code": 0.2, "encyclopedic": 0.2}
    rng = random.Random(seed)
    domains, weights = zip(*mix.items())
    docs = []
    for i in range(n_docs):
        domain = rng.choices(domains, weights)[0]
        quality = "good"
        if domain == "web":
            text, quality = _web(rng)
        elif domain == "math":
            text = _math(rng)
        elif domain == "code":
            text = _code(rng)
        else:
            text = _encyclopedic(rng)
        docs.append({"id": f"doc{i:06d}", "text": text, "domain": domain, "quality": quality})
    return docs
