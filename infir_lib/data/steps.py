"""The five stages of InfiR's pre-training data pipeline (§2.1.2, Figure 1) as datatrove steps.

Each stage is a datatrove ``PipelineStep``: it takes documents and yields the ones it keeps, counts
what it drops and why (datatrove's stats plus a JSON report per stage), and can write the dropped
documents out for inspection. The same step objects run under datatrove's ``LocalPipelineExecutor``
here and its ``SlurmPipelineExecutor`` at full scale.

1. :class:`HeuristicFilter` - FineWeb's web-text rules (datatrove's Gopher repetition, Gopher
   quality, C4 and FineWeb quality filters, with FineWeb's settings), code-file rules, and the
   §5.1.2 rule that drops text ending in a colon.
2. :class:`ReasoningRecall` - fastText classifiers for math / code-related / reasoning text, trained
   on seed positives vs random web negatives, iterated (recalled documents join the seeds).
3. :class:`MinHashDedup` - near-duplicate removal with datasketch MinHash + LSH (one task), or
   datatrove's four MinHash steps across tasks (:class:`DedupFilter` is the last).
4. :class:`QualityAssessment` - an educational-value scorer for text, a 1-5 math reasoning scorer,
   and static analysis for code.
5. :class:`Decontaminate` - token 10-gram overlap against benchmark items.

Recall and dedup gather every document of their task before yielding any, so in one executor run
they are global only when one task holds the whole corpus (the toy). At full scale the same stages
run as separate executor runs (``multi_stage``, see :func:`infir_lib.data.pipeline.stage_runs`):
:class:`RecallTrain` (one task per round) and :class:`RecallScore` split recall, datatrove's
MinhashDedupSignature/Buckets/Cluster and :class:`DedupFilter` replace :class:`MinHashDedup`, and
:class:`DecontamIndex` builds the benchmark n-grams once. Every stage writes one report per task
(``reports/<stage>/<rank>.json``) and its dropped documents to ``${rank}.jsonl``; :func:`merge_reports`
sums them.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import random
import re
import tempfile
from collections import Counter, deque
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from datatrove.pipeline.writers.disk_base import DiskWriter

from .benchmarks import load_benchmarks
from .sources import iter_documents, read_jsonl_numbered

TOKEN_RE = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens: the unit of the funnel's token counts, shingles and n-grams."""
    return TOKEN_RE.findall(text.lower())


def meta(doc: Document, key: str, default=None):
    return doc.metadata.get(key, default)


class JsonWriter(DiskWriter):
    """datatrove's disk writer with the standard library's ``json`` (its JsonlWriter needs orjson)."""

    default_output_filename = "${rank}.jsonl"
    name = "🐿 Jsonl (stdlib json)"

    def __init__(self, output_folder, output_filename: str | None = None, expand_metadata: bool = True):
        super().__init__(output_folder, output_filename=output_filename, compression=None, mode="wt",
                         expand_metadata=expand_metadata)

    def _write(self, document: dict, file_handler, _filename: str):
        document.pop("media", None)
        file_handler.write(json.dumps(document, ensure_ascii=False, default=str) + "\n")


class Stage(PipelineStep):
    """Counters every stage keeps: documents and tokens in and out, drops by reason, a report file."""

    stage = "stage"
    type = "🔻 - STAGE"

    def __init__(self, report_dir: str | None = None, exclusion_writer=None):
        super().__init__()
        self.report_dir = report_dir
        self.exclusion_writer = exclusion_writer
        self.counts: Counter = Counter()
        self.rank = 0

    def _begin(self, rank: int) -> None:
        """Fresh counters per task: one step object may run several ranks in turn (``workers=1``)."""
        self.counts = Counter()
        self.rank = rank

    def _seen(self, doc: Document) -> None:
        self.counts["docs_in"] += 1
        self.counts["tokens_in"] += len(tokens(doc.text))
        self.stat_update("total")

    def _kept(self, doc: Document) -> Document:
        self.counts["docs_out"] += 1
        self.counts["tokens_out"] += len(tokens(doc.text))
        self.stat_update("forwarded")
        return doc

    def _dropped(self, doc: Document, reason: str, writer=None) -> None:
        self.counts["dropped"] += 1
        self.counts[f"dropped:{reason}"] += 1
        self.stat_update("dropped", f"dropped_{reason}")
        doc.metadata["filter_reason"] = reason
        doc.metadata["filter_stage"] = self.stage
        if writer is not None:
            writer.write(doc, self.rank)  # one file per task: ${rank}.jsonl

    def _writer(self):
        return self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext()

    def write_report(self, extra: dict | None = None) -> dict:
        """This task's report, ``<report_dir>/<stage>/<rank>.json``; :func:`merge_reports` sums the ranks."""
        report = {"stage": self.stage, "rank": self.rank, "counts": dict(self.counts), **(extra or {})}
        self.last_report = report
        if self.report_dir:
            write_rank_report(self.report_dir, self.stage, self.rank, report)
        return report


def write_rank_report(report_dir: str | Path, stage: str, rank: int, report: dict) -> Path:
    path = Path(report_dir) / stage / f"{rank:05d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=str))
    return path


def _merge_pr(rows: list[dict]) -> dict:
    """Sum tp/fp/fn (and n) of per-task precision/recall dicts, recompute the ratios."""
    tot = {k: sum(r.get(k, 0) for r in rows) for k in ("tp", "fp", "fn")}
    out = {**({"n": sum(r["n"] for r in rows)} if all("n" in r for r in rows) else {}), **tot,
           "precision": tot["tp"] / (tot["tp"] + tot["fp"]) if tot["tp"] + tot["fp"] else float("nan"),
           "recall": tot["tp"] / (tot["tp"] + tot["fn"]) if tot["tp"] + tot["fn"] else float("nan")}
    if all("mae" in r for r in rows) and out.get("n"):
        out["mae"] = sum(r["mae"] * r["n"] for r in rows) / out["n"]  # weighted by documents scored
    return out


