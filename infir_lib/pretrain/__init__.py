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

from .. import artifacts
from ..config import as_dict, load_config
from ..models import PRE_TOKENIZER, SavedModelMixin, build_llama, count_parameters
from ..plan import plan_training
from . import toy_mixes  # noqa: F401  (registers the toy:ch2-* sources)
from .config import PretrainConfig
from .loop import train

# Fields that change where or how a run reports, not what it computes: left out of the cache key.
NON_SEMANTIC = ("output_dir", "overwrite_output_dir", "log_every", "resume", "n_gpus", "gpu", "assumed_mfu", "sharding", "stop_after_steps",
                "tokenize_tasks", "tokenize_executor", "slurm_partition", "slurm_time", "max_tokens_per_file")
# Fields added after toy runs were cached: left out of the key at their defaults, so those runs stay valid.
LATER_FIELDS = {"tokenized_path": None, "val_blocks": 32, "fused_loss": False, "compile_model": False,
                "fused_adamw": False, "text_fields": [], "log_grad_norms": False}


@dataclass
class PretrainResult(SavedModelMixin):
    output_dir: Path
    summary: dict
    history: list[dict]


    def checkpoints(self) -> list[Path]:
        return sorted((self.output_dir / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))



def _as_config(config: str | Path | PretrainConfig, overrides=None) -> PretrainConfig:
    if isinstance(config, PretrainConfig):
        return dataclasses.replace(config, **(overrides or {})) if overrides else config
    return load_config(PretrainConfig, config, overrides)


def resolve_init(cfg: PretrainConfig) -> PretrainConfig:
    """``init_from: configs/toy/pretrain.yaml`` -> the model folder that pre-training run produces.

    Annealing starts from pre-training; naming the pre-training preset (rather than a folder) lets the
    toy annealing config work from a clean checkout, the pre-training run coming from the cache.
    Under torchrun pass a model folder instead (each rank would otherwise build the base itself).
    """
    if cfg.init_from and str(cfg.init_from).endswith((".yaml", ".yml")):
        base = run(cfg.init_from)
        return dataclasses.replace(cfg, init_from=str(base.model_dir))
    return cfg


def cache_spec(cfg: PretrainConfig, eval_fn: Callable | None = None) -> dict:
    spec = {k: v for k, v in as_dict(cfg).items() if k not in NON_SEMANTIC}
    if not spec.get("tokenizer_datasets"):
        spec.pop("tokenizer_datasets", None)  # keys of runs made before this field existed stay valid
    for key, default in LATER_FIELDS.items():
        if spec.get(key) == default:
            spec.pop(key, None)
    if not cfg.tokenizer_name_or_path and not cfg.init_from:
        spec["pre_tokenizer"] = PRE_TOKENIZER  # the toy BPE's splitting: a model trained on another is another
    if cfg.init_from and Path(cfg.init_from).exists():
        manifest = Path(cfg.init_from).parent / artifacts.MANIFEST
        spec["init_from"] = artifacts.load_json(manifest)["spec"] if manifest.exists() else str(cfg.init_from)
    if eval_fn is not None:
        # The history holds what eval_fn measured, so a run with another eval_fn is another artifact.
        spec["eval_fn"] = getattr(eval_fn, "cache_key", None) or f"{eval_fn.__module__}.{eval_fn.__qualname__}"
    return spec


def run(config: str | Path | PretrainConfig, overrides: dict | list | None = None,
        eval_fn: Callable | None = None) -> PretrainResult:
    """Train a model as the config says; cached by config unless ``output_dir`` is set.

    ``eval_fn(model, tokenizer, step) -> dict`` runs at every ``eval_every`` steps and its numbers go
    into the history (give it a ``cache_key`` attribute that changes when what it measures changes).
    """
    cfg = resolve_init(_as_config(config, overrides))
    if cfg.output_dir:
        out = Path(cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        summary = train(cfg, out, eval_fn)
    else:
        def build(folder: Path) -> None:
            summary = train(cfg, folder, eval_fn)
            if "interrupted_at" in summary:
                raise RuntimeError("stop_after_steps needs an explicit output_dir (a cached run cannot be resumed)")

        out = artifacts.cached("pretrain", cache_spec(cfg, eval_fn), build, name="llama")
        summary = artifacts.load_json(out / "result.json")
    if "interrupted_at" in summary:
        return PretrainResult(out, summary, [])
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    return PretrainResult(out, summary, history)


def plan(config: str | Path | PretrainConfig, overrides=None):
    """What a run would cost, from the architecture built on the meta device (no download, no memory)."""
    cfg = _as_config(config, overrides)  # init_from is not resolved: a plan never trains
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


__all__ = ["PretrainConfig", "PretrainResult", "run", "plan", "train"]
