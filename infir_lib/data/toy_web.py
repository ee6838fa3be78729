"""The messy toy pre-training corpus: a web crawl, an encyclopedia and code repositories, with the truth.

No corpus can be downloaded here, so this module generates one (seeded). It imitates what a real
crawl throws at a data pipeline -- navigation boilerplate, spam, link lists, near-empty pages, math
pages whose formulas were stripped so the text ends in a colon (InfiR §5.1.2), machine-generated code,
files with syntax errors, exact and edited copies, benchmark questions pasted into pages -- and it
labels every document with what it really is, so each pipeline stage can be scored for precision and
recall against the ground truth instead of being eyeballed.

Every document is a dict::

    id, text, source      # "web" (general crawl), "math_web" (math-heavy crawl, OpenWebMath-like),
                          # "wiki" (curated encyclopedia) or "code" (repositories)
    domain                # web / math / code / reasoning / encyclopedic
    quality, defect       # "good"/"bad"; defect names what is wrong ("" when good)
    reasoning             # truth for the recall stage: math, code-related or reasoning text
    edu, math_score       # truth for the quality scorers (1-5; 0 when not applicable)
    dup_of, contaminated  # id of the original for injected copies; benchmark name for pasted items
    lang                  # code files: python/javascript/java/c/... ("" for text)

The text is built from slot-dense templates over large word pools so that two unrelated documents
share few 5-word shingles (otherwise every templated page would look like a near-duplicate).
"""

from __future__ import annotations

import ast
import random
import sysconfig
from functools import lru_cache
from pathlib import Path

from .arith import format_example, make_problem, make_problems

# --------------------------------------------------------------------------------------------- pools
NAMES = ["Ann", "Ben", "Cat", "Dan", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Lea", "Max", "Ned", "Ola",
         "Pam", "Quin", "Rosa", "Sam", "Tess", "Uma", "Vic", "Wes", "Xena", "Yuri", "Zoe", "Amir", "Bea", "Chen",
         "Dara", "Emil", "Farah", "Goran", "Hana", "Ines", "Jamal", "Kofi", "Lin", "Mei", "Nour"]
PLACES = ["Lisbon", "Oslo", "Nairobi", "Lima", "Osaka", "Denver", "Porto", "Quito", "Tunis", "Hanoi", "Perth",
          "Leeds", "Bergen", "Cusco", "Gdansk", "Accra", "Busan", "Tartu", "Split", "Cork", "Fez", "Kandy",
          "Malmo", "Nantes", "Ohrid", "Riga", "Sucre", "Tromso", "Utrecht", "Varna", "Zadar", "Aarhus"]
NOUNS = ["bridge", "garden", "market", "library", "harbor", "museum", "festival", "bakery", "lantern", "river",
         "orchard", "tower", "canal", "station", "theater", "workshop", "meadow", "castle", "fountain", "pier",
         "vineyard", "gallery", "forest", "island", "valley", "plaza", "mill", "lighthouse", "tram", "ferry",
         "kettle", "blanket", "bicycle", "camera", "notebook", "backpack", "sweater", "teapot", "umbrella",
         "guitar", "compass", "scarf", "candle", "mirror", "basket", "helmet", "jacket", "lamp", "rug"]
ADJS = ["quiet", "bright", "ancient", "busy", "narrow", "famous", "colorful", "modern", "tiny", "huge", "rustic",
        "elegant", "sunny", "windy", "cozy", "lively", "hidden", "popular", "charming", "rare", "sturdy",
        "vintage", "handmade", "waterproof", "lightweight", "classic", "seasonal", "organic", "local", "fresh"]
