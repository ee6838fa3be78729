"""Throughput options of the pre-training step, each a config value and each from the ecosystem.

At the paper's size one step spends most of its time in three places the plain step does badly:
the 4096 × 128k logits of the loss (materialised in fp32 before cross-entropy), the many small
kernels of an eager forward, and the per-parameter loop of AdamW. The options here replace them with
library kernels:

* ``fused_loss``: liger-kernel's fused linear + cross-entropy, patched into the Llama forward, so the
  logits are computed in chunks and never held whole (CUDA only: it is a Triton kernel);
* ``compile_model``: ``torch.compile`` of the step's forward (inductor; on CPU too where a C compiler
  exists); a model that fails to compile falls back to eager, once, and the run says so;
* ``fused_adamw``: ``torch.optim.AdamW(fused=True)`` (one kernel for all parameters; CUDA and CPU).

Each is off in the toy presets (the book's CPU numbers stay as they are) and on in the full one.
What was applied, and why anything was not, goes into the run's summary under ``speedups``.
"""

from __future__ import annotations

import torch


def apply_fused_loss(model, enabled: bool) -> str:
    """Patch liger-kernel's fused linear cross-entropy (and its RMSNorm/RoPE/SwiGLU) into ``model``."""
    if not enabled:
        return "off"
    if not torch.cuda.is_available():
        return "unavailable: needs CUDA (a Triton kernel)"
    try:
        from liger_kernel.transformers import apply_liger_kernel_to_llama
    except ImportError:
        return "unavailable: liger-kernel is not installed (pip install -e '.[gpu]')"
    apply_liger_kernel_to_llama(model=model, rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                fused_linear_cross_entropy=True)
    return "on (liger-kernel fused linear cross-entropy, RMSNorm, RoPE, SwiGLU)"


class CompiledStep:
    """Calls ``torch.compile(model)``; if compilation fails, says so once and runs eager from then on.

    The compiled wrapper is used only for the step's forward: checkpoints, evaluation and the saved
    model keep using the uncompiled module (no ``_orig_mod.`` prefixes in saved weights).
    """

    def __init__(self, model, enabled: bool):
        self.model = model
        self.status = "off"
        self._fn = model
        if enabled:
            self._fn = torch.compile(model)
            self.status = "on (torch.compile, inductor)"

    def __call__(self, **kwargs):
        try:
            return self._fn(**kwargs)
        except Exception as e:  # noqa: BLE001 - any compiler failure: fall back, do not lose the run
            if self._fn is self.model:
                raise
            self._fn = self.model
            self.status = f"fell back to eager: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
            print(f"[pretrain] torch.compile failed, continuing eager ({self.status})", flush=True)
            return self._fn(**kwargs)


def make_optimizer(param_groups, cfg, device: torch.device) -> tuple[torch.optim.Optimizer, str]:
    """AdamW with the config's betas; the fused kernel when asked for (CUDA or CPU tensors)."""
    kw = dict(lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2))
    if cfg.fused_adamw and device.type in ("cuda", "cpu"):
        return torch.optim.AdamW(param_groups, fused=True, **kw), "on (torch fused AdamW)"
    return torch.optim.AdamW(param_groups, **kw), "off" if not cfg.fused_adamw else f"unavailable on {device.type}"
