"""Model builders: the toy byte-level BPE tokenizer and Llama models at toy or full size.

Toy: a tokenizer trained on the toy corpus and a Llama built from a handful of sizes in the config.
Full: the paper's Llama-3.2-1B, by hub id. The same function serves both; on the ``meta`` device it
builds the architecture without allocating weights, which is how ``--dry-run`` counts parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

# Llama-3 special tokens, so the toy chat format is the paper's (InfiR uses the Llama 3 template).
BOS, EOS, EOT, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|pad|>"
HEADER_START, HEADER_END = "<|start_header_id|>", "<|end_header_id|>"
IMAGE = "<image>"
SPECIAL_TOKENS = [BOS, EOS, EOT, PAD, HEADER_START, HEADER_END, IMAGE]

# The Llama 3 chat template, with {% generation %} markers so TRL can put the loss on assistant
# tokens only. Content may be a string or a list of parts ({"type": "text"|"image"}), as TRL sends
# for vision-language rows.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['content'] is string %}{% set text = message['content'] | trim %}"
    "{% else %}{% set ns = namespace(t='') %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{% set ns.t = ns.t + '<image>' %}"
    "{% else %}{% set ns.t = ns.t + part['text'] %}{% endif %}{% endfor %}"
    "{% set text = ns.t | trim %}{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ text + '<|eot_id|>' }}{% endgeneration %}"
    "{% else %}{{ text + '<|eot_id|>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


# The toy pre-tokenizer: digits split one by one, then byte-level (GPT-2 regex) splitting. Llama-3's
# regex groups up to three digits ("123" can be one token), which a 1 B model trained on 900 B tokens
# learns to do arithmetic with; a 1 M-parameter model seeing a few million tokens does not: with digits
# merged into number tokens it must memorise every sum as a token-to-token table. One token per digit
# keeps the arithmetic learnable at toy size. Part of the tokenizer cache key (packing.tokenizer_spec).
PRE_TOKENIZER = "digits+bytelevel"


def toy_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    """Single digits first, then the byte-level split (see :data:`PRE_TOKENIZER`)."""
    return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False)])


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE (the Llama-3 family's kind of tokenizer) on ``texts``; digits stay single tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = toy_pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   additional_special_tokens=[EOT, HEADER_START, HEADER_END, IMAGE])
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 1 << 20
    return fast


def load_tokenizer(path_or_id: str | Path) -> PreTrainedTokenizerFast:
    """Load a saved toy tokenizer, or a hub tokenizer by id (full scale)."""
    return AutoTokenizer.from_pretrained(str(path_or_id))


@dataclass
class ModelArgs:
    """The model part of a stage config. ``model_name_or_path`` set -> load it; else build from sizes."""

    model_name_or_path: str | None = None
    init_from_pretrained: bool = False
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 512
    max_position_embeddings: int = 512
    vocab_size: int = 4096
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True


def llama_config(args: ModelArgs, tokenizer: PreTrainedTokenizerFast | None = None) -> LlamaConfig:
    """The architecture from the config's sizes (vocabulary from the tokenizer when given)."""
    vocab = len(tokenizer) if tokenizer is not None else args.vocab_size
    kw = {}
    if tokenizer is not None:
        kw = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id)
    return LlamaConfig(vocab_size=vocab, hidden_size=args.hidden_size, num_hidden_layers=args.num_hidden_layers,
                       num_attention_heads=args.num_attention_heads, num_key_value_heads=args.num_key_value_heads,
                       intermediate_size=args.intermediate_size,
                       max_position_embeddings=args.max_position_embeddings,
                       rope_parameters={"rope_type": "default", "rope_theta": args.rope_theta},
                       tie_word_embeddings=args.tie_word_embeddings, **kw)


def build_llama(args: ModelArgs, tokenizer: PreTrainedTokenizerFast | None = None, device: str = "cpu",
                dtype: torch.dtype | None = None) -> LlamaForCausalLM:
    """A Llama at the config's size; ``device="meta"`` builds the shape only (no memory, no download).

    With ``init_from_pretrained`` and a ``model_name_or_path`` the weights are loaded (the paper
    continues from Llama-3.2-1B); that path needs the hub or a local copy.
    """
    if args.init_from_pretrained and args.model_name_or_path and device != "meta":
        return AutoModelForCausalLM.from_pretrained(args.model_name_or_path, dtype=dtype or "auto")
    cfg = llama_config(args, tokenizer)
    with torch.device(device):
        model = LlamaForCausalLM(cfg)
    if dtype is not None and device != "meta":
        model = model.to(dtype)
    return model


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Unique parameters (tied embeddings counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def load_model(path: str | Path, dtype: torch.dtype | None = None) -> LlamaForCausalLM:
    """Reload a saved model (toy artifact folder or hub id)."""
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype or torch.float32)


class SavedModelMixin:
    """For stage results that saved a model + tokenizer under ``<output_dir>/model``."""

    output_dir: Path

    @property
    def model_dir(self) -> Path:
        return self.output_dir / "model"

    def load_model(self):
        return load_model(self.model_dir)

    def load_tokenizer(self):
        return load_tokenizer(self.model_dir)
