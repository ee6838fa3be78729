"""The harness: prompt builders, stop strings, batched generation (padding), scorers end to end."""

from __future__ import annotations

import pytest
import torch

from infir_lib.eval import harness as H
from infir_lib.models import ModelArgs, build_llama, train_tokenizer

TEXTS = ["Question: Ann has 3 pens. Ann buys 4. How many pens does Ann have now?\nAnswer: 3+4=7. The answer is 7."] * 50 + \
        ["A. B. C. D. Which sentence is true? The answer is A", "def add(a, b):\n    return a + b\n"] * 20


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, vocab_size=400)


@pytest.fixture(scope="module")
def tiny(tok):
    torch.manual_seed(0)
    return build_llama(ModelArgs(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                 intermediate_size=64, max_position_embeddings=256), tok)


class ScriptedModel(torch.nn.Module):
    """A 'model' whose generate() appends a fixed reply per prompt: tests scoring without a trained model."""

    def __init__(self, tok, replies: dict[str, str]):
        super().__init__()
        self.tok, self.replies = tok, replies
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.config = type("C", (), {"max_position_embeddings": 10_000})()

    def generate(self, input_ids, attention_mask, max_new_tokens, num_return_sequences=1, **kw):
        rows = []
        for ids, m in zip(input_ids, attention_mask):
            prompt = self.tok.decode(ids[m.bool()], skip_special_tokens=True)
            reply = next(r for key, r in self.replies.items() if prompt.rstrip().endswith(key))
            new = self.tok(reply, add_special_tokens=False)["input_ids"]
            rows += [ids.tolist() + new] * num_return_sequences
        width = max(len(r) for r in rows)
        pad = self.tok.pad_token_id
        return torch.tensor([r + [pad] * (width - len(r)) for r in rows])


def test_prompt_builders():
    p = H.math_prompt("1+1?", [("2+2?", "4"), ("3+3?", "6")])
    assert p == "Question: 2+2?\nAnswer: 4\n\nQuestion: 3+3?\nAnswer: 6\n\nQuestion: 1+1?\nAnswer:"
    assert H.math_prompt("1+1?") == "Question: 1+1?\nAnswer:"
    mc = H.mc_prompt("Q?", ["x", "y"], shots=[{"question": "S?", "choices": ["a", "b"], "answer": 1}], subject="maths")
    assert mc.startswith("The following are multiple choice questions (with answers) about maths.")
    assert "S?\nA. a\nB. b\nAnswer: B\n\nQ?\nA. x\nB. y\nAnswer:" in mc
    row = {"text": "Add.", "code": "def f(a,b): return a+b", "test_list": ["assert f(1,2)==3"]}
    mb = H.mbpp_prompt(row, shots=[row])
    assert mb.count("[BEGIN]") == 2 and mb.count("[DONE]") == 1 and mb.endswith("[BEGIN]\n")


def test_cut_at_stops_takes_the_earliest():
    assert H.cut_at_stops("a\nQuestion: b\n\n\nc", H.MATH_STOPS) == "a"
    assert H.cut_at_stops("no stop", H.MATH_STOPS) == "no stop"


def test_generate_left_padding_does_not_change_greedy_output(tiny, tok):
    short, long = "Question: Ann", "Question: Ann has 3 pens. Ann buys 4. How many"
    alone = H.generate(tiny, tok, [short], max_new_tokens=8)
    batched = H.generate(tiny, tok, [long, short], max_new_tokens=8)
    assert batched[1] == alone[0]
    samples = H.generate(tiny, tok, [short, long], max_new_tokens=5, n=3, temperature=1.0)
    assert [len(s) for s in samples] == [3, 3]
    with pytest.raises(ValueError):
        H.generate(tiny, tok, [short], n=2)


def test_generate_truncates_prompts_longer_than_the_context(tiny, tok):
    very_long = "Ann has 3 pens. " * 200
    out = H.generate(tiny, tok, [very_long], max_new_tokens=4)
    assert len(out) == 1


def test_eval_math_end_to_end_with_scripted_replies(tok):
    items = [{"question": "Ann has 3 pens and buys 4. How many?", "final": "7"},
             {"question": "Bob has 10 pens and loses 2. How many?", "final": "8"},
             {"question": "Cy has 1 pen. How many?", "final": "1"}]
    model = ScriptedModel(tok, {
        "buys 4. How many?\nAnswer:": " 3+4=7. The answer is 7.\n\nQuestion: Dan has 5 pens and 9 cups.",
        "loses 2. How many?\nAnswer:": " 10-2=8 so \\boxed{8.0}",
        "1 pen. How many?\nAnswer:": " I think it is 2.",
    })
    res = H.eval_math(model, tok, items)
    assert res["correct"] == [True, True, False]
    assert res["accuracy"] == pytest.approx(2 / 3)
    assert "Question: Dan" not in res["replies"][0]  # cut at the stop string


def test_eval_multiple_choice_two_scorings(tiny, tok):
    items = [{"question": "Which sentence is true?", "choices": ["a", "b", "c", "d"], "answer": i % 4} for i in range(8)]
    res = H.eval_multiple_choice(tiny, tok, items, batch_size=4)
    assert 0 <= res["acc_probability"] <= 1 and 0 <= res["acc_generated"] <= 1
    assert 0 < res["p_norm_correct"] < 1 and res["n"] == 8
    # letters: an untrained model's first letter (if any) is parsed, absent letters are counted
    assert H._first_letter(" B. because", 4) == "B" and H._first_letter(" none", 4) is None
    assert H._first_letter(" E", 4) is None


def test_eval_humaneval_model_with_scripted_completions(tok):
    from infir_lib.eval.code import load_humaneval
    problems = load_humaneval()[:2]
    replies = {problems[0]["prompt"].rstrip()[-40:]: problems[0]["canonical_solution"],
               problems[1]["prompt"].rstrip()[-40:]: "    return None\n"}
    model = ScriptedModel(tok, replies)
    res = H.eval_humaneval_model(model, tok, problems, max_new_tokens=400)
    assert res["per_task"][problems[0]["task_id"]] == {"n": 1, "c": 1}
    assert res["per_task"][problems[1]["task_id"]] == {"n": 1, "c": 0}
    assert res["pass@1"] == pytest.approx(0.5)