SETTINGS_KEYS = {"round", "num_perm", "shingle_size", "n", "index_ngrams", "threshold", "n_seeds", "edu_threshold",
                 "math_threshold", "num_buckets", "hashes_per_bucket"}


def _merge_value(key: str, values: list):
    """How one report field combines across tasks: counts add, lists concatenate, p/r dicts re-derive."""
    if len(values) == 1 or key in SETTINGS_KEYS:
        return values[0]  # one task, or a setting (the same in every task)
    if all(isinstance(v, dict) and {"tp", "fp", "fn"} <= set(v) for v in values):
        return _merge_pr(values)
    if all(isinstance(v, dict) for v in values):
        keys = list(dict.fromkeys(k for v in values for k in v))
        return {k: _merge_value(k, [v[k] for v in values if k in v]) for k in keys}
    if all(isinstance(v, list) for v in values):
        if key == "rounds":  # recall evaluation: one row per round in every task, merged row by row
            return [_merge_value("row", [v[i] for v in values if i < len(v)]) for i in range(max(map(len, values)))]
        return [x for v in values for x in v]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return sum(values)
    return values[0]


def merge_reports(report_dir: str | Path) -> dict[str, dict]:
    """Sum every stage's per-task reports (``<stage>/<rank>.json``) into one ``<stage>.json``.

    Counts add up, per-document lists (skipped, removed, sampled pairs) concatenate in rank order,
    precision/recall dicts are recomputed from the summed tp/fp/fn, settings are taken once.
    """
    report_dir = Path(report_dir)
    merged = {}
    for folder in sorted(p for p in report_dir.iterdir() if p.is_dir()):
        parts = [json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))]
        if not parts:
            continue
        rep = {"stage": folder.name, "tasks": len(parts)}
        for key in dict.fromkeys(k for r in parts for k in r):
            if key in ("stage", "rank"):
                continue
            vals = [r[key] for r in parts if key in r]
            rep[key] = _merge_value(key, vals)
        (report_dir / f"{folder.name}.json").write_text(json.dumps(rep, indent=1, default=str))
        merged[folder.name] = rep
    return merged


class StageFilter(Stage, BaseFilter):
    """A per-document stage: a datatrove ``BaseFilter`` (its ``filter(doc)`` returns True or (False, reason);
    its ``run`` batches, keeps datatrove's stats and writes the dropped documents to ``exclusion_writer``)
    with the counters and report every :class:`Stage` keeps on top."""

    type = "🔻 - FILTER"

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        out = []
        for doc in batch:
            self._seen(doc)
            keep, reason = get_filter_result(self.filter(doc))
            if keep:
                self.counts["docs_out"] += 1
                self.counts["tokens_out"] += len(tokens(doc.text))
                out.append(True)
                continue
            reason = reason or "unspecified"
            self.counts["dropped"] += 1
            self.counts[f"dropped:{reason}"] += 1
            doc.metadata["filter_reason"] = reason  # what BaseFilter writes with the excluded document,
            doc.metadata["filter_stage"] = self.stage  # and which stage dropped it
            out.append((False, reason))
        return out

    def _seen(self, doc: Document) -> None:  # datatrove's run counts "total" itself
        self.counts["docs_in"] += 1
        self.counts["tokens_in"] += len(tokens(doc.text))

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._begin(rank)
        yield from BaseFilter.run(self, data, rank, world_size)
        self.write_report(self.extra_report())

    def extra_report(self) -> dict:
        return {}


# ----------------------------------------------------------------------------------- 1. heuristics
class RegexWordTokenizer:
    """A fast regex word/sentence tokenizer with datatrove's ``WordTokenizer`` interface.

    FineWeb's filters tokenize with spaCy, which costs several ms per document on a laptop CPU; the
    toy preset swaps in this tokenizer (``word_tokenizer: regex``) to fit the chapter in a couple of
    minutes, and the full preset keeps spaCy (``word_tokenizer: spacy``), FineWeb's own choice.
    Words are runs of word characters or single punctuation marks, as spaCy splits them in most cases.
    """

    WORD = re.compile(r"\w+(?:[-'.]\w+)*|[^\w\s]")
    SENT = re.compile(r"[^.!?]+(?:[.!?]+|$)")

    def __new__(cls, language: str = "en"):
        from datatrove.utils.word_tokenizers import WordTokenizer

        class _Regex(WordTokenizer):
            def word_tokenize(self, text):
                return cls.WORD.findall(text)

            def span_tokenize(self, text):
                return [(m.start(), m.end()) for m in cls.SENT.finditer(text) if m.group().strip()]

            def sent_tokenize(self, text):
                return [text[a:b].strip() for a, b in self.span_tokenize(text)]

            def __reduce__(self):
                return (RegexWordTokenizer, (language,))

        return _Regex(language)


def fineweb_text_filters(word_tokenizer: str = "spacy", language: str = "en") -> list[BaseFilter]:
    """The web-text filters of FineWeb's pipeline, as datatrove ships them, with FineWeb's settings.

    ``word_tokenizer``: "spacy" (datatrove's default for English, what FineWeb used) or "regex" (fast).
    """
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)
    tok = RegexWordTokenizer(language) if word_tokenizer == "regex" else language
    return [GopherRepetitionFilter(language=tok), GopherQualityFilter(language=tok),
            C4QualityFilter(filter_no_terminal_punct=False, language=tok), FineWebQualityFilter(language=tok)]


EXTENSIONS = {".py": "python", ".js": "javascript", ".mjs": "javascript", ".java": "java", ".c": "c", ".h": "c",
              ".cpp": "cpp", ".cc": "cpp", ".hpp": "cpp", ".ts": "typescript", ".go": "go", ".rs": "rust",
              ".sh": "shell", ".sql": "sql", ".f90": "fortran", ".cob": "cobol"}


