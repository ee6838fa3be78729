"""The full-scale path on one GPU, with nothing downloaded: the library's own pre-training loop and
TRL SFT on the Llama-3.2-1B architecture (random weights, bf16), fed by library-generated text
through the full-scale data path (datatrove token files, weighted block sampler).

    python benchmarks/full_scale_gpu.py --out /tmp/full_scale_gpu      # needs a CUDA GPU

It checks what the CPU tests cannot: that ``pretrain.run`` and ``sft.run`` with the *full* presets
(``configs/full/pretrain.yaml``, ``configs/full/sft.yaml``) train in bf16 through accelerate / the TRL
trainer at the real width and depth, and what they cost (tokens/s/GPU, peak memory). Only the data
(toy sources instead of the hub), the tokenizer (the toy BPE, so the vocabulary is 4k rather than
128k: the embedding is smaller than Llama's) and the step counts are overridden. Numbers are printed
and written to ``<out>/full_scale_gpu.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from infir_lib import pretrain, sft
from infir_lib.pretrain import shards
from infir_lib.planning import implied_mfu


def gpu_key() -> str:
    name = torch.cuda.get_device_name(0)
    return next((k for k in ("H800", "H100", "H200", "A100", "L40S", "A10G", "T4") if k in name), "H100")


def pretrain_part(out: Path, steps: int, global_batch: int, micro: int, seq_len: int) -> dict:
    torch.cuda.reset_peak_memory_stats()
    overrides = {"datasets": ["toy:raw", "toy:simple"], "weights": [0.75, 0.25], "tokenizer_name_or_path": None,
                 "tokenizer_datasets": ["toy:raw"], "toy_docs": 12000, "tokenized_path": str(out / "tokens"),
                 "tokenize_executor": "local", "tokenize_tasks": 4, "val_blocks": 8,
                 "total_tokens": 0.0, "max_steps": steps,
                 "warmup_steps": 2, "global_batch_size": global_batch, "micro_batch_size": micro,
                 "seq_len": seq_len, "log_every": 5, "eval_every": steps, "checkpoint_every": 0,
                 "output_dir": str(out / "pretrain")}
    t0 = time.perf_counter()
    tokens = shards.run("configs/full/pretrain.yaml", overrides)["tokens_per_source"]  # datatrove token files
    t_tok = time.perf_counter() - t0
    r = pretrain.run("configs/full/pretrain.yaml", overrides)
    cfg = pretrain.load("configs/full/pretrain.yaml", overrides)
    steady = [h["tokens_per_s"] for h in r.history[1:]] or [r.history[-1]["tokens_per_s"]]
    tps = sum(steady) / len(steady)
    return {"parameters": r.summary["parameters"], "steps": r.summary["steps"],
            "loss_first": r.history[0]["loss"], "loss_last": r.history[-1]["loss"],
            "grad_accum": r.summary["grad_accum"], "tokens_per_s_per_gpu": tps,
            "mfu": implied_mfu(tps, r.summary["parameters"], cfg.num_hidden_layers, seq_len, cfg.hidden_size, gpu_key()),
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30, "wall_s": time.perf_counter() - t0,
            "tokenize_s": t_tok, "tokens_per_source": tokens, "val_loss": r.history[-1].get("val_loss"),
            "model_dir": str(r.model_dir)}


def sft_part(out: Path, base: str, steps: int) -> dict:
    torch.cuda.reset_peak_memory_stats()
    overrides = {"model_name_or_path": base, "dataset": "toy:arith", "n_train": 2048, "max_steps": steps,
                 "fsdp": "", "per_device_train_batch_size": 16, "gradient_accumulation_steps": 2,
                 "max_length": 1024, "logging_steps": 5, "output_dir": str(out / "sft")}
    r = sft.run("configs/full/sft.yaml", overrides)
    return {"steps": r.metrics["steps"], "parameters": r.metrics["parameters"],
            "loss_first": r.history[0]["loss"], "loss_last": r.history[-1]["loss"],
            "train_seconds": r.metrics["train_seconds"], "seconds_per_step": r.metrics["train_seconds"] / max(1, steps),
            "loss_tokens_per_example": r.metrics["loss_tokens"] / max(1, r.metrics["train_examples"])
            if r.metrics.get("loss_tokens") else None,
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/full_scale_gpu")
    ap.add_argument("--pretrain-steps", type=int, default=30)
    ap.add_argument("--global-batch", type=int, default=32)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--sft-steps", type=int, default=20)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU")
    out = Path(args.out)
    report = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    report["pretrain"] = pretrain_part(out, args.pretrain_steps, args.global_batch, args.micro_batch, args.seq_len)
    print("pretrain (library loop, bf16):", json.dumps(report["pretrain"], indent=1), flush=True)
    report["sft"] = sft_part(out, report["pretrain"]["model_dir"], args.sft_steps)
    print("sft (TRL SFTTrainer, bf16):", json.dumps(report["sft"], indent=1), flush=True)
    (out / "full_scale_gpu.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
