"""The data stage: config, ``run`` (cached) and ``plan`` (dry run) for InfiR's pre-training data pipeline.

    from infir_lib import data
    res = data.run("configs/toy/data.yaml")      # about a minute on a laptop CPU, then cached
    res.funnel                                   # documents and tokens after each stage (Figure 1)
    res.load_dataset()                           # the cleaned corpus, a `datasets.Dataset`
    # python -m infir_lib data --config configs/full/data.yaml --dry-run

Two ways to run the same stages (:mod:`infir_lib.data.steps`):

- ``multi_stage: false`` (toy): one datatrove ``LocalPipelineExecutor`` run with one task that holds the
  whole corpus, so fastText recall and datasketch MinHash-LSH see every document (:func:`build_pipeline`).
- ``multi_stage: true`` (full scale): one executor run per stage (:func:`stage_runs`), each with its own
  task count, every global decision made once over all tasks' outputs: per-file readers; heuristics in
  ``tasks`` tasks; recall classifiers trained in one task per round, documents scored in ``tasks``
  tasks; datatrove's MinhashDedupSignature -> MinhashDedupBuckets -> MinhashDedupCluster ->
  MinhashDedupFilter; one benchmark n-gram index; per-rank writers and reports summed by a last merge
  step. Locally (``LocalPipelineExecutor``) or as chained Slurm jobs (``SlurmPipelineExecutor``, ``depends``).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

from .. import artifacts, stages
from ..config import as_dict, setting
from ..runtime import display_path
from ..stages import StageResult, TextPlan
from .benchmarks import BENCHMARK_SOURCES, KNOWN_BENCHMARKS, load_benchmarks  # noqa: F401  (re-exported)
from .sources import iter_documents
from .steps import (DecontamIndex, Decontaminate, DedupFilter, HeuristicFilter, HubReader, HubScorer, JsonReader, JsonWriter,
                    MinHashDedup, QualityAssessment, ReadCounter, ReasoningRecall, RecallScore, RecallTrain, RegexWordTokenizer,
                    Scorer, Stage, merge_reports, tokens, write_rank_report)

STAGES = ("heuristic", "recall", "dedup", "quality", "decontam")


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
    minhash_num_perm: int = 128  # one task (datasketch LSH): permutations
    minhash_shingle_size: int = 5
    minhash_threshold: float = 0.7  # one task: estimated Jaccard a duplicate must reach
    jaccard_sample_pairs: int = 200
    minhash_buckets: int = 14  # multi_stage (datatrove MinHash): LSH bands; FineWeb's 14 x 8
    minhash_hashes_per_bucket: int = 8  # a pair is a duplicate when all the hashes of one band agree
    minhash_bucket_workers: int = setting(1, key=False)  # tasks per band in MinhashDedupBuckets (its task count: buckets x this)
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
    benchmark_sources: dict = field(default_factory=dict)  # hub ids for math / mmlu / mbpp (defaults: the eval preset's)
    # execution
    multi_stage: bool = False  # true: one executor run per stage, global dedup/recall across tasks (see stage_runs)
    input_files: int = setting(8, key=False)  # multi_stage with toy/local sources: JSONL files the input is split into (per-file sharding)
    executor: Literal["local", "slurm"] = setting("local", key=False)
    tasks: int = setting(1, key=False)
    workers: int = setting(1, key=False)
    slurm_partition: str = setting("cpu", key=False)
    slurm_time: str = setting("24:00:00", key=False)
    slurm_cpus_per_task: int = setting(4, key=False)
    write_removed: bool = True
    output_dir: str | None = setting(None, key=False)  # None -> the artifact cache
    verbose: bool = setting(False, key=False)

    def __post_init__(self):
        if not 0 < self.minhash_threshold <= 1:
            raise ValueError(f"minhash_threshold must be in (0, 1], got {self.minhash_threshold}")
        if self.recall_rounds < 1:
            raise ValueError("recall_rounds must be >= 1")
        if len(self.recall_seed_sources) != len(self.recall_domains):
            raise ValueError(f"recall_seed_sources has {len(self.recall_seed_sources)} entries but recall_domains "
                             f"has {len(self.recall_domains)}")
        if self.tasks < 1:
            raise ValueError(f"tasks must be >= 1, got {self.tasks}")
        if self.tasks > 1 and not self.multi_stage:
            raise ValueError(f"tasks={self.tasks} needs multi_stage: true (with one executor run, recall and MinHash "
                             "dedup would be global only within each task's shard)")
        if self.minhash_buckets < 1 or self.minhash_hashes_per_bucket < 1 or self.minhash_bucket_workers < 1:
            raise ValueError("minhash_buckets, minhash_hashes_per_bucket and minhash_bucket_workers must be >= 1")
        if self.input_files < 1:
            raise ValueError(f"input_files must be >= 1, got {self.input_files}")


def load(config, overrides=None) -> DataConfig:
    """The config of a run: a preset path + overrides, or a DataConfig (+ a dict of replacements)."""
    return stages.stage("data").load(config, overrides)


# ------------------------------------------------------------------------------------------- input
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
            rows = iter_documents(source, n_docs=self.n_docs, seed=self.seed, text_field=field_name, rank=rank,
                                  world_size=world_size)  # this task's share only (by shard or by file)
            for local, row in enumerate(rows):
                k = row.pop("_index", None)  # the document's index in the whole stream, when the source has one
                k = local if world_size == 1 else (k if k is not None else f"r{rank}.{local}")
                text = (row.get(field_name) if "+" not in field_name or field_name in row
                        else "\n\n".join(str(row.get(c, "")) for c in field_name.split("+")))
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
            write_rank_report(self.report_dir, "read", rank,
                              {"stage": "read", "rank": rank, "counts": dict(counts), "skipped": skipped})


def _texts(source: str, n: int, seed: int) -> list[dict]:
    return list(iter_documents(source, n_docs=n, seed=seed, limit=n))


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
    """One task's datatrove step list (``multi_stage: false``): reader, the five stages, a JSONL writer.

    Recall and dedup gather every document they receive, so this is global only when one task reads
    the whole corpus (the toy); :func:`stage_runs` is the multi-task version."""
    reports = str(folder / "reports")

    def removed(stage):
        if not cfg.write_removed:
            return None
        return JsonWriter(str(folder / "removed" / stage))

    seeds = {d: [r["text"] for r in _texts(src, cfg.recall_seed_docs, cfg.seed + 1000)]
             for d, src in zip(cfg.recall_domains, cfg.recall_seed_sources)}
    if benchmarks is None:
        benchmarks = load_benchmarks(cfg.benchmarks, cfg.gsm8k_source, cfg.benchmark_sources)
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


# --------------------------------------------------------------------------------- multi-stage
def write_input_files(cfg: DataConfig, folder: Path) -> Path:
    """Toy and local sources, written as ``input_files`` JSONL files so datatrove's readers can give each
    task its own files (contiguous chunks, in source order). Hub sources are not copied: HubReader shards
    their own files."""
    rows = []
    for source in cfg.sources:
        if _is_hub(source):
            continue
        field_name = cfg.text_fields.get(source, cfg.text_field)
        for k, row in enumerate(iter_documents(source, n_docs=cfg.n_docs, seed=cfg.seed, text_field=field_name)):
            text = row.get(field_name)
            doc_id = str(row.get("id", f"{source}#{k}"))
            if not isinstance(text, str):
                raise ValueError(f"{source}: document {doc_id} (#{k}): field '{field_name}' is "
                                 f"{type(text).__name__}, expected a string")
            metadata = {k2: v for k2, v in row.items() if k2 not in (field_name, "id")}
            kind = cfg.source_kinds.get(source) or (metadata.get("source") if source.startswith("toy:") else "web")
            rows.append({**metadata, "id": doc_id, "text": text, "source": kind or "web", "origin_source": source})
    out = folder / "input"
    out.mkdir(parents=True, exist_ok=True)
    n = max(cfg.input_files, cfg.tasks)
    size = -(-len(rows) // n) if rows else 0
    for i in range(n):
        chunk = rows[i * size:(i + 1) * size]
        (out / f"{i:05d}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chunk))
    return out


def _is_hub(source: str) -> bool:
    return not source.startswith("toy:") and not Path(source).expanduser().exists()


def _minhash_config(cfg: DataConfig):
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    return MinhashConfig(n_grams=cfg.minhash_shingle_size, num_buckets=cfg.minhash_buckets,
                         hashes_per_bucket=cfg.minhash_hashes_per_bucket, seed=1)


def stage_table(cfg: DataConfig) -> list[tuple[str, int, str]]:
    """(executor run, tasks, what it does), in order; each run depends on the one before."""
    n, r = cfg.tasks, cfg.recall_rounds
    rows = [("filter", n, "read (per-file shards) + 1. heuristic filtering; kept -> work/heuristic")]
    for k in range(1, r + 1):
        rows.append((f"recall_train_{k}", 1, f"2. recall round {k}: train fastText per domain on seeds"
                     + (" + round-%d hits of all tasks" % (k - 1) if k > 1 else "") + " (global)"))
        rows.append((f"recall_score_{k}", n, f"2. recall round {k}: score this task's crawl pages"
                     + ("; keep the recalled -> work/recalled" if k == r else "; write its top hits")))
    rows += [("minhash_signature", n, "3. datatrove MinhashDedupSignature: per-document band hashes"),
             ("minhash_buckets", cfg.minhash_buckets * cfg.minhash_bucket_workers,
              "3. datatrove MinhashDedupBuckets: duplicate pairs per band, across all tasks' signatures"),
             ("minhash_cluster", 1, "3. datatrove MinhashDedupCluster: global clusters, what each task removes"),
             ("decontam_index", 1, f"5. benchmark {cfg.decontam_ngram}-gram index: {', '.join(cfg.benchmarks)}"),
             ("quality", n, "3. MinhashDedupFilter + 4. quality assessment + 5. decontamination; kept -> "
              "output/<kind>/<rank>.jsonl (one folder per kind: what pre-training mixes by weight)"),
             ("merge", 1, "sum the per-rank reports (reports/<stage>/<rank>.json -> reports/<stage>.json), write "
              "the funnel" + (" and a datasets copy of the output" if cfg.executor != "slurm" else ""))]
    return rows


def stage_runs(cfg: DataConfig, folder: Path) -> list[tuple[str, list, int]]:
    """The multi-stage pipeline as (name, datatrove step list, tasks), matching :func:`stage_table`."""
    folder = Path(folder)
    reports, work = str(folder / "reports"), folder / "work"

    def removed(stage):
        return JsonWriter(str(folder / "removed" / stage)) if cfg.write_removed else None

    readers = []
    if any(not _is_hub(s) for s in cfg.sources):
        readers.append(JsonReader(str(folder / "input")))
    readers += [HubReader(s, cfg.text_fields.get(s, cfg.text_field), cfg.source_kinds.get(s, "web"))
                for s in cfg.sources if _is_hub(s)]
    runs = [("filter", [*readers, ReadCounter(cfg.max_doc_chars, cfg.source_kinds, report_dir=reports),
                        HeuristicFilter(cfg.code_languages, cfg.max_line_length, cfg.min_alnum_fraction,
                                        cfg.drop_colon_endings, cfg.word_tokenizer, cfg.prose_sources,
                                        report_dir=reports, exclusion_writer=removed("heuristic")),
                        JsonWriter(str(work / "heuristic"))], cfg.tasks)]
    seed_sources = dict(zip(cfg.recall_domains, cfg.recall_seed_sources))
    for k in range(1, cfg.recall_rounds + 1):
        final = k == cfg.recall_rounds
        runs.append((f"recall_train_{k}", [RecallTrain(
            str(work / "recall"), k, seed_sources, cfg.recall_seed_docs, cfg.recall_negative_source, cfg.recall_negatives,
            cfg.recall_rounds, cfg.recall_max_added, cfg.seed, cfg.fasttext_epoch, cfg.fasttext_dim)], 1))
        score = RecallScore(str(work / "recall"), k, cfg.recall_rounds, cfg.recall_domains, cfg.recall_threshold,
                            cfg.recall_max_added, cfg.recall_candidate_sources, report_dir=reports if final else None,
                            exclusion_writer=removed("recall") if final else None)
        runs.append((f"recall_score_{k}", [JsonReader(str(work / "heuristic")), score]
                     + ([JsonWriter(str(work / "recalled"))] if final else []), cfg.tasks))
    from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupSignature
    mh = _minhash_config(cfg)
    sig = MinhashDedupSignature(str(work / "minhash" / "signatures"), config=mh)
    if cfg.word_tokenizer == "regex":
        sig.word_tokenizer = RegexWordTokenizer()
    index = str(work / "decontam" / "ngrams.json")
    runs += [
        ("minhash_signature", [JsonReader(str(work / "recalled")), sig], cfg.tasks),
        ("minhash_buckets", [MinhashDedupBuckets(str(work / "minhash" / "signatures"), str(work / "minhash" / "buckets"),
                                                 config=mh)], cfg.minhash_buckets * cfg.minhash_bucket_workers),
        ("minhash_cluster", [MinhashDedupCluster(str(work / "minhash" / "buckets"), str(work / "minhash" / "remove"),
                                                 config=mh, save_cluster_id=True, save_cluster_size=True)], 1),
        ("decontam_index", [DecontamIndex(index, cfg.benchmarks, cfg.decontam_ngram, cfg.gsm8k_source,
                                          cfg.benchmark_sources)], 1),
        ("quality", [JsonReader(str(work / "recalled")),
                     DedupFilter(str(work / "minhash" / "remove"), cfg.minhash_buckets, cfg.minhash_hashes_per_bucket,
                                 cfg.minhash_shingle_size, report_dir=reports, exclusion_writer=removed("dedup")),
                     QualityAssessment(make_toy_scorers(cfg), cfg.edu_threshold, cfg.math_threshold, report_dir=reports,
                                       exclusion_writer=removed("quality")),
                     Decontaminate(None, cfg.decontam_ngram, index_path=index, report_dir=reports,
                                   exclusion_writer=removed("decontam")),
                     # one folder per kind (web, math_web, code, wiki, ...): what pre-training mixes by weight
                     JsonWriter(str(folder / "output"), output_filename="${source}/${rank}.jsonl")], cfg.tasks),
        ("merge", [MergeStep(str(folder), copy_dataset=cfg.executor != "slurm")], 1),
    ]
    names = [r[0] for r in runs]
    assert names == [r[0] for r in stage_table(cfg)], names
    return runs


class MergeStep(PipelineStep):
    """The last run (one task): per-rank reports summed into one per stage, then the funnel (and, for a local
    run, the ``datasets`` copy of the output; a Slurm run's output is terabytes of JSONL and stays as it is)."""

    name = "merge reports"
    type = "🔢 - STATS"

    def __init__(self, folder: str, copy_dataset: bool = True):
        super().__init__()
        self.folder, self.copy_dataset = folder, copy_dataset

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        _finish(Path(self.folder), self.copy_dataset)
        return
        yield


# ------------------------------------------------------------------------------------------ result
@dataclass
class DataResult(StageResult):
    output_dir: Path
    config: DataConfig | None = None

    @property
    def history(self) -> list[dict]:
        return self.funnel  # documents and tokens after each step, in order

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


def _finish(folder: Path, copy_dataset: bool = True) -> None:
    """Sum the per-rank reports, compute the funnel, and (``copy_dataset``) turn the writers' JSONL (one file
    per rank, or per kind and rank) into a `datasets` dataset, which holds every row in memory once."""
    import datasets
    merge_reports(folder / "reports")
    rows = []
    for f in sorted((folder / "output").rglob("*.jsonl")) if copy_dataset else []:
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    if copy_dataset:
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
    n_clean = len(rows) if copy_dataset else funnel[-1]["docs"]
    summary = {"n_raw": raw.get("docs_in", 0), "n_clean": n_clean, "skipped": {k: v for k, v in raw.items()
                                                                               if k.startswith("skipped")}}
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))


