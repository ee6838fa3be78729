"""The multimodal stage config (InfiR §4): data mix, tower, cleaning, curriculum. A YAML preset + overrides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import setting


@dataclass(frozen=True)
class CurriculumStage:
    """One stage of a run, as a data part lists it: its name, which parts train (a key of
    :data:`infir_lib.vlm.model.STAGE_TRAINABLE`), its optimizer steps and its peak learning rate."""

    name: str
    parts: str
    steps: int
    lr: float


@dataclass
class VLMConfig:
    """Everything one VLM build depends on. ``parts=`` on a field: the separately cached parts of the toy
    build that depend on it (the LM's text warm-up, the pre-trained vision tower).

    ``schedule="curriculum"`` trains stage 1 (projector, captions), stage 2 (vision + projector, OCR and
    GUI grounding + a replay share of stage-1 data) and stage 3 (everything, the hardest samples);
    ``"end_to_end"`` trains everything from the start on all of that data for the same number of steps.
    """

    scale: Literal["toy", "full"] = "toy"
    seed: int = 0
    data_seed: int = setting(0, parts=("warmup", "tower"))
    # language model: the pretrain preset that built it (toy: its cached artifact; full: the 1B sizes)
    lm_config: str = "configs/toy/pretrain.yaml"
    lm_name_or_path: str | None = None  # full scale: InfiR-1B-Base (a hub id or path)
    # text warm-up of the toy LM on the answers' language (no images): InfiR-1B already knows its
    # language; the toy LM of chapter 2 has never seen "red circle, blue square." or "(312, 625)"
    lm_warmup_steps: int = setting(150, parts=("warmup",))
    lm_warmup_items: int = setting(2000, parts=("warmup",))  # text items of the warm-up
    lm_warmup_lr: float = setting(2e-3, parts=("warmup",))  # learning rate of the warm-up
    lm_warmup_reads: bool = setting(False, parts=("warmup",))  # warm-up prompts carry the picture in words (16 cell words at the image's place)
    # vision tower (SigLIP); full scale: the So400m sizes and hub id
    vision_name_or_path: str | None = None
    image_size: int = setting(64, parts=("warmup", "tower"))  # image side in pixels
    patch_size: int = setting(16, parts=("tower",))  # ViT patch side in pixels
    vision_hidden_size: int = setting(64, parts=("tower",))  # width of the vision tower
    vision_layers: int = setting(2, parts=("tower",))  # layers of the vision tower
    vision_heads: int = setting(2, parts=("tower",))  # attention heads of the vision tower
    vision_intermediate_size: int = setting(128, parts=("tower",))  # MLP width of the vision tower
    # contrastive pre-training of the toy tower and App. E cleaning
    contrastive_pairs: int = setting(2000, parts=("tower",))
    mismatch_share: float = setting(0.2, parts=("tower",))  # share of caption pairs whose caption is wrong (what cleaning must find)
    siglip_steps: int = setting(200, parts=("tower",))  # steps of contrastive (sigmoid-loss) pre-training
    siglip_batch_size: int = setting(64, parts=("tower",))  # image-text pairs per contrastive step
    siglip_lr: float = setting(2e-3, parts=("tower",))  # learning rate of contrastive pre-training
    max_text_len: int = setting(24, parts=("tower",))  # caption tokens the text tower reads
    clean: bool = True  # drop pairs whose image-text score is below the threshold (App. E)
    threshold_method: Literal["otsu", "quantile", "fixed"] = "otsu"  # how the cleaning threshold is chosen
    threshold_value: float = 0.5  # threshold_method fixed: the score threshold
    threshold_quantile: float = 0.05  # threshold_method quantile: share of pairs dropped
    # curriculum (§4.3)
    schedule: Literal["curriculum", "end_to_end"] = "curriculum"
    stage1_mix: dict = setting(factory=lambda: {"count": 400}, parts=("warmup",))  # added to the (cleaned) caption pairs
    stage2_mix: dict = setting(factory=lambda: {"ocr": 600, "grounding": 600}, parts=("warmup",))  # stage-2 task -> rows
    stage2_replay: float = 0.2  # share of stage-1 rows kept in stage 2 ("retain some samples")
    stage3_mix: dict = setting(factory=lambda: {"gui_task": 600, "vmath": 600}, parts=("warmup",))  # stage-3 task -> rows
    stage1_steps: int = 40  # optimizer steps of stage 1 (alignment)
    stage2_steps: int = 60  # optimizer steps of stage 2
    stage3_steps: int = 60  # optimizer steps of stage 3
    stage1_lr: float = 3e-3  # learning rate of stage 1
    stage2_lr: float = 3e-3  # learning rate of stage 2
    stage3_lr: float = 1e-3  # learning rate of stage 3
    batch_size: int = 16
    # evaluation
    eval_items: int = 40
    eval_seed: int = 12345
    gui_episodes: int = 8  # GUI-agent episodes evaluated
    log_every: int = setting(10, key=False)
    num_threads: int = setting(1, key=False)  # torch threads for the toy runs (0: leave as is); not part of the cache key
    # full scale: the paper's data by hub id (Table 9), and the planner's assumptions
    stage1_datasets: list[str] = setting(factory=list, key="full")
    stage2_datasets: list[str] = setting(factory=list, key="full")  # full scale: stage-2 hub datasets
    stage3_datasets: list[str] = setting(factory=list, key="full")  # full scale: stage-3 hub datasets
    stage_samples: list[int] = setting(factory=lambda: [0, 0, 0], key="full")  # full scale: samples per stage (steps = samples / global_batch_size)
    seq_len: int = setting(2048, key="full")
    global_batch_size: int = setting(128, key="full")
    micro_batch_size: int = setting(4, key="full")
    n_gpus: int = setting(1, key=False)
    gpu: str = setting("cpu", key=False)
    assumed_mfu: float = setting(0.3, key=False)
    sharding: Literal["ddp", "fsdp", "zero2", "zero3"] = setting("ddp", key=False)
    output_dir: str | None = setting(None, key=False)
    # the full-scale parts (scale: full, infir_lib.vlm.build.parts_for); none of these are part of the toy cache key
    init: Literal["pretrained", "random"] = setting("pretrained", key="full")  # random: towers from config sizes, no weights (smoke tests)
    tokenizer_name_or_path: str | None = setting(None, key="full")  # default: lm_name_or_path; init=random without one: a small BPE
    clean_model_name_or_path: str | None = setting(None, key="full")  # App. E scorer (a SiglipModel); default: vision_name_or_path
    clean_calibration: int = setting(2000, key="full")  # stage-1 pairs scored first to set an otsu/quantile cut (fixed: unused)
    clean_text_len: int = setting(64, key="full")  # SigLIP-So400m's text length
    max_steps: int = setting(0, key="full")  # > 0: cap every stage at this many optimizer steps (smoke tests); 0: from stage_samples
    mixed_precision: Literal["no", "bf16", "fp16"] = setting("bf16", key="full")  # on a GPU; a CPU run always uses fp32
    gradient_checkpointing: bool = setting(False, key="full")
    shuffle_buffer: int = setting(1000, key="full")  # streaming shuffle buffer per dataset
    resume: bool = setting(True, key=False)  # skip stages whose checkpoint is complete in output_dir

    def __post_init__(self):
        if not 0 < self.patch_size <= self.image_size:
            raise ValueError(f"patch_size={self.patch_size} must be in (0, image_size={self.image_size}]")
        if not 0.0 <= self.mismatch_share < 1.0:
            raise ValueError(f"mismatch_share={self.mismatch_share} must be in [0, 1)")
        if not 0.0 <= self.stage2_replay <= 1.0:
            raise ValueError(f"stage2_replay={self.stage2_replay} must be in [0, 1]")
        from .data import GENERATORS  # lazy: the config (the CLI's --help, dry-runs) loads without PIL

        for key, mix in (("stage1_mix", self.stage1_mix), ("stage2_mix", self.stage2_mix),
                         ("stage3_mix", self.stage3_mix)):
            unknown = sorted(set(mix) - set(GENERATORS))
            if unknown:
                raise ValueError(f"{key}: unknown item kind(s) {unknown}; kinds: {sorted(GENERATORS)}")
