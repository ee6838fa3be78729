"""The data stage: config, ``run`` (cached) and ``plan`` (dry run) for InfiR's pre-training data pipeline.

    from infir_lib import data
    res = data.run("configs/toy/data.yaml")      # about a minute on a laptop CPU, then cached
    res.funnel                                   # documents and tokens after each stage (Figure 1)
    res.load_dataset()                           # the cleaned corpus, a `datasets.Dataset`
    # python -m infir_lib data --config configs/full/data.yaml --dry-run

The pipeline is a list of datatrove steps (:mod:`infir_lib.data.steps`) run by datatrove's
``LocalPipelineExecutor`` (toy) or ``SlurmPipelineExecutor`` (full scale, config only here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

from .. import artifacts
from ..config import as_dict, load_config
from .sources import iter_documents
from .steps import (Decontaminate, HeuristicFilter, HubScorer, JsonWriter, MinHashDedup, QualityAssessment, ReasoningRecall,
                    Scorer, Stage, tokens)

STAGES = ("heuristic", "recall", "dedup", "quality", "decontam")
LABEL_FIELDS = ("source", "domain", "quality", "defect", "reasoning", "edu", "math_score", "dup_of", "dup_kind",
                "contaminated", "lang", "origin")


@dataclass
class DataConfig:
    """Everything the data pipeline's output depends on (toy and full scale share the fields)."""

    scale: Literal["toy", "full"] = "toy"
    seed: int = 0
    sources: list[str] = field(default_factory=lambda: ["toy:raw"])
    n_docs: int = 20000  # toy sources: how many documents to generate
    text_field: str = "text"
    text_fields: dict = field(default_factory=dict)  # per-source text column, e.g. {"bigcode/starcoderdata": "content"}
    source_kinds: dict = field(default_factory=dict)  # per-source route: web / math_web / wiki / code (default web)
    max_doc_chars: int = 200_000  # longer documents are skipped and counted (never silently)
    # 1. heuristic filtering
    code_languages: list[str] = field(default_factory=lambda: ["python", "javascript", "java", "c"])
    max_line_length: int = 1000
    min_alnum_fraction: float = 0.25
    drop_colon_endings: bool = True
    word_tokenizer: Literal["spacy", "regex"] = "spacy"  # datatrove filters' tokenizer (regex: fast, toy)
    prose_sources: list[str] = field(default_factory=lambda: ["web", "wiki"])  # Gopher prose rules apply here
    recall_candidate_sources: list[str] = field(default_factory=lambda: ["web", "math_web"])
    # 2. reasoning-oriented recall (fastText)
    recall_domains: list[str] = field(default_factory=lambda: ["math", "code", "reasoning"])
    recall_seed_sources: list[str] = field(default_factory=lambda: ["toy:seed_math", "toy:seed_code",
                                                                    "toy:seed_reasoning"])
    recall_seed_docs: int = 300
    recall_negative_source: str = "toy:negatives"  # general web pages and books (full scale: a random crawl sample)
    recall_negatives: int = 1500
    recall_rounds: int = 2
    recall_threshold: float = 0.5
    recall_max_added: int = 2000
    fasttext_epoch: int = 5
    fasttext_dim: int = 32
    # 3. MinHash deduplication
    minhash_num_perm: int = 128
    minhash_shingle_size: int = 5
    minhash_threshold: float = 0.7
    jaccard_sample_pairs: int = 200
    # 4. quality assessment
    quality_annotation_source: str = "toy:annotations"  # toy: generator labels stand in for LLM annotations
    quality_annotation_docs: int = 4000
    edu_scorer: str = ""  # full scale: a hub classifier id (FineWeb-Edu classifier)
    math_scorer: str = ""  # full scale: a hub classifier id (FineMath classifier)
    edu_threshold: float = 3.0
    math_threshold: float = 3.0
    # 5. decontamination
    decontam_ngram: int = 10
    benchmarks: list[str] = field(default_factory=lambda: ["gsm8k", "humaneval", "toy_arith"])
    gsm8k_source: str | None = None  # None -> the shared local copy, else the hub's openai/gsm8k
    # execution
    executor: Literal["local", "slurm"] = "local"
    tasks: int = 1
    workers: int = 1
    slurm_partition: str = "cpu"
    slurm_time: str = "24:00:00"
    slurm_cpus_per_task: int = 4
    write_removed: bool = True
    output_dir: str | None = None  # None -> the artifact cache
    verbose: bool = False

    def __post_init__(self):
        if not 0 < self.minhash_threshold <= 1:
            raise ValueError(f"minhash_threshold must be in (0, 1], got {self.minhash_threshold}")
        if self.recall_rounds < 1:
            raise ValueError("recall_rounds must be >= 1")
        if len(self.recall_seed_sources) != len(self.recall_domains):
            raise ValueError(f"recall_seed_sources has {len(self.recall_seed_sources)} entries but recall_domains "
                             f"has {len(self.recall_domains)}")


