"""Infi-MMR's parts of the stage schedule (:mod:`.schedule`) at toy scale: the phases' rows, the toy VLM a
text policy is placed in, and the visual-math evaluation (the items and the VLM: :mod:`.vision`).

Infi-MMR (``infi_mmr``) runs text -> caption -> image; its control (``direct``) runs image-only RL for the
same total steps. At toy scale phase 1 trains the cold-started language model alone; before the first
image phase the schedule places it inside the chapter-6 LLaVA (:func:`vision_policy`); the direct arm
places the cold-started policy there before its only phase. At full scale the policy is a VLM from the
start and the rows come from the released datasets (:mod:`.hub_data`).
"""

from __future__ import annotations

from pathlib import Path

from ..models import load_tokenizer
from ..vlm.model import load_processor, load_vlm
from .config import RLConfig
from .policy import evaluate
from .vision import assemble_vlm, visual_rows

# each phase's rows are drawn with their own seed (data_seed + this), so the arms' image rows are the same rows
PHASE_SEED_OFFSET = {"text": 1, "caption": 2, "image": 3}


def phase_rows(cfg: RLConfig, form: str) -> list[dict]:
    """The toy rows of phase ``form`` (``text``, ``caption`` or ``image``): ``rows_per_stage`` visual-math items."""
    return visual_rows(form, cfg.rows_per_stage, cfg.data_seed + PHASE_SEED_OFFSET[form])


def vision_policy(cfg: RLConfig, lm_dir: Path, out: Path) -> tuple[Path, dict]:
    """The text policy in ``lm_dir`` placed in the chapter-6 LLaVA (its tower and projector, ``cfg.vlm_config``),
    saved to ``out``; returns ``out`` and where the vision part came from."""
    return out, assemble_vlm(lm_dir, out, cfg.vlm_config, seed=cfg.seed)


def eval_vlm(model_dir: Path, cfg: RLConfig) -> dict:
    """Greedy accuracy on held-out visual-math items, image only (Infi-MMR's test condition) and with captions."""
    model, proc, tok = load_vlm(model_dir), load_processor(model_dir), load_tokenizer(model_dir)
    out = {}
    for form in ("image", "caption"):
        rows = visual_rows(form, cfg.eval_n, cfg.eval_seed)
        res = evaluate(model, tok, rows, cfg.eval_max_new_tokens, processor=proc)
        out[f"vmath_{form}"] = {k: v for k, v in res.items() if k != "samples"}
    return out
