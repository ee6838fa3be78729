"""One entry point for every stage: python -m infir_lib STAGE --config FILE [--dry-run] [key=value ...].

It calls the same run/plan functions a notebook calls. Under torchrun or accelerate launch each
process runs this, accelerate wires them together, and only rank 0 prints the result.
A mistake in the input ends with one line on stderr and a non-zero exit (INFIR_TRACEBACK=1 shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from .config import ConfigError, did_you_mean

# stage name -> module. A stage module has ``run(config, overrides)`` and ``plan(config, overrides)``;
# a module may instead expose ``cli(argv) -> int`` to parse its own arguments (e.g. the sandbox).
STAGES = {
    "data": "infir_lib.data",
    "pretrain": "infir_lib.pretrain",
    "anneal": "infir_lib.pretrain",
    "tokenize": "infir_lib.pretrain.shards",
    "synth": "infir_lib.synth",
    "sft": "infir_lib.sft",
    "eval": "infir_lib.eval",
    "sandbox": "infir_lib.eval.sandbox",
    "vlm": "infir_lib.vlm",
    "rl": "infir_lib.rl",
    "report": "infir_lib.report",
}

# stage -> (one line for --help, a preset that exists, the config dataclass "module:Class")
STAGE_INFO = {
    "data": ("ch 1: build the pre-training corpus (extract, filter, deduplicate, decontaminate)",
             "configs/toy/data.yaml", "infir_lib.data.pipeline:DataConfig"),
    "tokenize": ("ch 2: write datatrove token files for full-scale pre-training (tokenized_path)",
                 "configs/full/pretrain.yaml", "infir_lib.pretrain.config:PretrainConfig"),
    "pretrain": ("ch 2: pre-train a Llama-style model (toy on CPU, full on GPUs)",
                 "configs/toy/pretrain.yaml", "infir_lib.pretrain.config:PretrainConfig"),
    "anneal": ("ch 2: anneal a pre-trained model on a high-quality mix",
               "configs/toy/anneal.yaml", "infir_lib.pretrain.config:PretrainConfig"),
    "synth": ("ch 3: synthesize and select instruction data",
              "configs/toy/synth.yaml", "infir_lib.synth.config:SynthConfig"),
    "sft": ("ch 4: supervised fine-tuning with TRL",
            "configs/toy/sft.yaml", "infir_lib.sft.config:SFTRunConfig"),
    "eval": ("ch 5: evaluate models on GSM8K, MATH, MMLU, HumanEval, MBPP and toy benchmarks",
             "configs/toy/eval.yaml", "infir_lib.eval.stage:EvalConfig"),
    "sandbox": ("ch 5: run one Python program in the code sandbox (its own arguments: PROGRAM.py --tests ...)",
                None, None),
    "vlm": ("ch 6: train the vision-language model (SigLIP-style encoder, three stages)",
            "configs/toy/vlm.yaml", "infir_lib.vlm.config:VLMConfig"),
    "rl": ("ch 7: reinforcement learning with GRPO (Curr-ReFT, Infi-MMR)",
           "configs/toy/rl_curr_reft.yaml", "infir_lib.rl.config:RLConfig"),
    "report": ("ch 8: print the scorecard of the paper's claims (--check fails on a missing claim)", None, None),
}


def is_main_process() -> bool:
    """True on rank 0 (torchrun and accelerate launch set RANK), and outside a launcher."""
    return os.environ.get("RANK", "0") == "0"


def config_class(stage: str):
    """The config dataclass of ``stage`` (None for stages that parse their own arguments)."""
    target = STAGE_INFO.get(stage, (None, None, None))[2]
    if not target:
        return None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _summarise(result) -> str:
    for attr in ("summary", "to_dict"):
        value = getattr(result, attr, None)
        if value is not None:
            value = value() if callable(value) else value
            return json.dumps(value, indent=1, default=str)
    if isinstance(result, dict):
        return json.dumps(result, indent=1, default=str)
    return str(result)


def output_location(result) -> str | None:
    """Where a stage's result was written (its ``output_dir``, or the folder a dict result names)."""
    keys = ("output_dir", "tokenized_path", "model_dir", "dataset_path")
    for key in keys:
        value = result.get(key) if isinstance(result, dict) else getattr(result, key, None)
        if value:
            return str(value)
    cfg = getattr(result, "config", None)
    if cfg is not None and getattr(cfg, "output_dir", None):
        return str(cfg.output_dir)
    return None


def _stages_help() -> str:
    width = max(map(len, STAGES))
    lines = ["usage: python -m infir_lib STAGE --config FILE [--dry-run] [key=value ...]",
             "       python -m infir_lib STAGE --help      (the stage's keys: type, default, help)", "",
             "Runs one stage of the book; a notebook calls the same run/plan functions.", "", "stages:"]
    lines += [f"  {name:<{width}}  {STAGE_INFO[name][0]}" for name in STAGES]
    lines += ["", "examples:",
              "  python -m infir_lib pretrain --config configs/toy/pretrain.yaml max_steps=50",
              "  python -m infir_lib pretrain --config configs/full/pretrain.yaml --dry-run",
              "  python -m infir_lib eval --config configs/toy/eval.yaml limit=20",
              "", "A mistake in the input ends with one line on stderr and a non-zero exit (INFIR_TRACEBACK=1: traceback)."]
    return "\n".join(lines)


def keys_help(cls) -> str:
    """The keys of config ``cls`` as a table: name, type, default, help (field metadata or comment)."""
    from .config import describe_fields

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
    desc, preset, _ = STAGE_INFO[stage]
    epilog = [f"example:\n  python -m infir_lib {stage} --config {preset}"
              f"{' --dry-run' if stage == 'tokenize' else ''}"]
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
    try:
        module = importlib.import_module(STAGES[stage])
    except ModuleNotFoundError as e:
        print(f"stage {stage!r} is not available: {e}", file=sys.stderr)
        return 2
    if hasattr(module, "cli"):
        return int(module.cli(rest) or 0)
    args = _stage_parser(stage).parse_args(rest)
    main_process = is_main_process()
    try:
        if args.dry_run:
            text = module.plan(args.config, args.overrides)
            if main_process:
                print(text)
            if getattr(text, "problems", None):  # the plan found what would stop the run: say so in the exit code
                if main_process:
                    print(f"not ready: {len(text.problems)} problem(s) listed above", file=sys.stderr)
                return 1
        else:
            result = module.run(args.config, args.overrides)
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