def code_language(metadata: dict) -> str:
    """A file's language: an explicit ``lang``/``language`` field, else its path's extension."""
    lang = metadata.get("lang") or metadata.get("language")
    if lang:
        return str(lang).lower()
    for key in ("path", "max_stars_repo_path", "file_path", "filename"):
        if metadata.get(key):
            return EXTENSIONS.get(Path(str(metadata[key])).suffix.lower(), "")
    return ""


GENERATED_MARKERS = ("DO NOT EDIT", "autogenerated", "auto-generated", "Generated by", "@generated")


def code_rules(text: str, lang: str, languages: Iterable[str], max_line_length: int,
               min_alnum_fraction: float) -> bool | tuple[bool, str]:
    """OpenCoder-style rules for source files (keep = True, else (False, reason))."""
    if lang not in languages:
        return False, "language"
    lines = text.splitlines() or [""]
    if max(len(line) for line in lines) > max_line_length:
        return False, "long_line"
    head = "\n".join(lines[:5])
    if any(m.lower() in head.lower() for m in GENERATED_MARKERS):
        return False, "generated"
    alnum = sum(c.isalnum() for c in text) / max(1, len(text))
    if alnum < min_alnum_fraction:
        return False, "alnum_fraction"
    return True


class HeuristicFilter(StageFilter):
    """Stage 1: rule-based filters (no model). Text goes through FineWeb's rules, code through code rules."""

    name = "1 heuristic filtering"
    stage = "heuristic"

    def __init__(self, code_languages=("python", "javascript", "java", "c"), max_line_length: int = 1000,
                 min_alnum_fraction: float = 0.25, drop_colon_endings: bool = True, word_tokenizer: str = "spacy",
                 prose_sources=("web", "wiki"), **kw):
        super().__init__(**kw)
        self.text_filters = fineweb_text_filters(word_tokenizer)
        self.prose_sources = tuple(prose_sources)
        self.code_languages = tuple(code_languages)
        self.max_line_length = max_line_length
        self.min_alnum_fraction = min_alnum_fraction
        self.drop_colon_endings = drop_colon_endings

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if meta(doc, "source") == "code":
            return code_rules(doc.text, code_language(doc.metadata), self.code_languages, self.max_line_length,
                              self.min_alnum_fraction)
        for f in self.text_filters:
            if type(f).__name__ == "GopherQualityFilter" and meta(doc, "source", "web") not in self.prose_sources:
                continue  # Gopher's prose rules (80% alphabetic words...) reject formulas: not for math pages
            # datatrove's own rule code; C4's filter may also trim lines in place
            keep, reason = get_filter_result(f.filter(doc))
            if not keep:
                return False, f"{type(f).__name__.replace('Filter', '')}:{reason or 'rule'}"
        if self.drop_colon_endings and doc.text.rstrip().endswith(":"):
            return False, "ends_with_colon"  # InfiR §5.1.2
        return True


# --------------------------------------------------------------------------------------- 2. recall
def _ft_line(text: str) -> str:
    return " ".join(tokens(text))[:20000]


def train_fasttext(labelled: list[tuple[str, str]], *, seed: int, epoch: int = 5, dim: int = 32, lr: float = 0.5,
                   word_ngrams: int = 2):
    """A fastText classifier on (label, text) pairs (one thread, so it is deterministic)."""
    import fasttext
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        for label, text in labelled:
            f.write(f"__label__{label} {_ft_line(text)}\n")
        path = f.name
    try:
        return fasttext.train_supervised(input=path, epoch=epoch, dim=dim, lr=lr, wordNgrams=word_ngrams,
                                         minCount=1, thread=1, seed=seed, verbose=0)
    finally:
        os.unlink(path)


def fasttext_proba(model, texts: list[str], label: str) -> np.ndarray:
    """P(label) for each text."""
    labels, probs = model.predict([_ft_line(t) for t in texts], k=-1)
    out = np.zeros(len(texts))
    for i, (ls, ps) in enumerate(zip(labels, probs)):
        for lab, p in zip(ls, ps):
            if lab == f"__label__{label}":
                out[i] = p
    return out


def precision_recall(pred: Iterable[bool], truth: Iterable[bool]) -> dict:
    pred, truth = list(pred), list(truth)
    tp = sum(p and t for p, t in zip(pred, truth))
    fp = sum(p and not t for p, t in zip(pred, truth))
    fn = sum(t and not p for p, t in zip(pred, truth))
    tp, fp, fn = int(tp), int(fp), int(fn)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan")}


