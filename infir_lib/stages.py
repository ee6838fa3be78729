"""The stage protocol and its runner: what every stage of the book declares, and what runs it.

A stage is one ``[[stage]]`` table in its package's ``stage.toml`` (plain data, read without importing the
package, so listing the stages does not load torch); :data:`STAGES` holds them all (:func:`discover`). It
declares

- ``config``: its config dataclass (``"module:Class"``, imported on first use so that a stage which does
  not need torch starts without it); whether a field enters the cache key is marked on the field
  (:func:`infir_lib.config.setting`);
- ``inputs``: the other stages' outputs it builds on, each named by a config field that holds that
  stage's preset (:class:`Input`); the runner builds them through the artifact cache and puts their
  keys into this stage's key, so no stage imports another stage's internals;
- ``entry``: the module whose ``run(config, overrides)`` builds the output (through
  :meth:`Stage.output`) and whose ``plan(config, overrides)`` says what a run would cost (``--dry-run``);
- its code: every library module its entry, config and build functions import, directly or not (read
  from the source, :func:`infir_lib.import_graph.reachable`), plus ``code``, the modules it loads only
  by name (a ``toy:`` dataset's registry, say). Their digest is part of the cache key, so editing any
  of them rebuilds the stage's cached outputs (and everything built on them). Infrastructure that
  decides how a run executes or is reported, not what it computes (:data:`INFRASTRUCTURE`), is left
  out; a change there that changes outputs bumps :data:`infir_lib.artifacts.CACHE_FORMAT`.

The runner (:meth:`Stage.load`, :meth:`Stage.key`, :meth:`Stage.output`, :meth:`Stage.input`) parses a
preset + overrides with the config module's ``HfArgumentParser``, resolves inputs, computes the key and
writes either to ``output_dir`` (when the config sets it) or to the cache. Every stage returns a
:class:`StageResult` (``output_dir``, ``config``, ``summary``, ``history``) and plans a :class:`Plan`
(printable, ``to_dict()``, ``problems``). The command line (:mod:`infir_lib.cli`) is a lookup in
:data:`STAGES`. This module imports no stage, so every stage may import it; an ``inputs`` entry's ``when``
and the other ``"module:name"`` strings are imported only when used.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import artifacts
from .config import ConfigError, key_fields, load_config, parse_overrides, part_fields
from .import_graph import module_file, reachable


# --------------------------------------------------------------------------- what a stage returns

class StageResult:
    """What every stage's ``run`` returns: where the output is, the config it ran with, a summary (plain
    data, what the command line prints) and the history of the run (one dict per logged step; may be empty).

    Each stage's result class derives from it and adds what is particular to it (``load_model``, ``rows``...).
    """

    # declared, not given class-level values (a dataclass subclass would take them as defaults)
    output_dir: Path | None
    config: Any
    summary: dict
    history: list

    def to_dict(self) -> dict:
        return {"output_dir": str(self.output_dir) if self.output_dir else None, "summary": self.summary,
                "history_records": len(self.history or [])}


class Plan:
    """What every stage's ``plan`` returns (``--dry-run``): ``str(plan)`` is what is printed,
    ``plan.to_dict()`` the same as plain data, ``plan.problems`` what would stop the run (found offline)."""

    problems: list = []

    def to_dict(self) -> dict:
        return {"text": str(self), "problems": list(self.problems)}


class TextPlan(str, Plan):
    """A plan that is its text (the stages whose plan is a list of lines)."""

    def __new__(cls, lines: str | list[str], problems: list[str] | None = None):
        obj = super().__new__(cls, lines if isinstance(lines, str) else "\n".join(lines))
        obj.problems = list(problems or [])
        return obj

    def __str__(self) -> str:
        return str.__str__(self)


# --------------------------------------------------------------------------- code digests

_DIGESTS: dict[tuple[str, int, int], str] = {}

# How a run executes or is reported, not what it computes: never part of a stage's code digest, and the
# walk over imports stops there (a module or a package prefix).
INFRASTRUCTURE = ("infir_lib.runtime", "infir_lib.artifacts", "infir_lib.config", "infir_lib.parallel",
                  "infir_lib.stages", "infir_lib.import_graph", "infir_lib.planning", "infir_lib.cli",
                  "infir_lib.report", "infir_lib.book")


def _infrastructure(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in INFRASTRUCTURE)


def stage_code(roots: tuple[str, ...]) -> tuple[str, ...]:
    """The modules whose source decides what ``roots`` compute: the roots and what they import, directly
    or through other library modules, except :data:`INFRASTRUCTURE`."""
    return tuple(m for m in reachable(tuple(roots), stop=_infrastructure) if not _infrastructure(m))


def code_digest(modules: tuple[str, ...] | list[str]) -> str:
    """SHA-256 (16 hex) over the source of ``modules``: part of the cache key of what they compute."""
    h = hashlib.sha256()
    for module in sorted(set(modules)):
        path = module_file(module)
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in _DIGESTS:
            _DIGESTS[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        h.update(f"{module}:{_DIGESTS[key]}\n".encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- the protocol

@dataclass(frozen=True)
class Input:
    """Another stage's output this stage builds on: config field ``field`` names that stage's preset
    (a YAML path), ``overrides`` (optional) the field holding ``key=value`` overrides of it, and ``when``
    (optional, ``"module:function"``, ``cfg -> bool``) says when the input is used at all (e.g. only for
    ``dataset: toy:synth``)."""

    stage: str
    field: str
    overrides: str | None = None
    when: str | None = None

    def used(self, cfg: Any) -> bool:
        value = getattr(cfg, self.field)
        return (bool(value) and str(value).endswith((".yaml", ".yml"))
                and (self.when is None or bool(_resolve(self.when)(cfg))))

    def preset(self, cfg: Any) -> tuple[str, list[str]]:
        return getattr(cfg, self.field), list(getattr(cfg, self.overrides) or []) if self.overrides else []


@dataclass(frozen=True)
class Stage:
    """One stage of the book (see the module docstring for what each part means)."""

    name: str
    summary: str  # one line for ``python -m infir_lib --help``
    entry: str  # module with run(config, overrides) and plan(config, overrides), or cli(argv)
    config: str | None = None  # "module:Class" of the config dataclass; None: the stage parses its own arguments
    preset: str | None = None  # a preset that exists (the --help example)
    inputs: tuple[Input, ...] = ()
    code: tuple[str, ...] = ()  # modules loaded only by name, whose source enters the key too (the rest is found)
    builds: tuple[str, ...] = ()  # "module:function" of the functions that compute the output (tested to be in code)
    kind: str | None = None  # artifact kind in the cache (None: not cached)
    key_extra: str | None = None  # "module:function": cfg -> more key parts (e.g. the toy BPE's splitting)
    dry_run_example: bool = False  # the --help example adds --dry-run (a stage that needs a cluster)
    chapter: int = 0  # the book's chapter: the registry (and --help) lists stages in chapter order
    declared_in: str = ""  # the stage.toml it comes from (set when it is read)

    # ---- config
    def config_class(self) -> type | None:
        return _resolve(self.config) if self.config else None

    def load(self, config: Any, overrides: dict | list | None = None) -> Any:
        """The config: a preset path (+ overrides, parsed and checked), or a config object (+ a dict of
        replacements). Every ``as_config`` of the book is this."""
        cls = self.config_class()
        if isinstance(config, cls):
            if not overrides:
                return config
            if isinstance(overrides, (list, tuple)):
                return load_config(cls, None, {**dataclasses.asdict(config), **parse_overrides(overrides)})
            return dataclasses.replace(config, **overrides)
        try:
            return load_config(cls, config, overrides)
        except ConfigError:
            raise
        except ValueError as e:  # a check of the dataclass itself, not of one key
            raise ConfigError(f"{config}: {e}") from e

    # ---- inputs and keys
    def input_key(self, cfg: Any, field: str) -> Any:
        """The cache key of the input named by ``field`` (nothing is built)."""
        inp = self._input(field)
        other = stage(inp.stage)
        preset, overrides = inp.preset(cfg)
        return other.key(other.load(preset, overrides))

    def input(self, cfg: Any, field: str) -> StageResult:
        """The input named by ``field``, built (or read from the cache) by its own stage."""
        inp = self._input(field)
        preset, overrides = inp.preset(cfg)
        return stage(inp.stage).run(preset, overrides or None)

    def _input(self, field: str) -> Input:
        for inp in self.inputs:
            if inp.field == field:
                return inp
        raise KeyError(f"stage {self.name!r} declares no input in field {field!r}")

    def code_modules(self) -> tuple[str, ...]:
        """Every module whose source enters this stage's key (see the module docstring)."""
        named = [self.entry, *self.code, *(t.partition(":")[0] for t in (*self.builds, self.config or "",
                                                                        self.key_extra or "") if t)]
        return stage_code(tuple(m for m in named if m.split(".")[0] == "infir_lib"))

    def code_digest(self) -> str:
        return code_digest(self.code_modules())

    def key(self, cfg: Any, extra: dict | None = None) -> dict:
        """The cache key of ``cfg`` (plain data): its key fields (marked on the fields), each used input's
        key in place of the preset path that names it, the digest of the stage's code, and ``extra``."""
        spec = key_fields(cfg)
        for inp in self.inputs:
            if inp.used(cfg):
                spec[inp.field] = self.input_key(cfg, inp.field)
                if inp.overrides:
                    spec.pop(inp.overrides, None)  # inside the input's key
        spec["code"] = self.code_digest()
        if self.key_extra:
            spec.update(_resolve(self.key_extra)(cfg))
        return {**spec, **(extra or {})}

    def part_key(self, cfg: Any, part: str, extra: dict | None = None) -> dict:
        """The cache key of a separately cached part of this stage's work (e.g. chapter 6's text warm-up):
        the fields marked with ``parts=(part,)``, the stage's code digest, and ``extra`` (the inputs it uses)."""
        return {"part": part, **part_fields(cfg, part), "code": self.code_digest(), **(extra or {})}

    # ---- output
    def output(self, cfg: Any, build: Callable[[Path], Any], *, key: dict | None = None, name: str = "") -> Path:
        """Where the output of ``cfg`` is, built if needed: ``cfg.output_dir`` when set (built there,
        every time), else the cache folder of ``key`` (default :meth:`key`), built once."""
        if getattr(cfg, "output_dir", None):
            out = Path(cfg.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            build(out)
            return out
        if not self.kind:
            raise ValueError(f"stage {self.name!r} is not cached: set output_dir")
        return artifacts.cached(self.kind, self.key(cfg) if key is None else key, build, name=name)

    # ---- entry points
    def module(self):
        return importlib.import_module(self.entry)

    def run(self, config: Any, overrides: dict | list | None = None, **kwargs) -> StageResult:
        return self.module().run(config, overrides, **kwargs)

    def plan(self, config: Any, overrides: dict | list | None = None) -> Plan:
        return self.module().plan(config, overrides)


def _resolve(target: str):
    """``"module:name"`` -> the object (imported on first use)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


# --------------------------------------------------------------------------- the registry

DECLARATION = "stage.toml"  # each stage package declares its stages here: plain data, read without an import
_STAGE_KEYS = {f.name for f in dataclasses.fields(Stage)} - {"declared_in"}  # that one is set when read
_INPUT_KEYS = {f.name for f in dataclasses.fields(Input)}


def read_declaration(path: Path) -> list[Stage]:
    """The stages declared in one ``stage.toml`` (``[[stage]]`` tables with :class:`Stage`'s fields; each
    ``inputs`` entry a table with :class:`Input`'s). A mistake raises a :class:`ConfigError` naming the file,
    the stage and the key."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from e
    unknown = sorted(set(data) - {"stage"})
    if unknown or not isinstance(data.get("stage"), list):
        raise ConfigError(f"{path}: expected [[stage]] tables only" + (f", found {unknown}" if unknown else ""))
    out = []
    for i, table in enumerate(data["stage"]):
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: stage #{i + 1} is not a table ([[stage]] with key = value lines)")
        where = f"{path}: stage {table.get('name', f'#{i + 1}')!r}"
        bad = sorted(set(table) - _STAGE_KEYS)
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {bad}; keys: {sorted(_STAGE_KEYS)}")
        missing = [k for k in ("name", "summary", "entry") if k not in table]
        if missing:
            raise ConfigError(f"{where}: missing key(s) {missing}")
        inputs = []
        for inp in table.get("inputs", []):
            bad = sorted(set(inp) - _INPUT_KEYS) if isinstance(inp, dict) else ["(not a table)"]
            if bad or not {"stage", "field"} <= set(inp):
                raise ConfigError(f"{where}: an input needs stage and field (optional: overrides, when), got {inp}")
            inputs.append(Input(**inp))
        lists = {k: tuple(table[k]) for k in ("code", "builds") if k in table}
        out.append(Stage(**{**table, **lists, "inputs": tuple(inputs), "declared_in": str(path)}))
    return out


def discover(root: Path = Path(__file__).parent) -> dict[str, Stage]:
    """Every stage declared by a package under ``root`` (its ``stage.toml``), in chapter order (a package's
    own order within a chapter). Adding a stage is adding a package with a ``stage.toml``: nothing here changes."""
    found: dict[str, Stage] = {}
    for path in sorted(Path(root).glob(f"*/{DECLARATION}")):
        for s in read_declaration(path):
            if s.name in found:
                raise ConfigError(f"stage {s.name!r} is declared twice: {found[s.name].declared_in} and {path}")
            found[s.name] = s
    return dict(sorted(found.items(), key=lambda kv: kv[1].chapter))


STAGES: dict[str, Stage] = discover()


def stage(name: str) -> Stage:
    """The stage called ``name`` (a KeyError with "did you mean" otherwise)."""
    if name not in STAGES:
        close = difflib.get_close_matches(name, sorted(STAGES), n=1)
        raise KeyError(f"unknown stage {name!r}" + (f"; did you mean {close[0]!r}?" if close else f"; stages: {sorted(STAGES)}"))
    return STAGES[name]
