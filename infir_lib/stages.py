"""The stage protocol and its runner: what every stage of the book declares, and what runs it.

A stage is one :class:`Stage` in :data:`STAGES`. It declares

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
:data:`STAGES`. This module imports no stage, so every stage may import it.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
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
    (optional) says when the input is used at all (e.g. only for ``dataset: toy:synth``)."""

    stage: str
    field: str
    overrides: str | None = None
    when: Callable[[Any], bool] | None = None

    def used(self, cfg: Any) -> bool:
        value = getattr(cfg, self.field)
        return bool(value) and str(value).endswith((".yaml", ".yml")) and (self.when is None or self.when(cfg))

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

def _sft_base_used(cfg) -> bool:
    return cfg.model_name_or_path is None


_TOY_DATASETS = ("infir_lib.data",)  # the "toy:" datasets, registered when the package is imported


STAGES: dict[str, Stage] = {}


def register(s: Stage) -> Stage:
    """Add a stage to the registry (the CLI and the runner find it by name)."""
    STAGES[s.name] = s
    return s


def stage(name: str) -> Stage:
    """The stage called ``name`` (a KeyError with "did you mean" otherwise)."""
    if name not in STAGES:
        close = difflib.get_close_matches(name, sorted(STAGES), n=1)
        raise KeyError(f"unknown stage {name!r}" + (f"; did you mean {close[0]!r}?" if close else f"; stages: {sorted(STAGES)}"))
    return STAGES[name]


for _s in (
    Stage("data", "ch 1: build the pre-training corpus (extract, filter, deduplicate, decontaminate)",
          "infir_lib.data.pipeline", "infir_lib.data.pipeline:DataConfig", "configs/toy/data.yaml",
          code=_TOY_DATASETS,
          builds=("infir_lib.data.pipeline:execute",), kind="data"),
    Stage("tokenize", "ch 2: write datatrove token files for full-scale pre-training (tokenized_path)",
          "infir_lib.pretrain.shards", "infir_lib.pretrain.config:PretrainConfig", "configs/full/pretrain.yaml",
          builds=("infir_lib.pretrain.shards:tokenize_sources",), dry_run_example=True),
    Stage("pretrain", "ch 2: pre-train a Llama-style model (toy on CPU, full on GPUs)",
          "infir_lib.pretrain", "infir_lib.pretrain.config:PretrainConfig", "configs/toy/pretrain.yaml",
          inputs=(Input("pretrain", "init_from"),), code=_TOY_DATASETS,
          builds=("infir_lib.pretrain.loop:train",), kind="pretrain", key_extra="infir_lib.pretrain:key_extra"),
    Stage("anneal", "ch 2: anneal a pre-trained model on a high-quality mix",
          "infir_lib.pretrain", "infir_lib.pretrain.config:PretrainConfig", "configs/toy/anneal.yaml",
          inputs=(Input("pretrain", "init_from"),), code=_TOY_DATASETS,
          builds=("infir_lib.pretrain.loop:train",), kind="pretrain", key_extra="infir_lib.pretrain:key_extra"),
    Stage("synth", "ch 3: synthesize and select instruction data",
          "infir_lib.synth", "infir_lib.synth.config:SynthConfig", "configs/toy/synth.yaml",
          code=("infir_lib.eval.code",),  # the code verifier, picked by name
          builds=("infir_lib.synth.pipeline:run_pipeline",), kind="synth"),
    Stage("sft", "ch 4: supervised fine-tuning with TRL",
          "infir_lib.sft", "infir_lib.sft.config:SFTRunConfig", "configs/toy/sft.yaml",
          inputs=(Input("pretrain", "base_config", "base_overrides", when=_sft_base_used),
                  Input("synth", "synth_config", when=lambda cfg: cfg.dataset == "toy:synth")),
          builds=("infir_lib.sft.trainer:train",), kind="sft"),
    Stage("eval", "ch 5: evaluate models on GSM8K, MATH, MMLU, HumanEval, MBPP and toy benchmarks",
          "infir_lib.eval.stage", "infir_lib.eval.stage:EvalConfig", "configs/toy/eval.yaml",
          builds=("infir_lib.eval.stage:evaluate_model",)),
    Stage("sandbox", "ch 5: run one Python program in the code sandbox (its own arguments: PROGRAM.py --tests ...)",
          "infir_lib.eval.sandbox"),
    Stage("vlm", "ch 6: train the vision-language model (SigLIP-style encoder, three stages)",
          "infir_lib.vlm.build", "infir_lib.vlm.config:VLMConfig", "configs/toy/vlm.yaml",
          inputs=(Input("pretrain", "lm_config"),),
          builds=("infir_lib.vlm.build:build_vlm", "infir_lib.vlm.curriculum:train_curriculum"), kind="vlm"),
    Stage("rl", "ch 7: reinforcement learning with GRPO (Curr-ReFT, Infi-MMR)",
          "infir_lib.rl", "infir_lib.rl.config:RLConfig", "configs/toy/rl_curr_reft.yaml",
          inputs=(Input("pretrain", "base_config", when=lambda cfg: not cfg.model_name_or_path),
                  Input("vlm", "vlm_config", when=lambda cfg: cfg.method in ("infi_mmr", "direct"))),
          builds=("infir_lib.rl.schedule:run_schedule",), kind="rl"),
    Stage("report", "ch 8: print the scorecard of the paper's claims (--check fails on a missing claim)",
          "infir_lib.report.scorecard"),
):
    register(_s)