class ReasoningRecall(Stage):
    """Stage 2: recall reasoning-oriented web text with fastText (DeepSeekMath-style iteration).

    Only crawl documents (``source`` in ``candidate_sources``) are candidates; curated sources (encyclopedia, code
    repositories) pass through. Per domain, a binary classifier is trained on seed positives vs random
    negatives drawn from a general pool of web pages and books (fresh draws each round); the documents it scores above ``threshold`` are recalled, join the seeds, and the
    classifier is retrained (``rounds`` times). A candidate recalled by any domain is kept.
    """

    name = "2 reasoning-oriented recall (fastText)"
    stage = "recall"

    def __init__(self, seeds: dict[str, list[str]], negatives: list[str], domains=("math", "code", "reasoning"), rounds: int = 2,
                 threshold: float = 0.5, n_negatives: int = 1000, max_added_per_round: int = 2000, seed: int = 0,
                 epoch: int = 5, dim: int = 32, candidate_sources=("web", "math_web"), **kw):
        super().__init__(**kw)
        self.candidate_sources = tuple(candidate_sources)
        self.seeds = seeds
        self.negatives = list(negatives)
        self.domains = tuple(domains)
        self.rounds = rounds
        self.threshold = threshold
        self.n_negatives = n_negatives
        self.max_added = max_added_per_round
        self.seed = seed
        self.epoch, self.dim = epoch, dim

    def recall(self, texts: list[str], rng: random.Random) -> tuple[dict[str, np.ndarray], list[dict]]:
        """Scores of the final round per domain, and what each round recalled (indices)."""
        rounds_log = []
        positives = {d: list(self.seeds[d]) for d in self.domains}
        scores: dict[str, np.ndarray] = {}
        for r in range(self.rounds):
            negatives = rng.sample(self.negatives, min(self.n_negatives, len(self.negatives)))
            entry = {"round": r + 1, "recalled": {}}
            for d in self.domains:
                data = [("pos", t) for t in positives[d]] + [("neg", t) for t in negatives]
                rng.shuffle(data)
                model = train_fasttext(data, seed=self.seed + r, epoch=self.epoch, dim=self.dim)
                scores[d] = fasttext_proba(model, texts, "pos")
                hits = np.flatnonzero(scores[d] >= self.threshold)
                entry["recalled"][d] = hits.tolist()
                # recalled documents join the seeds for the next round (most confident first)
                best = hits[np.argsort(-scores[d][hits])][: self.max_added]
                positives[d] = list(self.seeds[d]) + [texts[i] for i in best]
            rounds_log.append(entry)
        return scores, rounds_log

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._begin(rank)
        docs = list(data)
        for d in docs:
            self._seen(d)
        cand = [i for i, d in enumerate(docs) if meta(d, "source", "web") in self.candidate_sources]
        texts = [docs[i].text for i in cand]
        rng = random.Random(self.seed)
        with self.track_time("stage"):
            scores, rounds_log = self.recall(texts, rng) if texts else ({}, [])
        # score each round against the truth (when the documents carry it)
        truth_dom = [meta(docs[i], "domain") for i in cand]
        truth_reason = [meta(docs[i], "reasoning") for i in cand]
        evaluation = []
        if texts and truth_reason[0] is not None:
            for entry in rounds_log:
                row = {"round": entry["round"]}
                any_hit = np.zeros(len(texts), bool)
                for dom, hits in entry["recalled"].items():
                    pred = np.zeros(len(texts), bool)
                    pred[hits] = True
                    any_hit |= pred
                    row[dom] = precision_recall(pred, [t == dom for t in truth_dom])
                row["any"] = precision_recall(any_hit, truth_reason)
                evaluation.append(row)
        recalled_dom = {}
        for k, i in enumerate(cand):
            best = max(self.domains, key=lambda dom: scores[dom][k])
            docs[i].metadata["recall_score"] = float(scores[best][k])
            for dom in self.domains:
                docs[i].metadata[f"recall_{dom}"] = round(float(scores[dom][k]), 4)
            if scores[best][k] >= self.threshold:
                recalled_dom[i] = best
        with self._writer() as writer:
            for i, d in enumerate(docs):
                if meta(d, "source", "web") not in self.candidate_sources:
                    yield self._kept(d)
                elif i in recalled_dom:
                    d.metadata["recall_domain"] = recalled_dom[i]
                    yield self._kept(d)
                else:
                    self._dropped(d, "not_recalled", writer if self.exclusion_writer else None)
        self.write_report({"rounds": evaluation, "n_candidates": len(cand), "threshold": self.threshold,
                           "n_seeds": {d: len(v) for d, v in self.seeds.items()}})


# ---------------------------------------------------------------------------------------- 3. dedup
def shingles(text: str, n: int) -> set[str]:
    t = tokens(text)
    if len(t) < n:
        return {" ".join(t)} if t else set()
    return {" ".join(t[i:i + n]) for i in range(len(t) - n + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def minhashes(shingle_sets: list[set[str]], num_perm: int, seed: int = 1):
    """datasketch MinHash signatures, built in bulk."""
    from datasketch import LeanMinHash, MinHash
    return [LeanMinHash(m) for m in MinHash.bulk([[s.encode() for s in ss] for ss in shingle_sets],
                                                 num_perm=num_perm, seed=seed)]


def lsh_duplicates(sigs, threshold: float, num_perm: int) -> dict[int, int]:
    """Streaming global dedup: doc i is a duplicate of the earliest kept doc j whose estimated
    Jaccard is >= threshold among its LSH candidates. Returns {duplicate index: kept index}."""
    from datasketch import MinHashLSH
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    dup_of: dict[int, int] = {}
    for i, m in enumerate(sigs):
        cands = [int(c) for c in lsh.query(m)]
        best = min((c for c in cands if sigs[c].jaccard(m) >= threshold), default=None)
        if best is None:
            lsh.insert(str(i), m, check_duplication=False)
        else:
            dup_of[i] = best
    return dup_of


class MinHashDedup(Stage):
    """Stage 3: global MinHash-LSH near-duplicate removal (keep the first of each cluster)."""

    name = "3 MinHash deduplication (datasketch)"
    stage = "dedup"

    def __init__(self, num_perm: int = 128, shingle_size: int = 5, threshold: float = 0.7,
                 sample_pairs: int = 200, seed: int = 0, **kw):
        super().__init__(**kw)
        self.num_perm, self.n, self.threshold = num_perm, shingle_size, threshold
        self.sample_pairs, self.seed = sample_pairs, seed

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._begin(rank)
        docs = list(data)
        for d in docs:
            self._seen(d)
        with self.track_time("stage"):
            sets = [shingles(d.text, self.n) for d in docs]
            sigs = minhashes(sets, self.num_perm)
            dup_of = lsh_duplicates(sigs, self.threshold, self.num_perm)
        # estimated vs exact Jaccard on sampled pairs: caught pairs, and random pairs for contrast
        rng = random.Random(self.seed)
        caught = rng.sample(sorted(dup_of.items()), min(self.sample_pairs, len(dup_of)))
        randoms = [tuple(rng.sample(range(len(docs)), 2)) for _ in range(self.sample_pairs)] if len(docs) > 1 else []
        pairs = [{"kind": kind, "a": docs[i].id, "b": docs[j].id, "estimated": float(sigs[i].jaccard(sigs[j])),
                  "exact": jaccard(sets[i], sets[j])} for kind, ps in (("caught", caught), ("random", randoms))
                 for i, j in ps]
        clusters = Counter(dup_of.values())
        sizes = Counter(n + 1 for n in clusters.values())
        # truth: among the documents that reach this stage, all but the first of a copy group are duplicates
        evaluation = {}
        if docs and meta(docs[0], "dup_of") is not None:
            first: dict[str, int] = {}
            truth = []
            for i, d in enumerate(docs):
                group = meta(d, "dup_of") or d.id
                truth.append(group in first)
                first.setdefault(group, i)
            evaluation = precision_recall([i in dup_of for i in range(len(docs))], truth)
            evaluation["by_kind"] = {k: precision_recall([i in dup_of for i, d in enumerate(docs) if meta(d, "dup_kind") == k],
                                                        [t for t, d in zip(truth, docs) if meta(d, "dup_kind") == k])
                                     for k in ("exact", "near")}
        with self._writer() as writer:
            for i, d in enumerate(docs):
                if i in dup_of:
                    d.metadata["duplicate_of"] = docs[dup_of[i]].id
                    self._dropped(d, "near_duplicate", writer if self.exclusion_writer else None)
                else:
                    yield self._kept(d)
        self.write_report({"pairs": pairs, "cluster_sizes": {str(k): v for k, v in sorted(sizes.items())},
                           "evaluation": evaluation, "threshold": self.threshold, "num_perm": self.num_perm,
                           "shingle_size": self.n})


# -------------------------------------------------------------------------------------- 4. quality
def static_check(text: str, lang: str) -> bool | tuple[bool, str]:
    """Code static analysis: Python must parse and compile; C-like files must balance their brackets."""
    if lang == "python":
        try:
            tree = ast.parse(text)
            compile(tree, "<doc>", "exec")
        except (SyntaxError, ValueError):
            return False, "syntax_error"
        if not any(isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef, ast.Import, ast.ImportFrom))
                   for n in ast.walk(tree)):
            return False, "no_definitions"
        return True
    stack, pairs = [], {")": "(", "]": "[", "}": "{"}
    for c in text:
        if c in "([{":
            stack.append(c)
        elif c in pairs:
            if not stack or stack.pop() != pairs[c]:
                return False, "unbalanced_brackets"
    return (False, "unbalanced_brackets") if stack else True


