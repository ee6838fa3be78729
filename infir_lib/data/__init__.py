"""Chapter 1: the pre-training data pipeline (InfiR §2.1). Also the toy tasks every chapter shares.

    from infir_lib import data
    res = data.run("configs/toy/data.yaml")   # generate the messy toy corpus, clean it (cached)
    res.funnel, res.reports, res.load_dataset()
    # python -m infir_lib data --config configs/full/data.yaml --dry-run

Importing this package registers the toy sources chapter 2 trains on:
``toy:raw`` (the generated corpus before any filtering) and ``toy:filtered`` (the pipeline's output),
plus the recall seeds (``toy:seed_math``, ``toy:seed_code``, ``toy:seed_reasoning``) and the quality
annotations (``toy:annotations``) the pipeline itself uses.
"""

from __future__ import annotations

from .pipeline import STAGES, DataConfig, DataResult, build_pipeline, load, load_benchmarks, plan, run
from .toy_sources import filtered_corpus, raw_corpus, register_all

register_all()

__all__ = ["DataConfig", "DataResult", "run", "plan", "load", "build_pipeline", "load_benchmarks", "STAGES",
           "raw_corpus", "filtered_corpus"]
