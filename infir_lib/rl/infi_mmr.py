"""Infi-MMR's three phases and the direct multimodal control, on the toy VLM (see :mod:`.vision`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .. import artifacts
from .config import RLConfig
from .curr_reft import RLResult, cache_spec, stage_args, starting_policy
from .grpo import run_stage
from .policy import evaluate
from .vision import assemble_vlm, visual_rows


def phase_rows(cfg: RLConfig, form: str) -> list[dict]:
    seed = cfg.data_seed + {"text": 1, "caption": 2, "image": 3}[form]
    return visual_rows(form, cfg.rows_per_stage, seed)


def eval_vlm(model_dir: Path, cfg: RLConfig) -> dict:
    """Greedy accuracy on held-out visual-math items, image only (Infi-MMR's test condition) and with captions."""
    from ..models import load_tokenizer
    from ..vlm.model import load_processor, load_vlm

    model, proc, tok = load_vlm(model_dir), load_processor(model_dir), load_tokenizer(model_dir)
    out = {}
    for form in ("image", "caption"):
        rows = visual_rows(form, cfg.eval_n, cfg.eval_seed)
        res = evaluate(model, tok, rows, cfg.eval_max_new_tokens, processor=proc)
        out[f"vmath_{form}"] = {k: v for k, v in res.items() if k != "samples"}
    return out


def train_phases(cfg: RLConfig, start: Path, out: Path) -> tuple[list[dict], Path, dict]:
    """Run the method's phases; returns (history, final VLM folder, where the vision part came from)."""
    from ..vlm.model import load_processor

    history = []
    lm = start
    if cfg.method == "infi_mmr":
        lm = out / "stages" / "text"
        history += run_stage(start, phase_rows(cfg, "text"), lm, stage_args(cfg, 0), stage="text")
    vlm_dir = out / "stages" / "vlm_init"
    origin = assemble_vlm(lm, vlm_dir, cfg.vlm_config, seed=cfg.seed)
    forms = ["caption", "image"] if cfg.method == "infi_mmr" else ["image"]
    offset = 1 if cfg.method == "infi_mmr" else 0
    path = vlm_dir
    for j, form in enumerate(forms):
        dest = out / "stages" / form
        history += run_stage(path, phase_rows(cfg, form), dest, stage_args(cfg, offset + j),
                             processor=load_processor(path), stage=form)
        path = dest
    return history, path, origin


def run_phased(cfg: RLConfig) -> RLResult:
    """Infi-MMR (``infi_mmr``) or direct multimodal RL (``direct``) on the toy VLM, cached."""
    if cfg.method not in ("infi_mmr", "direct"):
        raise ValueError(f"run_phased runs infi_mmr or direct, not {cfg.method!r}")
    start, start_spec = starting_policy(cfg)

    def build(folder: Path) -> None:
        history, final, origin = train_phases(cfg, start, folder)
        shutil.copytree(final, folder / "model")
        shutil.rmtree(folder / "stages")
        summary = {"method": cfg.method, "seed": cfg.seed, "eval": eval_vlm(folder / "model", cfg), **origin,
                   "steps": sum(cfg.stage_steps)}
        (folder / "history.json").write_text(json.dumps(history))
        (folder / "result.json").write_text(json.dumps(summary, indent=1))

    if cfg.output_dir:
        folder = Path(cfg.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        build(folder)
    else:
        from .vision import chapter6_vision

        source = chapter6_vision(cfg.vlm_config)  # cached; its spec is part of ours (a new VLM -> a new run)
        spec = cache_spec(cfg, start_spec)
        spec["vlm"] = artifacts.load_json(source.output_dir / artifacts.MANIFEST)["spec"] if source else None
        folder = artifacts.cached("rl", spec, build, name=cfg.method)
    return RLResult(folder, json.loads((folder / "result.json").read_text()),
                    json.loads((folder / "history.json").read_text()))


def start_eval_vlm(cfg: RLConfig, out: Path) -> dict:
    """The assembled VLM before any RL (cold-started language model + chapter-6 vision)."""
    start, _ = starting_policy(cfg)
    origin = assemble_vlm(start, out, cfg.vlm_config, seed=cfg.seed)
    return {**eval_vlm(out, cfg), **origin}
