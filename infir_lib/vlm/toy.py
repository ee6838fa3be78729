"""The toy scale's parts of chapter 6: the LM, the tower, the data and the evaluation the curriculum runs on.

    from infir_lib import vlm
    from infir_lib.vlm import toy
    result = vlm.run("configs/toy/vlm.yaml")          # the curriculum (vlm.build) with the parts below, cached
    tw = toy.tower(result.config)                     # the tiny SigLIP pre-trained on the noisy caption pool

The stage loop is one (:func:`infir_lib.vlm.curriculum.train_curriculum`); ``scale: toy`` picks these parts
(:func:`infir_lib.vlm.build.parts_for`):

* model builder :func:`build_toy_model`: chapter 2's LM after a short text warm-up (:func:`warmed_up_lm`,
  cached) + the tiny SigLIP tower pre-trained here (:func:`tower`, cached), copied into a LLaVA with a
  fresh projector;
* data :class:`ToyData`: generated items per stage; stage 1's caption pairs cleaned offline by the tower's
  similarities (App. E); the items go through the toy collator, :class:`infir_lib.vlm.train.Codec`;
* evaluation :class:`ToyEvaluation`: held-out grounding / OCR / visual-math accuracy, caption loss and the
  image-use gap after every stage, GUI episodes at the end.

The claims' measurements on toy models live here too: the stage-1-only alignment runs of claim 11
(:func:`alignment_run`), the per-item outcomes of claim 12 (:func:`item_outcomes`) and the perception
probe (:func:`perception_run`).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import SiglipModel

from .. import artifacts, stages
from ..models import load_model, load_tokenizer
from ..runtime import seed_everything, torch_threads
from . import contrastive as C
from . import perception as Q
from .config import CurriculumStage, VLMConfig
from .data import make_items, make_mix, mismatch_pairs
from .model import VLMResult, build_llava, load_siglip, make_processor, save_siglip
from .train import (IGNORE, Codec, Encoded, answer_loss, evaluate, generate, gui_task_success, score, toy_batches,
                    train_stage, warm_up_text)

EVAL_KINDS = ("grounding", "ocr", "vmath")


STAGE = stages.stage("vlm")


# --------------------------------------------------------------------------- language model

def base_language_model(cfg: VLMConfig):
    """The toy LM of chapter 2 (from the artifact cache), its tokenizer and its cache spec."""
    r = STAGE.input(cfg, "lm_config")
    return r.load_model(), r.load_tokenizer(), STAGE.input_key(cfg, "lm_config")


def warmed_up_lm(cfg: VLMConfig):
    """The LM the toy VLM is built on: chapter 2's toy LM after a short text-only warm-up (cached).

    The warm-up trains on the prompts and answers of every data family with the images left out, so the
    LM knows the words and formats ("red circle, blue square.", "(625, 375)") but not which one an image calls
    for: that has to come through the projector. InfiR-1B-Base needs no such step (it knows English).
    """
    lm, tok, spec = base_language_model(cfg)
    if cfg.lm_warmup_steps <= 0:
        return lm, tok, spec
    wspec = STAGE.part_key(cfg, "warmup", {"lm": spec})  # the fields marked parts=("warmup",), the code digest

    def build(folder: Path) -> None:
        with torch_threads(cfg.num_threads):
            kinds = ["caption", "count", *cfg.stage2_mix, *cfg.stage3_mix]
            per = max(1, cfg.lm_warmup_items // len(kinds))
            items = make_mix({k: per for k in dict.fromkeys(kinds)}, cfg.data_seed + 7, cfg.image_size)
            history = warm_up_text(lm, tok, items, cfg.lm_warmup_steps, 32, cfg.lm_warmup_lr, cfg.data_seed,
                                   reads=cfg.lm_warmup_reads)
            lm.save_pretrained(folder / "model")
            tok.save_pretrained(folder / "model")
            artifacts.save_json(history, folder / "history.json")

    folder = artifacts.cached("vlm-lm", wspec, build, name="warm")
    return load_model(folder / "model"), load_tokenizer(folder / "model"), wspec


# --------------------------------------------------------------------------- tower + cleaning

@dataclass
class TowerResult:
    folder: Path
    report: dict

    def load_siglip(self) -> SiglipModel:
        return load_siglip(self.folder / "siglip")

    @property
    def similarities(self) -> np.ndarray:
        return np.load(self.folder / "similarities.npy")

    @property
    def mismatched(self) -> np.ndarray:
        return np.load(self.folder / "mismatched.npy")

    @property
    def history(self) -> list[dict]:
        return self.report["history"]


def caption_pool(cfg: VLMConfig, swap_seed: int | None = None):
    """The captioned scenes with a known share of swapped (wrong) captions; ``swap_seed`` decides which
    pairs are swapped (default ``cfg.data_seed``: the pool the tower is pre-trained on)."""
    return mismatch_pairs(make_items("caption", cfg.contrastive_pairs, cfg.data_seed, cfg.image_size),
                          cfg.mismatch_share, cfg.data_seed if swap_seed is None else swap_seed)


def tower(cfg: VLMConfig) -> TowerResult:
    """Pre-train the tiny SigLIP on the noisy caption pool and score every pair (cached).

    It needs only the tokenizer, so it does not depend on the LM's warm-up."""
    _, tok, lm_spec = base_language_model(cfg)
    spec = STAGE.part_key(cfg, "tower", {"lm": lm_spec})  # the fields marked parts=("tower",), the code digest

    def build(folder: Path) -> None:
        with torch_threads(cfg.num_threads):
            _build_tower(folder)

    def _build_tower(folder: Path) -> None:
        pairs = caption_pool(cfg)
        seed_everything(cfg.data_seed)
        model = C.build_siglip(tok, cfg.vision_hidden_size, cfg.vision_layers, cfg.vision_heads,
                               cfg.vision_intermediate_size, cfg.image_size, cfg.patch_size, cfg.max_text_len)
        proc = make_processor(tok, cfg.image_size, cfg.patch_size).image_processor
        history = C.train_siglip(model, tok, proc, pairs, cfg.siglip_steps, cfg.siglip_batch_size, cfg.siglip_lr,
                                 cfg.data_seed, cfg.max_text_len)
        sims = C.pair_similarity(model, tok, proc, pairs, cfg.max_text_len)
        held_out = make_items("caption", 256, cfg.eval_seed, cfg.image_size)
        report = {"history": history, "retrieval_top1_heldout": C.retrieval_accuracy(model, tok, proc, held_out,
                                                                                       cfg.max_text_len)}
        save_siglip(model, folder / "siglip")  # the full config: no warning about transformers' default ids
        np.save(folder / "similarities.npy", sims)
        np.save(folder / "mismatched.npy", np.array([it.meta["mismatched"] for it in pairs]))
        artifacts.save_json(report, folder / "report.json")

    folder = artifacts.cached("vlm-tower", spec, build, name="siglip")
    return TowerResult(folder, artifacts.load_json(folder / "report.json"))


