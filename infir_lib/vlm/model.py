"""The LLaVA-style model of InfiR Figure 3: SigLIP vision tower + MLP projector + the InfiR language model.

Built with transformers' ``LlavaForConditionalGeneration``; the same builder makes the toy model (a tiny
SigLIP tower pre-trained in this chapter + the toy LM of chapter 2) and, on the meta device, the full
one (SigLIP-So400m + the Llama-3.2-1B-sized InfiR-1B) whose parameter count a dry-run prints.

The freezing helpers implement the curriculum of §4.3: which of the three parts train in a stage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor,
                          SiglipImageProcessorPil, SiglipVisionConfig)

from ..stages import StageResult
from .config import VLMConfig

PARTS = ("vision", "projector", "language")

# Which parts train in each curriculum stage (InfiR §4.3), and in the end-to-end baseline.
STAGE_TRAINABLE = {
    "stage1": ("projector",),
    "stage2": ("vision", "projector"),
    "stage3": ("vision", "projector", "language"),
    "end_to_end": ("vision", "projector", "language"),
}


def vision_config(hidden_size: int, num_hidden_layers: int, num_attention_heads: int, intermediate_size: int,
                  image_size: int, patch_size: int, use_head: bool = False) -> SiglipVisionConfig:
    """A SigLIP vision config. LLaVA uses the patch features, so its tower has no pooling head
    (``vision_use_head=False``: a head would get no gradient); the contrastive model keeps it."""
    return SiglipVisionConfig(hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                              num_attention_heads=num_attention_heads, intermediate_size=intermediate_size,
                              image_size=image_size, patch_size=patch_size, vision_use_head=use_head)


def llava_config(vision: SiglipVisionConfig, text: LlamaConfig, image_token_id: int) -> LlavaConfig:
    n_tokens = (vision.image_size // vision.patch_size) ** 2
    return LlavaConfig(vision_config=vision.to_dict(), text_config=text.to_dict(), image_token_index=image_token_id,
                       image_seq_length=n_tokens, projector_hidden_act="gelu",
                       vision_feature_select_strategy="full", vision_feature_layer=-1,
                       tie_word_embeddings=text.tie_word_embeddings)


def build_llava(vision: SiglipVisionConfig, text: LlamaConfig, image_token_id: int, device: str = "cpu",
                language_model=None, vision_state: dict | None = None) -> LlavaForConditionalGeneration:
    """A LLaVA model; ``language_model`` (a ``LlamaForCausalLM``) and ``vision_state`` (SigLIP vision
    weights) are copied in when given. ``device="meta"`` builds shapes only (dry-run)."""
    cfg = llava_config(vision, text, image_token_id)
    with torch.device(device):
        model = LlavaForConditionalGeneration(cfg)
    if device == "meta":
        return model
    if language_model is not None:
        model.model.language_model.load_state_dict(language_model.model.state_dict())
        model.lm_head.load_state_dict(language_model.lm_head.state_dict())
        if text.tie_word_embeddings:
            model.lm_head.weight = model.model.language_model.embed_tokens.weight
    if vision_state is not None:
        tower = model.model.vision_tower
        tower = getattr(tower, "vision_model", tower)
        own = tower.state_dict()
        missing = [k for k in own if k not in vision_state]
        if missing:
            raise ValueError(f"vision weights lack {missing[:5]} (is the tower config the same?)")
        tower.load_state_dict({k: v for k, v in vision_state.items() if k in own})
    return model


def make_processor(tokenizer, image_size: int, patch_size: int) -> LlavaProcessor:
    """SigLIP pre-processing (the Pillow backend: no torchvision) + the tokenizer, expanding ``<image>``
    into one placeholder per patch."""
    image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    proc = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch_size,
                          vision_feature_select_strategy="full", num_additional_image_tokens=0,
                          chat_template=tokenizer.chat_template)
    return proc


def part_modules(model: LlavaForConditionalGeneration) -> dict[str, list[torch.nn.Module]]:
    """The three parts of Figure 3 (the LM head belongs to the language model)."""
    return {"vision": [model.model.vision_tower], "projector": [model.model.multi_modal_projector],
            "language": [model.model.language_model, model.lm_head]}


def set_trainable(model: LlavaForConditionalGeneration, parts: tuple[str, ...] | list[str] | str) -> dict[str, int]:
    """Freeze everything, then unfreeze ``parts`` (names from :data:`PARTS` or a stage of
    :data:`STAGE_TRAINABLE`). Returns trainable parameter counts per part."""
    if isinstance(parts, str):
        if parts not in STAGE_TRAINABLE:
            raise KeyError(f"unknown stage {parts!r}; stages: {sorted(STAGE_TRAINABLE)}")
        parts = STAGE_TRAINABLE[parts]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise KeyError(f"unknown part(s) {sorted(unknown)}; parts: {PARTS}")
    for p in model.parameters():
        p.requires_grad_(False)
    mods = part_modules(model)
    for name in parts:
        for m in mods[name]:
            for p in m.parameters():
                p.requires_grad_(True)
    return trainable_by_part(model)


def trainable_by_part(model: LlavaForConditionalGeneration) -> dict[str, int]:
    out = {}
    for name, ms in part_modules(model).items():
        seen, n = set(), 0
        for m in ms:
            for p in m.parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    n += p.numel()
        out[name] = n
    return out


def params_by_part(model: LlavaForConditionalGeneration) -> dict[str, int]:
    out = {}
    for name, ms in part_modules(model).items():
        seen, n = set(), 0
        for m in ms:
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    n += p.numel()
        out[name] = n
    return out


def load_vlm(path: str | Path) -> LlavaForConditionalGeneration:
    return LlavaForConditionalGeneration.from_pretrained(str(path), dtype=torch.float32)


def load_processor(path: str | Path) -> LlavaProcessor:
    return LlavaProcessor.from_pretrained(str(path))


def save_siglip(model, folder: str | Path) -> Path:
    """Save a SigLIP model with its full config (``use_diff=False``) instead of ``save_pretrained``'s diff.

    Writing the diff makes transformers 5.23 build a default ``SiglipTextConfig()``, whose own defaults
    disagree (bos/eos ids 49406/49407 beside a 32,000-token vocabulary), so every save printed a
    "bos_token_id must be within the vocabulary" warning about ids this model does not have (ours are
    the toy tokenizer's). The full config holds the same values and loads with ``from_pretrained``.
    """
    from safetensors.torch import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.to_json_file(folder / "config.json", use_diff=False)
    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def load_siglip(folder: str | Path):
    """Load what :func:`save_siglip` wrote. The config is built from its JSON directly: ``from_pretrained``
    would log ``f"Model config {config}"``, whose repr builds that inconsistent default config again."""
    from transformers import SiglipConfig, SiglipModel

    config = SiglipConfig(**json.loads((Path(folder) / "config.json").read_text()))
    return SiglipModel.from_pretrained(str(folder), config=config, dtype=torch.float32)


@dataclass
class VLMResult(StageResult):
    """A trained VLM's folder (``model/``: weights + processor) and its summary: what ``vlm.run`` returns."""

    output_dir: Path
    summary: dict
    config: VLMConfig | None = None

    @property
    def model_dir(self) -> Path:
        return self.output_dir / "model"

    @property
    def metrics(self) -> dict:
        return self.summary["metrics"]

    @property
    def history(self) -> list[dict]:
        return self.summary["history"]

    def load_model(self):
        return load_vlm(self.model_dir)

    def load_processor(self):
        return load_processor(self.model_dir)