COLORS = ["red", "blue", "green", "amber", "teal", "navy", "olive", "coral", "ivory", "plum", "slate", "mustard"]
FOODS = ["soup", "pastries", "noodles", "grilled fish", "dumplings", "tacos", "pancakes", "curry", "bread",
         "cheese", "olives", "waffles", "salads", "stew", "pies", "rice bowls"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
FIELDS = ["physics", "biology", "economics", "chemistry", "geology", "astronomy", "ecology", "linguistics",
          "medicine", "engineering", "psychology", "climatology", "genetics", "optics", "acoustics"]
THINGS = ["the pressure", "the price", "the population", "the temperature", "the speed", "the demand",
          "the voltage", "the rainfall", "the yield", "the friction", "the density", "the error rate",
          "the number of visitors", "the water level", "the cost", "the reaction rate", "the signal"]
CHANGES = ["rises", "falls", "doubles", "halves", "stays constant", "grows slowly", "drops sharply"]
CAUSES = ["the supply is limited", "more heat is added", "the surface is larger", "the gap is narrower",
          "fewer people are available", "the catalyst is present", "the load is heavier", "the air is drier",
          "the wire is longer", "the slope is steeper", "the sample is colder", "the market is open longer"]
CREATURES = ["heron", "otter", "beetle", "lichen", "orchid", "salmon", "falcon", "moss", "coral", "lynx",
             "tortoise", "fern", "swallow", "ibex", "newt", "kelp", "bison", "wren", "cedar", "gecko"]
CATEGORIES = ["species of bird", "flowering plant", "river system", "mountain range", "mineral", "festival",
              "programming language", "unit of measure", "ancient city", "musical instrument", "sea current"]
FLUFF = ["lol this is so random but I love it.", "Don't forget to like and subscribe!", "Anyway, I had coffee.",
         "OMG you guys, what a week.", "Comment below with your favorite emoji!", "Whatever, moving on.",
         "Follow us for more amazing stuff!!", "My cat is sleeping on my keyboard right now.",
         "Honestly who even cares haha.", "Sorry for the rant, back to the vibes."]
NAV = ["Home", "About us", "Contact", "Login", "Sign up", "Cart (0)", "Menu", "Search", "FAQ", "Privacy",
       "Terms", "Sitemap", "Careers", "Blog", "Shop", "Help", "Newsletter", "Back to top"]
SPAM = ["BUY NOW", "cheap", "best price", "free shipping", "click here", "limited offer", "100% guaranteed",
        "winner", "casino", "discount", "act fast", "bonus"]
CODE_TASKS = [("reverse a list", "items[::-1]", "slicing with a negative step walks the list from the end"),
              ("count words in a string", "len(text.split())", "split breaks the string on whitespace"),
              ("merge two dictionaries", "{**a, **b}", "later keys overwrite earlier ones"),
              ("read a file line by line", "for line in open(path):", "a file object is an iterator of lines"),
              ("sort a list of tuples by the second item", "sorted(rows, key=lambda r: r[1])",
               "the key function picks what is compared"),
              ("remove duplicates but keep order", "list(dict.fromkeys(items))", "dicts keep insertion order"),
              ("check if a key exists", "key in mapping", "membership tests on dicts look at the keys"),
              ("flatten a nested list", "[x for row in grid for x in row]", "the loops read left to right"),
              ("time a function", "time.perf_counter()", "it is a monotonic clock with high resolution"),
              ("parse JSON", "json.loads(text)", "it turns a JSON document into Python objects"),
              ("join paths safely", "Path(base) / name", "pathlib handles the separators"),
              ("get the maximum by a field", "max(rows, key=lambda r: r.score)", "max accepts a key function")]
ERRORS = ["a TypeError", "an IndexError", "a KeyError", "the wrong order", "an empty result", "a ValueError",
          "a NameError", "an infinite loop", "a MemoryError", "duplicate rows"]
CODE_WORDS = ["value", "count", "total", "items", "index", "result", "node", "parent", "child", "buffer", "offset",
              "limit", "score", "weight", "name", "path", "record", "row", "column", "key", "cache", "queue",
              "stack", "token", "line", "width", "height", "price", "order", "user", "step", "delta", "left",
              "right", "level", "size", "chunk", "batch", "flag", "label"]
VERB_WORDS = ["compute", "load", "parse", "merge", "update", "check", "find", "build", "render", "sum", "scale",
              "filter", "collect", "split", "count", "clean", "encode", "decode", "sort", "track"]

# The §5.1.2 pattern: a math page whose formulas were stripped ends on the lead-in to them. Good math
# pages use the same lead-ins followed by the work, so the only signal is "colon, then end of text".
COLON_LEADINS = ["Let us work it out step by step:", "The calculation goes as follows:",
                 "We can write the solution as:", "Here is the derivation:", "The steps are:",
                 "Putting the numbers together we get:"]

CODE_LANGUAGES = ("python", "javascript", "java", "c")  # the paper keeps widely used languages
OTHER_LANGUAGES = ("cobol", "fortran", "brainfuck")

TOY_BENCHMARK_SEED = 20250217  # the toy arithmetic benchmark items (planted as contamination, removed by decontam)


def toy_benchmark_items(n: int = 200) -> list[str]:
    """The toy benchmark's questions: arithmetic problems from a fixed seed (a GSM8K stand-in)."""
    return [p.question for p in make_problems(n, TOY_BENCHMARK_SEED, steps=(1, 2, 3))]


def _f(rng: random.Random, template: str) -> str:
    """Fill a template's slots from the pools (each slot drawn independently)."""
    pools = {"name": NAMES, "place": PLACES, "noun": NOUNS, "adj": ADJS, "color": COLORS, "food": FOODS,
             "day": DAYS, "field": FIELDS, "thing": THINGS, "change": CHANGES, "cause": CAUSES,
             "creature": CREATURES, "category": CATEGORIES}
    out = template
    while "{" in out:
        start = out.index("{")
        end = out.index("}", start)
        key = out[start + 1:end]
        if key == "n":
            val = str(rng.randint(2, 999))
        elif key == "year":
            val = str(rng.randint(1650, 2023))
        else:
            val = rng.choice(pools[key.rstrip("0123456789")])
        out = out[:start] + val + out[end + 1:]
    return out


WEB_SENTENCES = [
    "The {adj} {noun} in {place} reopened on {day} with {n} new stalls selling {food}.",
    "Visitors to {place} can walk past the {adj} {noun} and stop for {food} near the {noun2}.",
    "Our {adj} {noun} comes in {color} and {color2} and ships from {place} within {n} days.",
    "{name} said the {noun} festival in {place} drew about {n} people this {day}.",
    "Tickets for the {adj} {noun} tour start at {n} euros and include {food} at a {adj2} cafe.",
    "The {color} {noun} by {name} sold out in {place} after only {n} hours.",
    "Residents of {place} voted to repaint the {noun} {color} before the {adj} season begins.",
    "A {adj} {noun} opened next to the {noun2} in {place}, serving {food} until late.",
    "{name} and {name2} reviewed the {adj} {noun} and gave it {n} points out of a thousand.",
    "The {noun} near {place} station will be closed on {day} for {adj} repairs.",
    "Shoppers in {place} found {adj} {noun}s and {color} {noun2}s at the weekend fair.",
    "This {adj} {noun} from {place} pairs well with {food} and a {color} {noun2}.",
]
REASONING_SENTENCES = [
    "If {thing} {change} when {cause}, then we should expect the opposite once that condition is removed.",
    "Because {cause}, {thing} {change}; therefore any model of {field} must account for it.",
    "Suppose {name} claims that {thing} {change}; to test this, we compare two cases where only one factor differs.",
    "This argument in {field} rests on a premise: {cause}. If the premise fails, the conclusion does not follow.",
    "Consider the evidence from {place}: {thing} {change} whenever {cause}, which suggests a causal link.",
    "A counterexample shows why: in {place}, {thing} {change} even though it is not true that {cause}.",
    "We can reason backwards in {field}: since {thing} {change}, something must have changed, and the likeliest cause is that {cause}.",
    "Two explanations compete in {field}, and we prefer the one that predicts that {thing} {change} when {cause}.",
    "Note that correlation alone is weak evidence; {name} controls for {thing} before concluding anything about {field}.",
    "It follows that if {cause2}, then {thing2} {change2}, provided nothing else in {field} changes.",
]
WIKI_SENTENCES = [
    "The {creature} of {place} is a {category} first described in {year} by the naturalist {name}.",
    "It is found mainly in the {adj} valleys around {place}, where it was recorded in {year}.",
    "In {year}, {name} published a study of the {creature} showing that it lives for about {n} days in the wild.",
    "The name comes from an old word used in {place} for the {noun} near which it was first seen.",
    "Populations near {place} declined after {year} but recovered once the {noun} was protected.",
    "Its study is part of {field}, and the standard reference was written by {name} in {year}.",
    "Specimens are kept in the {adj} museum of {place}, catalogued under number {n}.",
    "Related forms include the {creature2} and the {creature3}, both described by {name2}.",
]
MATH_EXPLANATIONS = [
    "To add fractions with different denominators, rewrite both over a common denominator; for example 1/{a} + 1/{b} = ({b} + {a})/{ab} = {s}/{ab}.",
    "The area of a rectangle with sides {a} and {b} is their product, {a} * {b} = {ab}, because the rectangle splits into {a} rows of {b} unit squares.",
    "The sum of the first {a} odd numbers is {a2}, since each new odd number adds one more layer to a square of side {a}.",
    "A number is divisible by 3 exactly when the sum of its digits is; for {ab} the digit sum is {ds}, so the test gives the answer at once.",
    "If a train covers {ab} km in {a} hours, its average speed is {ab} / {a} = {b} km per hour, since speed is distance divided by time.",
    "The mean of {a} and {b} is ({a} + {b}) / 2 = {mean}, which is the number halfway between them on the line.",
    "To solve x + {a} = {s}, subtract {a} from both sides, which keeps the equation balanced and gives x = {b}.",
    "The perimeter of a square with side {a} is 4 * {a} = {a4}, because all four sides have the same length.",
]


def _sentences(rng: random.Random, pool: list[str], k: int) -> list[str]:
    out = []
    for t in rng.sample(pool, min(k, len(pool))):
        # numbered slots ({noun2}) are distinct draws of the same pool
        out.append(_f(rng, t))
    return out


def _paragraphs(sentences: list[str], rng: random.Random) -> str:
    paras, cur = [], []
    for s in sentences:
        cur.append(s)
        if len(cur) >= rng.randint(2, 4):
            paras.append(" ".join(cur))
            cur = []
    if cur:
        paras.append(" ".join(cur))
    return "\n".join(paras)


def _with_fluff(rng: random.Random, sentences: list[str]) -> tuple[list[str], int]:
    """Mix chatter into informative text; the truth score (1-5) is the informative share."""
    n_fluff = min(len(FLUFF), rng.choice([0, 0, 0, 1, 2, len(sentences), 2 * len(sentences)]))
    mixed = sentences + rng.sample(FLUFF, n_fluff)
    rng.shuffle(mixed)
    share = len(sentences) / len(mixed)
    return mixed, 1 + round(4 * share)


# ---------------------------------------------------------------------------------------- text docs
LOW_SCORE = 3  # truth: a reasoning page scoring below this (1-5) is low quality


def _grade(doc: dict) -> dict:
    """Label a reasoning page low-quality when its truth score is below :data:`LOW_SCORE`."""
    if doc["domain"] == "math" and doc["math_score"] < LOW_SCORE:
        doc.update(quality="bad", defect="low_math")
    elif doc["domain"] != "math" and doc["edu"] < LOW_SCORE:
        doc.update(quality="bad", defect="low_edu")
    return doc


def web_page(rng: random.Random) -> dict:
    sents = _sentences(rng, WEB_SENTENCES, rng.randint(5, 10))
    if rng.random() < 0.35:  # borderline pages: a news item that argues a little, a price computed
        sents += _sentences(rng, REASONING_SENTENCES, 1) if rng.random() < 0.5 else [_explanation(rng)]
    sents, edu = _with_fluff(rng, sents)
    return {"domain": "web", "text": _paragraphs(sents, rng), "edu": min(edu, 2), "reasoning": False}


def bad_web_page(rng: random.Random) -> dict:
    kind = rng.choice(["boilerplate", "spam", "list", "short", "junk"])
    if kind == "boilerplate":
        lines = rng.sample(NAV, rng.randint(8, 14)) + [_f(rng, rng.choice(WEB_SENTENCES))] + rng.sample(NAV, 6)
        text = "\n".join(lines)
    elif kind == "spam":
        words = [rng.choice(SPAM) for _ in range(rng.randint(40, 90))]
        text = " ".join(words) + " " + _f(rng, "{adj} {noun} {n}!!!") * rng.randint(3, 8)
    elif kind == "list":
        text = _f(rng, "Top {n} {noun}s in {place}") + "\n" + "\n".join(
            _f(rng, "- {adj} {noun}") for _ in range(rng.randint(20, 40)))
    elif kind == "short":
        text = _f(rng, rng.choice(WEB_SENTENCES))
    else:
        junk = rng.choice(["lorem ipsum dolor sit amet, consectetur adipiscing elit. ",
                           "This site requires JavaScript to be enabled in your browser. ",
                           "\u00a7\u00a7 ## %% @@ ~~ ++ ** || ;; :: ^^ "])
        text = junk * rng.randint(10, 30)
    return {"domain": "web", "text": text.strip(), "quality": "bad", "defect": kind, "edu": 1, "reasoning": False}


def reasoning_page(rng: random.Random) -> dict:
    sents = _sentences(rng, REASONING_SENTENCES, rng.randint(4, 7))
    sents += _sentences(rng, WEB_SENTENCES, rng.choice([0, 1, 2]))  # reasoning about everyday things
    sents, edu = _with_fluff(rng, sents)
    return _grade({"domain": "reasoning", "text": _paragraphs(sents, rng), "edu": edu, "reasoning": True})


def wiki_article(rng: random.Random) -> dict:
    title = _f(rng, "{creature} of {place}").capitalize()
    sents = _sentences(rng, WIKI_SENTENCES, rng.randint(5, 8))
    return {"domain": "encyclopedic", "text": title + "\n" + _paragraphs(sents, rng), "edu": 5, "reasoning": True}


def _explanation(rng: random.Random) -> str:
    a, b = rng.randint(2, 40), rng.randint(2, 40)
    vals = {"a": a, "b": b, "ab": a * b, "s": a + b, "a2": a * a, "a4": 4 * a, "mean": (a + b) / 2,
            "ds": sum(int(c) for c in str(a * b))}
    t = rng.choice(MATH_EXPLANATIONS)
    return t.format(**vals)


def _worked_problem(rng: random.Random, show_steps: bool) -> str:
    p = make_problem(rng, rng.choice([1, 2, 3]))
    if rng.random() < 0.5:
        text = format_example(p)
        return text if show_steps else f"Question: {p.question}\nSolution: Answer: {p.answer}"
    lead = rng.choice(COLON_LEADINS)
    if not show_steps:
        return f"{p.question} The answer is {p.answer}."
    steps = "\n".join(f"Step {i + 1}: {s}" for i, s in enumerate(p.steps))
    return f"{p.question} {lead}\n{steps}\nSo the answer is {p.answer}."


def math_page(rng: random.Random, colon_end: bool = False) -> dict:
    parts = [_explanation(rng) for _ in range(rng.randint(0, 2))]
    n_problems = rng.randint(1, 3)
    with_steps = [rng.random() < 0.6 for _ in range(n_problems)]
    parts += [_worked_problem(rng, s) for s in with_steps]
    rng.shuffle(parts)
    score = 1 + round(4 * (sum(with_steps) + len(parts) - n_problems) / len(parts))
    text = "\n".join(parts)
    doc = _grade({"domain": "math", "text": text, "math_score": score, "edu": 4, "reasoning": True})
    if colon_end:
        p = make_problem(rng, rng.choice([1, 2, 3]))
        doc["text"] = text + "\n" + p.question + " " + rng.choice(COLON_LEADINS)
        doc.update(quality="bad", defect="colon_end")
    return doc


def code_question(rng: random.Random) -> dict:
    task, snippet, why = rng.choice(CODE_TASKS)
    name = rng.choice(NAMES)
    lines = [f"Question: How do I {task} in Python? I tried a loop with {rng.choice(CODE_WORDS)} but got "
             f"{rng.choice(ERRORS)} on about {rng.randint(2, 999)} rows.",
             f"Answer from {name}: use {snippet} instead. It works because {why}.",
             f"The loop version fails because it changes the {rng.choice(CODE_WORDS)} while iterating, so the "
             f"{rng.choice(CODE_WORDS)} no longer matches; the built-in avoids that and is also faster.",
             f"Comment from {rng.choice(NAMES)}: this also works on {rng.choice(['Python 3.8', 'Python 3.11', 'PyPy'])}, "
             f"and for {rng.randint(2, 9)} million rows it took {rng.randint(2, 99)} ms."]
    sents, edu = _with_fluff(rng, lines)
    return _grade({"domain": "code", "text": "\n".join(sents), "edu": edu, "reasoning": True})


# ---------------------------------------------------------------------------------------- code files
def _ident(rng: random.Random) -> str:
    return f"{rng.choice(VERB_WORDS)}_{rng.choice(CODE_WORDS)}"


def python_snippet(rng: random.Random) -> str:
    """A small function built from random statements and names (so snippets do not look alike)."""
    funcs = []
    for _ in range(rng.randint(1, 3)):
        args = rng.sample(CODE_WORDS, rng.randint(1, 3))
        body, var = [], rng.choice(CODE_WORDS) + "_" + rng.choice(CODE_WORDS)
        body.append(f"    {var} = {rng.randint(0, 99)}")
        for _ in range(rng.randint(2, 6)):
            a = rng.choice(args)
            stmt = rng.choice([
                f"    {var} += len({a}) if hasattr({a}, '__len__') else {rng.randint(1, 9)}",
                f"    for {rng.choice(CODE_WORDS)}_{rng.randint(0, 9)} in range({rng.randint(2, 50)}):\n        {var} = {var} * {rng.randint(2, 9)} % {rng.randint(11, 997)}",
                f"    if {a} is None:\n        raise ValueError(\"{a} is required for {rng.choice(VERB_WORDS)}\")",
                f"    {var} = max({var}, {rng.randint(0, 500)}) - min({var}, {rng.randint(0, 500)})",
                f"    # {rng.choice(VERB_WORDS)} the {rng.choice(CODE_WORDS)} before the {rng.choice(CODE_WORDS)}",
                f"    {rng.choice(CODE_WORDS)}_{rng.choice(CODE_WORDS)} = [{var} + i for i in range({rng.randint(2, 20)})]",
            ])
            body.append(stmt)
        body.append(f"    return {var}")
        doc = f'    """{rng.choice(VERB_WORDS).capitalize()} the {rng.choice(CODE_WORDS)} of {", ".join(args)}."""'
        funcs.append(f"def {_ident(rng)}({', '.join(args)}):\n{doc}\n" + "\n".join(body) + "\n")
    return "\n\n".join(funcs)


def c_like_snippet(rng: random.Random, lang: str) -> str:
    name, a, b = _ident(rng), rng.choice(CODE_WORDS), rng.choice(CODE_WORDS)
    k, m = rng.randint(1, 99), rng.randint(2, 9)
    body = (f"    int {b}_{k} = 0;\n    for (int i = 0; i < {a}; i++) {{\n        {b}_{k} += i * {m};\n    }}\n"
            f"    return {b}_{k} % {rng.randint(11, 997)};\n")
    if lang == "javascript":
        body = body.replace("int ", "let ")
        return f"// {rng.choice(VERB_WORDS)} {rng.choice(CODE_WORDS)}\nfunction {name}({a}) {{\n{body}}}\n"
    if lang == "java":
        return f"public class {name.title().replace('_', '')} {{\n    static int {name}(int {a}) {{\n" + \
            body.replace("\n    ", "\n        ").replace("    int", "        int", 1) + "    }\n}\n"
    return f"#include <stdio.h>\n\nint {name}(int {a}) {{\n{body}}}\n"


@lru_cache(maxsize=1)
def stdlib_files() -> tuple[str, ...]:
    """Top-level modules of this interpreter's standard library (real, human-written Python)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return tuple(str(p) for p in sorted(root.glob("*.py")) if not p.name.startswith(("_", "test")))


def stdlib_excerpt(path: str, max_lines: int = 150) -> str | None:
    """The first top-level statements of a stdlib file that fit in ``max_lines`` (still valid Python)."""
    try:
        source = Path(path).read_text(encoding="utf-8")
        tree = ast.parse(source)
    except (OSError, UnicodeDecodeError, SyntaxError):
        return None
    end = 0
    for node in tree.body:
        if node.end_lineno > max_lines:
            break
        end = node.end_lineno
    lines = source.splitlines()[:end]
    return "\n".join(lines) + "\n" if len(lines) >= 20 else None


def code_file(rng: random.Random, stdlib_pool: list[str]) -> dict:
    r = rng.random()
    doc = {"domain": "code", "edu": 0, "reasoning": True, "source": "code"}
    if r < 0.25 and stdlib_pool:
        text = None
        while stdlib_pool and text is None:
            path = stdlib_pool.pop()
            text = stdlib_excerpt(path)
        if text:
            return {**doc, "text": text, "lang": "python", "origin": "stdlib:" + Path(path).name}
    if r < 0.55:
        return {**doc, "text": python_snippet(rng), "lang": "python"}
    if r < 0.70:
        lang = rng.choice(["javascript", "java", "c"])
        return {**doc, "text": c_like_snippet(rng, lang), "lang": lang}
    if r < 0.80:  # a syntax error a static analyser must catch
        text = python_snippet(rng)
        text = rng.choice([lambda t: t.replace("):", ")", 1), lambda t: t.replace("(", "((", 1),
                           lambda t: t.replace("    return", "  return", 1) + "\n   x = ("])(text)
        return {**doc, "text": text, "lang": "python", "quality": "bad", "defect": "syntax_error"}
    if r < 0.88:  # machine-generated files
        if rng.random() < 0.5:
            data = ", ".join(str(rng.randint(0, 65535)) for _ in range(rng.randint(400, 900)))
            text = f"# Generated by the protocol buffer compiler.  DO NOT EDIT!\n_TABLE = [{data}]\n"
            return {**doc, "text": text, "lang": "python", "quality": "bad", "defect": "generated"}
        stmts = ";".join(f"var {chr(97 + i % 26)}{i}=function(t){{return t*{rng.randint(2, 9)}}}" for i in range(200))
        return {**doc, "text": stmts + "\n", "lang": "javascript", "quality": "bad", "defect": "minified"}
    if r < 0.94:  # binary-ish junk with a code extension
        junk = "".join(rng.choice("\\x00\\xff{}[];$#@!~^&|<>") for _ in range(rng.randint(600, 1500)))
        return {**doc, "text": f"BLOB = '{junk}'\n", "lang": "python", "quality": "bad", "defect": "junk"}
    lang = rng.choice(OTHER_LANGUAGES)
    text = {"cobol": "       IDENTIFICATION DIVISION.\n       PROGRAM-ID. {n}.\n       PROCEDURE DIVISION.\n"
                     "           DISPLAY '{v}'.\n           STOP RUN.\n",
            "fortran": "program {n}\n  integer :: {v}\n  {v} = {k}\n  print *, {v}\nend program {n}\n",
            "brainfuck": "++++++++[>++++[>++>+++>+++>+<<<<-]>+>+>->>+[<]<-]>>.>---.+++++++..+++.{k}\n"}[lang]
    text = text.format(n=_ident(rng), v=rng.choice(CODE_WORDS), k=rng.randint(1, 999))
    return {**doc, "text": text, "lang": lang, "quality": "bad", "defect": "language"}


# ------------------------------------------------------------------------------ copies, contamination
def near_copy(rng: random.Random, text: str) -> str:
    """An edited copy: a word or two swapped, a line added or dropped (what mirrors and scrapers do)."""
    kind = rng.choice(["words", "append", "drop"])
    lines = text.split("\n")
    if kind == "drop" and len(lines) >= 4:
        del lines[rng.randrange(1, len(lines))]
        return "\n".join(lines)
    if kind == "append" or len(text.split()) < 30:
        return text + "\n" + rng.choice(["Posted by admin.", "Last updated in spring.", "Share this page.",
                                         "Mirrored from the original site."])
    words = text.split(" ")
    for _ in range(max(1, len(words) // 80)):
        i = rng.randrange(len(words))
        words[i] = rng.choice(NOUNS)
    return " ".join(words)


def contaminate(rng: random.Random, doc: dict, item: str, bench: str) -> dict:
    """Paste a benchmark item into a document (how test sets leak into crawls)."""
    if doc.get("source") == "code":  # a copied solution file: the prompt is appended, the file still parses
        text = doc["text"].rstrip("\n") + "\n\n\n" + item.strip("\n") + "\n    pass\n"
    else:
        lines = doc["text"].split("\n")
        lines.insert(rng.randint(0, len(lines)), item.strip())
        text = "\n".join(lines)
    return {**doc, "text": text, "contaminated": bench, "quality": "bad", "defect": "contaminated"}


DEFAULT_MIX = {"web": 0.17, "web_bad": 0.15, "math": 0.16, "math_colon": 0.06, "code_question": 0.07,
               "reasoning": 0.09, "wiki": 0.10, "code": 0.20}


def generate_messy_corpus(n_docs: int = 20000, seed: int = 0, *, mix: dict[str, float] | None = None,
                          exact_dup_rate: float = 0.04, near_dup_rate: float = 0.04,
                          contamination_rate: float = 0.006, benchmarks: dict[str, list[str]] | None = None) -> list[dict]:
    """``n_docs`` labelled raw documents (copies and contaminated pages included in the count).

    ``benchmarks`` maps a benchmark name to the items that get pasted into pages; by default the toy
    arithmetic benchmark only (the pipeline passes GSM8K and HumanEval too).
    """
    rng = random.Random(seed)
    mix = mix or DEFAULT_MIX
    benchmarks = benchmarks if benchmarks is not None else {"toy_arith": toy_benchmark_items()}
    n_copies = int(n_docs * (exact_dup_rate + near_dup_rate))
    n_base = n_docs - n_copies
    kinds, weights = zip(*mix.items())
    stdlib_pool = list(stdlib_files())
    rng.shuffle(stdlib_pool)
    base = []
    for _ in range(n_base):
        kind = rng.choices(kinds, weights)[0]
        if kind == "web":
            d = web_page(rng)
        elif kind == "web_bad":
            d = bad_web_page(rng)
        elif kind in ("math", "math_colon"):
            d = {**math_page(rng, colon_end=kind == "math_colon"), "source": "math_web"}
        elif kind == "code_question":
            d = code_question(rng)
        elif kind == "reasoning":
            d = reasoning_page(rng)
        elif kind == "wiki":
            d = {**wiki_article(rng), "source": "wiki"}
        else:
            d = code_file(rng, stdlib_pool)
        base.append(d)
    # benchmark leaks into math pages (GSM8K, toy) and code files (HumanEval)
    bench_names = sorted(benchmarks)
    n_contam = int(n_docs * contamination_rate) if bench_names else 0
    targets = {"humaneval": [i for i, d in enumerate(base) if d.get("lang") == "python" and "defect" not in d]}
    text_targets = [i for i, d in enumerate(base) if d["domain"] == "math" and "defect" not in d]
    for j in range(n_contam):
        bench = bench_names[j % len(bench_names)]
        pool = targets.get(bench, text_targets)
        if not pool:
            continue
        i = pool.pop(rng.randrange(len(pool)))
        base[i] = contaminate(rng, base[i], rng.choice(benchmarks[bench]), bench)
    # copies of random documents, inserted after their original
    docs = [dict(d) for d in base]
    for k in range(len(docs)):
        docs[k]["id"] = f"raw{k:06d}"
    for c in range(n_copies):
        orig = docs[rng.randrange(len(docs))]
        root = orig.get("dup_of") or orig["id"]
        exact = c < int(n_docs * exact_dup_rate)
        text = orig["text"] if exact else near_copy(rng, orig["text"])
        copy = {**orig, "text": text, "dup_of": root, "dup_kind": "exact" if exact else "near"}
        pos = rng.randint(0, len(docs))
        docs.insert(pos, copy)
    out = []
    for i, d in enumerate(docs):
        row = {"id": f"doc{i:06d}", "text": d["text"], "source": d.get("source", "web"), "domain": d["domain"],
               "quality": d.get("quality", "good"), "defect": d.get("defect", ""), "reasoning": bool(d["reasoning"]),
               "edu": int(d.get("edu", 0)), "math_score": int(d.get("math_score", 0)),
               "dup_of": "", "dup_kind": d.get("dup_kind", ""), "contaminated": d.get("contaminated", ""),
               "lang": d.get("lang", ""), "origin": d.get("origin", "generated"), "_key": d.get("dup_of") or d["id"]}
        out.append(row)
    # copies point at the final id of the first document of their group
    first: dict[str, str] = {}
    for row in out:
        key = row.pop("_key")
        if key in first:
            row["dup_of"] = first[key]
        else:
            first[key] = row["id"]
            row["dup_kind"] = ""
    return out