def score_pairs(cfg: VLMConfig, tw: TowerResult, pairs) -> np.ndarray:
    """The tower's image-text similarity of each pair (the App. E score)."""
    _, tok, _ = base_language_model(cfg)
    proc = make_processor(tok, cfg.image_size, cfg.patch_size).image_processor
    return C.pair_similarity(tw.load_siglip(), tok, proc, pairs, cfg.max_text_len)


def threshold_for(cfg: VLMConfig, sims: np.ndarray) -> float:
    return C.choose_threshold(sims, cfg.threshold_method, cfg.threshold_value, cfg.threshold_quantile)


def stage1_items(cfg: VLMConfig, tw: TowerResult, clean: bool | None = None, swap_seed: int | None = None):
    """Caption pairs (kept ones when cleaning) plus the stage-1 QA items; and the cleaning report.

    With a ``swap_seed`` other than the tower's, the pool has other pairs swapped; the tower scores it
    afresh (one forward pass per pair) and the cut is chosen from those scores."""
    if swap_seed is None or swap_seed == cfg.data_seed:
        pairs, sims, bad = caption_pool(cfg), tw.similarities, tw.mismatched
    else:
        pairs = caption_pool(cfg, swap_seed)
        sims = score_pairs(cfg, tw, pairs)
        bad = np.array([it.meta["mismatched"] for it in pairs])
    thr = threshold_for(cfg, sims)
    report = C.cleaning_report(sims, bad, thr)
    use_clean = cfg.clean if clean is None else clean
    kept = [p for p, s in zip(pairs, sims) if s >= thr] if use_clean else pairs
    report["kept"] = len(kept)
    return kept + make_mix(cfg.stage1_mix, cfg.data_seed + 1, cfg.image_size), report


