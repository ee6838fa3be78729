"""The library's one batched generator: every model reply in the book comes from :func:`generate_batch`.

Evaluation, SFT scoring, the RL policy's greedy scoring and its rejection sampling, the VLM and the
synthesis teacher all decode the same way: prompts left-padded into batches (so every row's last
prompt token sits in the last column and ``generate`` continues all rows together), the KV cache
on, greedy or sampled, and each reply cut after its first end-of-text / end-of-turn token. Before
this module there were seven ``generate`` loops, and they differed in small ways that move scores
(whether a reply stopped at ``<|eot_id|>``, whether a prompt longer than the context was cut).

:func:`generate` takes text prompts (a base model's continuation after BOS, a chat user turn, or a
whole conversation) or token ids; :func:`generate_batch` takes a batch a caller has prepared itself
(the VLM's pixels, a processor's output) and is what :func:`generate` calls per batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..runtime import pad_batch

END_TOKENS = ("<|eot_id|>", "<|im_end|>", "<|end_of_text|>")


def stop_token_ids(tokenizer) -> list[int]:
    """End of text plus the chat templates' end-of-turn tokens that this vocabulary has."""
    ids = {tokenizer.eos_token_id} | {tokenizer.convert_tokens_to_ids(t) for t in END_TOKENS}
    unk = tokenizer.unk_token_id
    return sorted(i for i in ids if isinstance(i, int) and i >= 0 and (unk is None or i != unk))


def encode_prompt(tokenizer, prompt, chat: bool = False) -> list[int]:
    """Token ids for one prompt.

    ``str``: BOS + the text (a base model continues it), or with ``chat`` a user turn of the chat
    template with the assistant's header (an instruct model answers it); a list of messages: that
    conversation through the chat template; a list of ints: used as given.
    """
    if isinstance(prompt, str) and not chat:
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        return bos + tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if isinstance(prompt, (list, tuple)) and all(isinstance(t, int) for t in prompt):
        return list(prompt)
    if isinstance(prompt, (list, tuple)) and all(isinstance(m, dict) for m in prompt):
        text = tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    raise TypeError(f"a prompt is a string, a list of chat messages or a list of token ids, not {type(prompt).__name__}")


def cut_after_stop(row: Sequence[int], stop_ids: Sequence[int]) -> list[int]:
    """The new tokens up to and including the first stop token (the padding after it dropped)."""
    stops = set(stop_ids)
    for k, t in enumerate(row):
        if t in stops:
            return list(row[: k + 1])
    return list(row)


@torch.no_grad()
def generate_batch(model, inputs: dict, *, max_new_tokens: int, stop_ids: Sequence[int], pad_id: int,
                   do_sample: bool = False, temperature: float = 1.0, top_p: float | None = 1.0,
                   top_k: int | None = 0, n: int = 1, logits_processor=None) -> list[list[int]]:
    """One ``model.generate`` call on a left-padded batch ``inputs`` (``input_ids``, ``attention_mask``, and
    whatever else the model takes, e.g. ``pixel_values``): the new tokens of each of the ``n`` replies per
    row (rows first, then their samples), each cut after its first stop token.

    Sampling draws from the temperature-scaled distribution with ``top_k=0`` and ``top_p=1`` by default,
    i.e. the model's whole distribution, so a logits processor sees exactly what is sampled from; ``None``
    leaves either to the model's generation config (a released teacher's recommended settings).
    """
    device = next(model.parameters()).device
    batch = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in inputs.items()}
    width = batch["input_ids"].shape[1]
    kw = dict(do_sample=True, temperature=temperature) if do_sample else dict(do_sample=False)
    if do_sample:  # None: the model's own generation config decides
        kw.update({k: v for k, v in (("top_p", top_p), ("top_k", top_k)) if v is not None})
    if logits_processor:
        from transformers import LogitsProcessorList

        kw["logits_processor"] = LogitsProcessorList(list(logits_processor))
    was_training = model.training
    model.eval()
    try:
        out = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=pad_id,
                             eos_token_id=list(stop_ids) or None, num_return_sequences=n, use_cache=True, **kw)
    finally:
        if was_training:
            model.train()
    return [cut_after_stop(row, stop_ids) for row in out[:, width:].tolist()]


def generate(model, tokenizer, prompts: Sequence, *, max_new_tokens: int, chat: bool = False,
             do_sample: bool = False, temperature: float = 1.0, top_p: float | None = 1.0, top_k: int | None = 0,
             n: int = 1, batch_size: int = 32, seed: int | None = None, stop_strings: Sequence[str] = (),
             logits_processor=None, fit_context: bool = True, return_ids: bool = False, strip: bool = False) -> list:
    """Replies to ``prompts`` (see :func:`encode_prompt` for what a prompt may be), ``batch_size`` prompts
    per ``generate`` call.

    Returns one reply per prompt, or a list of ``n`` replies per prompt when ``n > 1``. A reply is the decoded
    text (special tokens dropped, cut at the first of ``stop_strings``, stripped with ``strip``) or, with
    ``return_ids``, its token ids. ``seed`` seeds torch once before the first batch (sampling is then
    repeatable for the same prompts and batch size). ``fit_context``: a prompt longer than the model's
    context minus ``max_new_tokens`` keeps its last tokens (toy models have short contexts).
    """
    if n > 1 and not do_sample:
        raise ValueError("n > 1 replies per prompt need do_sample=True (greedy decoding gives n copies)")
    stop_ids = stop_token_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stop_ids[0] if stop_ids else 0)
    encoded = [encode_prompt(tokenizer, p, chat) for p in prompts]
    room = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if fit_context and room:
        keep = max(1, room - max_new_tokens)
        encoded = [s if len(s) <= keep else s[-keep:] for s in encoded]
    if seed is not None:
        torch.manual_seed(seed)
    rows: list = []
    for b in range(0, len(encoded), batch_size):
        ids, mask = pad_batch(encoded[b: b + batch_size], pad, left=True)
        rows += generate_batch(model, {"input_ids": ids, "attention_mask": mask}, max_new_tokens=max_new_tokens,
                               stop_ids=stop_ids, pad_id=pad, do_sample=do_sample, temperature=temperature,
                               top_p=top_p, top_k=top_k, n=n, logits_processor=logits_processor)
    replies = rows if return_ids else [decode_reply(tokenizer, r, stop_strings, strip) for r in rows]
    return replies if n == 1 else [replies[i * n:(i + 1) * n] for i in range(len(encoded))]


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """``text`` up to the earliest stop string (the whole text when none occurs)."""
    cut = min((i for i in (text.find(s) for s in stops) if i != -1), default=len(text))
    return text[:cut]


def decode_reply(tokenizer, ids: Sequence[int], stop_strings: Sequence[str] = (), strip: bool = False) -> str:
    """Token ids -> text without special tokens, cut at the earliest of ``stop_strings``."""
    text = cut_at_stops(tokenizer.decode(list(ids), skip_special_tokens=True), stop_strings)
    return text.strip() if strip else text
