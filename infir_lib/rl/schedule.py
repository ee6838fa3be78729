"""The one stage schedule of the RL stage: every method (Curr-ReFT, its control, Infi-MMR, its control) at
both scales, one code path whose parts the config's values choose.

``run_schedule(cfg)`` trains the stages ``cfg.method`` names in order, each GRPO stage starting from the
previous stage's folder (which is also its KL reference), and keeps the result in the artifact cache or in
``output_dir``. What differs between the methods and the scales is a part, picked by config values (the
table below): where the starting policy, each stage's rows and the processing class come from, whether a
text policy is placed inside a VLM before the first image stage, and how the result is evaluated.
Curr-ReFT's own parts (curriculum rows, text evaluation, rejection sampling) live in :mod:`.curr_reft`,
Infi-MMR's (phase rows, visual-math evaluation, the toy VLM assembly) in :mod:`.infi_mmr`.

The run's summary keeps, per stage, the share of zero-variance reward groups (all G completions of a
prompt with the same reward, so every advantage is 0): the waste Curr-ReFT's curriculum is meant to avoid.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from transformers import AutoProcessor

from .. import stages
from ..models import SavedModelMixin, load_model, load_tokenizer
from ..stages import StageResult
from .config import STAGES, RLConfig, uses_vlm
from .curr_reft import evaluate_all, toy_rows
from .grpo import StageArgs, run_stage
from .hub_data import check_formats, load_stage_rows
from .infi_mmr import eval_vlm, phase_rows, vision_policy
from .policy import starting_policy
from .tasks import mixed_chunks

STAGE = stages.stage("rl")


@dataclass
class RLResult(StageResult, SavedModelMixin):
    output_dir: Path
    summary: dict
    history: list[dict] = field(default_factory=list)
    config: RLConfig | None = None


# --- the parts, chosen by config values --------------------------------------------------------------
#
#   part                 toy (scale: toy)                          full (scale: full)
#   starting policy      model_name_or_path if set, else the chapter-2 model cold-started (policy.starting_policy)
#   rows of each stage   Curr-ReFT: toy task families (curr_reft.toy_rows); dataset id + format adapter
#                        Infi-MMR: visual-math rows in the stage's form (infi_mmr.phase_rows)   (dataset_rows)
#   mixed control        the curriculum's rows shuffled and cut into its stages (mixed_chunks), both scales
#   steps of a stage     stage_steps[i], or derived from the rows when it is 0 (stage_steps), both scales
#   policy of a stage    the previous stage's folder, both scales; a text policy meeting its first image stage
#                        toy: is placed in a LLaVA (the chapter-6    full: is refused (the policy is a VLM
#                        tower and projector: infi_mmr.vision_policy)    from the start)
#   processing class     the stage's policy's processor if it has an image processor, else its tokenizer
#   per-stage resume     <output>/<stage>/stage.json holds the stage's key; a rerun keeps a finished stage
#   evaluation           text methods: the toy sets (curr_reft.evaluate_all);   none (the paper's benchmarks
#                        vision methods: visual math (infi_mmr.eval_vlm)         are chapter 5's)
#   output               STAGE.output: output_dir when set, else the artifact cache (full scale: output_dir
#                        is required); toy keeps the final policy in model/, full keeps every stage's folder


def source_stages(cfg: RLConfig) -> list[str]:
    """The stages whose rows the schedule reads: the method's own, or, for the control arm (``mixed``),
    the curriculum's (judge, choice, open), whose rows it shuffles together."""
    return STAGES["curr_reft"] if cfg.method == "mixed" else cfg.stages


def check_datasets(cfg: RLConfig) -> list[str]:
    """Full scale: one dataset, format (and image root) per stage, checked before any download; the formats."""
    if len(cfg.datasets) != len(cfg.stages):
        raise ValueError(f"{len(cfg.stages)} stages {cfg.stages} need {len(cfg.stages)} datasets, got {cfg.datasets}")
    formats = check_formats(cfg.dataset_formats, len(cfg.stages))
    if cfg.image_roots and len(cfg.image_roots) != len(cfg.stages):
        raise ValueError(f"{len(cfg.stages)} stages need {len(cfg.stages)} image_roots (\"\" for none), "
                         f"got {cfg.image_roots}")
    return formats


def dataset_rows(cfg: RLConfig, i: int, name: str, report: dict) -> list[dict]:
    """Full scale: the rows of source stage ``name`` from ``cfg.datasets[i]``, converted by the adapter its
    ``dataset_formats`` entry names (:mod:`.hub_data`). Skipped rows are counted by reason, printed, and
    kept in ``report[name]`` (the run's ``result.json`` under ``data``)."""
    formats = check_datasets(cfg)
    root = cfg.image_roots[i] if cfg.image_roots else ""
    converted = load_stage_rows(cfg.datasets[i], formats[i], name, image_root=root or None)
    print(converted, flush=True)
    report[name] = converted.report()
    if not converted.rows:
        raise ValueError(f"stage {name!r}: no usable rows in {cfg.datasets[i]} (format {formats[i]}); skipped: "
                         f"{dict(converted.skipped)}")
    return converted.rows