class Scorer:
    """A 1-5 scorer: a fastText classifier over the five scores; the score is the expected value."""

    def __init__(self, model):
        self.model = model

    @classmethod
    def train(cls, texts: list[str], scores: list[int], seed: int = 0, epoch: int = 10) -> "Scorer":
        return cls(train_fasttext([(str(s), t) for s, t in zip(scores, texts)], seed=seed, epoch=epoch))

    def __call__(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        return sum(k * fasttext_proba(self.model, texts, str(k)) for k in range(1, 6))


class HubScorer:
    """Full scale: a hub classifier with a 1-output regression head (FineWeb-Edu, FineMath style)."""

    def __init__(self, model_id: str, batch_size: int = 64):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        self.tok = AutoTokenizer.from_pretrained(model_id)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_id).eval()
        self.batch_size = batch_size

    def __call__(self, texts: list[str]) -> np.ndarray:
        import torch
        out = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tok(texts[i:i + self.batch_size], truncation=True, padding=True, return_tensors="pt")
            with torch.no_grad():
                out.append(self.model(**enc).logits.squeeze(-1).float().numpy())
        return np.concatenate(out) if out else np.zeros(0)


class QualityAssessment(Stage):
    """Stage 4: domain-specific quality. Math text gets the math scorer, other text the educational
    scorer, code the static analyser; text below its threshold is dropped."""

    name = "4 quality assessment"
    stage = "quality"

    def __init__(self, make_scorers: Callable[[], dict], edu_threshold: float = 3.0, math_threshold: float = 3.0, **kw):
        super().__init__(**kw)
        self.make_scorers = make_scorers
        self.edu_threshold, self.math_threshold = edu_threshold, math_threshold

    def _truly_low(self, doc: Document, kind: str) -> bool:
        """Ground truth for this stage: below the threshold on the truth scale, or a broken code file."""
        if kind == "code":
            return meta(doc, "defect") in ("syntax_error", "junk", "generated", "minified")
        truth = meta(doc, "math_score") if kind == "math" else meta(doc, "edu")
        if not truth:  # a document routed to the other scorer by a recall mistake: use its own scale
            truth = meta(doc, "edu") or meta(doc, "math_score") or 5
        return truth < (self.math_threshold if kind == "math" else self.edu_threshold)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._begin(rank)
        docs = list(data)
        for d in docs:
            self._seen(d)
        with self.track_time("stage"):
            scorers = self.make_scorers()
            route = ["code" if meta(d, "source") == "code" else "math" if meta(d, "recall_domain") == "math" else "edu"
                     for d in docs]
            verdict: dict[int, bool | tuple] = {}
            for kind, thr in (("edu", self.edu_threshold), ("math", self.math_threshold)):
                idx = [i for i, r in enumerate(route) if r == kind]
                s = scorers[kind]([docs[i].text for i in idx])
                for i, v in zip(idx, s):
                    docs[i].metadata[f"{kind}_pred"] = round(float(v), 3)
                    # like FineWeb-Edu's int_score: the rounded score must reach the threshold
                    verdict[i] = True if round(float(v)) >= thr else (False, f"low_{kind}")
            for i, r in enumerate(route):
                if r == "code":
                    verdict[i] = static_check(docs[i].text, code_language(docs[i].metadata) or "python")
        evaluation = {}
        if docs and meta(docs[0], "quality") is not None:
            for kind in ("edu", "math", "code"):
                idx = [i for i, r in enumerate(route) if r == kind]
                pred_drop = [verdict[i] is not True for i in idx]
                truth_bad = [self._truly_low(docs[i], kind) for i in idx]
                evaluation[kind] = {"n": len(idx), **precision_recall(pred_drop, truth_bad)}
                key = {"edu": "edu", "math": "math_score"}.get(kind)
                if key and idx:
                    pairs = [(docs[i].metadata[f"{kind}_pred"], meta(docs[i], key)) for i in idx if meta(docs[i], key)]
                    if pairs:
                        evaluation[kind]["mae"] = float(np.mean([abs(p - t) for p, t in pairs]))
        with self._writer() as writer:
            for i, d in enumerate(docs):
                v = verdict[i]
                if v is True:
                    yield self._kept(d)
                else:
                    self._dropped(d, v[1], writer if self.exclusion_writer else None)
        self.write_report({"evaluation": evaluation, "edu_threshold": self.edu_threshold,
                           "math_threshold": self.math_threshold})


