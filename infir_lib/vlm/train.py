"""Training and evaluating the toy VLM: one small loop, the curriculum stages, and the three metrics.

A row is the Llama-3 chat turn ``user: <image> prompt`` / ``assistant: answer``; the loss is on the
answer tokens only (what TRL's assistant-only loss does; the chapter uses a 40-line loop instead of
``SFTTrainer`` so that three stages x two arms x seeds fit in a CPU notebook). ``<image>`` is expanded
to one placeholder per patch exactly as ``LlavaProcessor`` does.

Metrics (§5.2 at toy scale): grounding = the click falls in the target's box (ScreenSpot's rule), OCR =
exact text, visual math = exact number, GUI tasks = episodes finished (a toy AndroidWorld).
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass

import torch

from ..eval.generate import decode_reply, generate_batch
from ..runtime import seed_everything
from .data import GUI_TASKS, GuiTaskEnv, VItem, cell_words, inside, parse_click
from .model import set_trainable

IGNORE = -100


@dataclass
class Encoded:
    prompt_ids: list[list[int]]
    answer_ids: list[list[int]]
    pixel_values: torch.Tensor
    items: list[VItem]


class Codec:
    """Turns items into token ids + pixels with the processor's tokenizer and image processor."""

    def __init__(self, processor):
        self.processor = processor
        self.tok = processor.tokenizer
        size = processor.image_processor.size["height"]
        self.n_image_tokens = (size // processor.patch_size) ** 2
        self.eot_id = self.tok.convert_tokens_to_ids("<|eot_id|>")
        self.pad_id = self.tok.pad_token_id
        self._prompt_cache: dict[str, list[int]] = {}

    def prompt_ids(self, prompt: str) -> list[int]:
        if prompt not in self._prompt_cache:
            msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
            text = self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            text = text.replace("<image>", "<image>" * self.n_image_tokens)
            self._prompt_cache[prompt] = self.tok(text, add_special_tokens=False)["input_ids"]
        return self._prompt_cache[prompt]

    def encode(self, items: list[VItem]) -> Encoded:
        answers = self.tok([it.answer + "<|eot_id|>" for it in items], add_special_tokens=False)["input_ids"]
        pix = self.processor.image_processor([it.image for it in items], return_tensors="pt")["pixel_values"]
        return Encoded([self.prompt_ids(it.prompt) for it in items], answers, pix, items)

    def train_batch(self, enc: Encoded, idx: list[int]) -> dict:
        """Right-padded batch with labels on the answer tokens only."""
        seqs = [enc.prompt_ids[i] + enc.answer_ids[i] for i in idx]
        width = max(map(len, seqs))
        ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(idx), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            p, a = enc.prompt_ids[i], enc.answer_ids[i]
            ids[r, :len(p) + len(a)] = torch.tensor(p + a)
            labels[r, len(p):len(p) + len(a)] = torch.tensor(a)
            mask[r, :len(p) + len(a)] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "pixel_values": enc.pixel_values[idx]}

    def prompt_batch(self, enc: Encoded, idx: list[int]) -> dict:
        """Left-padded prompts for generation."""
        seqs = [enc.prompt_ids[i] for i in idx]
        width = max(map(len, seqs))
        ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s):] = torch.tensor(s)
            mask[r, width - len(s):] = 1
        return {"input_ids": ids, "attention_mask": mask, "pixel_values": enc.pixel_values[idx]}