NON_SEMANTIC = ("output_dir", "verbose", "executor", "tasks", "workers", "slurm_partition", "slurm_time",
                "slurm_cpus_per_task")


def _as_config(config, overrides=None) -> DataConfig:
    if isinstance(config, DataConfig):
        return dataclasses.replace(config, **(overrides or {})) if overrides else config
    return load_config(DataConfig, config, overrides)


# ------------------------------------------------------------------------------------------- input
def load_benchmarks(names: list[str], gsm8k_source: str | None = None) -> dict[str, list[str]]:
    """Benchmark items to decontaminate against: GSM8K test questions, HumanEval prompts, toy items."""
    from .benchmarks import load_gsm8k, load_humaneval
    from .toy_web import toy_benchmark_items
    out = {}
    for name in names:
        if name == "gsm8k":
            out[name] = [r["question"] for r in load_gsm8k("test", gsm8k_source)]
        elif name == "humaneval":
            out[name] = [p["prompt"] for p in load_humaneval()]
        elif name == "toy_arith":
            out[name] = toy_benchmark_items()
        else:
            raise ValueError(f"unknown benchmark {name!r}; known: gsm8k, humaneval, toy_arith")
    return out


class SourceReader(PipelineStep):
    """Reads documents from config sources into datatrove ``Document``s.

    Empty and oversized documents are skipped and *counted* (they appear in the report and the funnel);
    malformed files raise an error naming the file and line (see :func:`sources.read_jsonl`).
    """

    name = "📖 sources"
    type = "📖 - READER"
    stage = "read"

    def __init__(self, sources: list[str], n_docs: int, seed: int, text_field: str = "text",
                 max_doc_chars: int = 200_000, report_dir: str | None = None, text_fields: dict | None = None,
                 source_kinds: dict | None = None):
        super().__init__()
        self.text_fields, self.source_kinds = dict(text_fields or {}), dict(source_kinds or {})
        self.sources, self.n_docs, self.seed = list(sources), n_docs, seed
        self.text_field, self.max_doc_chars, self.report_dir = text_field, max_doc_chars, report_dir

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        counts: Counter = Counter()
        skipped = []
        for source in self.sources:
            field_name = self.text_fields.get(source, self.text_field)
            for k, row in enumerate(iter_documents(source, n_docs=self.n_docs, seed=self.seed, text_field=field_name)):
                if k % world_size != rank:
                    continue
                text = row.get(field_name)
                doc_id = str(row.get("id", f"{source}#{k}"))
                if not isinstance(text, str):
                    raise ValueError(f"{source}: document {doc_id} (#{k}): field '{field_name}' is "
                                     f"{type(text).__name__}, expected a string")
                counts["docs_in"] += 1
                if not text.strip():
                    counts["skipped:empty"] += 1
                    skipped.append({"id": doc_id, "source": source, "reason": "empty"})
                    continue
                if len(text) > self.max_doc_chars:
                    counts["skipped:too_long"] += 1
                    skipped.append({"id": doc_id, "source": source, "reason": "too_long", "chars": len(text)})
                    continue
                counts["docs_out"] += 1
                counts["tokens_out"] += len(tokens(text))
                self.stat_update("documents")
                metadata = {k2: v for k2, v in row.items() if k2 not in (field_name, "id")}
                kind = self.source_kinds.get(source) or (metadata.get("source") if source.startswith("toy:") else "web")
                yield Document(text=text, id=doc_id, metadata={**metadata, "source": kind or "web", "origin_source": source})
        if self.report_dir:
            Path(self.report_dir).mkdir(parents=True, exist_ok=True)
            (Path(self.report_dir) / "read.json").write_text(json.dumps(
                {"stage": "read", "counts": dict(counts), "skipped": skipped}, indent=1))


