"""One entry point for every stage: python -m infir_lib STAGE --config FILE [--dry-run] [key=value ...].

It calls the same run/plan functions a notebook calls. Under torchrun or accelerate launch each
process runs this, accelerate wires them together, and only rank 0 prints the result.
A mistake in the input ends with one line on stderr and a non-zero exit (INFIR_TRACEBACK=1 shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import stages
from .config import ConfigError, describe_fields, did_you_mean

# The stages, by name: the registry of :mod:`infir_lib.stages` (a stage's config class, one-line help,
# example preset, run/plan entry points). A stage whose ``config`` is None parses its own arguments
# (its module's ``cli(argv) -> int``, e.g. the sandbox).
STAGES = stages.STAGES


def is_main_process() -> bool:
    """True on rank 0 (torchrun and accelerate launch set RANK), and outside a launcher."""
    return os.environ.get("RANK", "0") == "0"


def config_class(stage: str):
    """The config dataclass of ``stage`` (None for stages that parse their own arguments)."""
    return STAGES[stage].config_class()


def _summarise(result) -> str:
    summary = getattr(result, "summary", result)
    return json.dumps(summary, indent=1, default=str) if isinstance(summary, (dict, list)) else str(summary)


def output_location(result) -> str | None:
    """Where a stage's result was written: its ``output_dir`` (a mapping's ``output_dir`` or ``tokenized_path``)."""
    if isinstance(result, dict):
        value = result.get("output_dir") or result.get("tokenized_path")
    else:
        value = getattr(result, "output_dir", None)
    return str(value) if value else None


def _stages_help() -> str:
    width = max(map(len, STAGES))
    lines = ["usage: python -m infir_lib STAGE --config FILE [--dry-run] [key=value ...]",
             "       python -m infir_lib STAGE --help      (the stage's keys: type, default, help)", "",
             "Runs one stage of the book; a notebook calls the same run/plan functions.", "", "stages:"]
    lines += [f"  {name:<{width}}  {STAGES[name].summary}" for name in STAGES]
    lines += ["", "examples:",
              "  python -m infir_lib pretrain --config configs/toy/pretrain.yaml max_steps=50",
              "  python -m infir_lib pretrain --config configs/full/pretrain.yaml --dry-run",
              "  python -m infir_lib eval --config configs/toy/eval.yaml limit=20",
              "", "A mistake in the input ends with one line on stderr and a non-zero exit (INFIR_TRACEBACK=1: traceback)."]
    return "\n".join(lines)


def keys_help(cls) -> str:
    """The keys of config ``cls`` as a table: name, type, default, help (field metadata or comment)."""
    rows = describe_fields(cls)
    width = max(len(r["name"]) for r in rows)
    lines = [f"keys of {cls.__name__} (in the YAML file, or key=value on the command line):"]
    for r in rows:
        default = json.dumps(r["default"], default=str)
        if len(default) > 40:
            default = default[:37] + "..."
        text = f"  {r['name']:<{width}}  {r['type']}, default {default}"
        lines.append(text + (f"  -- {r['help']}" if r["help"] else ""))
    return "\n".join(lines)


def _stage_parser(stage: str) -> argparse.ArgumentParser:
    desc, preset = STAGES[stage].summary, STAGES[stage].preset
    epilog = [f"example:\n  python -m infir_lib {stage} --config {preset}"
              f"{' --dry-run' if STAGES[stage].dry_run_example else ''}"]
    cls = config_class(stage)
    if cls is not None:
        epilog.append(keys_help(cls))
    parser = argparse.ArgumentParser(prog=f"python -m infir_lib {stage}", description=desc,
                                     epilog="\n\n".join(epilog), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help=f"YAML preset, e.g. {preset}")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; build nothing, download nothing")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the config")
    return parser


_OFFLINE = ("offline", "connect", "resolve host", "network", "HF_HUB_OFFLINE", "name resolution", "max retries",
            "couldn't reach", "cannot reach", "not cached", "outgoing traffic has been disabled")
_NO_GPU = ("cuda", "nccl", "no gpu", "requires a gpu", "gpu is required", "bf16", "flash_attn", "flashattention")


def explain_failure(stage: str, error: BaseException) -> str:
    """One sentence for a failed run: what went wrong, from the exception, and what to try."""
    text = " ".join(str(error).split()).rstrip(".") or type(error).__name__
    if len(text) > 400:
        text = text[:397] + "..."
    low = text.lower()
    if isinstance(error, (OSError, ConnectionError)) and any(k.lower() in low for k in _OFFLINE):
        text = text.split(". ")[0]  # the first sentence says it; the rest is a link to the docs
        return (f"{stage}: a model or dataset could not be fetched from the Hugging Face Hub (no network, or "
                f"HF_HUB_OFFLINE is set): {text}. Full presets download; on this machine use a configs/toy/ preset "
                f"or point the source keys at local copies.")
    if isinstance(error, (RuntimeError, AssertionError, ImportError)) and any(k in low for k in _NO_GPU) \
            and not _has_cuda():
        return (f"{stage}: this run needs a GPU and this machine has none ({type(error).__name__}: {text}). "
                f"Use a configs/toy/ preset, or --dry-run to see what the full run costs.")
    if isinstance(error, FileNotFoundError) and error.filename:
        return f"{stage}: file not found: {error.filename}"
    if isinstance(error, KeyError):
        arg = error.args[0] if error.args else ""
        return f"{stage}: {arg}" if isinstance(arg, str) and " " in arg else f"{stage}: missing key {text}"
    return f"{stage}: {type(error).__name__}: {text}"


def _has_cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_stages_help())
        return 0
    stage, rest = argv[0], argv[1:]
    if stage not in STAGES:
        print(f"unknown stage {stage!r}{did_you_mean(stage, STAGES).replace('known keys', 'stages')}", file=sys.stderr)
        return 2
    spec = STAGES[stage]
    try:
        module = spec.module()
    except ModuleNotFoundError as e:
        print(f"stage {stage!r} is not available: {e}", file=sys.stderr)
        return 2
    if spec.config is None:
        return int(module.cli(rest) or 0)
    args = _stage_parser(stage).parse_args(rest)
    main_process = is_main_process()
    try:
        if args.dry_run:
            plan = spec.plan(args.config, args.overrides)
            if main_process:
                print(plan)
            if getattr(plan, "problems", None):  # the plan found what would stop the run: say so in the exit code
                if main_process:
                    print(f"not ready: {len(plan.problems)} problem(s) listed above", file=sys.stderr)
                return 1
        else:
            result = spec.run(args.config, args.overrides)
            if main_process:
                print(_summarise(result))
                where = output_location(result)
                print(f"output: {Path(where).resolve() if where else 'printed above only (set output_dir=DIR to keep it)'}")
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # a run that cannot go on: one line, not two pages of traceback
        if os.environ.get("INFIR_TRACEBACK"):
            raise
        prefix = "" if main_process else f"[rank {os.environ.get('RANK')}] "
        print(f"{prefix}error: {explain_failure(stage, e)} (INFIR_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