# ------------------------------------------------------------------------------------ 5. decontam
class Decontaminate(StageFilter):
    """Stage 5: drop any document sharing a token ``n``-gram with a benchmark item (InfiR uses n = 10)."""

    name = "5 decontamination (n-gram overlap)"
    stage = "decontam"

    def __init__(self, benchmarks: dict[str, list[str]] | None = None, n: int = 10, index_path: str | None = None, **kw):
        super().__init__(**kw)
        if benchmarks is None and index_path is None:
            raise ValueError("Decontaminate needs the benchmark items or the path of a DecontamIndex output")
        self.n = n
        self.benchmarks = {k: list(v) for k, v in (benchmarks or {}).items()}
        self.index_path = index_path
        self._index: dict[str, str] | None = None
        self.removed: list[dict] = []

    def _begin(self, rank: int) -> None:
        super()._begin(rank)
        self.removed = []

    @property
    def index(self) -> dict[str, str]:
        """Every benchmark n-gram (space-joined tokens) -> the benchmark it comes from."""
        if self._index is None:
            if self.index_path:
                saved = json.loads(Path(self.index_path).read_text())
                if saved["n"] != self.n:
                    raise ValueError(f"{self.index_path}: index of {saved['n']}-grams, the stage wants {self.n}-grams")
                self._index = saved["ngrams"]
            else:
                self._index = build_ngram_index(self.benchmarks, self.n)
        return self._index

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        t = tokens(doc.text)
        index = self.index
        for i in range(len(t) - self.n + 1):
            gram = " ".join(t[i:i + self.n])
            hit = index.get(gram)
            if hit:
                self.removed.append({"id": doc.id, "benchmark": hit, "ngram": gram,
                                     "planted": meta(doc, "contaminated", None)})
                return False, f"overlap:{hit}"
        return True

    def extra_report(self) -> dict:
        return {"removed": self.removed, "n": self.n, "index_ngrams": len(self.index)}


# ------------------------------------------------------------------------- multi-task pieces
# The full preset runs the stages as separate datatrove executor runs (one Slurm job each), so that
# every global decision (recall training, near-duplicate clusters, the benchmark index) is made once
# over the outputs of all tasks instead of inside one task's shard. See pipeline.multi_stage_plan.
class JsonReader(PipelineStep):
    """Reads this task's share of a folder of JSONL files (datatrove's file sharding: files[rank::world_size]).

    Unlike datatrove's JsonlReader it needs no orjson and keeps documents with empty text, so the
    ``read`` stage can count them; bad lines raise an error naming file and line.
    """

    name = "📖 jsonl (file shards)"
    type = "📖 - READER"

    def __init__(self, data_folder: str, glob_pattern: str = "*.jsonl", text_key: str = "text",
                 default_metadata: dict | None = None):
        super().__init__()
        self.data_folder, self.glob_pattern, self.text_key = str(data_folder), glob_pattern, text_key
        self.default_metadata = dict(default_metadata or {})

    def files(self, rank: int = 0, world_size: int = 1) -> list[str]:
        from datatrove.io import get_datafolder
        return get_datafolder(self.data_folder).get_shard(rank, world_size, glob_pattern=self.glob_pattern)

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        for rel in self.files(rank, world_size):
            path = Path(self.data_folder) / rel
            for lineno, row in read_jsonl_numbered(path, self.text_key, required=("id",)):
                self.stat_update("documents")
                text = row.pop(self.text_key)
                doc_id = str(row.pop("id"))
                row.pop("media", None)
                yield Document(text=text, id=doc_id, metadata={**self.default_metadata, **row})


class HubReader(PipelineStep):
    """A hub dataset through datatrove's ``HuggingFaceDatasetReader``, which gives each task its own files
    (``IterableDataset.shard`` over the dataset's parquet/jsonl files, streamed). Rows with an empty text
    are passed on (as empty documents) so the ``read`` stage counts them instead of dropping them silently."""

    name = "📖 hub dataset (file shards)"
    type = "📖 - READER"

    def __init__(self, source: str, text_key: str = "text", kind: str = "web", split: str = "train"):
        super().__init__()
        self.source, self.text_key, self.kind, self.split = source, text_key, kind, split

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from datatrove.pipeline.readers import HuggingFaceDatasetReader
        if data:
            yield from data
        name, _, config_name = self.source.partition(":")
        options = {"split": self.split, **({"name": config_name} if config_name else {})}
        source, text_key, kind = self.source, self.text_key, self.kind

        def adapter(_self, row: dict, path: str, id_in_file):
            row = dict(row)
            text = row.pop(text_key, None)
            if text is None:
                raise ValueError(f"{source}: row {id_in_file} has no '{text_key}' field (fields: {sorted(row) + [text_key]})")
            if not isinstance(text, str):
                raise ValueError(f"{source}: row {id_in_file}: field '{text_key}' is {type(text).__name__}, expected a string")
            doc_id = str(row.pop("id", None) or f"{source}#{id_in_file}")
            return {"text": text or " ", "id": doc_id,
                    "metadata": {**row, "source": kind, "origin_source": source, "empty": not text.strip()}}

        reader = HuggingFaceDatasetReader(name, dataset_options=options, streaming=True, text_key=text_key,
                                          adapter=adapter)
        yield from reader.run(None, rank, world_size)