def _texts(source: str, n: int, seed: int) -> list[dict]:
    return list(iter_documents(source, n_docs=n, seed=seed))


def make_toy_scorers(cfg: DataConfig):
    """Scorers trained on generator labels (toy) or loaded from the hub (full scale)."""
    def build():
        if cfg.edu_scorer and cfg.math_scorer:
            return {"edu": HubScorer(cfg.edu_scorer), "math": HubScorer(cfg.math_scorer)}
        rows = _texts(cfg.quality_annotation_source, cfg.quality_annotation_docs, cfg.seed + 2000)
        edu = [r for r in rows if r.get("edu") and r.get("domain") != "math"]
        mth = [r for r in rows if r.get("domain") == "math" and r.get("math_score")]
        return {"edu": Scorer.train([r["text"] for r in edu], [r["edu"] for r in edu], seed=cfg.seed),
                "math": Scorer.train([r["text"] for r in mth], [r["math_score"] for r in mth], seed=cfg.seed)}
    return build


def build_pipeline(cfg: DataConfig, folder: Path, benchmarks: dict[str, list[str]] | None = None) -> list:
    """The datatrove step list: reader, the five stages, and a JSONL writer of what survives."""
    reports = str(folder / "reports")

    def removed(stage):
        if not cfg.write_removed:
            return None
        return JsonWriter(str(folder / "removed" / stage))

    seeds = {d: [r["text"] for r in _texts(src, cfg.recall_seed_docs, cfg.seed + 1000)]
             for d, src in zip(cfg.recall_domains, cfg.recall_seed_sources)}
    if benchmarks is None:
        benchmarks = load_benchmarks(cfg.benchmarks, cfg.gsm8k_source)
    negatives = [r["text"] for r in _texts(cfg.recall_negative_source, cfg.recall_negatives * cfg.recall_rounds,
                                             cfg.seed + 3000)]
    return [
        SourceReader(cfg.sources, cfg.n_docs, cfg.seed, cfg.text_field, cfg.max_doc_chars, report_dir=reports,
                     text_fields=cfg.text_fields, source_kinds=cfg.source_kinds),
        HeuristicFilter(cfg.code_languages, cfg.max_line_length, cfg.min_alnum_fraction, cfg.drop_colon_endings,
                        cfg.word_tokenizer, cfg.prose_sources, report_dir=reports, exclusion_writer=removed("heuristic")),
        ReasoningRecall(seeds, negatives, cfg.recall_domains, cfg.recall_rounds, cfg.recall_threshold, cfg.recall_negatives,
                        cfg.recall_max_added, cfg.seed, cfg.fasttext_epoch, cfg.fasttext_dim,
                        cfg.recall_candidate_sources, report_dir=reports, exclusion_writer=removed("recall")),
        MinHashDedup(cfg.minhash_num_perm, cfg.minhash_shingle_size, cfg.minhash_threshold, cfg.jaccard_sample_pairs,
                     cfg.seed, report_dir=reports, exclusion_writer=removed("dedup")),
        QualityAssessment(make_toy_scorers(cfg), cfg.edu_threshold, cfg.math_threshold, report_dir=reports,
                          exclusion_writer=removed("quality")),
        Decontaminate(benchmarks, cfg.decontam_ngram, report_dir=reports, exclusion_writer=removed("decontam")),
        JsonWriter(str(folder / "output")),
    ]


