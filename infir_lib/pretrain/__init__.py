"""Chapter 2: pre-training and annealing (InfiR §2.2-2.4).

    from infir_lib import pretrain
    result = pretrain.run("configs/toy/pretrain.yaml")            # notebook, CPU, about a minute
    # torchrun --nproc_per_node 8 -m infir_lib pretrain --config configs/full/pretrain.yaml
    # accelerate launch --config_file configs/accelerate/fsdp_8gpu.yaml -m infir_lib pretrain \\
    #     --config configs/full/pretrain.yaml
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import artifacts, stages
from ..models import PRE_TOKENIZER, SavedModelMixin, build_llama, count_parameters
from ..planning import plan_training
from ..stages import StageResult
from . import toy_mixes  # noqa: F401  (registers the toy:ch2-* sources)
from .config import PretrainConfig
from .loop import train

STAGE = stages.stage("pretrain")


@dataclass
class PretrainResult(StageResult, SavedModelMixin):
    output_dir: Path
    summary: dict
    history: list[dict]
    config: PretrainConfig | None = None

    def checkpoints(self) -> list[Path]:
        return sorted((self.output_dir / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))


def load(config: str | Path | PretrainConfig, overrides=None) -> PretrainConfig:
    """The config of a run: a preset path + overrides, or a PretrainConfig (+ a dict of replacements)."""
    return STAGE.load(config, overrides)


def resolve_init(cfg: PretrainConfig) -> PretrainConfig:
    """``init_from: configs/toy/pretrain.yaml`` -> the model folder that pre-training run produces.

    Annealing starts from pre-training; naming the pre-training preset (rather than a folder) lets the
    toy annealing config work from a clean checkout, the pre-training run coming from the cache.
    Under torchrun pass a model folder instead (each rank would otherwise build the base itself).
    """
    if STAGE.inputs[0].used(cfg):
        base = STAGE.input(cfg, "init_from")
        return dataclasses.replace(cfg, init_from=str(base.model_dir))
    return cfg


def key_extra(cfg: PretrainConfig) -> dict:
    """Key parts besides the fields: the toy BPE's splitting, and the spec of an ``init_from`` folder
    made by an earlier (cached) run; a preset path in ``init_from`` is replaced by that run's key."""
    extra = {}
    if not cfg.tokenizer_name_or_path and not cfg.init_from:
        extra["pre_tokenizer"] = PRE_TOKENIZER  # the toy BPE's splitting: a model trained on another is another
    if cfg.init_from and not STAGE.inputs[0].used(cfg) and Path(cfg.init_from).exists():
        manifest = Path(cfg.init_from).parent / artifacts.MANIFEST
        extra["init_from"] = artifacts.load_json(manifest)["spec"] if manifest.exists() else str(cfg.init_from)
    return extra


def cache_spec(cfg: PretrainConfig, eval_fn: Callable | None = None) -> dict:
    """The cache key of a run (:meth:`infir_lib.stages.Stage.key`), and what ``eval_fn`` measures."""
    if eval_fn is None:
        return STAGE.key(cfg)
    # The history holds what eval_fn measured, so a run with another eval_fn is another artifact.
    return STAGE.key(cfg, {"eval_fn": getattr(eval_fn, "cache_key", None) or f"{eval_fn.__module__}.{eval_fn.__qualname__}"})


def run(config: str | Path | PretrainConfig, overrides: dict | list | None = None,
        eval_fn: Callable | None = None) -> PretrainResult:
    """Train a model as the config says; cached by config unless ``output_dir`` is set.

    ``eval_fn(model, tokenizer, step) -> dict`` runs at every ``eval_every`` steps and its numbers go
    into the history (give it a ``cache_key`` attribute that changes when what it measures changes).
    """
    cfg = resolve_init(load(config, overrides))

    returned = []

    def build(folder: Path) -> None:
        returned.append(train(cfg, folder, eval_fn))
        if "interrupted_at" in returned[-1] and not cfg.output_dir:
            raise RuntimeError("stop_after_steps needs an explicit output_dir (a cached run cannot be resumed)")

    out = STAGE.output(cfg, build, key=None if cfg.output_dir else cache_spec(cfg, eval_fn), name="llama")
    summary = returned[-1] if cfg.output_dir else artifacts.load_json(out / "result.json")
    if "interrupted_at" in summary:
        return PretrainResult(out, summary, [], cfg)
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    return PretrainResult(out, summary, history, cfg)


def plan(config: str | Path | PretrainConfig, overrides=None):
    """What a run would cost, from the architecture built on the meta device (no download, no memory)."""
    cfg = load(config, overrides)  # init_from is not resolved: a plan never trains
    n_params = count_parameters(build_llama(cfg, device="meta"))
    tokens = cfg.total_tokens or cfg.max_steps * cfg.global_batch_size * cfg.seq_len
    micro = cfg.micro_batch_size
    n_gpus = cfg.n_gpus
    out = plan_training(n_params=n_params, n_tokens=tokens, global_batch=cfg.global_batch_size, seq_len=cfg.seq_len,
                        n_layers=cfg.num_hidden_layers, hidden=cfg.hidden_size, n_heads=cfg.num_attention_heads,
                        n_gpus=n_gpus, micro_batch=micro, gpu=cfg.gpu, mfu=cfg.assumed_mfu, sharding=cfg.sharding,
                        checkpointing=cfg.gradient_checkpointing)
    out.notes = [f"{d}: not built yet (a local folder; if it is the data stage's output, run "
                 f"`python -m infir_lib data --config configs/full/data.yaml` first, then `tokenize`)"
                 for d in cfg.datasets if _looks_local(d) and not Path(d).expanduser().exists()]
    return out


def _looks_local(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~"))


__all__ = ["PretrainConfig", "PretrainResult", "run", "plan", "load", "train"]
