"""Full-scale pre-training data: documents -> datatrove token files -> fixed-length blocks, mixed by weight.

At toy scale the documents fit in memory and are packed into one array (``packing.py``). At the
paper's scale (900 B tokens) tokenization is a job of its own: datatrove's ``DocumentTokenizer``
writes each source to binary token files (locally, or as a Slurm array job of many tasks), and the
training loop reads fixed-length windows from them with datatrove's ``DatatroveFolderDataset``.

The mixture weights are applied when batches are drawn: every global batch holds each source's
share of the batch (largest-remainder rounding of ``weight x batch``), so the mixture holds at every
step, not only on average. Within a source, the blocks are visited in a fresh permutation per epoch;
like the toy sampler, a batch is a function of the step alone, so resuming or changing the number of
GPUs replays the same data.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..config import ConfigError
from ..data.pipeline import SourceReader
from ..stages import StageResult, TextPlan, stage
from .config import DataArgs
from .packing import get_tokenizer


def source_slug(source: str) -> str:
    """A folder name for a source (``HuggingFaceFW/fineweb-edu`` -> ``HuggingFaceFW--fineweb-edu``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", source).strip("-")


def tokenize_sources(cfg: DataArgs, tokenizer, out: str | Path, *, tasks: int = 1, workers: int = 1,
                     executor: str = "local", slurm: dict | None = None, quiet: bool = True) -> dict:
    """Tokenize every source of ``cfg.datasets`` into ``out/<source>/*.ds`` (one datatrove job per source).

    Documents are written as ``<bos> text <eos>``, shuffled within each task's file. Toy sources are
    capped at the config's document budget (split by weight); hub sources are streamed whole.
    ``executor="slurm"`` submits the same steps with datatrove's ``SlurmPipelineExecutor`` (``slurm``:
    its keyword arguments, e.g. ``{"partition": "cpu", "time": "24:00:00"}``) and returns at once.
    Returns the token counts per source (local executor).
    """
    from datatrove.pipeline.tokens import DocumentTokenizer
    from tokenizers.processors import TemplateProcessing

    out = Path(out)
    tok_dir = out / "tokenizer"
    tokenizer.save_pretrained(tok_dir)  # datatrove's tokenizer loads tokenizer.json from a path
    total_w = sum(cfg.weights)
    counts = {}
    for source, w in zip(cfg.datasets, cfg.weights):
        n_docs = max(1, round(cfg.toy_docs * w / total_w))
        step = DocumentTokenizer(output_folder=str(out / source_slug(source)),
                                 tokenizer_name_or_path=str(tok_dir / "tokenizer.json"),
                                 max_tokens_per_file=cfg.max_tokens_per_file or None, seed=cfg.data_seed,
                                 shuffle_documents=True)
        step.post_processor = TemplateProcessing(
            single=f"{tokenizer.bos_token} $A {tokenizer.eos_token}",
            special_tokens=[(tokenizer.bos_token, tokenizer.bos_token_id), (tokenizer.eos_token, tokenizer.eos_token_id)])
        fields = dict(zip(cfg.datasets, cfg.text_fields))
        field_name = fields.get(source) or cfg.text_field
        pipeline = [SourceReader([source], n_docs, cfg.data_seed, field_name), step]
        logs = str(out / "logs" / source_slug(source))
        if executor == "slurm":
            from datatrove.executor import SlurmPipelineExecutor

            SlurmPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=logs,
                                  job_name=f"tok-{source_slug(source)}"[:60], **(slurm or {})).run()
            continue
        from datatrove.executor import LocalPipelineExecutor

        with contextlib.redirect_stderr(io.StringIO()) if quiet else contextlib.nullcontext():
            LocalPipelineExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=logs,
                                  skip_completed=False).run()
        counts[source] = source_tokens(out / source_slug(source))
    (out / "tokens.json").write_text(json.dumps(counts, indent=1))
    return counts


def source_tokens(folder: Path) -> int:
    """Tokens in a source folder, from the ``.metadata`` files datatrove writes next to each token file."""
    return sum(int(p.read_text().splitlines()[1]) for p in Path(folder).rglob("*.ds.metadata"))


def largest_remainder(weights: list[float], total: int) -> list[int]:
    """Integer shares of ``total`` proportional to ``weights`` that sum exactly to ``total``."""
    w = np.asarray(weights, dtype=float) / sum(weights)
    exact = w * total
    base = np.floor(exact).astype(int)
    order = np.argsort(-(exact - base), kind="stable")
    base[order[: total - base.sum()]] += 1
    return base.tolist()


@lru_cache(maxsize=8)
def _permutation(seed: int, source: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, source, epoch]).permutation(n).astype(np.int64)


