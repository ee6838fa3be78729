"""Typed stage configs: YAML presets + ``key=value`` overrides, parsed by ``HfArgumentParser``.

Every stage of the book takes one dataclass. Presets live in ``configs/toy/`` and ``configs/full/``;
a notebook and the command line load them through :func:`load_config`, so both scales go through the
same parser. Mistakes are reported with the file and the key, never silently ignored.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import functools
import inspect
import json
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


# ---------------------------------------------------------------- cache-key marks on the fields
# Whether a field enters the artifact cache key is marked on the field itself (``setting(..., key=...)``),
# so a new field is one line in its dataclass, never an entry in a list kept elsewhere:
#   key=True              (default) what the run computes depends on it: in the key
#   key=False             where or how a run reports or is planned (output_dir, log_every, n_gpus): never in the key
#   key="full"            read only by the full-scale path (hub ids, generation settings): in the key at scale full only
#   key="unless_default"  a field added after runs were cached, whose default reproduces them: in the key only when
#                         set to something else, so adding it does not rebuild every cached run
KEY_MARKS = (True, False, "full", "unless_default")
# A stage that caches parts of its work separately (chapter 6's text warm-up and vision tower) names the part on
# the fields it depends on, ``setting(..., parts=("warmup",))``; :func:`part_fields` reads them back.


def setting(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, key: bool | str = True,
            help: str | None = None, parts: tuple[str, ...] = ()) -> Any:
    """A config field with its cache-key mark (see ``KEY_MARKS``), the separately cached parts of the stage
    that depend on it (``parts``) and, optionally, its ``--help`` text."""
    if key not in KEY_MARKS:
        raise ValueError(f"key={key!r}: one of {KEY_MARKS}")
    if isinstance(parts, str) or not all(isinstance(x, str) for x in parts):
        raise ValueError(f"parts={parts!r}: a tuple of part names")
    metadata = {"key": key, **({"help": help} if help else {}), **({"parts": tuple(parts)} if parts else {})}
    return dataclasses.field(default=default, default_factory=factory, metadata=metadata)


def key_mark(f: dataclasses.Field) -> bool | str:
    return f.metadata.get("key", True)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def key_fields(cfg: Any) -> dict[str, Any]:
    """The fields of config ``cfg`` that enter its cache key, by the marks on the fields (plain data)."""
    values = as_dict(cfg)
    full = getattr(cfg, "scale", "full") == "full"
    out = {}
    for f in dataclasses.fields(cfg):
        mark = key_mark(f)
        if mark is False or (mark == "full" and not full) or (mark == "unless_default" and values[f.name] == _default(f)):
            continue
        out[f.name] = values[f.name]
    return out


def part_fields(cfg: Any, part: str) -> dict[str, Any]:
    """The key fields of ``cfg`` (:func:`key_fields`) that are marked as entering the cached part ``part``."""
    marked = {f.name for f in dataclasses.fields(cfg) if part in f.metadata.get("parts", ())}
    if not marked:
        raise ValueError(f"{type(cfg).__name__} marks no field with part {part!r}")
    return {k: v for k, v in key_fields(cfg).items() if k in marked}


def fields_marked(cls: type, mark: bool | str) -> tuple[str, ...]:
    """Names of the fields of ``cls`` with cache-key mark ``mark`` (e.g. ``False``: the non-semantic ones)."""
    return tuple(f.name for f in dataclasses.fields(cls) if key_mark(f) == mark)


# ---------------------------------------------------------------- parsing: HfArgumentParser
class _ArgError(Exception):
    pass


def _plain_type(tp: Any) -> Any:
    """``X | None`` -> X (what HfArgumentParser parses the value as)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _mapping(text: str) -> dict:
    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a mapping, got {value!r}")
    return value


class ConfigParser(HfArgumentParser):
    """``HfArgumentParser`` for one config dataclass, as the library uses it: the ``key`` mark of
    :func:`setting` stays out of argparse, ``dict`` fields take a YAML/JSON mapping, and a bad value raises
    (the caller names the file, line and key) instead of exiting."""

    def __init__(self, cls: type):
        super().__init__(cls, allow_abbrev=False, add_help=False)

    @staticmethod
    def _parse_dataclass_field(parser, field):
        field = copy.copy(field)
        field.metadata = types.MappingProxyType({k: v for k, v in field.metadata.items() if k not in ("key", "parts")})
        if _plain_type(field.type) is dict:
            parser.add_argument(f"--{field.name}", type=_mapping, default=_default(field), help=field.metadata.get("help"))
            return
        HfArgumentParser._parse_dataclass_field(parser, field)

    def error(self, message):
        raise _ArgError(message)


@functools.lru_cache(maxsize=None)
def _parser(cls: type) -> ConfigParser:
    return ConfigParser(cls)


_KIND = {int: "an integer", float: "a number", str: "a string", bool: "true/false", dict: "a mapping"}