def stage_lr(step: int, steps: int) -> float:
    """The lr multiplier at optimizer step ``step`` (0-based): 10% linear warm-up, then linear decay to 10%."""
    warm = max(1, steps // 10)
    return min(1.0, (step + 1) / warm) * max(0.1, 1 - step / steps)


def fit_stage(model, batches, parts, steps: int, lr: float, *, optimizer=None, accelerator=None, accum: int = 1,
              stage: str = "", log_every: int = 10, eval_fn=None, progress: bool = False,
              max_grad_norm: float = 1.0) -> list[dict]:
    """One curriculum stage, shared by the toy run and the full run: freeze all but ``parts``, then
    ``steps`` optimizer steps of AdamW, each over ``accum`` micro-batches drawn from the iterator ``batches``.

    * toy: no ``optimizer`` (a fresh AdamW over the unfrozen parameters, as if the stage started
      anew), no ``accelerator`` (plain PyTorch on the CPU), ``accum=1``;
    * full: the accelerate-prepared model and the one optimizer built over every parameter (frozen ones
      get no gradient, so AdamW skips them); its moments are reset here so each stage starts fresh like
      the toy's. ``accelerator.backward`` handles bf16 autocast/scaling, ``no_sync`` skips the gradient
      all-reduce on all but the last micro-batch, ``clip_grad_norm_`` works on FSDP shards.

    The lr follows :func:`stage_lr`; the loss history has one record every ``log_every`` steps.
    """
    inner = accelerator.unwrap_model(model) if accelerator is not None else model
    trainable = set_trainable(inner, parts)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"stage {stage!r} has nothing to train (parts={parts})")
    if optimizer is None:
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    else:
        optimizer.state.clear()  # fresh moments: a new stage trains a new set of parts at a new lr
    main = accelerator is None or accelerator.is_local_main_process
    bar = None
    if progress and main:
        from ..runtime import progress_bar  # a bar in a terminal, one summary line in a notebook

        bar = progress_bar(total=steps, desc=stage or "train", unit="step")
    history = []
    timed = accelerator is not None  # full runs also log speed (kept out of the toy's reproducible history)
    clock, tokens = time.perf_counter(), 0
    model.train()
    for step in range(1, steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr * stage_lr(step - 1, steps)
        total = 0.0
        for k in range(accum):
            batch = next(batches)
            if timed:
                tokens += int(batch["attention_mask"].sum())
            if accelerator is None:
                loss = model(**batch).loss
                (loss / accum).backward()
            else:
                sync = k == accum - 1
                with (contextlib.nullcontext() if sync else accelerator.no_sync(model)):
                    loss = model(**batch).loss
                    accelerator.backward(loss / accum)
            total += loss.detach().float() / accum
        if accelerator is None:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        else:
            accelerator.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{total.item():.3f}")
        if step % log_every == 0 or step == steps:
            value = total if accelerator is None else accelerator.reduce(total.to(accelerator.device), "mean")
            rec = {"stage": stage, "step": step, "loss": float(value), "trainable": sum(trainable.values())}
            if timed:  # this process's tokens per second since the last record, and peak GPU memory
                now = time.perf_counter()
                rec["tokens_per_s"] = tokens / max(now - clock, 1e-9)
                clock, tokens = now, 0
                if torch.cuda.is_available():
                    rec["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
            if eval_fn is not None and step == steps:
                rec.update(eval_fn(model))
            history.append(rec)
    if bar is not None:
        bar.close()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    return history


def toy_batches(codec: "Codec", enc: Encoded, batch_size: int, seed: int):
    """Endless shuffled passes over the encoded toy rows, ``batch_size`` rows at a time."""
    rng = random.Random(seed)
    order: list[int] = []
    while True:
        if len(order) < batch_size:
            more = list(range(len(enc.items)))
            rng.shuffle(more)
            order += more
        idx, order = order[:batch_size], order[batch_size:]
        yield codec.train_batch(enc, idx)


def train_stage(model, codec: Codec, enc: Encoded, parts, steps: int, batch_size: int, lr: float, seed: int,
                stage: str = "", log_every: int = 10, eval_fn=None) -> list[dict]:
    """The toy stage: :func:`fit_stage` on the CPU over the generated rows (the full run calls the same
    :func:`fit_stage` with hub data and accelerate, see :mod:`infir_lib.vlm.full`)."""
    seed_everything(seed)
    return fit_stage(model, toy_batches(codec, enc, batch_size, seed), parts, steps, lr, stage=stage,
                     log_every=log_every, eval_fn=eval_fn)


def described_prompt_ids(tok, prompt: str, words: str) -> list[int]:
    """The chat turn of a VLM prompt with the picture *in words*: the cell words (one token each, see
    :func:`infir_lib.vlm.data.cell_words`) stand where the image's placeholders will stand."""
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    if text.count("<image>") != 1:
        raise ValueError("the chat template must render one <image> for an image part")
    before, after = text.split("<image>")
    ids = [tok.convert_tokens_to_ids(w) for w in words]
    if tok.unk_token_id is not None and tok.unk_token_id in ids:
        raise ValueError(f"a cell word of {words!r} is not a single token of this vocabulary")
    return (tok(before, add_special_tokens=False)["input_ids"] + ids
            + tok(after, add_special_tokens=False)["input_ids"])


def warm_up_text(lm, tok, items: list[VItem], steps: int, batch_size: int, lr: float, seed: int,
                 reads: bool = False) -> list[dict]:
    """Text-only training of the LM on the chat turns of ``items`` (loss on the answers).

    ``reads=False``: the prompts alone, images left out. The LM learns the answer formats and each
    question's most common answers, and nothing makes it read what stands where the image will go.
    ``reads=True``: each picture *described in words* (its 16 cell words where the 16 image tokens
    will stand, :func:`described_prompt_ids`), so the LM learns to answer from that place; which words
    an image shows is still for the projector to learn."""
    seed_everything(seed)
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    rows = []
    for it in items:
        if reads:
            p = described_prompt_ids(tok, it.prompt, cell_words(it))
        else:
            msgs = [{"role": "user", "content": it.prompt}]
            p = tok(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True),
                    add_special_tokens=False)["input_ids"]
        a = tok(it.answer, add_special_tokens=False)["input_ids"] + [eot]
        rows.append((p, a))
    opt = torch.optim.AdamW(lm.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10) * max(0.1, 1 - s / steps))
    rng = random.Random(seed)
    lm.train()
    history = []
    for step in range(1, steps + 1):
        batch = [rows[i] for i in rng.sample(range(len(rows)), min(batch_size, len(rows)))]
        width = max(len(p) + len(a) for p, a in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, (p, a) in enumerate(batch):
            ids[r, :len(p) + len(a)] = torch.tensor(p + a)
            labels[r, len(p):len(p) + len(a)] = torch.tensor(a)
            mask[r, :len(p) + len(a)] = 1
        loss = lm(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % 10 == 0 or step == steps:
            history.append({"step": step, "loss": loss.item()})
    lm.eval()
    return history


@torch.no_grad()
def answer_loss(model, codec: Codec, enc: Encoded, batch_size: int = 64) -> float:
    """Mean teacher-forced loss on the answer tokens (the alignment measure of claim 11)."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(enc.items), batch_size):
        idx = list(range(i, min(i + batch_size, len(enc.items))))
        b = codec.train_batch(enc, idx)
        n = int((b["labels"] != IGNORE).sum())
        total += model(**b).loss.item() * n
        count += n
    return total / max(1, count)


def generate(model, codec: Codec, enc: Encoded, max_new_tokens: int = 10, batch_size: int = 64) -> list[str]:
    """Greedy answers (stopping at ``<|eot_id|>``): the codec prepares each batch (pixels and prompt), the
    library's one batched generator decodes it."""
    outs = []
    for i in range(0, len(enc.items), batch_size):
        b = codec.prompt_batch(enc, list(range(i, min(i + batch_size, len(enc.items)))))
        outs += [decode_reply(codec.tok, row, strip=True)
                 for row in generate_batch(model, b, max_new_tokens=max_new_tokens, stop_ids=[codec.eot_id],
                                           pad_id=codec.pad_id)]
    return outs


def score(items: list[VItem], predictions: list[str]) -> list[bool]:
    """Right or wrong per item: click-in-box for grounding/GUI steps, exact match otherwise."""
    out = []
    for it, pred in zip(items, predictions):
        if it.task in ("grounding", "gui_task"):
            out.append(inside(parse_click(pred), it.meta["box"]))
        else:
            out.append(pred.strip().rstrip(".").lower() == it.answer.strip().rstrip(".").lower())
    return out


def evaluate(model, codec: Codec, eval_sets: dict[str, Encoded]) -> dict[str, float]:
    """Accuracy per evaluation set (keys become ``acc_<name>``)."""
    res = {}
    for name, enc in eval_sets.items():
        preds = generate(model, codec, enc)
        res[f"acc_{name}"] = sum(score(enc.items, preds)) / max(1, len(preds))
    return res


@torch.no_grad()
def gui_task_success(model, codec: Codec, n_episodes: int, seed: int, size: int = 64) -> float:
    """Toy AndroidWorld: episodes run in lockstep; each step the model sees the screen and clicks."""
    tasks = sorted(GUI_TASKS)
    envs = [GuiTaskEnv(tasks[i % len(tasks)], seed * 1000 + i, size) for i in range(n_episodes)]
    while True:
        live = [e for e in envs if not e.done]
        if not live:
            break
        items = [VItem(e.screen.image, e.instruction(), "", "gui_task", {"box": e.target_box()}) for e in live]
        preds = generate(model, codec, codec.encode(items))
        for e, p in zip(live, preds):
            e.step(parse_click(p))
    return sum(e.success for e in envs) / max(1, len(envs))
