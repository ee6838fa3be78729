"""The pre-training loop: readable, nanoGPT-sized, on accelerate (InfiR §2.4).

One function trains at both scales. Per optimisation step it takes ``global_batch_size`` blocks
(packed in memory at toy scale, read from datatrove token files at full scale: ``data.batch_rows``),
splits them over devices and micro-batches (gradient
accumulation = global / (micro x world)), clips the gradient norm and logs loss, gradient norm,
learning rate and tokens/s. Checkpoints hold model, optimizer, schedule and step, so a run that is
stopped and resumed ends with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..config import fields_marked
from ..models import build_llama, count_parameters, load_model
from ..planning import grad_accum_steps
from ..runtime import make_accelerator, save_state_without_tied_copies, seed_everything
from ..runtime import progress_bar as tqdm  # a bar in a terminal, one summary line in a notebook
from . import speed
from .config import PretrainConfig
from .packing import get_packed_data, get_tokenizer
from .shards import TokenBlocks


def lr_lambda(cfg: PretrainConfig, total_steps: int) -> Callable[[int], float]:
    """Learning-rate multiplier per step: linear warmup, then cosine / WSD / linear-to-zero / constant."""
    warm = max(0, cfg.warmup_steps)

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        if cfg.schedule == "cosine":
            return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        if cfg.schedule == "wsd":
            decay_start = total_steps - int(cfg.decay_fraction * total_steps)
            if step < decay_start:
                return 1.0
            return max(0.0, (total_steps - step) / max(1, total_steps - decay_start))
        if cfg.schedule == "linear_to_zero":
            return max(0.0, 1.0 - progress)
        return 1.0

    return f


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of all weights, for checking that ranks (or resumed runs) agree bit for bit."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def validation_loss(model, blocks, device, max_blocks: int = 32, batch: int = 8) -> float:
    """Mean next-token loss on (up to ``max_blocks``) held-out blocks."""
    model.eval()
    losses = []
    for i in range(0, min(len(blocks), max_blocks), batch):
        x = torch.as_tensor(blocks[i: i + batch], dtype=torch.long, device=device)
        losses.append(model(input_ids=x, labels=x).loss.item())
    model.train()
    return float(sum(losses) / max(1, len(losses)))


def _checkpoints_newest_first(out: Path) -> list[Path]:
    ckpts = [c for c in (out / "checkpoints").glob("step_*") if c.name.split("_")[1].isdigit()]
    ckpts = sorted(ckpts, key=lambda p: int(p.name.split("_")[1]), reverse=True)
    return [c for c in ckpts if (c / "trainer_state.json").exists()]


def _latest_checkpoint(out: Path) -> Path | None:
    ckpts = _checkpoints_newest_first(out)
    return ckpts[0] if ckpts else None


def _resume(accelerator, out: Path) -> tuple["TrainState", list[str]]:
    """Load the newest checkpoint that loads; one cut short by a crash (truncated state file, missing
    weights) is reported and passed over for the one before it. Returns the state and the skipped ones."""
    skipped = []
    for ck in _checkpoints_newest_first(out):
        try:
            saved = json.loads((ck / "trainer_state.json").read_text())
            state = TrainState(int(saved["step"]), list(saved["history"]))
            accelerator.load_state(str(ck))
        except Exception as e:  # noqa: BLE001 - any failure to read a checkpoint means: use an older one
            skipped.append(ck.name)
            accelerator.print(f"checkpoint {ck.relative_to(out)} is unusable ({type(e).__name__}: {str(e)[:120]}); trying the one before")
            continue
        accelerator.print(f"resumed from {ck.relative_to(out)} at step {state.step}")  # no machine path
        return state, skipped
    return TrainState(), skipped


RUN_CONFIG = "run_config.json"
_RUN_FILES = ("checkpoints", "model", "history.jsonl", "result.json", RUN_CONFIG)


def run_record(cfg: PretrainConfig) -> dict:
    """What an ``output_dir`` remembers of its run: the config less the keys that only say where/how to report."""
    non_semantic = fields_marked(type(cfg), False)
    return json.loads(json.dumps({k: v for k, v in asdict(cfg).items() if k not in non_semantic}, default=str))


def check_output_dir(cfg: PretrainConfig, out: Path) -> bool:
    """Refuse to continue (or overwrite) a run in ``out`` that was made with another config.

    Resuming with a changed learning rate, say, would return the old run's model as if it were the new
    one. With ``overwrite_output_dir=true`` it returns True instead: remove the old run, start fresh.
    """
    record = out / RUN_CONFIG
    has_run = any((out / name).exists() for name in _RUN_FILES[:4]) or any(out.glob("rank*.sha256"))
    if not has_run:
        return False
    current = run_record(cfg)
    try:
        saved = json.loads(record.read_text()) if record.exists() else None
    except json.JSONDecodeError:
        saved = None
    if saved == current:
        return False
    if cfg.overwrite_output_dir:
        return True
    if saved is None:
        why = f"its {RUN_CONFIG} is missing or unreadable, so its config cannot be compared"
    else:
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        why = "changed: " + ", ".join(f"{k} {saved.get(k)!r} -> {current.get(k)!r}" for k in changed[:6])
    raise ValueError(f"output_dir {out} holds a run made with another config ({why}); pass "
                     f"overwrite_output_dir=true to start fresh there, or choose another output_dir")


def _clear_output_dir(out: Path) -> None:
    for name in _RUN_FILES:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    for p in out.glob("rank*.sha256"):
        p.unlink()


@dataclass
class TrainState:
    step: int = 0
    history: list[dict] = field(default_factory=list)


def train(cfg: PretrainConfig, out: Path, eval_fn: Callable | None = None) -> dict:
    """Train (or resume) into ``out``; returns the summary also written to ``out/result.json``."""
    out = Path(out)
    use_cuda = torch.cuda.is_available()
    accelerator = make_accelerator("bf16" if (cfg.bf16 and use_cuda) else "no", cpu=not use_cuda)
    world, rank = accelerator.num_processes, accelerator.process_index
    accum = grad_accum_steps(cfg.global_batch_size, cfg.micro_batch_size, world)
    clear = check_output_dir(cfg, out)
    accelerator.wait_for_everyone()  # every rank has compared before rank 0 changes anything
    if accelerator.is_main_process:
        if clear:
            _clear_output_dir(out)
        (out / RUN_CONFIG).write_text(json.dumps(run_record(cfg), indent=1, sort_keys=True))
    accelerator.wait_for_everyone()
    seed_everything(cfg.seed)

    tokenizer = get_tokenizer(cfg)
    if cfg.tokenized_path:  # full scale: token files written by `python -m infir_lib tokenize`
        data = TokenBlocks.open(cfg, cfg.seq_len, tokenizer)
    else:  # toy scale: documents packed in memory (cached)
        data = get_packed_data(cfg, cfg.seq_len, tokenizer)
    if len(data) < cfg.global_batch_size:
        raise ValueError(f"only {len(data)} training blocks of {cfg.seq_len} tokens, fewer than one global "
                         f"batch ({cfg.global_batch_size}); raise toy_docs or lower seq_len/global_batch_size")
    total_steps = cfg.max_steps
    if cfg.total_tokens:
        total_steps = int(cfg.total_tokens // (cfg.global_batch_size * cfg.seq_len))

    if cfg.init_from:
        model = load_model(cfg.init_from)
    else:
        model = build_llama(cfg, tokenizer)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    speedups = {"fused_loss": speed.apply_fused_loss(model, cfg.fused_loss)}
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer, speedups["fused_adamw"] = speed.make_optimizer(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], cfg,
        accelerator.device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, total_steps))
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    save_state_without_tied_copies(accelerator)  # tied weights stored once, as save_pretrained does
    step_model = speed.CompiledStep(model, cfg.compile_model)  # the forward of the step only

    state, skipped_checkpoints = _resume(accelerator, out) if cfg.resume else (TrainState(), [])

    n_params = count_parameters(accelerator.unwrap_model(model))
    tokens_per_step = cfg.global_batch_size * cfg.seq_len
    per_rank = cfg.global_batch_size // world
    bar = tqdm(total=total_steps, initial=state.step, desc="pretrain", disable=not accelerator.is_main_process,
               dynamic_ncols=True)
    model.train()
    t_last, tokens_since = time.perf_counter(), 0
    gnorm_max, nonfinite = 0.0, 0  # the largest gradient norm since the last log line, and overflow count
    gnorms: list[float] = []  # every step's norm since the last record (log_grad_norms)
    while state.step < total_steps:
        rows = data.batch_rows(state.step, cfg.global_batch_size, cfg.seed)
        mine = rows[rank * per_rank: (rank + 1) * per_rank]
        loss_sum = torch.zeros((), device=accelerator.device)
        for m in range(accum):
            x = torch.as_tensor(data.blocks(mine[m * cfg.micro_batch_size: (m + 1) * cfg.micro_batch_size]),
                                dtype=torch.long, device=accelerator.device)
            ctx = accelerator.no_sync(model) if m < accum - 1 else nullcontext()
            with ctx:
                loss = step_model(input_ids=x, labels=x).loss / accum
                accelerator.backward(loss)
            loss_sum += loss.detach()
        grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm))
        if not math.isfinite(grad_norm):
            nonfinite += 1  # an overflowing step: torch's clip turns it into NaN weights, so say so
        gnorm_max = max(gnorm_max, grad_norm) if math.isfinite(grad_norm) else gnorm_max
        if cfg.log_grad_norms:
            gnorms.append(grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        tokens_since += tokens_per_step
        bar.update(1)

        do_eval = bool(cfg.eval_every) and (state.step % cfg.eval_every == 0 or state.step == total_steps)
        if state.step % cfg.log_every == 0 or state.step == total_steps or do_eval:
            loss_mean = accelerator.reduce(loss_sum, reduction="mean").item()
            now = time.perf_counter()
            rec = {"step": state.step, "loss": loss_mean, "grad_norm": grad_norm, "grad_norm_max": gnorm_max,
                   "nonfinite_grad_steps": nonfinite, "lr": scheduler.get_last_lr()[0],
                   "tokens": state.step * tokens_per_step, "tokens_per_s": tokens_since / max(1e-9, now - t_last)}
            if cfg.log_grad_norms:
                rec["grad_norms"], gnorms = gnorms, []
            t_last, tokens_since, gnorm_max = now, 0, 0.0
            if do_eval:
                rec["val_loss"] = validation_loss(model, data.val, accelerator.device)
                if eval_fn is not None:
                    rec.update(eval_fn(accelerator.unwrap_model(model), tokenizer, state.step))
            state.history.append(rec)
            t_last = time.perf_counter()  # evaluation time is not training throughput
            bar.set_postfix(loss=f"{loss_mean:.3f}", gnorm=f"{grad_norm:.2f}",
                            tok_s=f"{rec['tokens_per_s']:.0f}")
        if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 and state.step < total_steps:
            ck = out / "checkpoints" / f"step_{state.step}"
            accelerator.save_state(str(ck))
            if accelerator.is_main_process:  # written whole or not at all: a kill mid-write leaves no half file
                tmp = ck / "trainer_state.json.tmp"
                tmp.write_text(json.dumps({"step": state.step, "history": state.history}))
                tmp.replace(ck / "trainer_state.json")
            accelerator.wait_for_everyone()
            t_last = time.perf_counter()
        if cfg.stop_after_steps and state.step >= cfg.stop_after_steps and state.step < total_steps:
            bar.close()
            return {"interrupted_at": state.step}
    bar.close()

    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    digest = weights_digest(unwrapped)
    (out / f"rank{rank}.sha256").write_text(digest)
    result = {"steps": state.step, "parameters": n_params, "tokens": state.step * tokens_per_step,
              "world_size": world, "grad_accum": accum, "final_loss": state.history[-1]["loss"] if state.history else None,
              "weights_sha256": digest, "train_blocks": len(data), "n_docs": data.n_docs}
    if skipped_checkpoints:
        result["unusable_checkpoints_skipped"] = skipped_checkpoints
    speedups["compile_model"] = step_model.status
    if any(v != "off" for v in speedups.values()):  # toy runs keep the summary they always had
        result["speedups"] = speedups
    if accelerator.is_main_process:
        unwrapped.save_pretrained(out / "model", safe_serialization=True)
        tokenizer.save_pretrained(out / "model")
        with open(out / "history.jsonl", "w") as f:
            for rec in state.history:
                f.write(json.dumps(rec) + "\n")
        (out / "result.json").write_text(json.dumps(result, indent=1))
    accelerator.wait_for_everyone()
    return result