class ReadCounter(Stage):
    """The ``read`` stage of the multi-task pipeline: counts what the readers produced, skips (and lists)
    empty and oversized documents, routes each document by its source (``source_kinds``)."""

    name = "0 read"
    stage = "read"

    def __init__(self, max_doc_chars: int = 200_000, source_kinds: dict | None = None, **kw):
        super().__init__(**kw)
        self.max_doc_chars, self.source_kinds = max_doc_chars, dict(source_kinds or {})

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._begin(rank)
        skipped = []
        for doc in data:
            self.counts["docs_in"] += 1
            src = meta(doc, "origin_source", "")
            if doc.metadata.pop("empty", False) or not doc.text.strip():
                self.counts["skipped:empty"] += 1
                skipped.append({"id": doc.id, "source": src, "reason": "empty"})
                continue
            if len(doc.text) > self.max_doc_chars:
                self.counts["skipped:too_long"] += 1
                skipped.append({"id": doc.id, "source": src, "reason": "too_long", "chars": len(doc.text)})
                continue
            if src in self.source_kinds:
                doc.metadata["source"] = self.source_kinds[src]
            doc.metadata.setdefault("source", "web")
            self.counts["docs_out"] += 1
            self.counts["tokens_out"] += len(tokens(doc.text))
            yield doc
        self.write_report({"skipped": skipped})


def _load_texts(source: str, n: int, seed: int) -> list[str]:
    return [r["text"] for r in iter_documents(source, n_docs=n, seed=seed, limit=n)]


class RecallTrain(PipelineStep):
    """Recall, round ``r`` (one task): train one fastText classifier per domain on the seeds plus the
    documents the previous round recalled across *all* tasks (the most confident ``max_added``), against
    random negatives. Same random draws, in the same order, as :class:`ReasoningRecall`."""

    name = "2a recall: train (global)"
    type = "🔻 - STAGE"

    def __init__(self, work_dir: str, round_: int, seed_sources: dict[str, str], seed_docs: int, negative_source: str,
                 n_negatives: int, rounds: int, max_added: int, seed: int = 0, epoch: int = 5, dim: int = 32):
        super().__init__()
        self.work_dir, self.round = str(work_dir), round_
        self.seed_sources, self.seed_docs = dict(seed_sources), seed_docs
        self.negative_source, self.n_negatives, self.rounds = negative_source, n_negatives, rounds
        self.max_added, self.seed, self.epoch, self.dim = max_added, seed, epoch, dim

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        assert world_size == 1, "recall training is global: run it with tasks=1"
        work = Path(self.work_dir)
        seeds = {d: _load_texts(src, self.seed_docs, self.seed + 1000) for d, src in self.seed_sources.items()}
        pool = _load_texts(self.negative_source, self.n_negatives * self.rounds, self.seed + 3000)
        rng = random.Random(self.seed)
        if self.round > 1:
            state = json.loads((work / f"round{self.round - 1}" / "rng.json").read_text())
            rng.setstate((state[0], tuple(state[1]), state[2]))
        out = work / f"round{self.round}"
        out.mkdir(parents=True, exist_ok=True)
        negatives = rng.sample(pool, min(self.n_negatives, len(pool)))
        for d in self.seed_sources:
            positives = list(seeds[d])
            if self.round > 1:
                positives += [h["text"] for h in top_hits(work / f"round{self.round - 1}" / "hits" / d, self.max_added)]
            labelled = [("pos", t) for t in positives] + [("neg", t) for t in negatives]
            rng.shuffle(labelled)
            with self.track_time():
                model = train_fasttext(labelled, seed=self.seed + self.round - 1, epoch=self.epoch, dim=self.dim)
            model.save_model(str(out / f"{d}.bin"))
            self.stat_update(f"positives_{d}", value=len(positives))
        (out / "rng.json").write_text(json.dumps(rng.getstate()))
        (out / "n_seeds.json").write_text(json.dumps({d: len(v) for d, v in seeds.items()}))


def top_hits(folder: Path, k: int) -> list[dict]:
    """The ``k`` most confident recalled documents over every task's hit file (ties broken by id, so the
    result does not depend on how documents were split into tasks)."""
    rows = []
    for f in sorted(Path(folder).glob("*.jsonl")):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda h: (-h["score"], h["id"]))[:k]