# --------------------------------------------------------------------------- the VLM

def eval_sets(cfg: VLMConfig, codec: Codec):
    return {k: codec.encode(make_items(k, cfg.eval_items, cfg.eval_seed, cfg.image_size)) for k in EVAL_KINDS}


def caption_eval_set(cfg: VLMConfig, codec: Codec):
    """Clean held-out captions, scored by loss (exact captions are too strict a test for a toy model)."""
    return codec.encode(make_items("caption", cfg.eval_items * 2, cfg.eval_seed, cfg.image_size))


def stage_plan(cfg: VLMConfig, s1: list) -> list[tuple[str, str, list, int, float]]:
    """(stage name, parts key, rows, steps, lr) in order; the end-to-end arm sees the union."""
    rng = random.Random(cfg.data_seed + 2)
    replay = rng.sample(s1, int(round(cfg.stage2_replay * len(s1))))
    s2 = make_mix(cfg.stage2_mix, cfg.data_seed + 2, cfg.image_size) + replay
    s3 = make_mix(cfg.stage3_mix, cfg.data_seed + 3, cfg.image_size)
    if cfg.schedule == "curriculum":
        return [("stage1", "stage1", s1, cfg.stage1_steps, cfg.stage1_lr),
                ("stage2", "stage2", s2, cfg.stage2_steps, cfg.stage2_lr),
                ("stage3", "stage3", s3, cfg.stage3_steps, cfg.stage3_lr)]
    union = s1 + s2[: len(s2) - len(replay)] + s3
    steps = cfg.stage1_steps + cfg.stage2_steps + cfg.stage3_steps
    return [("end_to_end", "end_to_end", union, steps, cfg.stage2_lr)]


def build_toy_model(cfg: VLMConfig, device="cpu"):
    """The toy model builder: (LLaVA, processor) from the warmed-up LM and the pre-trained tower, with a
    fresh projector initialised from ``cfg.seed`` (the cached parts may just have been built, which draws
    random numbers, so the seed is set after them). ``device`` is the builder interface's; the toy is on the CPU."""
    lm, tok, _ = warmed_up_lm(cfg)
    tw = tower(cfg)
    seed_everything(cfg.seed)
    vision_state = tw.load_siglip().vision_model.state_dict()
    model = build_llava(C.vision_config(cfg.vision_hidden_size, cfg.vision_layers, cfg.vision_heads,
                                        cfg.vision_intermediate_size, cfg.image_size, cfg.patch_size),
                        lm.config, tok.convert_tokens_to_ids("<image>"), language_model=lm,
                        vision_state=vision_state, device=str(device))
    return model, make_processor(tok, cfg.image_size, cfg.patch_size)


class ToyData:
    """The toy data part: each stage's generated items (:func:`stage_plan`; stage 1 cleaned offline by the
    tower, :func:`stage1_items`), encoded once per stage and drawn in shuffled passes by the toy collator."""

    def __init__(self, cfg: VLMConfig, processor):
        self.cfg, self.codec = cfg, Codec(processor)
        s1, self._cleaning = stage1_items(cfg, tower(cfg))
        self._rows = {name: (parts, rows, steps, lr) for name, parts, rows, steps, lr in stage_plan(cfg, s1)}

    def stages(self) -> list[CurriculumStage]:
        return [CurriculumStage(name, parts, steps, lr) for name, (parts, _, steps, lr) in self._rows.items()]

    def batches(self, stage: CurriculumStage, device=None):
        return toy_batches(self.codec, self.codec.encode(self._rows[stage.name][1]), self.cfg.batch_size, self.cfg.seed)

    def record(self, stage: CurriculumStage, history: list[dict]) -> dict:
        return {"rows": len(self._rows[stage.name][1]), "steps": stage.steps}

    def cleaning(self, per_stage: dict) -> dict:
        return self._cleaning


