"""One entry point for every stage: ``python -m infir_lib <stage> --config FILE [--dry-run] [key=value ...]``.

It calls the same ``run``/``plan`` functions a notebook calls. Under ``torchrun`` or
``accelerate launch`` each process runs this, and accelerate wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from .config import ConfigError

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


def _summarise(result) -> str:
    for attr in ("summary", "to_dict"):
        value = getattr(result, attr, None)
        if value is not None:
            value = value() if callable(value) else value
            return json.dumps(value, indent=1, default=str)
    return str(result)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("stages:", ", ".join(STAGES))
        return 0
    stage, rest = argv[0], argv[1:]
    if stage not in STAGES:
        print(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(STAGES[stage])
    except ModuleNotFoundError as e:
        print(f"stage {stage!r} is not available yet ({e})", file=sys.stderr)
        return 2
    if hasattr(module, "cli"):
        return int(module.cli(rest) or 0)
    parser = argparse.ArgumentParser(prog=f"python -m infir_lib {stage}")
    parser.add_argument("--config", required=True, help="YAML preset, e.g. configs/toy/%s.yaml" % stage)
    parser.add_argument("--dry-run", action="store_true", help="print the plan; build nothing, download nothing")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the config")
    args = parser.parse_args(rest)
    try:
        if args.dry_run:
            print(module.plan(args.config, args.overrides))
        else:
            print(_summarise(module.run(args.config, args.overrides)))
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
