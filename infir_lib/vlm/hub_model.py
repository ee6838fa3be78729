"""The full scale's model builder and cleaner (InfiR Figure 3, App. E): a pretrained SigLIP tower + a fresh MLP
projector + the LM, and the SigLIP pair scorer that cleans stage-1 pairs as they stream.

    model, processor = assemble(cfg)          # cfg.vision_name_or_path / lm_name_or_path: hub ids or folders

:func:`assemble` is the model builder that ``scale: full`` picks (:func:`infir_lib.vlm.build.parts_for`); the
toy's is :func:`infir_lib.vlm.toy.build_toy_model`. Both return ``(LlavaForConditionalGeneration,
LlavaProcessor)`` for the one stage loop (:mod:`infir_lib.vlm.curriculum`).

``init="pretrained"`` loads the tower (``SiglipVisionModel`` from a SigLIP or SigLIP-vision checkpoint,
the pooling head left out: LLaVA reads the patch features) and the LM by hub id or local path -- the
same call either way. ``init="random"`` builds both from the config's sizes with no weights at all (a
throughput / memory smoke test on a GPU with nothing to download). The three parts are put together
without building a second copy: the LLaVA shell is made on the ``meta`` device and the real modules
are set into it; only the projector is new.

The processor is the tower's SigLIP image processor + the LM's tokenizer, with ``<image>`` (and the
Llama-3 header/eot tokens, if missing) added and the book's Llama-3 chat template, which also renders
image parts; the LM's embeddings grow if the tokenizer did.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import (AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, LlavaForConditionalGeneration,
                          SiglipImageProcessorPil, SiglipModel, SiglipVisionModel)
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from .. import stages
from ..models import BOS, CHAT_TEMPLATE, EOT, HEADER_END, HEADER_START, IMAGE, PAD, llama_config, train_tokenizer
from .config import VLMConfig
from .contrastive import choose_threshold
from .data import make_mix
from .model import llava_config, make_processor, vision_config


def tokenizer_for(cfg: VLMConfig):
    """The LM's tokenizer made ready for the VLM (image token, Llama-3 specials, pad, chat template).

    ``init="random"`` with no tokenizer path trains a small byte-level BPE on generated prompts, so a
    smoke test needs nothing on disk; its ids all fall inside the full LM's vocabulary."""
    path = cfg.tokenizer_name_or_path or (cfg.lm_name_or_path if cfg.init == "pretrained" else None)
    if path:
        tok = AutoTokenizer.from_pretrained(str(path))
    else:
        items = make_mix({"caption": 200, "count": 200, "ocr": 200, "grounding": 200, "vmath": 200}, 0, 64)
        tok = train_tokenizer([f"{it.prompt} {it.answer}" for it in items], vocab_size=2048)
    missing = [t for t in (IMAGE, EOT, HEADER_START, HEADER_END) if t not in tok.get_vocab()]
    if missing:
        tok.add_tokens(missing, special_tokens=True)
    if tok.bos_token is None:
        tok.add_special_tokens({"bos_token": BOS})
    if tok.pad_token is None:  # Llama 3 has none; its reserved right-pad token if present, else a new one
        reserved = "<|finetune_right_pad_id|>"
        tok.add_special_tokens({"pad_token": reserved if reserved in tok.get_vocab() else PAD})
    tok.chat_template = CHAT_TEMPLATE
    return tok


def vision_tower(cfg: VLMConfig):
    """(SiglipVisionModel without pooling head, SigLIP image processor)."""
    if cfg.init == "pretrained":
        if not cfg.vision_name_or_path:
            raise ValueError("init=pretrained needs vision_name_or_path (a SigLIP hub id or folder)")
        tower = SiglipVisionModel.from_pretrained(str(cfg.vision_name_or_path), vision_use_head=False,
                                                  dtype=torch.float32)
        proc = SiglipImageProcessorPil.from_pretrained(str(cfg.vision_name_or_path))
        return tower, proc
    vis = vision_config(cfg.vision_hidden_size, cfg.vision_layers, cfg.vision_heads, cfg.vision_intermediate_size,
                        cfg.image_size, cfg.patch_size)
    return SiglipVisionModel(vis), SiglipImageProcessorPil(size={"height": cfg.image_size, "width": cfg.image_size})


def causal_lm(cfg: VLMConfig, device: str | torch.device = "cpu"):
    """The LM: ``lm_name_or_path`` loaded (init=pretrained), or a Llama of ``lm_config``'s sizes (init=random)."""
    if cfg.init == "pretrained":
        if not cfg.lm_name_or_path:
            raise ValueError("init=pretrained needs lm_name_or_path (InfiR-1B-Base: a hub id or folder)")
        return AutoModelForCausalLM.from_pretrained(str(cfg.lm_name_or_path), dtype=torch.float32)
    with torch.device(device):
        return LlamaForCausalLM(llama_config(stages.stage("pretrain").load(cfg.lm_config)))