def source_rows(cfg: RLConfig, i: int, report: dict) -> list[dict]:
    """The rows of the ``i``-th source stage (:func:`source_stages`): a dataset's at full scale; at toy scale
    Infi-MMR's visual-math rows for a vision method, else Curr-ReFT's task rows."""
    name = source_stages(cfg)[i]
    if cfg.scale == "full":
        return dataset_rows(cfg, i, name, report)
    return phase_rows(cfg, name) if uses_vlm(cfg) else toy_rows(cfg, name)


def schedule_rows(cfg: RLConfig, report: dict | None = None) -> Iterator[list[dict]]:
    """The rows of each stage of ``cfg.stages``, in order. A method reads one source per stage, when the
    stage starts (a full-scale stage's data is read after the previous stage trained); the control arm
    (``mixed``) reads them all and cuts the shuffled rows into as many stages (:func:`.tasks.mixed_chunks`)."""
    report = {} if report is None else report
    n = len(cfg.stages)
    if cfg.method == "mixed":
        yield from mixed_chunks([source_rows(cfg, i, report) for i in range(n)], n, cfg.seed)
    else:
        for i in range(n):
            yield source_rows(cfg, i, report)


def data_source(cfg: RLConfig, i: int) -> object:
    """What stage ``i``'s rows are made from (part of its resume key): dataset ids, or the toy rows' settings."""
    if cfg.scale == "full":
        return list(cfg.datasets) if cfg.method == "mixed" else cfg.datasets[i]
    return {"toy": source_stages(cfg) if cfg.method == "mixed" else cfg.stages[i], "rows_per_stage": cfg.rows_per_stage,
            "train_steps": list(cfg.train_steps), "data_seed": cfg.data_seed}


