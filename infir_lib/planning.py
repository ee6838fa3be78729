"""The compute planner behind every ``--dry-run``: parameters, tokens, steps, memory, GPU-hours.

FLOPs follow the usual dense-transformer count, 6·N·D for the weights plus 6·L·S·H·D for
attention scores (N parameters, D tokens, L layers, S sequence length, H hidden size). GPU-hours
follow from an assumed model-FLOPs utilisation (MFU). Checked against the paper in chapter 0:
InfiR trained ~940 B tokens on 64 H800 GPUs in 5,760 GPU-hours.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .stages import Plan

# Dense bf16 tensor-core peak, TFLOP/s (vendor spec sheets, without sparsity).
GPU_PEAK_TFLOPS = {"H800": 989.0, "H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0,
                   "T4": 65.0, "cpu": 0.5}
GPU_MEMORY_GIB = {"H800": 80, "H100": 80, "H200": 141, "A100": 80, "L40S": 48, "A10G": 24, "T4": 16, "cpu": 24}

# The paper's figures (InfiR §2.4): 900 B + 40 B tokens, 64 H800, 90 hours = 5,760 GPU-hours.
PAPER_TOKENS = 940e9
PAPER_GPU_HOURS = 5760.0
PAPER_GPUS = 64


def training_flops(n_params: float, n_tokens: float, n_layers: int, seq_len: int, hidden: int) -> float:
    """Forward + backward FLOPs for ``n_tokens`` of training."""
    return 6.0 * n_params * n_tokens + 6.0 * n_layers * seq_len * hidden * n_tokens


def implied_throughput(n_tokens: float, gpu_hours: float) -> float:
    """Tokens per second per GPU implied by a token count and a GPU-hour budget."""
    return n_tokens / (gpu_hours * 3600.0)


def implied_mfu(tokens_per_s_per_gpu: float, n_params: float, n_layers: int, seq_len: int, hidden: int,
                gpu: str = "H800") -> float:
    """Model-FLOPs utilisation implied by a throughput on a given GPU."""
    flops_per_token = training_flops(n_params, 1.0, n_layers, seq_len, hidden)
    return tokens_per_s_per_gpu * flops_per_token / (GPU_PEAK_TFLOPS[gpu] * 1e12)


@dataclass
class TrainingPlan(Plan):
    parameters: int
    tokens: float
    global_batch_sequences: int
    seq_len: int
    steps: int
    n_gpus: int
    micro_batch_per_gpu: int
    grad_accum_steps: int
    gpu: str
    assumed_mfu: float
    total_flops: float
    gpu_hours: float
    wall_hours: float
    memory_per_gpu_gib: float
    memory_breakdown_gib: dict
    sharding: str
    notes: list = field(default_factory=list)  # preconditions found offline (e.g. data another stage makes)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        mem = ", ".join(f"{k} {v:.1f}" for k, v in self.memory_breakdown_gib.items())
        return "\n".join([
            f"parameters          {self.parameters / 1e9:.3f} B ({self.parameters:,})",
            f"tokens              {self.tokens / 1e9:.2f} B",
            f"global batch        {self.global_batch_sequences} x {self.seq_len} tokens"
            f" = {self.global_batch_sequences * self.seq_len / 1e6:.2f} M tokens/step",
            f"steps               {self.steps:,}",
            f"devices             {self.n_gpus} x {self.gpu}, micro-batch {self.micro_batch_per_gpu},"
            f" grad-accum {self.grad_accum_steps}",
            f"compute             {self.total_flops:.3e} FLOPs at MFU {self.assumed_mfu:.0%}",
            f"estimated time      {self.gpu_hours:,.0f} GPU-hours = {self.wall_hours:,.1f} h wall-clock",
            f"memory per GPU      {self.memory_per_gpu_gib:.1f} GiB ({self.sharding}: {mem})"
            f" of {GPU_MEMORY_GIB.get(self.gpu, '?')} GiB",
        ] + [f"note                {n}" for n in self.notes])


def gpu_hours(flops: float, gpu: str, mfu: float) -> float:
    """GPU-hours to spend ``flops`` at model-FLOPs utilisation ``mfu`` of ``gpu``'s bf16 peak."""
    return flops / (GPU_PEAK_TFLOPS[gpu] * 1e12 * mfu) / 3600.0


def state_memory_gib(n_params: float, n_gpus: int, sharding: str) -> dict:
    """Training state per GPU in GiB: bf16 weights, bf16 grads, fp32 Adam (master + m + v).

    ``sharding``: ddp (all replicated), zero2 (grads and optimizer sharded), fsdp/zero3 (all sharded).
    """
    gib = 1024 ** 3
    weights, grads, optim = 2.0 * n_params, 2.0 * n_params, 12.0 * n_params
    if sharding in ("fsdp", "zero3"):
        weights, grads, optim = weights / n_gpus, grads / n_gpus, optim / n_gpus
    elif sharding == "zero2":
        grads, optim = grads / n_gpus, optim / n_gpus
    return {"weights": weights / gib, "grads": grads / gib, "optimizer": optim / gib}


def grad_accum_steps(global_batch: int, micro_batch: int, world_size: int) -> int:
    """Gradient accumulation that keeps the global batch fixed whatever the number of devices."""
    per_step = micro_batch * world_size
    if global_batch % per_step:
        raise ValueError(f"global_batch_size={global_batch} is not divisible by micro_batch_size={micro_batch}"
                         f" x world_size={world_size}; choose sizes whose product divides it")
    return global_batch // per_step


def activation_bytes(micro_batch: int, seq_len: int, hidden: int, n_layers: int, n_heads: int,
                     checkpointing: bool) -> float:
    """Activation memory of one micro-batch (Korthikanti et al. 2022, bf16, flash attention)."""
    per_layer = seq_len * micro_batch * hidden * 34.0
    if checkpointing:
        return seq_len * micro_batch * hidden * 2.0 * n_layers + per_layer
    return per_layer * n_layers


def plan_training(*, n_params: int, n_tokens: float, global_batch: int, seq_len: int, n_layers: int,
                  hidden: int, n_heads: int, n_gpus: int = 64, micro_batch: int = 4, gpu: str = "H800",
                  mfu: float = 0.35, sharding: str = "fsdp", checkpointing: bool = True) -> TrainingPlan:
    """The plan a dry-run prints. ``sharding``: ddp (replicated), fsdp/zero3 (all sharded), zero2."""
    steps = int(n_tokens // (global_batch * seq_len))
    accum = grad_accum_steps(global_batch, micro_batch, n_gpus)
    flops = training_flops(n_params, n_tokens, n_layers, seq_len, hidden)
    hours = gpu_hours(flops, gpu, mfu)
    acts = activation_bytes(micro_batch, seq_len, hidden, n_layers, n_heads, checkpointing)
    breakdown = {**state_memory_gib(n_params, n_gpus, sharding), "activations": acts / 1024 ** 3}
    return TrainingPlan(parameters=n_params, tokens=n_tokens, global_batch_sequences=global_batch, seq_len=seq_len,
                        steps=steps, n_gpus=n_gpus, micro_batch_per_gpu=micro_batch, grad_accum_steps=accum,
                        gpu=gpu, assumed_mfu=mfu, total_flops=flops, gpu_hours=hours,
                        wall_hours=hours / n_gpus, memory_per_gpu_gib=sum(breakdown.values()),
                        memory_breakdown_gib=breakdown, sharding=sharding)
