"""The pre-training / annealing stage config (InfiR §2.4). Plain data: a YAML preset plus overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import setting
from ..models import ModelArgs


@dataclass
class DataArgs:
    """Which documents, how many (toy), and how they are tokenized and packed."""

    datasets: list[str] = field(default_factory=lambda: ["toy:simple"])
    weights: list[float] = field(default_factory=lambda: [1.0])
    text_field: str = "text"
    # full scale: the text column of each source, in the order of datasets ("" = text_field); "a+b"
    # joins columns a and b with a blank line (e.g. problem+generated_solution)
    text_fields: list[str] = setting(factory=list, key="unless_default")
    toy_docs: int = 4000
    data_seed: int = 0
    val_fraction: float = 0.02
    tokenizer_name_or_path: str | None = None  # None -> the toy BPE trained on the toy corpus
    # Sources the toy BPE is trained on (empty -> ``datasets``). Runs whose NLL is compared must share
    # one tokenizer, so experiments over different corpora name the same sources here.
    tokenizer_datasets: list[str] = setting(factory=list, key="unless_default")
    tokenizer_vocab_size: int = 4096
    tokenizer_train_docs: int = 4000
    # Full scale: train from datatrove token files (``python -m infir_lib tokenize`` writes them) instead of
    # packing ``toy_docs`` documents in memory. None -> the in-memory toy path.
    tokenized_path: str | None = setting(None, key="unless_default")
    val_blocks: int = setting(32, key="unless_default")  # per source, held out of the token files for validation
    max_tokens_per_file: int = setting(0, key=False)  # 0 -> one token file per tokenization task
    tokenize_tasks: int = setting(1, key=False)
    tokenize_executor: Literal["local", "slurm"] = setting("local", key=False)
    slurm_partition: str = setting("cpu", key=False)
    slurm_time: str = setting("24:00:00", key=False)


@dataclass
class PretrainConfig(ModelArgs, DataArgs):
    """Everything one pre-training (or annealing) run depends on.

    ``global_batch_size`` is in sequences and is fixed; gradient accumulation is derived from the
    world size so one CPU and 64 GPUs take the same optimisation steps.
    """

    scale: Literal["toy", "full"] = "toy"
    seed: int = 0
    seq_len: int = 128
    global_batch_size: int = 16
    micro_batch_size: int = 8
    max_steps: int = field(default=200, metadata={"help": "optimisation steps (0: save the start weights; total_tokens, when set, decides instead)"})
    total_tokens: float = 0.0  # full scale: the token budget; 0 -> max_steps decides
    learning_rate: float = 3e-3
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    max_grad_norm: float = 1.0
    schedule: Literal["cosine", "wsd", "linear_to_zero", "constant"] = "cosine"
    warmup_steps: int = 20
    decay_fraction: float = 0.2  # wsd: share of steps spent decaying
    init_from: str | None = None  # annealing: a model folder, or the pretrain YAML that makes it (run, cached)
    bf16: bool = True  # used only where the device supports it (GPU)
    gradient_checkpointing: bool = False
    # throughput (infir_lib.pretrain.speed): library kernels, off at toy scale, on in the full preset
    fused_loss: bool = setting(False, key="unless_default")  # liger-kernel fused linear + cross-entropy (CUDA; the gpu extra)
    compile_model: bool = setting(False, key="unless_default")  # torch.compile the step's forward (falls back to eager if it fails)
    fused_adamw: bool = setting(False, key="unless_default")  # torch's fused AdamW kernel
    log_every: int = setting(10, key=False)
    # each history record also lists the (pre-clipping) gradient norm of every step since the last one,
    # so clipped steps and spikes can be counted (chapter 2's batch-size lesson)
    log_grad_norms: bool = setting(False, key="unless_default")
    eval_every: int = 50
    checkpoint_every: int = 0  # 0 -> only the final model
    output_dir: str | None = setting(None, key=False)  # None -> the artifact cache decides (notebooks)
    resume: bool = setting(True, key=False)  # continue from the newest usable checkpoint in output_dir (same config only)
    overwrite_output_dir: bool = setting(False, key=False)  # output_dir holds a run with another config: start fresh there instead of refusing
    stop_after_steps: int = setting(0, key=False)  # > 0: stop there as if the job were killed (to demonstrate resume)
    # planning (dry-run) only
    n_gpus: int = setting(64, key=False)
    gpu: str = setting("H800", key=False)
    assumed_mfu: float = setting(0.35, key=False)
    sharding: Literal["ddp", "fsdp", "zero2", "zero3"] = setting("fsdp", key=False)

    def __post_init__(self):
        if len(self.weights) != len(self.datasets):
            raise ValueError(f"datasets has {len(self.datasets)} entries but weights has {len(self.weights)}")
        if self.text_fields and len(self.text_fields) != len(self.datasets):
            raise ValueError(f"text_fields has {len(self.text_fields)} entries but datasets has {len(self.datasets)}")
        if any(w < 0 for w in self.weights) or not sum(self.weights) > 0:
            raise ValueError(f"weights must be non-negative with a positive sum, got {self.weights}")
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError(f"global_batch_size={self.global_batch_size} must be a multiple of "
                             f"micro_batch_size={self.micro_batch_size}")