class ToyEvaluation:
    """The toy evaluation part: after each stage the held-out accuracies (:func:`eval_sets`), the clean
    captions' loss and image-use gap; at the end the last stage's numbers + GUI-agent episodes."""

    def __init__(self, cfg: VLMConfig, processor):
        self.cfg, self.codec = cfg, Codec(processor)
        self.evals = eval_sets(cfg, self.codec)
        self.captions = caption_eval_set(cfg, self.codec)

    def after_stage(self, model) -> dict:
        return {**evaluate(model, self.codec, self.evals), "caption_loss": answer_loss(model, self.codec, self.captions),
                "caption_gap": float(np.mean(image_use_gaps(model, self.codec, self.captions)))}

    def final(self, model, per_stage: dict) -> dict:
        metrics = dict(per_stage[list(per_stage)[-1]])
        metrics.pop("rows"), metrics.pop("steps")
        metrics["gui_task_success"] = gui_task_success(model, self.codec, self.cfg.gui_episodes, self.cfg.eval_seed,
                                                       self.cfg.image_size)
        return metrics


# --------------------------------------------------------------------------- claim 11: cleaned vs noisy alignment

@torch.no_grad()
def caption_losses(model, codec: Codec, enc, batch_size: int = 64) -> list[float]:
    """Teacher-forced loss of each item's answer tokens, averaged over that item's tokens (nats/token),
    one number per item in item order: the per-pair outcome the claim-11 comparison pairs across arms."""
    model.eval()
    out: list[float] = []
    for i in range(0, len(enc.items), batch_size):
        idx = list(range(i, min(i + batch_size, len(enc.items))))
        b = codec.train_batch(enc, idx)
        labels = b.pop("labels")
        logits = model(**b).logits[:, :-1].float()
        target = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=IGNORE,
                                                reduction="none")
        counts = (target != IGNORE).sum(dim=1)
        if (counts == 0).any():
            raise ValueError(f"caption_losses: item(s) {[idx[j] for j in (counts == 0).nonzero().flatten().tolist()]} "
                             "have no answer tokens")
        out += (nll.sum(dim=1) / counts).tolist()
    return out


def image_use_gaps(model, codec: Codec, enc, seed: int = 0) -> list[float]:
    """Per item: its answer's loss (nats/token) with another item's image minus with its own image.

    Positive = the model's words depend on the right image; 0 = it ignores the image. The other image
    is a seeded derangement (:func:`infir_lib.vlm.perception.donors`), the same for every model."""
    true = caption_losses(model, codec, enc)
    d = Q.donors(len(enc.items), seed)
    swapped = Encoded(enc.prompt_ids, enc.answer_ids, enc.pixel_values[d], [enc.items[j] for j in d])
    return [s - t for s, t in zip(caption_losses(model, codec, swapped), true)]


HELDOUT_PAIRS = 400  # held-out captions scored per pair for claim 11 (teacher-forced: cheap)


def swap_seed_for(cfg: VLMConfig, seed: int) -> int:
    """Which pairs of the pool are swapped in alignment run ``seed`` (seed 0: the tower's own pool)."""
    return cfg.data_seed + 1000 * seed