def _workers(cfg: DataConfig, tasks: int) -> int:
    return tasks if cfg.workers == -1 else max(1, min(cfg.workers, tasks))


def execute(cfg: DataConfig, folder: Path, benchmarks: dict[str, list[str]] | None = None) -> None:
    """Run the pipeline into ``folder`` with datatrove's local executor (one run, or one run per stage)."""
    from datatrove.executor import LocalPipelineExecutor
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(as_dict(cfg), indent=1))
    quiet = contextlib.nullcontext() if cfg.verbose else contextlib.redirect_stderr(io.StringIO())
    if not cfg.multi_stage:
        executor = LocalPipelineExecutor(build_pipeline(cfg, folder, benchmarks), tasks=1, workers=1,
                                         logging_dir=str(folder / "logs"), skip_completed=False)
        with quiet:
            executor.run()
        _finish(folder)
        return
    if benchmarks is not None:
        raise ValueError("multi_stage runs load the benchmarks named in the config (benchmarks=...), not passed-in items")
    write_input_files(cfg, folder)
    with quiet:
        for name, pipeline, tasks in stage_runs(cfg, folder):
            LocalPipelineExecutor(pipeline, tasks=tasks, workers=_workers(cfg, tasks),
                                  logging_dir=str(folder / "logs" / name), skip_completed=False).run()