@dataclass
class TokenBlocks:
    """Fixed-length blocks read from datatrove token files, one folder per source.

    The first ``val_blocks`` windows of each source are held out for validation and never trained on.
    """

    sources: list[str]
    weights: list[float]
    folders: list  # DatatroveFolderDataset per source (windows of seq_len tokens)
    val_blocks: int
    n_docs: int = -1  # not known without reading the files; kept for the loop's summary

    @classmethod
    def open(cls, cfg: DataArgs, seq_len: int, tokenizer) -> "TokenBlocks":
        from datatrove.utils.dataset import DatatroveFolderDataset

        root = Path(cfg.tokenized_path)
        token_size = 4 if len(tokenizer) > np.iinfo(np.uint16).max + 1 else 2
        folders = []
        for source in cfg.datasets:
            folder = root / source_slug(source)
            if not any(folder.rglob("*.ds")):
                raise FileNotFoundError(f"tokenized_path: no token files for source {source!r} in {folder} "
                                        f"(write them first: `python -m infir_lib tokenize --config CONFIG`)")
            # DatatroveFolderDataset returns windows of seq_len + 1 tokens (for shifted labels); the
            # loop shifts inside the model, so ask for seq_len - 1 to get blocks of exactly seq_len.
            folders.append(DatatroveFolderDataset(str(folder), seq_len - 1, token_size=token_size))
        blocks = cls(list(cfg.datasets), list(cfg.weights), folders, cfg.val_blocks)
        for source, f in zip(blocks.sources, folders):
            if len(f) <= blocks.val_blocks:
                raise ValueError(f"source {source!r}: {len(f)} blocks of {seq_len} tokens, not more than the "
                                 f"{blocks.val_blocks} held out for validation (val_blocks)")
        return blocks

    def n_train(self, source: int) -> int:
        return len(self.folders[source]) - self.val_blocks

    def __len__(self) -> int:
        return sum(self.n_train(s) for s in range(len(self.folders)))

    def batch_rows(self, step: int, global_batch: int, seed: int) -> np.ndarray:
        """``[global_batch, 2]`` (source, block) pairs of one global step; each source gets its share."""
        rows = []
        for s, share in enumerate(largest_remainder(self.weights, global_batch)):
            n = self.n_train(s)
            for k in range(step * share, (step + 1) * share):
                epoch, offset = divmod(k, n)
                rows.append((s, self.val_blocks + int(_permutation(seed, s, epoch, n)[offset])))
        return np.asarray(rows, dtype=np.int64)

    def blocks(self, rows: np.ndarray) -> np.ndarray:
        return np.stack([self.folders[s][int(i)]["input_ids"].numpy() for s, i in rows]).astype(np.int64)

    @property
    def val(self) -> np.ndarray:
        return self.blocks(np.asarray([(s, i) for s in range(len(self.folders)) for i in range(self.val_blocks)]))


# --------------------------------------------------------------------------- the `tokenize` stage

class TokenizeResult(StageResult):
    """The ``tokenize`` stage's result: ``output_dir`` is ``tokenized_path``; ``result["tokens_per_source"]``
    reads the summary (as the dict this stage used to return)."""

    def __init__(self, cfg, summary: dict):
        self.output_dir, self.config, self.summary, self.history = Path(cfg.tokenized_path), cfg, summary, []

    def __getitem__(self, key):
        return self.summary[key]


def run(config, overrides=None) -> TokenizeResult:
    """``python -m infir_lib tokenize --config configs/full/pretrain.yaml``: write ``tokenized_path``."""
    cfg = stage("tokenize").load(config, overrides)
    if not cfg.tokenized_path:
        raise ConfigError(f"{config}: key 'tokenized_path' is not set (the folder the token files go to)")
    slurm = {"partition": cfg.slurm_partition, "time": cfg.slurm_time}
    counts = tokenize_sources(cfg, get_tokenizer(cfg), cfg.tokenized_path, tasks=cfg.tokenize_tasks,
                              executor=cfg.tokenize_executor, slurm=slurm)
    return TokenizeResult(cfg, {"tokenized_path": cfg.tokenized_path, "tokens_per_source": counts,
                                "executor": cfg.tokenize_executor})


def plan(config, overrides=None) -> TextPlan:
    cfg = stage("tokenize").load(config, overrides)
    lines = [f"tokenize {len(cfg.datasets)} sources with {cfg.tokenizer_name_or_path or 'the toy BPE'} into "
             f"{cfg.tokenized_path or '<tokenized_path not set>'} (datatrove DocumentTokenizer, "
             f"{cfg.tokenize_executor} executor, {cfg.tokenize_tasks} tasks per source):"]
    lines += [f"  {s}  -> {source_slug(s)}/  (weight {w:g})" for s, w in zip(cfg.datasets, cfg.weights)]
    shares = largest_remainder(cfg.weights, cfg.global_batch_size)
    lines.append(f"each global batch of {cfg.global_batch_size} blocks then holds {shares} blocks per source")
    return TextPlan(lines)
