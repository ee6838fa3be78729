"""Infi-MMR at toy scale: visual-math rows in three forms, and the toy VLM the phases train.

Infi-MMR's phases differ only in what the prompt holds (the Infi-MMR paper):

1. **text**: a text-only reasoning problem (here: the picture described in words + the question);
2. **caption**: the image, a caption of the image, and the question;
3. **image**: the image and the question, nothing else.

The items are chapter 6's visual-math generators (bar charts, unit-square rectangles, rendered sums),
each with its ground truth; the caption is written from the generator's own metadata (a perfect
captioner, where the paper uses an automatic one).

The toy VLM is LLaVA (chapter 6's architecture): the vision tower and projector of the chapter-6
model, with the RL policy as its language model. Phase 1 trains the language model alone (text
rows need no image); it is then placed inside the LLaVA for phases 2 and 3. The direct arm places
the un-trained (cold-started) policy there and runs image-only RL for the same number of steps.
"""

from __future__ import annotations

import random
from pathlib import Path

from .. import vlm
from ..config import load_config
from ..models import load_model, load_tokenizer
from ..vlm import VLMConfig
from ..vlm import perception as Q
from ..vlm.data import make_visual_math
from ..vlm.model import build_llava, make_processor, vision_config
from .policy import ready_for_generation
from .tasks import r1_response


def caption(item) -> str:
    """A faithful one-sentence caption of a visual-math item, from its metadata."""
    meta = item.meta
    kind = meta.get("kind")
    if kind in ("chart_max", "chart_count"):
        values = meta["values"]
        return "A bar chart with bars of height " + ", ".join(map(str, values[:-1])) + f" and {values[-1]}."
    if kind == "area":
        return f"A rectangle of unit squares, {meta['a']} wide and {meta['b']} tall."
    if kind == "math":
        return f"The image shows the sum {meta['text']}."
    raise ValueError(f"no caption rule for visual-math kind {kind!r}")


def reasoning(item) -> str:
    """The step a solver writes before answering (used only by cold starts / references)."""
    meta = item.meta
    kind = meta.get("kind")
    if kind == "chart_max":
        return f"Bars {', '.join(map(str, meta['values']))}. Tallest {max(meta['values'])}."
    if kind == "chart_count":
        return f"Bars {', '.join(map(str, meta['values']))}. Count {len(meta['values'])}."
    if kind == "area":
        return f"{meta['a']}*{meta['b']}={meta['a'] * meta['b']}."
    return f"{meta['text']}={item.answer}."


def visual_rows(form: str, n: int, seed: int, image_size: int = 64) -> list[dict]:
    """``n`` visual-math rows in one of Infi-MMR's forms: ``text``, ``caption`` or ``image``."""
    rng = random.Random(f"vmath-{seed}")
    rows = []
    for _ in range(n):
        item = make_visual_math(rng, image_size)
        if form == "text":
            content = f"{caption(item)} {item.prompt}"
        elif form == "caption":
            content = [{"type": "image"}, {"type": "text", "text": f"Caption: {caption(item)} {item.prompt}"}]
        elif form == "image":
            content = [{"type": "image"}, {"type": "text", "text": item.prompt}]
        else:
            raise KeyError(f"unknown Infi-MMR form {form!r}; forms: ['text', 'caption', 'image']")
        row = {"prompt": [{"role": "user", "content": content}], "solution": item.answer, "answer_type": "math",
               "format": form, "family": item.meta.get("kind", "vmath"),
               "reference": r1_response(reasoning(item), item.answer)}
        if form != "text":
            row["image"] = item.image
        rows.append(row)
    return rows


def chapter6_vision(vlm_config: str | None):
    """The chapter-6 toy VLM (cached), or ``None`` when it cannot be built here."""
    if not vlm_config:
        return None

    return vlm.run(vlm_config)


def assemble_vlm(lm_dir: Path, out: Path, vlm_config: str | None, seed: int = 0) -> dict:
    """LLaVA = chapter 6's vision tower + projector + the language model in ``lm_dir``; saved to ``out``.

    Returns where the vision part came from. The chapter-6 projector maps into the embedding space
    of the chapter-2 model; the RL policy was fine-tuned from that model, so the map still fits
    approximately (a toy shortcut; at full scale the policy *is* the VLM from the start).
    """
    import torch

    torch.manual_seed(seed)
    lm, tok = load_model(lm_dir), load_tokenizer(lm_dir)
    source = chapter6_vision(vlm_config)
    if source is not None:
        vlm_model = source.load_model()
        proc = source.load_processor()
        vision_cfg = vlm_model.config.vision_config
        model = build_llava(vision_cfg, lm.config, tok.convert_tokens_to_ids("<image>"), language_model=lm)
        model.model.vision_tower.load_state_dict(vlm_model.model.vision_tower.state_dict())
        model.model.multi_modal_projector.load_state_dict(vlm_model.model.multi_modal_projector.state_dict())
        size, patch = proc.image_processor.size["height"], proc.patch_size
        origin = f"chapter-6 VLM ({source.output_dir.name})"
    else:
        size, patch = 64, 16
        model = build_llava(vision_config(64, 2, 2, 128, size, patch), lm.config, tok.convert_tokens_to_ids("<image>"),
                            language_model=lm)
        origin = "randomly initialised tower and projector"
    processor = make_processor(tok, size, patch)

    ready_for_generation(model)  # else every sampled token re-encodes the image and the whole prompt
    model.generation_config.eos_token_id = [tok.eos_token_id, tok.convert_tokens_to_ids("<|eot_id|>")]
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    tok.save_pretrained(out)
    return {"vision_from": origin, "image_size": size, "patch_size": patch}


def vision_gate(vlm_config: str) -> tuple[dict, list]:
    """Chapter 6's perception gate of the VLM whose tower and projector the multimodal policies start from.

    Returns (the probe's pooled true / shuffled / blind accuracies with the margin, the gates as
    :class:`infir_lib.report.Gate` objects). A policy built on a vision part that the gate shows unused
    cannot show what phased RL teaches it to see, so chapter 7 checks this before training any arm.
    """
    from ..vlm.toy import perception_run  # lazy: the vision gate is chapter 7's only use of chapter 6's toy parts

    source = chapter6_vision(vlm_config)
    if source is None:
        raise ValueError("vision_gate needs a chapter-6 VLM preset (vlm_config)")
    probe = perception_run(source, load_config(VLMConfig, vlm_config), Q.PROBE_ITEMS)
    result = {"pooled": probe["pooled"], "margin": Q.MARGIN}
    return result, Q.gates(result, who="chapter 6's VLM")