def assemble_llava(tower: SiglipVisionModel, lm, image_token_id: int) -> LlavaForConditionalGeneration:
    """A LLaVA whose tower and LM *are* the given modules (no copy) and whose projector is new."""
    cfg = llava_config(tower.config, lm.config, image_token_id)
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(cfg)
    device = next(lm.parameters()).device
    model.model.vision_tower = tower.to(device)
    model.model.language_model = lm.model
    model.lm_head = lm.lm_head
    with torch.device(device):
        model.model.multi_modal_projector = LlavaMultiModalProjector(cfg)
    if lm.config.tie_word_embeddings:
        model.lm_head.weight = model.model.language_model.embed_tokens.weight
    model.config.text_config = lm.config
    return model


def assemble(cfg: VLMConfig, device: str | torch.device = "cpu"):
    """(LlavaForConditionalGeneration, LlavaProcessor) for the full path; see the module docstring."""
    tok = tokenizer_for(cfg)
    tower, image_processor = vision_tower(cfg)
    lm = causal_lm(cfg, device)
    if len(tok) > lm.config.vocab_size:
        lm.resize_token_embeddings(len(tok), pad_to_multiple_of=64)
    model = assemble_llava(tower, lm, tok.convert_tokens_to_ids(IMAGE))
    size = image_processor.size
    side = size.get("height") or size.get("shortest_edge")
    processor = make_processor(tok, side, tower.config.patch_size)
    processor.image_processor = image_processor
    if side != tower.config.image_size:
        raise ValueError(f"image processor size {side} != tower image_size {tower.config.image_size}")
    return model, processor


# --------------------------------------------------------------------------- App. E at scale

class PairScorer:
    """Cosine similarity of an image and its text under a SigLIP (``SiglipModel``: both towers), the score
    Appendix E thresholds (the paper used Vista; the book uses the stage-1 tower's own SigLIP)."""

    def __init__(self, path: str, device="cpu", text_len: int = 64):
        self.model = SiglipModel.from_pretrained(str(path), dtype=torch.float32).to(device).eval()
        self.tok = AutoTokenizer.from_pretrained(str(path))
        self.image_processor = SiglipImageProcessorPil.from_pretrained(str(path))
        self.device, self.text_len = device, text_len

    @torch.no_grad()
    def __call__(self, convs) -> np.ndarray:
        if not convs:
            return np.zeros(0)
        pix = self.image_processor([c.image for c in convs], return_tensors="pt")["pixel_values"].to(self.device)
        ids = self.tok([c.turns[0][1] for c in convs], padding="max_length", truncation=True,
                       max_length=self.text_len, return_tensors="pt")["input_ids"].to(self.device)
        img = self.model.get_image_features(pixel_values=pix)
        txt = self.model.get_text_features(input_ids=ids)
        img = getattr(img, "pooler_output", img).float()
        txt = getattr(txt, "pooler_output", txt).float()
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        return (img * txt).sum(-1).cpu().numpy()


class CleanedStream:
    """Conversations whose (image, first answer) similarity is at or above the cut; the rest are dropped and
    counted. ``method="fixed"`` uses ``value``; ``otsu``/``quantile`` set the cut from the first
    ``calibration`` pairs (as chapter 6 chooses it on the toy histogram), then apply it to everything."""

    def __init__(self, rows, scorer, method: str = "fixed", value: float = 0.5, quantile: float = 0.05,
                 calibration: int = 2000, chunk: int = 64):
        self.rows, self.scorer, self.chunk = rows, scorer, chunk
        self.counts = {"scored": 0, "dropped": 0, "kept": 0}
        self._ready: list = []
        if method == "fixed":
            self.threshold = float(value)
        else:
            first = [next(rows) for _ in range(max(2, calibration))]
            sims = self._score(first)
            self.threshold = choose_threshold(sims, method, value, quantile)
            self._keep(first, sims)
        self.counts["threshold"] = self.threshold
        self.counts["method"] = method

    def _score(self, convs) -> np.ndarray:
        out = [self.scorer(convs[i:i + self.chunk]) for i in range(0, len(convs), self.chunk)]
        return np.concatenate(out) if out else np.zeros(0)

    def _keep(self, convs, sims) -> None:
        self.counts["scored"] += len(convs)
        for c, s in zip(convs, sims):
            if s >= self.threshold:
                self._ready.append(c)
                self.counts["kept"] += 1
            else:
                self.counts["dropped"] += 1

    def __iter__(self):
        return self

    def __next__(self):
        while not self._ready:
            convs = [next(self.rows) for _ in range(self.chunk)]
            self._keep(convs, self._score(convs))
        return self._ready.pop(0)
