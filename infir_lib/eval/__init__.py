"""Chapter 5: evaluating reasoning (InfiR §5.1, Tables 1-2).

    from infir_lib import eval as ev
    result = ev.run("configs/toy/eval.yaml")     # toy base model on toy benchmarks + HumanEval, CPU
    # python -m infir_lib eval --config configs/full/eval.yaml --dry-run

Modules: :mod:`.sandbox` (run untrusted code), :mod:`.extract` (answers, math-verify),
:mod:`.code` (HumanEval/MBPP, pass@k), :mod:`.harness` (prompts, generation, scorers),
:mod:`.tables` (the paper's Tables 1-2), :mod:`.stage` (the config-driven stage);
:mod:`.likelihood` and :mod:`.toy_benchmarks` come from chapter 2. Imports are lazy so that
``python -m infir_lib sandbox`` starts without loading torch.
"""

from __future__ import annotations


def load(config="configs/toy/eval.yaml", overrides=None):
    from .stage import load as _load  # lazy: `python -m infir_lib sandbox` starts without torch
    return _load(config, overrides)


def run(config="configs/toy/eval.yaml", overrides=None):
    from .stage import run as _run  # lazy: `python -m infir_lib sandbox` starts without torch
    return _run(config, overrides)


def plan(config="configs/toy/eval.yaml", overrides=None):
    from .stage import plan as _plan  # lazy: `python -m infir_lib sandbox` starts without torch
    return _plan(config, overrides)