def alignment_run(cfg: VLMConfig, clean: bool, seed: int, heldout_pairs: int = HELDOUT_PAIRS) -> dict:
    """Stage 1 only (projector on captions), on cleaned or uncleaned pairs, seed ``seed``: the seed sets
    the projector's initialisation, the data order *and which pairs of the pool are swapped*
    (:func:`swap_seed_for`). Measured on ``heldout_pairs`` clean held-out captions, the same in every arm:
    ``heldout_pair_losses`` (loss per pair with its own image) and ``heldout_pair_gaps`` (loss with a
    shuffled image minus loss with the true one: how much the caption depends on the image, claim 11)."""
    spec = {"vlm": STAGE.key(dataclasses.replace(cfg, seed=0)), "clean": clean, "seed": seed,
            "heldout_pairs": heldout_pairs}  # the vlm key holds the code digest

    def build(folder: Path) -> None:
        with torch_threads(cfg.num_threads):
            _build(folder)

    def _build(folder: Path) -> None:
        model, processor = build_toy_model(dataclasses.replace(cfg, seed=seed))
        codec = Codec(processor)
        tw = tower(cfg)
        rows, cleaning = stage1_items(dataclasses.replace(cfg, stage1_mix={}), tw, clean=clean,
                                      swap_seed=swap_seed_for(cfg, seed))
        hist = train_stage(model, codec, codec.encode(rows), "stage1", cfg.stage1_steps, cfg.batch_size,
                           cfg.stage1_lr, seed, "stage1", cfg.log_every)
        pairs = codec.encode(make_items("caption", heldout_pairs, cfg.eval_seed, cfg.image_size))
        losses = caption_losses(model, codec, pairs)
        gaps = image_use_gaps(model, codec, pairs)
        res = {"clean": clean, "seed": seed, "rows": len(rows), "swap_seed": swap_seed_for(cfg, seed),
               "heldout_caption_loss": float(np.mean(losses)), "heldout_pair_losses": losses,
               "heldout_pair_gaps": gaps, "history": hist, "cleaning": cleaning}
        artifacts.save_json(res, folder / "result.json")

    return artifacts.load_json(artifacts.cached("vlm-align", spec, build, name="clean" if clean else "noisy")
                               / "result.json")


# --------------------------------------------------------------------------- claim 12: per-item outcomes

def item_outcomes(result: VLMResult, cfg: VLMConfig, n: int, kinds: tuple[str, ...] = EVAL_KINDS) -> dict:
    """Greedy 0/1 outcome per held-out item of a saved toy VLM, ``n`` items per kind (the same items for
    every run: ``cfg.eval_seed``), scored as in the run's metrics (click in box, exact answer). Cached."""
    spec = {"run": result.output_dir.name, "n": n, "kinds": list(kinds), "eval_seed": cfg.eval_seed,
            "image_size": cfg.image_size}

    def build(folder: Path) -> None:
        with torch_threads(cfg.num_threads):
            model, codec = result.load_model(), Codec(result.load_processor())
            out = {}
            for kind in kinds:
                enc = codec.encode(make_items(kind, n, cfg.eval_seed, cfg.image_size))
                out[kind] = [int(c) for c in score(enc.items, generate(model, codec, enc))]
            artifacts.save_json(out, folder / "items.json")

    return artifacts.load_json(artifacts.cached("vlm-items", spec, build, name=result.summary["schedule"])
                               / "items.json")


# --------------------------------------------------------------------------- the perception gate

def perception_run(result: VLMResult, cfg: VLMConfig, n: int, kinds: tuple[str, ...] = EVAL_KINDS) -> dict:
    """The perception probe (:func:`infir_lib.vlm.perception.probe`) of a saved toy VLM on ``n`` probe
    items per family: true image vs shuffled image vs the blind baseline. Cached."""
    spec = {"run": result.output_dir.name, "n": n, "kinds": list(kinds), "eval_seed": cfg.eval_seed,
            "image_size": cfg.image_size, "margin": Q.MARGIN}  # the run's name holds its key (code digest included)

    def build(folder: Path) -> None:
        with torch_threads(cfg.num_threads):
            model, codec = result.load_model(), Codec(result.load_processor())
            artifacts.save_json(Q.probe(model, codec, Q.probe_items(cfg, kinds, n)), folder / "probe.json")

    return artifacts.load_json(artifacts.cached("vlm-probe", spec, build, name=result.summary["schedule"])
                               / "probe.json")