def submit_slurm(cfg: DataConfig, folder: Path) -> None:
    """Full scale: one Slurm array job per stage of :func:`stage_runs`, each depending on the one before
    (datatrove's ``depends``), the last one merging the per-rank reports into the dataset and funnel."""
    from datatrove.executor import SlurmPipelineExecutor
    if not cfg.multi_stage:
        raise ValueError("executor: slurm needs multi_stage: true (a single run is global only within each task)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(as_dict(cfg), indent=1))
    if any(not _is_hub(s) for s in cfg.sources):
        write_input_files(cfg, folder)
    previous = None
    for name, pipeline, tasks in stage_runs(cfg, folder):
        previous = SlurmPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=cfg.workers if tasks > 1 else -1, time=cfg.slurm_time,
            partition=cfg.slurm_partition, cpus_per_task=cfg.slurm_cpus_per_task, job_name=f"infir-data-{name}",
            logging_dir=str(folder / "logs" / name), depends=previous)
    previous.run()  # launches the chain: each job waits for the one before (afterok)


def cache_spec(cfg: DataConfig) -> dict:
    """The cache key (:meth:`infir_lib.stages.Stage.key`: the key fields and the digest of the stage's code)."""
    return stages.stage("data").key(cfg)


def run(config="configs/toy/data.yaml", overrides: dict | list | None = None) -> DataResult:
    """Run the whole pipeline (cached by config unless ``output_dir`` is set)."""
    cfg = load(config, overrides)
    if cfg.executor == "slurm":
        out = Path(cfg.output_dir or "outputs/data")
        submit_slurm(cfg, out)
        return DataResult(out, cfg)
    return DataResult(stages.stage("data").output(cfg, lambda folder: execute(cfg, folder), name="corpus"), cfg)