# ------------------------------------------------------------------------------------------ result
@dataclass
class DataResult:
    output_dir: Path

    @property
    def dataset_path(self) -> Path:
        return self.output_dir / "dataset"

    def load_dataset(self):
        import datasets
        return datasets.load_from_disk(str(self.dataset_path))

    @property
    def reports(self) -> dict[str, dict]:
        return {p.stem: json.loads(p.read_text()) for p in sorted((self.output_dir / "reports").glob("*.json"))}

    @property
    def funnel(self) -> list[dict]:
        """Documents and tokens after each stage (the numbers behind Figure 1)."""
        return json.loads((self.output_dir / "funnel.json").read_text())

    @property
    def summary(self) -> dict:
        return json.loads((self.output_dir / "summary.json").read_text())

    def counters(self) -> dict[str, dict]:
        return {stage: rep["counts"] for stage, rep in self.reports.items()}

    def removed(self, stage: str) -> list[dict]:
        """The documents a stage dropped, with ``filter_reason`` (written by the exclusion writers)."""
        rows = []
        for f in sorted((self.output_dir / "removed" / stage).glob("*.jsonl")):
            rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        return rows

    def to_dict(self) -> dict:
        return {"output_dir": str(self.output_dir), "dataset": str(self.dataset_path), "funnel": self.funnel}


def _finish(folder: Path) -> None:
    """Turn the writer's JSONL into a `datasets` dataset and compute the funnel."""
    import datasets
    rows = []
    for f in sorted((folder / "output").glob("*.jsonl")):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    columns = list(dict.fromkeys(k for r in rows for k in r if k != "filter_reason"))
    rows = [{k: r.get(k) for k in columns} for r in rows]  # every column, None where a stage did not set it
    ds = datasets.Dataset.from_list(rows) if rows else datasets.Dataset.from_dict({"id": [], "text": []})
    ds.save_to_disk(str(folder / "dataset"))
    reports = {p.stem: json.loads(p.read_text()) for p in (folder / "reports").glob("*.json")}
    raw = reports["read"]["counts"]
    funnel = [{"stage": "raw", "docs": raw.get("docs_out", 0), "tokens": raw.get("tokens_out", 0)}]
    for stage in STAGES:
        c = reports[stage]["counts"]
        funnel.append({"stage": stage, "docs": c.get("docs_out", 0), "tokens": c.get("tokens_out", 0)})
    (folder / "funnel.json").write_text(json.dumps(funnel, indent=1))
    summary = {"n_raw": raw.get("docs_in", 0), "n_clean": len(rows), "skipped": {k: v for k, v in raw.items()
                                                                               if k.startswith("skipped")}}
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))


def execute(cfg: DataConfig, folder: Path, benchmarks: dict[str, list[str]] | None = None) -> None:
    """Run the pipeline into ``folder`` with datatrove's local executor."""
    from datatrove.executor import LocalPipelineExecutor
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(as_dict(cfg), indent=1))
    executor = LocalPipelineExecutor(build_pipeline(cfg, folder, benchmarks), tasks=1, workers=1,
                                     logging_dir=str(folder / "logs"), skip_completed=False)
    quiet = contextlib.nullcontext() if cfg.verbose else contextlib.redirect_stderr(io.StringIO())
    with quiet:
        executor.run()
    _finish(folder)


def submit_slurm(cfg: DataConfig, folder: Path) -> None:
    """Full scale: the same step list under datatrove's Slurm executor (one array job of ``tasks`` tasks).

    Run ``_finish`` on the output folder once the job is done to get the dataset and the funnel.
    """
    from datatrove.executor import SlurmPipelineExecutor
    folder.mkdir(parents=True, exist_ok=True)
    SlurmPipelineExecutor(pipeline=build_pipeline(cfg, folder), tasks=cfg.tasks, workers=cfg.workers,
                          time=cfg.slurm_time, partition=cfg.slurm_partition, cpus_per_task=cfg.slurm_cpus_per_task,
                          job_name="infir-data", logging_dir=str(folder / "logs")).run()