def stage_steps(cfg: RLConfig, i: int, n_rows: int) -> int:
    """GRPO steps of stage ``i``: ``stage_steps[i]``, or when that is 0 the stage's rows x ``stage_epochs[i]``
    (default 1) / prompts per step (at least 1). The dry-run counts with the same rule."""
    if cfg.stage_steps[i] > 0:
        return cfg.stage_steps[i]
    epochs = cfg.stage_epochs[i] if i < len(cfg.stage_epochs) else 1.0
    return max(1, int(n_rows * epochs // cfg.prompts_per_step))


def stage_args(cfg: RLConfig, i: int, n_rows: int | None = None) -> StageArgs:
    """Stage ``i``'s GRPO settings; with ``n_rows`` (its rows) a ``stage_steps`` of 0 is derived from them."""
    steps = cfg.stage_steps[i] if n_rows is None else stage_steps(cfg, i, n_rows)
    return StageArgs(steps=steps, num_generations=cfg.stage_generations[i],
                     prompts_per_step=cfg.prompts_per_step, beta=cfg.beta, learning_rate=cfg.learning_rate,
                     temperature=cfg.temperature, max_completion_length=cfg.max_completion_length,
                     rewards=tuple(cfg.rewards), reward_weights=tuple(cfg.reward_weights), seed=cfg.seed + 1000 * i,
                     gradient_accumulation_steps=cfg.gradient_accumulation_steps, bf16=cfg.bf16,
                     deepspeed=cfg.deepspeed)


def processing_class(policy: str | Path):
    """What the GRPO trainer prepares prompts with: the policy's processor when it has an image processor
    (a VLM), else ``None`` (the stage then uses the policy's tokenizer)."""
    processor = AutoProcessor.from_pretrained(str(policy))
    return processor if hasattr(processor, "image_processor") else None


def cache_spec(cfg: RLConfig, start_spec: dict) -> dict:
    """The cache key of an RL run: the stage's key (:meth:`infir_lib.stages.Stage.key`: the config's keyed
    fields, its inputs' keys (the chapter-6 VLM's for a vision method) and the stage's code) and the start's."""
    return {"cfg": STAGE.key(cfg), "start": start_spec}


def rollouts(cfg: RLConfig, steps: list[int] | None = None) -> int:
    """Completions sampled over the whole schedule: steps x group size x prompts per step, per stage
    (``steps``: the steps each stage ran, default ``stage_steps``)."""
    steps = cfg.stage_steps if steps is None else steps
    return sum(s * g * cfg.prompts_per_step for s, g in zip(steps, cfg.stage_generations))


def zero_variance_by_stage(history: list[dict]) -> dict[str, float]:
    """Per stage, the share of prompt groups whose G rewards were all equal (TRL's ``frac_reward_zero_std``,
    averaged over the stage's steps, which all hold the same number of groups): their advantages are 0,
    so they add nothing to the update."""
    out: dict[str, list[float]] = {}
    for h in history:
        if "frac_reward_zero_std" in h:
            out.setdefault(h["stage"], []).append(h["frac_reward_zero_std"])
    return {stage: sum(v) / len(v) for stage, v in out.items()}


def resumable_stage(start: Path, rows: list[dict], dest: Path, args: StageArgs, processor, name: str,
                    source: object) -> list[dict]:
    """One GRPO stage into ``dest``, unless ``dest/stage.json`` says it finished with the same key (settings,
    start, data, number of rows): then its history is read back. A rerun resumes at stage granularity."""
    done = dest / "stage.json"
    key = json.loads(json.dumps({"args": dataclasses.asdict(args), "start": str(start), "dataset": source,
                                 "rows": len(rows)}))
    if done.exists() and json.loads(done.read_text()).get("key") == key:
        print(f"stage {name!r}: finished in an earlier run, kept ({dest})", flush=True)
        return json.loads(done.read_text())["history"]
    history = run_stage(start, rows, dest, args, processor=processor, stage=name)
    done.write_text(json.dumps({"key": key, "history": history}))
    return history


def stage_policy(cfg: RLConfig, i: int, path: Path, rows: list[dict], out: Path, origin: dict) -> tuple[Path, object]:
    """The folder stage ``i`` starts from and its processing class. At toy scale a text policy whose stage
    holds image rows is placed in a LLaVA first (the chapter-6 tower and projector of ``vlm_config``;
    ``origin`` records where the vision part came from); at full scale such a stage is refused."""
    processor = processing_class(path)
    if processor is None and any("image" in r for r in rows):
        if cfg.scale == "full":
            raise ValueError(f"stage {cfg.stages[i]!r}: {data_source(cfg, i)} has image rows but the policy {path} has "
                             "no image processor (a text-only model)")
        path, found = vision_policy(cfg, path, out / "vlm_init")
        origin.update(found)
        processor = processing_class(path)
    return path, processor


def train_schedule(cfg: RLConfig, start: Path, out: Path,
                   report: dict | None = None) -> tuple[list[dict], Path, list[int], dict]:
    """Run every stage of ``cfg.method`` in order into ``out/<stage>``, each from the previous stage's folder.

    Returns the per-step history, the last stage's folder, the steps each stage ran and where the vision
    part came from (empty unless a text policy was placed in a VLM)."""
    history, path, steps, origin = [], start, [], {}
    for i, (name, rows) in enumerate(zip(cfg.stages, schedule_rows(cfg, report))):
        path, processor = stage_policy(cfg, i, path, rows, out, origin)
        args = stage_args(cfg, i, len(rows))
        steps.append(args.steps)
        history += resumable_stage(path, rows, out / name, args, processor, name, data_source(cfg, i))
        path = out / name
    return history, path, steps, origin


def keep_final(final: Path, dest: Path) -> None:
    """Toy: the final policy in ``dest``: a VLM's folder as it is (with its processor), a text policy saved
    again as model + tokenizer."""
    if processing_class(final) is not None:
        shutil.copytree(final, dest, ignore=shutil.ignore_patterns("stage.json"))  # the resume record stays behind
        return
    model, tok = load_model(final), load_tokenizer(final)
    model.save_pretrained(dest, safe_serialization=True)
    tok.save_pretrained(dest)


def evaluate_final(model_dir: Path, cfg: RLConfig) -> dict:
    """Toy evaluation of the final policy: visual math for a vision method, the text task's sets otherwise."""
    return eval_vlm(model_dir, cfg) if uses_vlm(cfg) else evaluate_all(model_dir, cfg)


def run_schedule(cfg: RLConfig) -> RLResult:
    """The stage schedule ``cfg.method`` names, at either scale, from one code path whose parts the config
    chooses (the table above). Toy: Curr-ReFT's curriculum or its control on the toy text task, or Infi-MMR's
    phases or its control on the toy VLM, evaluated, cached. Full: any method's stages on the released
    datasets (needs GPUs and the hub, or local copies), every stage's checkpoint kept in ``output_dir``."""
    full = cfg.scale == "full"
    if full:
        if not cfg.output_dir:
            raise ValueError("a full-scale run needs output_dir (checkpoints of every stage are written there)")
        check_datasets(cfg)  # before any download
    start, start_spec = starting_policy(cfg)

    def build(folder: Path) -> None:
        report: dict = {}
        history, final, steps, origin = train_schedule(cfg, start, folder, report)
        summary = {"method": cfg.method, "seed": cfg.seed}
        if not full:  # the final policy in model/, evaluated on the toy sets; the stage folders go
            keep_final(final, folder / "model")
            for name in [*cfg.stages, "vlm_init"]:
                shutil.rmtree(folder / name, ignore_errors=True)
            summary["eval"] = evaluate_final(folder / "model", cfg)
        summary.update(origin)
        summary.update(steps=sum(steps), samples=rollouts(cfg, steps), zero_variance=zero_variance_by_stage(history))
        if full:
            summary.update(stages=cfg.stages, data=report)
        (folder / "history.json").write_text(json.dumps(history))
        (folder / "result.json").write_text(json.dumps(summary, indent=1))

    folder = STAGE.output(cfg, build, key=None if cfg.output_dir else cache_spec(cfg, start_spec), name=cfg.method)
    return RLResult(folder, json.loads((folder / "result.json").read_text()),
                    json.loads((folder / "history.json").read_text()), cfg)
