"""The policy RL starts from, and greedy evaluation of a policy on held-out rows.

The papers start RL from an instruct model (Qwen2.5-VL-3B-Instruct) that already follows an answer
format. The toy base model of chapter 2 has never seen ``<think>``/``<answer>``, so an RL reward of
format + accuracy would be 0 for every sample and GRPO's group-normalised advantages would be 0
too: no update at all (measured on the book's toy models). Like DeepSeek-R1's "cold start", a short SFT on a few hundred
formatted toy items (all three Curr-ReFT formats, in-domain family only) gives the policy the
format; RL then has something to sharpen. The cold start is a cached artifact keyed by its spec.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from datasets import Dataset
from trl import SFTTrainer

from .. import artifacts, stages
from ..eval.generate import decode_reply, generate as generate_replies, generate_batch, stop_token_ids
from ..models import EOT, load_model, load_tokenizer
from ..runtime import compact_trainer_output, lean_trl_scratch, quiet_inner_progress, seed_everything
from ..sft.trainer import BookSFTConfig
from .config import RLConfig
from .rewards import completion_text, extract_answer, format_reward, score_answer
from .tasks import FORMATS, format_rows, sft_token_rows

def set_stop_tokens(model, tokenizer) -> None:
    """Generation stops at the end of the assistant turn (``<|eot_id|>``) as well as at ``<|end_of_text|>``."""
    ids = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(EOT)]
    model.generation_config.eos_token_id = ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id


def ready_for_generation(model) -> None:
    """Turn the KV cache back on before saving: trainers save ``use_cache=False`` into the config.

    A policy saved that way (and a LLaVA assembled from it, which copies the text config) would
    re-run the whole sequence, image included, for every generated token: about 8x slower sampling.
    """
    model.config.use_cache = True
    text = getattr(model.config, "text_config", None)
    if text is not None:
        text.use_cache = True
    model.generation_config.use_cache = True


def sft(model_path: str | Path, rows: list[dict], out: Path, *, steps: int, lr: float, batch: int, seed: int,
        max_length: int = 192) -> list[dict]:
    """TRL ``SFTTrainer`` on prompt/completion rows (loss on the completion only); saves to ``out``.

    The rows reach TRL already tokenized (:func:`.tasks.sft_token_rows`): the prompt as the policy is
    sampled from it, then the reference completion, so training and sampling share the context.
    """
    seed_everything(seed)
    tokenizer = load_tokenizer(model_path)
    model = load_model(model_path)
    set_stop_tokens(model, tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        # the book's fixed trainer choices come from BookSFTConfig; only the cold start's own settings here
        args = BookSFTConfig(output_dir=tmp, max_steps=steps, per_device_train_batch_size=batch, learning_rate=lr,
                             lr_scheduler_type="cosine", warmup_steps=max(1, steps // 10), logging_steps=5, seed=seed,
                             bf16=False, max_length=max_length, activation_checkpointing=False,
                             completion_only_loss=True)
        with quiet_inner_progress():
            trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(sft_token_rows(tokenizer, rows)),
                                 processing_class=tokenizer)
        compact_trainer_output(trainer, "cold-start sft")
        with lean_trl_scratch(model.get_output_embeddings().weight.shape[0]):
            trainer.train()
        history = [h for h in trainer.state.log_history if "loss" in h]
    ready_for_generation(model)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return history


def cold_start(base_dir: str | Path, base_spec: dict, *, n_per_format: int, steps: int, lr: float, batch: int,
               seed: int, data_seed: int = 0) -> Path:
    """The format cold start (cached): SFT on ``n_per_format`` in-domain rows of each Curr-ReFT format."""
    spec = {"base": base_spec, "n_per_format": n_per_format, "steps": steps, "lr": lr, "batch": batch,
            "seed": seed, "data_seed": data_seed, "family": "arith", "formats": list(FORMATS),
            "code": stages.stage("rl").code_digest()}  # how rows are built and trained is in the rl code

    def build(folder: Path) -> None:
        rows = []
        for fmt in FORMATS:
            rows += format_rows("arith", fmt, n_per_format, seed=data_seed + 777)
        history = sft(base_dir, rows, folder, steps=steps, lr=lr, batch=batch, seed=seed)
        (folder / "history.json").write_text(json.dumps(history))

    return artifacts.cached("rl_coldstart", spec, build, name="coldstart")


def starting_policy(cfg: RLConfig) -> tuple[Path, dict]:
    """The folder RL starts from and its spec: the hub/folder policy, or the toy model cold-started."""
    if cfg.model_name_or_path:
        return Path(cfg.model_name_or_path), {"model": cfg.model_name_or_path}
    if not cfg.base_config:
        raise ValueError("no starting policy: set model_name_or_path (a hub id or a folder) or base_config "
                         "(a pretrain preset, cold-started here)")
    rl = stages.stage("rl")
    base = rl.input(cfg, "base_config")
    base_spec = {"pretrain": rl.input_key(cfg, "base_config")}
    if cfg.cold_start_per_format == 0:
        return base.model_dir, base_spec
    folder = cold_start(base.model_dir, base_spec, n_per_format=cfg.cold_start_per_format,
                        steps=cfg.cold_start_steps, lr=cfg.cold_start_lr, batch=16, seed=0)
    spec = artifacts.load_json(folder / artifacts.MANIFEST)["spec"]
    return folder, spec


def generate(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int = 64, batch: int = 32,
             images: list | None = None, processor=None) -> list[str]:
    """Greedy completions for conversational prompts, through the library's one batched generator
    (:mod:`infir_lib.eval.generate`); with ``images`` the ``processor`` prepares each batch."""
    if images is None:
        return generate_replies(model, tokenizer, list(prompts), max_new_tokens=max_new_tokens, batch_size=batch,
                                fit_context=False)
    stops, outs = stop_token_ids(tokenizer), []
    processor.tokenizer.padding_side = "left"
    for i in range(0, len(prompts), batch):
        texts = [processor.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts[i: i + batch]]
        enc = processor(images=images[i: i + batch], text=texts, return_tensors="pt", padding=True)
        outs += [decode_reply(tokenizer, r) for r in generate_batch(model, dict(enc), max_new_tokens=max_new_tokens,
                                                                    stop_ids=stops, pad_id=tokenizer.pad_token_id)]
    return outs


def score_texts(tokenizer, texts: list[str], rows: list[dict]) -> dict:
    """Accuracy (the row's own checker), format rate and mean length (tokens) of completions ``texts``."""
    acc = [score_answer(extract_answer(completion_text(t)), r["solution"], r["answer_type"]) for t, r in zip(texts, rows)]
    fmt = format_reward(texts)
    return {"accuracy": sum(acc) / max(1, len(acc)), "format": sum(fmt) / max(1, len(fmt)),
            "length": sum(len(tokenizer(t, add_special_tokens=False).input_ids) for t in texts) / max(1, len(texts)),
            "n": len(rows), "samples": texts[:3]}


def evaluate(model, tokenizer, rows: list[dict], max_new_tokens: int = 64, processor=None) -> dict:
    """Greedy accuracy (the row's own checker) and format rate on ``rows``; also the mean length."""
    images = [r["image"] for r in rows] if rows and "image" in rows[0] else None
    texts = generate(model, tokenizer, [r["prompt"] for r in rows], max_new_tokens, images=images, processor=processor)
    return score_texts(tokenizer, texts, rows)


# Text prompts decoded together: a tiny policy decodes a few hundred rows in one batch faster than in
# batches of 32 (the per-token step is mostly fixed overhead at this size).
EVAL_BATCH = 256


def evaluate_sets(model, tokenizer, sets: dict[str, list[dict]], max_new_tokens: int = 64) -> dict[str, dict]:
    """:func:`evaluate` on several text sets, decoded together in wide batches: ``{name: scores}``."""
    names = list(sets)
    rows = [r for name in names for r in sets[name]]
    texts = generate(model, tokenizer, [r["prompt"] for r in rows], max_new_tokens, batch=EVAL_BATCH)
    out, i = {}, 0
    for name in names:
        n = len(sets[name])
        out[name] = score_texts(tokenizer, texts[i: i + n], sets[name])
        i += n
    return out
