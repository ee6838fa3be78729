"""The vlm stage of chapter 6: one build for both scales, its parts chosen by config values.

    from infir_lib import vlm
    result = vlm.run("configs/toy/vlm.yaml")        # toy: cached by config (the artifact cache)
    vlm.run("configs/full/vlm.yaml")                # full: into output_dir, through accelerate
    print(vlm.plan("configs/full/vlm.yaml"))        # the dry-run (infir_lib.vlm.planning)

    # one GPU (or CPU):
    python -m infir_lib vlm --config configs/full/vlm.yaml
    # 8 GPUs, FSDP (global batch fixed: gradient accumulation = global / (micro x processes)):
    accelerate launch --config_file configs/accelerate/fsdp_8gpu_vlm.yaml -m infir_lib vlm --config configs/full/vlm.yaml

:func:`build_vlm` runs the one stage loop (:func:`infir_lib.vlm.curriculum.train_curriculum`) with the parts
:func:`parts_for` picks from ``scale``:

* ``toy``: the warmed-up chapter-2 LM + the tiny SigLIP pre-trained in the chapter
  (:func:`infir_lib.vlm.toy.build_toy_model`), generated data cleaned offline by the tower
  (:class:`~infir_lib.vlm.toy.ToyData`), the held-out evaluation after every stage
  (:class:`~infir_lib.vlm.toy.ToyEvaluation`), plain PyTorch on ``num_threads`` CPU threads;
* ``full``: SigLIP + the LM by hub id or folder (``init=random``: from the config's sizes;
  :func:`infir_lib.vlm.hub_model.assemble`), Table-9 datasets streamed and mixed, stage 1 cleaned by a
  SigLIP pair scorer (:class:`~infir_lib.vlm.hub_data.HubData`, :class:`~infir_lib.vlm.hub_model.CleanedStream`;
  ``clean_model_name_or_path``, default the tower's checkpoint), accelerate with stage checkpoints and
  resume, ``ceil(stage_samples / global_batch_size)`` optimizer steps per stage (``max_steps`` caps them).

The full parts are tested on local stand-ins only (tests/test_vlm_full.py: tiny SigLIP + tiny Llama saved
to folders, parquet data in three Table-9 formats, CPU, fp32), by the same curriculum checks as the toy's.
"""

from __future__ import annotations

from pathlib import Path

from .. import artifacts, stages
from .config import VLMConfig
from .curriculum import AcceleratedRuntime, LocalRuntime, LossOnly, Parts, train_curriculum
from .hub_data import HubData
from .hub_model import CleanedStream, PairScorer, assemble
from .model import VLMResult
from .planning import VLMPlan, plan_vlm, stage_steps
from .toy import ToyData, ToyEvaluation, build_toy_model

STAGE = stages.stage("vlm")


def as_config(config, overrides=None) -> VLMConfig:
    """The config of a run: a preset path + overrides, or a VLMConfig (+ a dict of replacements)."""
    return STAGE.load(config, overrides)


def cache_spec(cfg: VLMConfig) -> dict:
    """The cache key (:meth:`infir_lib.stages.Stage.key`: the key fields, the LM's key in place of
    ``lm_config``, the digest of the stage's code; the full path's fields are marked ``key="full"``)."""
    return STAGE.key(cfg)


def hub_cleaner(cfg: VLMConfig, device):
    """The full scale's stage-1 cleaner (App. E): ``(rows -> CleanedStream, None)``, or ``(None, why not)``."""
    if not cfg.clean:
        return None, None
    path = cfg.clean_model_name_or_path or (cfg.vision_name_or_path if cfg.init == "pretrained" else None)
    if not path:
        return None, "skipped: init=random and no clean_model_name_or_path (no SigLIP weights to score with)"
    scorer = PairScorer(path, device, cfg.clean_text_len)
    return (lambda rows: CleanedStream(rows, scorer, cfg.threshold_method, cfg.threshold_value,
                                       cfg.threshold_quantile, cfg.clean_calibration)), None


def hub_data(cfg: VLMConfig, processor, rt) -> HubData:
    cleaner, note = hub_cleaner(cfg, rt.accelerator.device if rt.accelerator is not None else rt.device)
    return HubData(cfg, processor, stage_steps(cfg), rt.rank, rt.world, cleaner, note)


def parts_for(cfg: VLMConfig, folder: Path) -> Parts:
    """The parts of a run, chosen by ``cfg.scale`` (see the module docstring)."""
    if cfg.scale == "toy":
        return Parts(runtime=lambda: LocalRuntime(cfg.num_threads), build_model=build_toy_model,
                     data=lambda processor, rt: ToyData(cfg, processor),
                     evaluation=lambda processor: ToyEvaluation(cfg, processor))
    if cfg.schedule != "curriculum":
        raise ValueError("the full path runs the curriculum (schedule=curriculum); end_to_end is a toy comparison")
    return Parts(runtime=lambda: AcceleratedRuntime(cfg, folder), build_model=assemble,
                 data=lambda processor, rt: hub_data(cfg, processor, rt), evaluation=lambda processor: LossOnly())


def build_vlm(cfg: VLMConfig, folder: Path) -> dict:
    """Train the VLM of ``cfg`` into ``folder`` (``model/`` + ``result.json``); returns the summary."""
    return train_curriculum(cfg, Path(folder), parts_for(cfg, Path(folder)))


def run(config="configs/toy/vlm.yaml", overrides: dict | list | None = None) -> VLMResult:
    """Build the VLM through the configured schedule: cached by config unless ``output_dir`` is set (a full
    run needs it: its stage checkpoints and the model are written there)."""
    cfg = as_config(config, overrides)
    if cfg.scale == "full" and not cfg.output_dir:
        raise ValueError("a full run needs output_dir (checkpoints and the model are written there)")
    returned = []
    out = STAGE.output(cfg, lambda f: returned.append(build_vlm(cfg, f)), name=cfg.schedule)
    return VLMResult(out, returned[-1] if cfg.output_dir else artifacts.load_json(out / "result.json"), cfg)


def plan(config="configs/toy/vlm.yaml", overrides=None) -> VLMPlan:
    """The dry-run: the model of Figure 3 on the meta device, per-stage trainable counts, steps, compute."""
    return plan_vlm(as_config(config, overrides))
