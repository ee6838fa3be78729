"""Model builders: toy tokenizer + chat template, Llama at toy and full size, save/reload, determinism."""

import torch

from infir_lib.config import load_config
from infir_lib.data.corpus import generate_simple_corpus
from infir_lib.models import ModelArgs, build_llama, count_parameters, load_model, load_tokenizer, train_tokenizer
from infir_lib.pretrain import PretrainConfig
from infir_lib.runtime import pick_device, seed_everything


def small_tokenizer():
    docs = generate_simple_corpus(300, seed=0)
    return train_tokenizer((d["text"] for d in docs), vocab_size=512)


def test_tokenizer_keeps_digits_apart():
    # corpus numbers like "10", "13" are frequent enough to become BPE merges without the Digits pre-tokenizer
    tok = small_tokenizer()
    text = "Ann has 17 pens. 17+305=322. Answer: 322"
    pieces = [tok.decode([i]) for i in tok.encode(text, add_special_tokens=False)]
    assert all(len(p.strip()) == 1 for p in pieces if any(c.isdigit() for c in p)), pieces
    assert [p for p in pieces if p.isdigit()] == list("17" "17305322" "322")
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_tokenizer_round_trip_and_chat_mask(tmp_path):
    tok = small_tokenizer()
    text = "Ann has 7 pens. Ann buys 3. 7+3=10. Answer: 10"
    assert tok.decode(tok.encode(text)) == text
    tok.save_pretrained(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again.encode(text) == tok.encode(text) and again.chat_template == tok.chat_template
    msgs = [{"role": "user", "content": "What is 2+3?"}, {"role": "assistant", "content": "2+3=5. Answer: 5"}]
    out = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    masked = tok.decode([i for i, m in zip(ids, mask) if m])
    assert masked == "2+3=5. Answer: 5<|eot_id|>"
    unmasked = tok.decode([i for i, m in zip(ids, mask) if not m])
    assert "What is 2+3?" in unmasked and "Answer: 5" not in unmasked


def test_full_architecture_on_meta_is_llama_3_2_1b():
    cfg = load_config(PretrainConfig, "configs/full/pretrain.yaml")
    model = build_llama(cfg, device="meta")
    n = count_parameters(model)
    assert 1.23e9 < n < 1.24e9  # Llama-3.2-1B: 1,235,814,400 with tied embeddings
    assert next(model.parameters()).device.type == "meta"


def test_save_reload_gives_same_logits(tmp_path):
    tok = small_tokenizer()
    seed_everything(0)
    model = build_llama(ModelArgs(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                  intermediate_size=64), tok)
    model.save_pretrained(tmp_path)
    again = load_model(tmp_path)
    x = torch.tensor([tok.encode("Ann has 3 pens.")])
    assert torch.equal(model(x).logits, again(x).logits)


def test_seeding_is_deterministic():
    args = ModelArgs(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                     intermediate_size=64, vocab_size=100)
    seed_everything(3)
    a = build_llama(args)
    seed_everything(3)
    b = build_llama(args)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert pick_device("cpu").type == "cpu" and pick_device().type in ("cpu", "cuda", "mps")


def test_toy_training_gives_identical_numbers_twice(tmp_path):
    from infir_lib import pretrain
    tiny = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                intermediate_size=64, seq_len=32, global_batch_size=4, micro_batch_size=2, toy_docs=120,
                tokenizer_train_docs=120, tokenizer_vocab_size=300, warmup_steps=1, log_every=1, eval_every=2,
                max_steps=4)
    a = pretrain.run("configs/toy/pretrain.yaml", dict(tiny, output_dir=str(tmp_path / "a")))
    b = pretrain.run("configs/toy/pretrain.yaml", dict(tiny, output_dir=str(tmp_path / "b")))
    keys = ("step", "loss", "grad_norm", "lr", "val_loss")
    assert [[h.get(k) for k in keys] for h in a.history] == [[h.get(k) for k in keys] for h in b.history]
    assert a.summary["weights_sha256"] == b.summary["weights_sha256"]


def test_make_accelerator_replaces_a_state_left_with_another_precision():
    """A notebook kernel that ran a trainer without mixed precision can still start a bf16 run (accelerate's
    global state would otherwise refuse it); the state is put back for the tests that follow."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from infir_lib.runtime import make_accelerator

    AcceleratorState._reset_state(reset_partial_state=True)  # start from a CPU state whatever ran before
    Accelerator(cpu=True, mixed_precision="no")
    try:
        assert make_accelerator("bf16", cpu=True).mixed_precision == "bf16"
        assert make_accelerator("bf16", cpu=True).mixed_precision == "bf16"  # same precision: state kept
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