# Bump when the generator or a stage changes what it outputs, so cached corpora are rebuilt.
DATA_VERSION = 4


def cache_spec(cfg: DataConfig) -> dict:
    return {"data_version": DATA_VERSION, **{k: v for k, v in as_dict(cfg).items() if k not in NON_SEMANTIC}}


def run(config="configs/toy/data.yaml", overrides: dict | list | None = None) -> DataResult:
    """Run the whole pipeline (cached by config unless ``output_dir`` is set)."""
    cfg = _as_config(config, overrides)
    if cfg.executor == "slurm":
        out = Path(cfg.output_dir or "outputs/data")
        submit_slurm(cfg, out)
        return DataResult(out)
    if cfg.output_dir:
        out = Path(cfg.output_dir)
        execute(cfg, out)
    else:
        out = artifacts.cached("data", cache_spec(cfg), lambda folder: execute(cfg, folder), name="corpus")
    return DataResult(out)


def plan(config="configs/full/data.yaml", overrides=None) -> str:
    """What a run would do: the sources (streamed), the steps and their settings, the executor."""
    cfg = _as_config(config, overrides)
    lines = [f"data pipeline ({cfg.scale} scale), InfiR §2.1.2 / Figure 1", "sources (streamed, nothing downloaded now):"]
    lines += [f"  - {s}" for s in cfg.sources]
    lines += [
        "steps (datatrove PipelineSteps, same code at both scales):",
        f"  1. heuristic: GopherRepetition, GopherQuality, C4Quality(filter_no_terminal_punct=False), FineWebQuality"
        f"; code: languages={cfg.code_languages}, max_line_length={cfg.max_line_length}, "
        f"min_alnum_fraction={cfg.min_alnum_fraction}, generated-file markers; drop text ending in ':' = {cfg.drop_colon_endings}",
        f"  2. recall: fastText per domain {cfg.recall_domains}, seeds {cfg.recall_seed_sources} "
        f"({cfg.recall_seed_docs} each), {cfg.recall_negatives} random negatives from {cfg.recall_negative_source}, {cfg.recall_rounds} rounds, "
        f"threshold {cfg.recall_threshold}",
        f"  3. dedup: datasketch MinHash num_perm={cfg.minhash_num_perm}, {cfg.minhash_shingle_size}-word shingles, "
        f"LSH threshold {cfg.minhash_threshold} (global)",
        f"  4. quality: edu scorer {cfg.edu_scorer or 'fastText on ' + cfg.quality_annotation_source} >= {cfg.edu_threshold}; "
        f"math scorer {cfg.math_scorer or 'fastText on ' + cfg.quality_annotation_source} >= {cfg.math_threshold}; "
        f"code: parse + compile (Python), bracket balance (C-like)",
        f"  5. decontam: token {cfg.decontam_ngram}-grams vs {cfg.benchmarks}",
    ]
    if cfg.executor == "slurm":
        lines += [f"executor: datatrove SlurmPipelineExecutor(tasks={cfg.tasks}, partition={cfg.slurm_partition!r}, "
                  f"time={cfg.slurm_time!r}, cpus_per_task={cfg.slurm_cpus_per_task})",
                  "  recall training and MinHash LSH are global: they gather each task's documents; at full scale "
                  "run stage 1 with many tasks and stages 2-5 over its output (or swap in datatrove's "
                  "MinhashDedupSignature/Buckets/Cluster/Filter for stage 3)."]
    else:
        lines += [f"executor: datatrove LocalPipelineExecutor(tasks={cfg.tasks}, workers={cfg.workers})",
                  f"toy corpus: {cfg.n_docs} documents, seed {cfg.seed}"]
    lines.append(f"output: a `datasets` dataset in the artifact cache ({artifacts.artifact_dir('data', cache_spec(cfg), 'corpus')})")
    return "\n".join(lines)


__all__ = ["DataConfig", "DataResult", "run", "plan", "build_pipeline", "load_benchmarks", "Stage", "STAGES",
           "LABEL_FIELDS"]
