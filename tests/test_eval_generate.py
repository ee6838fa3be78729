"""The one batched generator: padding does not change greedy replies, replies stop at end-of-turn, prompts of
every kind encode as documented, sampling is repeatable, bad arguments fail clearly; the one toy answer rule."""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessor

from infir_lib.eval import generate as G
from infir_lib.eval.extract import toy_answer
from infir_lib.models import EOT, ModelArgs, build_llama, train_tokenizer

TEXTS = ["Question: Ann has 3 pens. Ann buys 4. How many pens does Ann have now?\nAnswer: 3+4=7. Answer: 7"] * 50


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, vocab_size=300)


@pytest.fixture(scope="module")
def tiny(tok):
    torch.manual_seed(0)
    return build_llama(ModelArgs(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                 intermediate_size=64, max_position_embeddings=128), tok)


class ForceAfter(LogitsProcessor):
    """Emit ``token`` as the ``k``-th new token (what a model that has finished its turn does)."""

    def __init__(self, width: int, k: int, token: int):
        self.width, self.k, self.token = width, k, token

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] - self.width == self.k - 1:
            scores = torch.full_like(scores, -1e9)
            scores[:, self.token] = 0.0
        return scores


PROMPTS = ["Question: Ann has 3 pens.", "Question: Ann has 3 pens. Ann buys 4. How many pens does Ann have now?",
           "Ann"]


def test_left_padding_does_not_change_greedy_replies(tiny, tok):
    batched = G.generate(tiny, tok, PROMPTS, max_new_tokens=8, return_ids=True)
    alone = [G.generate(tiny, tok, [p], max_new_tokens=8, return_ids=True)[0] for p in PROMPTS]
    assert batched == alone
    assert all(len(r) == 8 for r in batched)  # a random model never says end-of-turn here


def test_a_reply_stops_after_its_first_end_of_turn(tiny, tok):
    eot = tok.convert_tokens_to_ids(EOT)
    width = len(G.encode_prompt(tok, PROMPTS[2]))
    ids = G.generate(tiny, tok, [PROMPTS[2]], max_new_tokens=8, return_ids=True,
                     logits_processor=[ForceAfter(width, 3, eot)])[0]
    assert len(ids) == 3 and ids[-1] == eot
    text = G.generate(tiny, tok, [PROMPTS[2]], max_new_tokens=8, logits_processor=[ForceAfter(width, 3, eot)])[0]
    assert EOT not in text and text == tok.decode(ids[:-1])
    assert eot in G.stop_token_ids(tok) and tok.eos_token_id in G.stop_token_ids(tok)


def test_prompt_kinds_encode_as_documented(tok):
    ids = G.encode_prompt(tok, "Ann has")
    assert ids[0] == tok.bos_token_id and tok.decode(ids[1:]) == "Ann has"
    chat = G.encode_prompt(tok, "Ann has", chat=True)
    assert chat == G.encode_prompt(tok, [{"role": "user", "content": "Ann has"}])
    assert tok.decode(chat).endswith(tok.apply_chat_template([{"role": "user", "content": "Ann has"}], tokenize=False,
                                                             add_generation_prompt=True)[-20:])
    assert G.encode_prompt(tok, [5, 6, 7]) == [5, 6, 7]
    with pytest.raises(TypeError, match="a prompt is a string"):
        G.encode_prompt(tok, 42)


def test_sampling_is_repeatable_and_n_replies_per_prompt(tiny, tok):
    a = G.generate(tiny, tok, PROMPTS[:2], max_new_tokens=6, do_sample=True, n=3, seed=1)
    b = G.generate(tiny, tok, PROMPTS[:2], max_new_tokens=6, do_sample=True, n=3, seed=1)
    assert a == b and len(a) == 2 and all(len(r) == 3 for r in a)
    assert len({tuple(r) for r in a}) == 2 or a[0] != a[1]
    with pytest.raises(ValueError, match="need do_sample=True"):
        G.generate(tiny, tok, PROMPTS, max_new_tokens=4, n=2)


def test_long_prompts_keep_their_last_tokens(tiny, tok):
    long = " ".join(["Ann has 3 pens."] * 60)
    assert len(G.encode_prompt(tok, long)) > 128
    out = G.generate(tiny, tok, [long], max_new_tokens=4, return_ids=True)
    assert len(out[0]) == 4  # no position error: the prompt was cut to the context minus the new tokens


def test_stop_strings_cut_the_text():
    assert G.cut_at_stops("7. Answer: 7\nQuestion: next", ["\n", "Question"]) == "7. Answer: 7"
    assert G.cut_at_stops("no stop", ["\n"]) == "no stop"


@pytest.mark.parametrize("text, want", [
    ("3+4=7. Answer: 7", 7),
    ("Answer: 3. No wait. Answer: 4", 4),            # the last stated answer counts (one rule everywhere)
    ("3+4=7.", None),                                 # no stated answer: no fallback to a bare number
    ("Answer: -5", -5),
    ("Answer: 7.5", None),                            # toy answers are integers
    ("Answer:\n12", 12),
    ("", None),
])
def test_toy_answer_rule(text, want):
    assert toy_answer(text) == want