_UNSET = object()


def _tokens(name: str, value: Any, tp: Any) -> tuple[list[str], Any]:
    """(``--name value...`` for argparse, a value set after parsing: None or [] which argparse cannot take).
    Argparse sees strings only, so the shape of a YAML value is checked here (a list for a number, ...)."""
    plain = _plain_type(tp)
    optional = plain is not tp
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if not optional:
            raise _ArgError(f"argument --{name}: expected {_KIND.get(plain, 'a value')}, got None")
        return [], None
    if typing.get_origin(plain) in (list, tuple):
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise _ArgError(f"argument --{name}: expected a list, got {type(value).__name__} {value!r}")
        if not value:
            return [], []
        item = (typing.get_args(plain) or (str,))[0]
        for i, v in enumerate(value):
            if isinstance(v, (list, tuple, dict)) or v is None or (isinstance(v, bool) and item is not bool):
                raise _ArgError(f"argument --{name}[{i}]: expected {_KIND.get(item, 'a value')}, got {v!r}")
        return [f"--{name}", *(_scalar(v, item) for v in value)], _UNSET
    if plain is dict:
        if isinstance(value, dict):
            value = json.dumps(value)
        elif not isinstance(value, str):
            raise _ArgError(f"argument --{name}: expected a mapping, got {type(value).__name__}")
        return [f"--{name}={value}"], _UNSET
    if isinstance(value, (list, tuple, dict)) or (isinstance(value, bool) and plain is not bool):
        raise _ArgError(f"argument --{name}: expected {_KIND.get(plain, 'a single value')}, got {value!r}")
    return [f"--{name}={_scalar(value, plain)}"], _UNSET


def _scalar(value: Any, tp: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if tp is int and isinstance(value, float) and value.is_integer():
        return str(int(value))
    if tp is int and isinstance(value, str):  # 1e6 on the command line (YAML 1.1 reads it as a string too)
        try:
            as_float = float(value)
            return str(int(as_float)) if as_float.is_integer() and not value.strip().lstrip("-").isdigit() else value
        except ValueError:
            return value
    return str(value)


def _explain(message: str) -> tuple[str | None, str]:
    """argparse's message -> (key, what is wrong), in the words the library's errors use."""
    m = re.match(r"argument --(\w+)(\[\d+\])?(?:/--[\w-]+)*: (.*)", message)
    if not m:
        return None, message
    key, idx, why = m.group(1), m.group(2) or "", m.group(3)
    kind = re.match(r"invalid (\w+) value: (.*)", why)
    if kind:
        name = {"int": "an integer", "float": "a number", "string_to_bool": "true/false", "_mapping": "a mapping"}
        why = f"expected {name.get(kind.group(1), kind.group(1))}, got {kind.group(2)}"
    truthy = re.match(r"Truthy value expected: got (.*) but", why)
    if truthy:
        why = f"expected true/false, got {truthy.group(1)!r}"
    choice = re.match(r"invalid choice: (.*) \(choose from (.*)\)", why)
    if choice:
        why = f"{choice.group(1)} is not one of [{choice.group(2)}]"
    return key, why


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

    The YAML values and overrides become one argument list that ``HfArgumentParser`` (as open-r1/TRL use
    it) parses against the dataclass annotations; every mistake is a ``ConfigError`` naming the file,
    the line and the key (with "did you mean" for a misspelt one).
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

    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in sorted(set(values) - set(fields), key=str):
        raise ConfigError(f"{source}:{lines.get(key, '?')}: unknown key '{key}' for {cls.__name__}"
                          f"{did_you_mean(key, fields)}")
    unknown = sorted(set(extra) - set(fields))
    if unknown:
        hints_text = "; ".join(f"'{k}'{did_you_mean(k, fields)}" for k in unknown)
        raise ConfigError(f"override(s) {unknown} are not keys of {cls.__name__} (config {source}): {hints_text}")

    def where(k: str) -> str:
        if k in extra:
            return f"{source}: override '{k}'" if path is not None else f"override '{k}'"
        return f"{source}:{lines[k]}: key '{k}'" if k in lines else f"{source}: key '{k}'"

    values.update(extra)
    argv, later = [], {}
    try:
        for k, v in values.items():
            tokens, after = _tokens(k, v, hints[k])
            argv += tokens
            if after is not _UNSET:
                later[k] = after
        parsed = vars(_parser(cls).parse_args(argv))
    except _ArgError as e:
        key, why = _explain(str(e))
        raise ConfigError(f"{where(key)}: {why}" if key in fields else f"{source}: {e}") from None
    parsed = {k: parsed[k] for k in fields}
    parsed.update(later)
    for k in values:
        check_value(k, parsed[k], fields[k], where(k), getattr(cls, "config_minimums", None))
    try:
        cfg = cls(**parsed)
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
