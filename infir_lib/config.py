"""Typed stage configs: YAML presets + ``key=value`` overrides, parsed by ``HfArgumentParser``.

Every stage of the book takes one dataclass. Presets live in ``configs/toy/`` and ``configs/full/``;
a notebook and the command line load them through :func:`load_config`, so both scales go through the
same parser. Mistakes are reported with the file and the key, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from transformers import HfArgumentParser

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the file and the key."""


PACKAGED_PRESETS = Path(__file__).resolve().parent / "presets"  # configs/ as shipped inside the wheel


def resolve_path(path: str | Path) -> Path:
    """Find a config or data path given relative to the cwd, to the repository root, or (``configs/...``)
    in the presets shipped with the installed package, so a notebook's ``configs/toy/sft.yaml`` also
    works on Colab, where the library is pip-installed and there is no checkout."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    candidate = REPO_ROOT / p
    if candidate.exists():
        return candidate
    if p.parts[:1] == ("configs",) and len(p.parts) > 1:
        packaged = PACKAGED_PRESETS.joinpath(*p.parts[1:])
        if packaged.exists():
            return packaged
    return p


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (YAML says so;
    PyYAML silently keeps the last value, so a preset edited in two places would lose one edit)."""


def _mapping_without_duplicates(loader, node, deep=False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in seen and key != "<<":
            raise ConfigError(f"{loader.infir_source}:{line}: duplicate key '{key}' (first given on line {seen[key]})")
        seen[key] = line
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_yaml(path: str | Path, source: str | None = None) -> tuple[Any, dict[str, int]]:
    """``(data, {top-level key: line})`` of a YAML file; every problem is a ``ConfigError`` naming the file."""
    source = source or str(path)
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ConfigError(f"{source}:{line}: not valid UTF-8 ({e.reason} at byte {e.start}); save the file as UTF-8") from e
    loader = _UniqueKeyLoader(text)
    loader.infir_source = source
    try:
        node = loader.get_single_node()
        lines = ({k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
                 if isinstance(node, yaml.MappingNode) else {})
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from e
    finally:
        loader.dispose()
    return data, lines


# ---------------------------------------------------------------- value checks
# Values that cannot make sense, refused with the key named (a negative step count or learning rate
# would otherwise run and report nonsense, a zero batch size would fail later with a ZeroDivisionError).
# A config class may name its own floors in a class attribute ``config_minimums = {"key": x}``.
_POSITIVE = re.compile(r"(_size|^seq_len|_len|^max_length|_layers|_heads|^intermediate_size|^max_position_embeddings"
                       r"|^gradient_accumulation_steps|max_new_tokens|^max_completion_length|^log_every|^logging_steps"
                       r"|^rope_theta|^n_samples|^prompts_per_step|^generation_batch)$")
_NEG_ONE_OK = ("workers", "num_workers")  # -1: "all cores"


def check_value(name: str, value: Any, f: dataclasses.Field | None, where: str, minimums: dict | None = None) -> None:
    """Refuse a number that no run can mean (see ``_POSITIVE``); ``where`` names the file/line/key."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if value != value:  # NaN
        raise ConfigError(f"{where}: NaN is not a value")
    if minimums and name in minimums:
        if value < minimums[name]:
            raise ConfigError(f"{where}: must be >= {minimums[name]}, got {value!r}")
        return
    if "seed" in name or "threshold" in name or name == "min_quality":  # scores may be negative
        return
    default = f.default if f is not None else None
    if value == -1 and (name in _NEG_ONE_OK or default == -1):
        return
    if _POSITIVE.search(name) and value <= 0:
        raise ConfigError(f"{where}: must be > 0, got {value!r}")
    if value < 0:
        hint = " (-1 means unset)" if default == -1 else ""
        raise ConfigError(f"{where}: must not be negative, got {value!r}{hint}")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against annotation ``tp``; convert strings from the command line."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: cannot be None")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if origin in (list, tuple):
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return value
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(float(value)) if float(value).is_integer() else int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["lr=1e-3", "max_steps=10"]`` -> ``{"lr": "1e-3", "max_steps": "10"}``."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        key = key.strip().lstrip("-").replace("-", "_")
        if key in out:
            raise ConfigError(f"override '{key}' is given twice ({out[key]!r} and {value!r})")
        out[key] = value
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: dict | list | None = None, **kwargs) -> T:
    """Load dataclass ``cls`` from a YAML preset, then apply overrides (dict or ``key=value`` list).

    The values are type-checked against the dataclass annotations and the dataclass is built by
    ``HfArgumentParser.parse_dict`` (as open-r1/TRL do), which also rejects keys it does not know.
    """
    values: dict[str, Any] = {}
    source = "<overrides>"
    lines: dict[str, int] = {}
    if path is not None:
        resolved = resolve_path(path)
        source = str(path)
        if not resolved.is_file():
            raise ConfigError(f"config file not found: {path} (looked in {Path.cwd()} and {REPO_ROOT})")
        loaded, lines = read_yaml(resolved, source)
        if loaded is None:
            raise ConfigError(f"{path}: the file is empty (no key: value lines); start from a preset in configs/toy/")
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of key: value")
        values.update(loaded)
    if isinstance(overrides, (list, tuple)):
        overrides = parse_overrides(overrides)
    extra = {**(overrides or {}), **kwargs}

    fields = _field_types(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    for key in sorted(set(values) - set(fields), key=str):
        raise ConfigError(f"{source}:{lines.get(key, '?')}: unknown key '{key}' for {cls.__name__}"
                          f"{did_you_mean(key, fields)}")
    unknown = sorted(set(extra) - set(fields))
    if unknown:
        hints = "; ".join(f"'{k}'{did_you_mean(k, fields)}" for k in unknown)
        raise ConfigError(f"override(s) {unknown} are not keys of {cls.__name__} (config {source}): {hints}")

    def where(k: str) -> str:
        if k in extra:
            return f"{source}: override '{k}'" if path is not None else f"override '{k}'"
        return f"{source}:{lines[k]}: key '{k}'" if k in lines else f"{source}: key '{k}'"

    values.update(extra)
    checked = {}
    for k, v in values.items():
        checked[k] = _coerce(v, fields[k], where(k))
        check_value(k, checked[k], by_name.get(k), where(k), getattr(cls, "config_minimums", None))
    try:
        (cfg,) = HfArgumentParser(cls).parse_dict(checked, allow_extra_keys=False)
    except (TypeError, ValueError, ZeroDivisionError) as e:
        raise ConfigError(f"{source}: {e}") from e
    object.__setattr__(cfg, "_source", source) if not hasattr(cfg, "__slots__") else None
    return cfg


def did_you_mean(key: str, known) -> str:
    """``"; did you mean 'learning_rate'?"`` for a near miss (difflib), else the list of known keys."""
    close = difflib.get_close_matches(str(key), sorted(known), n=3, cutoff=0.6)
    if close:
        return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    return f"; known keys: {sorted(known)}"


# Short help for keys many stages share, used where a field has neither metadata help nor a comment.
COMMON_HELP = {
    "scale": "toy (CPU, minutes) or full (the paper's sizes, GPUs)",
    "seed": "random seed of the run", "data_seed": "random seed of the data order/sampling",
    "eval_seed": "seed of the held-out evaluation items (disjoint from training)",
    "output_dir": "folder for the run's outputs; unset -> the artifact cache",
    "datasets": "sources: toy:<name>, a local file/folder, or a hub id", "sources": "sources: toy:<name>, a local file/folder, or a hub id",
    "weights": "sampling weight of each source (same order as the sources)",
    "text_field": "the field of each document that holds its text",
    "toy_docs": "documents generated per toy source", "val_fraction": "share of blocks held out for validation",
    "tokenizer_vocab_size": "vocabulary size of the toy BPE", "tokenizer_train_docs": "documents the toy BPE is trained on",
    "tokenize_tasks": "datatrove tasks per source", "tokenize_executor": "where tokenization runs: local or slurm",
    "executor": "where the pipeline runs: local or slurm", "tasks": "datatrove tasks", "workers": "parallel workers (-1: all cores)",
    "slurm_partition": "Slurm partition for submitted jobs", "slurm_time": "Slurm time limit (HH:MM:SS)",
    "slurm_cpus_per_task": "CPUs per Slurm task",
    "model_name_or_path": "the model: a hub id or a local folder", "init_from_pretrained": "start from pretrained weights",
    "hidden_size": "width of the transformer", "num_hidden_layers": "number of transformer layers",
    "num_attention_heads": "attention heads", "num_key_value_heads": "key/value heads (grouped-query attention)",
    "intermediate_size": "MLP width", "max_position_embeddings": "longest sequence the model takes",
    "vocab_size": "vocabulary size", "rope_theta": "RoPE base frequency", "tie_word_embeddings": "share input and output embeddings",
    "seq_len": "tokens per training sequence", "global_batch_size": "sequences per optimisation step, over all devices",
    "micro_batch_size": "sequences per device per forward pass (gradient accumulation fills the rest)",
    "per_device_train_batch_size": "examples per device per forward pass",
    "gradient_accumulation_steps": "micro-batches per optimisation step", "batch_size": "items per batch",
    "max_steps": "optimisation steps (-1: decided by the epochs)", "num_train_epochs": "passes over the training set",
    "learning_rate": "peak learning rate", "min_lr_ratio": "final learning rate as a share of the peak",
    "lr_scheduler_type": "learning-rate schedule", "schedule": "learning-rate schedule after warm-up",
    "warmup_steps": "linear warm-up steps", "warmup_ratio": "share of steps spent warming up",
    "weight_decay": "AdamW weight decay", "adam_beta1": "AdamW beta1", "adam_beta2": "AdamW beta2",
    "max_grad_norm": "gradient-norm clipping threshold", "max_length": "longest example in tokens (longer ones are cut)",
    "gradient_checkpointing": "recompute activations in the backward pass (less memory, more compute)",
    "bf16": "bf16 mixed precision where the device supports it", "log_every": "steps between log lines",
    "logging_steps": "steps between log lines", "eval_every": "steps between evaluations (0: none)",
    "resume": "continue from the newest usable checkpoint in output_dir",
    "n_gpus": "planning (dry-run): GPUs assumed", "gpu": "planning (dry-run): GPU model assumed",
    "assumed_mfu": "planning (dry-run): model FLOPs utilisation assumed",
    "sharding": "planning (dry-run): how weights/optimizer are sharded",
    "temperature": "sampling temperature (0: greedy)", "max_new_tokens": "most tokens generated per reply",
    "eval_max_new_tokens": "most tokens generated per evaluation reply", "max_completion_length": "most tokens per completion",
    "sandbox_timeout": "seconds a program may run in the sandbox", "sandbox_workers": "programs run in parallel in the sandbox",
    "deepspeed": "DeepSpeed config file (full scale)", "fsdp": "FSDP options passed to the trainer (full scale)",
    "use_lora": "train LoRA adapters instead of all weights", "lora_r": "LoRA rank", "lora_alpha": "LoRA scaling",
    "lora_dropout": "LoRA dropout", "lora_target_modules": "modules that get LoRA adapters",
    "assistant_only_loss": "loss on assistant tokens only", "packing": "pack several examples into one sequence",
    "eval_n": "held-out items evaluated after training (0: none)", "eval_steps": "reasoning steps of the evaluation items",
    "benchmarks": "benchmarks to run", "chat": "use the chat template: auto decides by the model name",
    "ks": "k values of pass@k", "dtype": "weights dtype", "device": "device to run on (auto picks)",
    "verbose": "print progress of each step", "method": "the RL recipe", "beta": "KL penalty coefficient",
    "reward_weights": "weight of each reward", "num_threads": "CPU threads torch may use",
}


def _source_comments(cls: type) -> tuple[dict[str, str], dict[str, str]]:
    """(field -> the comment beside it, field -> the comment block of its group) from the class body."""
    beside: dict[str, str] = {}
    group: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            src = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        block: list[str] = []
        in_block = False
        for line in src:
            stripped = line.strip()
            if stripped.startswith("#"):
                block = block if in_block else []
                block.append(stripped.lstrip("#- ").strip())
                in_block = True
                continue
            in_block = False
            if not stripped:
                block = []
                continue
            m = re.match(r"\s+(\w+)\s*:[^=]*(=.*)?$", line)
            if m:
                if "  # " in line:
                    beside[m.group(1)] = line.split("  # ", 1)[1].strip()
                if block:
                    group[m.group(1)] = " ".join(block)
    return beside, group


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is typing.Literal:
        return "{" + ",".join(str(a) for a in typing.get_args(tp)) + "}"
    name = getattr(tp, "__name__", None) if typing.get_origin(tp) is None else None
    return name or str(tp).replace("typing.", "")


def _plain(text: str) -> str:
    """Help text for a terminal: reST roles and backticks removed (:mod:`.x` -> .x)."""
    return re.sub(r":\w+:`([^`]*)`", r"\1", text).replace("`", "")


def describe_fields(cls: type) -> list[dict[str, Any]]:
    """One row per key of config ``cls``: name, type, default and help.

    The help is the field's ``metadata["help"]`` (what ``HfArgumentParser`` shows), else the comment
    beside the field in its class, so ``python -m infir_lib <stage> --help`` and the code say the same.
    """
    hints = typing.get_type_hints(cls)
    beside, group = _source_comments(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        rows.append({"name": f.name, "type": _type_name(hints[f.name]), "default": default,
                     "help": _plain(f.metadata.get("help") or beside.get(f.name) or COMMON_HELP.get(f.name)
                                    or group.get(f.name, ""))})
    return rows


def as_dict(cfg: Any) -> dict[str, Any]:
    """The plain-data view of a config (what the artifact cache hashes)."""
    return dataclasses.asdict(cfg)