class RecallScore(Stage):
    """Recall, round ``r`` (many tasks): score this task's crawl documents with the round's classifiers.

    Earlier rounds write each task's hits (its top ``max_added`` per domain: the global top ``max_added``
    is among them) for the next :class:`RecallTrain`; the last round keeps or drops documents exactly
    as :class:`ReasoningRecall` does and reports every round's precision/recall against the truth."""

    name = "2b recall: score"
    stage = "recall"

    def __init__(self, work_dir: str, round_: int, rounds: int, domains=("math", "code", "reasoning"),
                 threshold: float = 0.5, max_added: int = 2000, candidate_sources=("web", "math_web"), **kw):
        super().__init__(**kw)
        self.work_dir, self.round, self.rounds = str(work_dir), round_, rounds
        self.domains, self.threshold, self.max_added = tuple(domains), threshold, max_added
        self.candidate_sources = tuple(candidate_sources)

    @property
    def final(self) -> bool:
        return self.round == self.rounds

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        import fasttext
        self._begin(rank)
        work = Path(self.work_dir)
        rdir = work / f"round{self.round}"
        models = {d: fasttext.load_model(str(rdir / f"{d}.bin")) for d in self.domains}
        docs = list(data)
        cand = [d for d in docs if meta(d, "source", "web") in self.candidate_sources]
        texts = [d.text for d in cand]
        with self.track_time("stage"):
            scores = {dom: fasttext_proba(models[dom], texts, "pos") if texts else np.zeros(0) for dom in self.domains}
        row = {"round": self.round}
        truth_known = bool(cand) and meta(cand[0], "reasoning") is not None
        any_hit = np.zeros(len(cand), bool)
        for dom in self.domains:
            hit = scores[dom] >= self.threshold
            any_hit |= hit
            if truth_known:
                row[dom] = precision_recall(hit, [meta(d, "domain") == dom for d in cand])
            if not self.final:
                idx = sorted(np.flatnonzero(hit), key=lambda i: (-scores[dom][i], cand[i].id))[: self.max_added]
                out = rdir / "hits" / dom / f"{rank:05d}.jsonl"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text("".join(json.dumps({"id": cand[i].id, "score": float(scores[dom][i]),
                                                   "text": cand[i].text}) + "\n" for i in idx))
        if truth_known:
            row["any"] = precision_recall(any_hit, [bool(meta(d, "reasoning")) for d in cand])
        (rdir / "eval").mkdir(parents=True, exist_ok=True)
        (rdir / "eval" / f"{rank:05d}.json").write_text(json.dumps(row if truth_known else {}))
        if not self.final:
            return
        for k, d in enumerate(cand):
            best = max(self.domains, key=lambda dom: scores[dom][k])
            d.metadata["recall_score"] = float(scores[best][k])
            for dom in self.domains:
                d.metadata[f"recall_{dom}"] = round(float(scores[dom][k]), 4)
            if scores[best][k] >= self.threshold:
                d.metadata["recall_domain"] = best
        with self._writer() as writer:
            for d in docs:
                self._seen(d)
                if meta(d, "source", "web") not in self.candidate_sources or meta(d, "recall_domain"):
                    yield self._kept(d)
                else:
                    self._dropped(d, "not_recalled", writer if self.exclusion_writer else None)
        rounds = [json.loads((work / f"round{r}" / "eval" / f"{rank:05d}.json").read_text())
                  for r in range(1, self.rounds + 1)]
        self.write_report({"rounds": [r for r in rounds if r], "n_candidates": len(cand), "threshold": self.threshold,
                           "n_seeds": json.loads((work / "round1" / "n_seeds.json").read_text())})


class DedupFilter(Stage):
    """Stage 3, last step: datatrove's ``MinhashDedupFilter`` (drop all but one document of each global
    cluster) wrapped to count, report and write what it drops like the other stages."""

    name = "3d dedup: filter (datatrove MinhashDedupFilter)"
    stage = "dedup"

    def __init__(self, remove_folder: str, num_buckets: int = 14, hashes_per_bucket: int = 8, shingle_size: int = 5, **kw):
        super().__init__(**kw)
        self.remove_folder = str(remove_folder)
        self.num_buckets, self.hashes_per_bucket, self.n = num_buckets, hashes_per_bucket, shingle_size

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from datatrove.pipeline.dedup.minhash import MinhashDedupFilter
        self._begin(rank)
        has_remove = (Path(self.remove_folder) / f"{rank:06d}.remove").exists()
        inner = MinhashDedupFilter(self.remove_folder, load_cluster_ids=has_remove, load_cluster_sizes=has_remove)
        pending: deque = deque()

        def feed():
            for d in data:
                self._seen(d)
                pending.append(d)
                yield d

        sizes: Counter = Counter()

        def cluster(d):  # datatrove's global cluster id (-1: no duplicate), the same key on kept and dropped docs
            size = d.metadata.pop("minhash_cluster_size", 1)
            d.metadata["dup_cluster"] = d.metadata.pop("minhash_cluster_id", -1) if size > 1 else -1
            return size

        with self._writer() as writer:
            def drop(d):
                cluster(d)
                self._dropped(d, "near_duplicate", writer if self.exclusion_writer else None)

            with contextlib.redirect_stderr(open(os.devnull, "w")) if not has_remove else contextlib.nullcontext():
                for kept in inner.run(feed(), rank, world_size):
                    while pending[0] is not kept:
                        drop(pending.popleft())
                    pending.popleft()
                    size = cluster(kept)
                    if size > 1:
                        sizes[size] += 1  # one document of each cluster survives: count clusters by size
                    yield self._kept(kept)
            while pending:
                drop(pending.popleft())
        self.write_report({"cluster_sizes": {str(k): v for k, v in sorted(sizes.items())},
                           "num_buckets": self.num_buckets, "hashes_per_bucket": self.hashes_per_bucket,
                           "shingle_size": self.n})


def build_ngram_index(benchmarks: dict[str, list[str]], n: int) -> dict[str, str]:
    """Every benchmark token n-gram (space-joined) -> the benchmark it comes from (first name wins)."""
    index: dict[str, str] = {}
    for name in sorted(benchmarks):
        for item in benchmarks[name]:
            t = tokens(item)
            for i in range(len(t) - n + 1):
                index.setdefault(" ".join(t[i:i + n]), name)
    return index


class DecontamIndex(PipelineStep):
    """Stage 5, first step (one task): load every benchmark once and write its n-gram index, which each
    task's :class:`Decontaminate` then reads (as datatrove's NGramsDecontIndexer/Filter split the work)."""

    name = "5a decontam: n-gram index"
    type = "🦠 - DECONT"

    def __init__(self, index_path: str, benchmarks: list[str], n: int = 10, gsm8k_source: str | None = None,
                 benchmark_sources: dict | None = None):
        super().__init__()
        self.index_path, self.benchmarks, self.n = str(index_path), list(benchmarks), n
        self.gsm8k_source, self.benchmark_sources = gsm8k_source, dict(benchmark_sources or {})

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        items = load_benchmarks(self.benchmarks, self.gsm8k_source, self.benchmark_sources)
        index = build_ngram_index(items, self.n)
        Path(self.index_path).parent.mkdir(parents=True, exist_ok=True)
        Path(self.index_path).write_text(json.dumps({"n": self.n, "items": {k: len(v) for k, v in items.items()},
                                                     "ngrams": index}))
        self.stat_update("ngrams", value=len(index))
