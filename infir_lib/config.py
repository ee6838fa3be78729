"""Typed stage configs: YAML presets + ``key=value`` overrides, parsed by ``HfArgumentParser``.

Every stage of the book takes one dataclass. Presets live in ``configs/toy/`` and ``configs/full/``;
a notebook and the command line load them through :func:`load_config`, so both scales go through the
same parser. Mistakes are reported with the file and the key, never silently ignored.
"""

from __future__ import annotations

import dataclasses
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
        out[key.strip().lstrip("-").replace("-", "_")] = value
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: dict | list | None = None, **kwargs) -> T:
    """Load dataclass ``cls`` from a YAML preset, then apply overrides (dict or ``key=value`` list).

    The values are type-checked against the dataclass annotations and the dataclass is built by
    ``HfArgumentParser.parse_dict`` (as open-r1/TRL do), which also rejects keys it does not know.
    """
    values: dict[str, Any] = {}
    source = "<overrides>"
    if path is not None:
        resolved = resolve_path(path)
        source = str(path)
        if not resolved.is_file():
            raise ConfigError(f"config file not found: {path} (looked in {Path.cwd()} and {REPO_ROOT})")
        try:
            loaded = yaml.safe_load(resolved.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of key: value")
        values.update(loaded)
    if isinstance(overrides, (list, tuple)):
        overrides = parse_overrides(overrides)
    extra = {**(overrides or {}), **kwargs}

    fields = _field_types(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} for {cls.__name__}; known keys: {sorted(fields)}")
    unknown = sorted(set(extra) - set(fields))
    if unknown:
        raise ConfigError(f"override(s) {unknown} are not keys of {cls.__name__} (config {source})")
    values.update(extra)
    checked = {k: _coerce(v, fields[k], f"{source}: key '{k}'") for k, v in values.items()}
    try:
        (cfg,) = HfArgumentParser(cls).parse_dict(checked, allow_extra_keys=False)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: {e}") from e
    object.__setattr__(cfg, "_source", source) if not hasattr(cfg, "__slots__") else None
    return cfg


def as_dict(cfg: Any) -> dict[str, Any]:
    """The plain-data view of a config (what the artifact cache hashes)."""
    return dataclasses.asdict(cfg)