def plan(config="configs/full/data.yaml", overrides=None) -> TextPlan:
    """What a run would do: the sources (streamed), the steps and their settings, the executor runs."""
    cfg = load(config, overrides)
    lines = [f"data pipeline ({cfg.scale} scale), InfiR §2.1.2 / Figure 1", "sources (streamed, nothing downloaded now):"]
    lines += [f"  - {s}" for s in cfg.sources]
    if cfg.multi_stage:
        dedup = (f"  3. dedup: datatrove MinHash, {cfg.minhash_shingle_size}-word shingles, {cfg.minhash_buckets} bands x "
                 f"{cfg.minhash_hashes_per_bucket} hashes (global across tasks)")
    else:
        dedup = (f"  3. dedup: datasketch MinHash num_perm={cfg.minhash_num_perm}, {cfg.minhash_shingle_size}-word shingles, "
                 f"LSH threshold {cfg.minhash_threshold} (global: one task holds the corpus)")
    lines += [
        "steps (datatrove PipelineSteps):",
        f"  1. heuristic: GopherRepetition, GopherQuality, C4Quality(filter_no_terminal_punct=False), FineWebQuality"
        f"; code: languages={cfg.code_languages}, max_line_length={cfg.max_line_length}, "
        f"min_alnum_fraction={cfg.min_alnum_fraction}, generated-file markers; drop text ending in ':' = {cfg.drop_colon_endings}",
        f"  2. recall: fastText per domain {cfg.recall_domains}, seeds {cfg.recall_seed_sources} "
        f"({cfg.recall_seed_docs} each), {cfg.recall_negatives} random negatives from {cfg.recall_negative_source}, {cfg.recall_rounds} rounds, "
        f"threshold {cfg.recall_threshold}",
        dedup,
        f"  4. quality: edu scorer {cfg.edu_scorer or 'fastText on ' + cfg.quality_annotation_source} >= {cfg.edu_threshold}; "
        f"math scorer {cfg.math_scorer or 'fastText on ' + cfg.quality_annotation_source} >= {cfg.math_threshold}; "
        f"code: parse + compile (Python), bracket balance (C-like)",
        f"  5. decontam: token {cfg.decontam_ngram}-grams vs {cfg.benchmarks}",
    ]
    if cfg.executor == "slurm":
        lines.append(f"executor: datatrove SlurmPipelineExecutor per run (partition={cfg.slurm_partition!r}, "
                     f"time={cfg.slurm_time!r}, cpus_per_task={cfg.slurm_cpus_per_task}), each job depends on the one before")
    else:
        lines.append(f"executor: datatrove LocalPipelineExecutor(tasks={cfg.tasks}, workers={cfg.workers})"
                     + (" per run" if cfg.multi_stage else ""))
    if cfg.multi_stage:
        lines.append("executor runs (in order; tasks):")
        lines += [f"  {name:<18} tasks={tasks:<5} {what}" for name, tasks, what in stage_table(cfg)]
    if any(s.startswith("toy:") for s in cfg.sources):
        lines.append(f"toy corpus: {cfg.n_docs} documents, seed {cfg.seed}")
    if cfg.executor == "slurm":
        out = cfg.output_dir or "outputs/data"  # relative: to the folder the jobs are submitted from
        where = display_path(out) if Path(out).is_absolute() else out
        lines.append(f"output: JSONL per kind of document in {where}/output/<kind>/ (what pre-training reads) and the "
                     f"funnel in {where}/funnel.json, written by the merge job" if cfg.multi_stage else
                     f"output: a `datasets` dataset in {where}/dataset (written by the merge job)")
    else:
        lines.append(f"output: a `datasets` dataset in the artifact cache "
                     f"({display_path(artifacts.artifact_dir('data', cache_spec(cfg), 'corpus'))})")
    return TextPlan(lines)


__all__ = ["DataConfig", "DataResult", "run", "plan", "build_pipeline", "stage_runs", "stage_table", "load_benchmarks",
           "Stage", "STAGES"]
