"""Pre-training throughput: the library loop vs bare PyTorch on the toy model, and, on a GPU, the
full Llama-3.2-1B architecture at bf16 (tokens/s/GPU and MFU).

    .venv/bin/python benchmarks/pretrain_throughput.py                 # CPU: toy comparison only
    .venv/bin/python benchmarks/pretrain_throughput.py --full-steps 20 # GPU: also the 1B model

The paper's implied figure: 940 B tokens in 5,760 H800 GPU-hours = ~45k tokens/s/GPU (§2.4).
The full-size part builds the architecture from ``configs/full/pretrain.yaml`` with random weights
(nothing is downloaded) and trains on random tokens, which costs exactly what real tokens cost.
The last line is ``ratio: X`` (library / bare tokens/s on the toy model; target >= 0.95).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loop_overhead import bare_loop, library_loop  # noqa: E402

from infir_lib.config import load_config  # noqa: E402
from infir_lib.models import build_llama, count_parameters  # noqa: E402
from infir_lib.planning import PAPER_GPU_HOURS, PAPER_TOKENS, implied_mfu, implied_throughput  # noqa: E402
from infir_lib.pretrain.config import PretrainConfig  # noqa: E402


def full_size_gpu(steps: int, micro_batch: int, seq_len: int, compile_model: bool, checkpointing: bool = True,
                  fused_loss: bool = False, fused_adamw: bool = True) -> dict:
    """tokens/s on one GPU for the Llama-3.2-1B architecture, bf16 autocast, AdamW, clipping.

    The options are the library's own (``infir_lib.pretrain.speed``), so the ablation measures what
    ``pretrain.run`` turns on with the full preset. Also returns the first step's loss, to compare
    numerics between settings on the same batch.
    """
    from infir_lib.pretrain import speed

    cfg = load_config(PretrainConfig, "configs/full/pretrain.yaml",
                      {"fused_adamw": fused_adamw, "fused_loss": fused_loss, "compile_model": compile_model})
    torch.manual_seed(0)
    torch.cuda.reset_peak_memory_stats()
    model = build_llama(cfg, device="cuda", dtype=torch.float32)
    model.config._attn_implementation = "sdpa"
    model.gradient_checkpointing_enable() if (cfg.gradient_checkpointing and checkpointing) else None
    n_params = count_parameters(model)
    status = {"fused_loss": speed.apply_fused_loss(model, cfg.fused_loss)}
    opt, status["fused_adamw"] = speed.make_optimizer(model.parameters(), cfg, torch.device("cuda"))
    step_fn = speed.CompiledStep(model, cfg.compile_model)
    x = torch.randint(0, cfg.vocab_size, (micro_batch, seq_len), device="cuda",
                      generator=torch.Generator(device="cuda").manual_seed(0))
    warm, first_loss = 3, None
    for i in range(steps + warm):
        if i == warm:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = step_fn(input_ids=x, labels=x).loss
        first_loss = float(loss) if first_loss is None else first_loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    tps = steps * micro_batch * seq_len / (time.perf_counter() - t0)
    status["compile_model"] = step_fn.status
    gpu = torch.cuda.get_device_name(0)
    key = next((k for k in ("H800", "H100", "H200", "A100", "L40S", "A10G", "T4") if k in gpu), "H100")
    out = {"gpu": gpu, "parameters": n_params, "tokens_per_s_per_gpu": tps, "first_loss": first_loss,
           "mfu": implied_mfu(tps, n_params, cfg.num_hidden_layers, seq_len, cfg.hidden_size, key),
           "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30, "status": status}
    del model, opt, step_fn
    torch.cuda.empty_cache()
    return out


def ablation(steps: int, micro_batch: int, seq_len: int) -> list[dict]:
    """Each option added in turn (and checkpointing removed last, if memory allows), on one GPU."""
    plan = [("plain step", dict(fused_adamw=False, fused_loss=False, compile_model=False)),
            ("+ fused AdamW", dict(fused_adamw=True, fused_loss=False, compile_model=False)),
            ("+ fused linear cross-entropy", dict(fused_adamw=True, fused_loss=True, compile_model=False)),
            ("+ torch.compile", dict(fused_adamw=True, fused_loss=True, compile_model=True)),
            ("+ no activation checkpointing", dict(fused_adamw=True, fused_loss=True, compile_model=True,
                                                   checkpointing=False))]
    rows = []
    for name, kw in plan:
        try:
            r = full_size_gpu(steps, micro_batch, seq_len, **kw)
        except torch.OutOfMemoryError:
            rows.append({"setting": name, "error": "out of memory"})
            torch.cuda.empty_cache()
            continue
        rows.append({"setting": name, **r})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--full-steps", type=int, default=10)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--no-checkpointing", action="store_true", help="keep activations (more memory, fewer FLOPs)")
    ap.add_argument("--ablation", action="store_true", help="GPU: add the library's throughput options one by one")
    args = ap.parse_args()

    paper = implied_throughput(PAPER_TOKENS, PAPER_GPU_HOURS)
    print(f"paper (InfiR §2.4): {PAPER_TOKENS / 1e9:.0f} B tokens in {PAPER_GPU_HOURS:,.0f} GPU-hours "
          f"= {paper:,.0f} tokens/s/GPU on H800")
    if torch.cuda.is_available() and args.ablation:
        rows = ablation(args.full_steps, args.micro_batch, args.seq_len)
        base = next((r for r in rows if "error" not in r), None)
        print("| setting | tokens/s/GPU | MFU | peak GiB | first-step loss (vs plain) |\n|---|---|---|---|---|")
        for r in rows:
            if "error" in r:
                print(f"| {r['setting']} | {r['error']} | | | |")
                continue
            print(f"| {r['setting']} | {r['tokens_per_s_per_gpu']:,.0f} | {r['mfu']:.1%} | {r['peak_memory_gib']:.1f} | "
                  f"{r['first_loss']:.4f} ({r['first_loss'] - base['first_loss']:+.4f}) |")
        print("applied:", rows[-1].get("status") or rows[-2].get("status"))
    elif torch.cuda.is_available():
        r = full_size_gpu(args.full_steps, args.micro_batch, args.seq_len, args.compile, not args.no_checkpointing)
        print(f"Llama-3.2-1B architecture ({r['parameters'] / 1e9:.3f} B), bf16, micro-batch {args.micro_batch} x "
              f"{args.seq_len}, checkpointing {'off' if args.no_checkpointing else 'on'}, compile {args.compile}, "
              f"on {r['gpu']}: {r['tokens_per_s_per_gpu']:,.0f} tokens/s/GPU, MFU {r['mfu']:.1%}, "
              f"peak memory {r['peak_memory_gib']:.1f} GiB")
    else:
        print("no GPU: the full-size measurement is skipped")

    overrides = dict(max_steps=args.steps)
    cfg = load_config(PretrainConfig, "configs/toy/pretrain.yaml", overrides)
    bare = bare_loop(cfg, args.warmup)
    lib = library_loop(overrides, args.warmup)
    print(f"toy model (configs/toy/pretrain.yaml), {args.steps} steps: bare PyTorch {bare:,.0f} tokens/s, "
          f"infir_lib {lib:,.0f} tokens/s")
    print(f"ratio: {lib / bare:.3f}")


if __name__ == "__main__":
    main()
