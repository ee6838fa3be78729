"""Chapter 4: the SFT stage. Masking, schedule, LoRA, data loading and the presets."""

import json
import subprocess
import sys

import pytest
import torch

from infir_lib import sft
from infir_lib.config import ConfigError, load_config
from infir_lib.models import EOT, ModelArgs, build_llama, load_model, train_tokenizer
from infir_lib.eval.generate import encode_prompt
from infir_lib.sft import SFTRunConfig, chat_examples, to_messages, token_rows
from infir_lib.sft.data import load_rows, toy_arith_rows
from infir_lib.sft.evaluate import final_answer
from infir_lib.sft.trainer import trl_args

TEXTS = ["Ann has 3 pens. Ann buys 2. How many pens does Ann have now? 3+2=5. Answer: 5"] * 20 + \
        ["def f(x):\n    return x + 1\n", "Hello there, how are you?"] * 10


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random Llama and a toy tokenizer saved to disk (seconds, no cache needed)."""
    folder = tmp_path_factory.mktemp("tiny")
    tok = train_tokenizer(TEXTS, vocab_size=400, min_frequency=1)
    torch.manual_seed(0)
    model = build_llama(ModelArgs(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                  intermediate_size=64, max_position_embeddings=256), tok)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder, tok


def _chat(user="Ann has 3 pens. Ann buys 2. How many pens?", reply="3+2=5. Answer: 5"):
    return [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]


def _learned(tok, ex):
    ids, mask = ex["input_ids"], ex["completion_mask"]
    assert len(ids) == len(mask)
    return (tok.decode([i for i, m in zip(ids, mask) if m]), tok.decode([i for i, m in zip(ids, mask) if not m]))


def test_assistant_mask_covers_exactly_the_assistant_tokens(tiny):
    _, tok = tiny
    msgs = _chat()
    [ex] = chat_examples(tok, msgs)
    learned, ignored = _learned(tok, ex)
    assert learned == msgs[1]["content"] + EOT
    assert msgs[0]["content"] in ignored and "assistant" in ignored and "3+2=5" not in ignored
    # the mask is one contiguous block at the end (the reply and its end-of-turn token)
    mask = ex["completion_mask"]
    first = mask.index(1)
    assert all(mask[first:]) and not any(mask[:first])
    # the example decodes to the conversation as the chat template renders it
    assert tok.decode(ex["input_ids"]) == tok.apply_chat_template(msgs, tokenize=False)


def test_assistant_mask_multi_turn(tiny):
    """Every assistant turn is trained, each in its own example after its context as it is sampled."""
    _, tok = tiny
    msgs = _chat() + [{"role": "user", "content": "And then?"}, {"role": "assistant", "content": "Answer: 6"}]
    first, second = chat_examples(tok, msgs)
    assert _learned(tok, first)[0] == "3+2=5. Answer: 5" + EOT
    learned, ignored = _learned(tok, second)
    assert learned == "Answer: 6" + EOT
    assert "And then?" not in learned and "And then?" in ignored and "3+2=5. Answer: 5" in ignored
    assert second["input_ids"][: second["completion_mask"].index(1)] == encode_prompt(tok, msgs[:3])
    assert len(token_rows(tok, [{"messages": msgs}, {"messages": _chat()}])) == 3


def test_trl_labels_match_the_mask(tiny, tmp_path):
    """The trainer, as configured by the stage, trains on exactly the masked tokens of the stage's rows."""
    from datasets import Dataset
    from trl import SFTTrainer

    folder, tok = tiny
    cfg = load_config(SFTRunConfig, "configs/toy/sft.yaml", {"model_name_or_path": str(folder), "max_steps": 1})
    rows = [{"messages": _chat()}, {"messages": _chat("Ben has 9 cups. Ben loses 4.", "9-4=5. Answer: 5")}]
    examples = token_rows(tok, rows)
    trainer = SFTTrainer(model=load_model(folder), args=trl_args(cfg, tmp_path), train_dataset=Dataset.from_list(examples),
                         processing_class=tok)
    for ex, want in zip(trainer.train_dataset, examples):
        assert ex["input_ids"] == want["input_ids"]
        assert [int(lab != -100) for lab in ex["labels"]] == want["completion_mask"]
    unmasked = load_config(SFTRunConfig, "configs/toy/sft.yaml", {"model_name_or_path": str(folder),
                                                                  "assistant_only_loss": False})
    trainer = SFTTrainer(model=load_model(folder), args=trl_args(unmasked, tmp_path),
                         train_dataset=Dataset.from_list(examples), processing_class=tok)
    assert all(-100 not in ex["labels"] for ex in trainer.train_dataset)  # no mask: every token is learned


def test_run_schedule_lora_and_result(tiny, tmp_path):
    folder, _ = tiny
    rows = toy_arith_rows(32, seed=0)
    res = sft.run("configs/toy/sft.yaml", {"model_name_or_path": str(folder), "max_steps": 10, "logging_steps": 1,
                                           "eval_n": 0, "output_dir": str(tmp_path / "full")}, rows=rows)
    assert res.metrics["steps"] == 10 and res.metrics["train_rows"] == 32
    lrs = [h["learning_rate"] for h in res.history]
    peak = 1e-3
    top = lrs.index(max(lrs))
    assert max(lrs) <= peak * (1 + 1e-6) and top <= 1  # warm-up is 10% of 10 steps: the peak comes at once
    assert lrs[top:] == sorted(lrs[top:], reverse=True) and lrs[-1] < 0.1 * peak  # then cosine decay
    cfg = load_config(SFTRunConfig, "configs/toy/sft.yaml")
    assert trl_args(cfg, tmp_path).get_warmup_steps(200) == 20 and trl_args(cfg, tmp_path).lr_scheduler_type == "cosine"
    assert res.load_model().config.hidden_size == 32 and res.load_tokenizer() is not None
    lora = sft.run("configs/toy/sft.yaml", {"model_name_or_path": str(folder), "max_steps": 2, "use_lora": True,
                                            "lora_r": 4, "lora_alpha": 8, "eval_n": 0,
                                            "output_dir": str(tmp_path / "lora")}, rows=rows)
    assert 0 < lora.metrics["trainable_parameters"] < lora.metrics["parameters"]
    merged = lora.load_model()  # merged back: a plain Llama, no adapter weights left
    assert not any("lora" in n for n, _ in merged.named_parameters())


def test_rows_cached_by_content(tiny, isolated_cache):
    folder, _ = tiny
    over = {"model_name_or_path": str(folder), "max_steps": 1, "eval_n": 0}
    a = sft.run("configs/toy/sft.yaml", over, rows=toy_arith_rows(8, seed=0))
    b = sft.run("configs/toy/sft.yaml", over, rows=toy_arith_rows(8, seed=0))
    c = sft.run("configs/toy/sft.yaml", over, rows=toy_arith_rows(8, seed=1))
    assert a.output_dir == b.output_dir != c.output_dir


def test_messages_sharegpt_and_errors(tmp_path):
    row = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    assert to_messages(row) == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    with pytest.raises(ValueError, match="no assistant message"):
        to_messages({"messages": [{"role": "user", "content": "hi"}]})
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
                   + "\n" + json.dumps({"messages": [{"role": "wizard", "content": "x"}]}) + "\n")
    cfg = load_config(SFTRunConfig, "configs/toy/sft.yaml", {"dataset": str(bad), "n_train": 0})
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        load_rows(cfg)


def test_final_answer():
    assert final_answer("3+2=5. Answer: 5") == 5
    assert final_answer("Answer: 4 ... Answer: -7") == -7
    assert final_answer("no answer") is None


def test_config_errors_and_full_dry_run():
    with pytest.raises(ConfigError, match="learning_rat"):
        load_config(SFTRunConfig, "configs/toy/sft.yaml", {"learning_rat": 1})
    full = load_config(SFTRunConfig, "configs/full/sft.yaml")
    assert (full.num_train_epochs, full.learning_rate, full.warmup_ratio, full.lr_scheduler_type) == (4, 2e-5, 0.1, "cosine")
    assert full.per_device_train_batch_size * full.gradient_accumulation_steps * full.n_gpus == 128
    assert full.max_length == 4096 and full.assistant_only_loss
    out = subprocess.run([sys.executable, "-m", "infir_lib", "sft", "--config", "configs/full/sft.yaml", "--dry-run"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "1.236 B" in out.stdout and "batch 128" in out.stdout


def _fused_loss_and_grads(folder, chunk_size=None):
    """Loss and gradients through TRL's fused LM head (the path ``SFTTrainer`` trains with)."""
    from trl.trainer.utils import add_fused_lm_head

    from infir_lib.runtime import logprob_tiles_fit_vocab

    model = load_model(folder)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    ids = torch.randint(0, model.config.vocab_size, (3, 17), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, :5] = -100
    if chunk_size is None:
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
    else:
        with logprob_tiles_fit_vocab(model.config.vocab_size) as used:
            assert used == chunk_size
            out = model(input_ids=ids, labels=labels, fused_lm_head=True)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_logprob_tiles_fit_vocab_same_numbers(tiny):
    """The smaller LM-head tile changes memory only: loss and every gradient are bit-identical."""
    from trl.trainer import utils as trl_utils

    from infir_lib.runtime import logprob_tiles_fit_vocab

    folder, tok = tiny
    default = trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE
    vocab = load_model(folder).config.vocab_size
    fitted = -(-vocab // 256) * 256
    assert vocab <= fitted < default
    loss_a, grads_a = _fused_loss_and_grads(folder)
    loss_b, grads_b = _fused_loss_and_grads(folder, chunk_size=fitted)
    assert torch.equal(loss_a, loss_b)
    assert all(torch.equal(grads_a[n], grads_b[n]) for n in grads_a)
    assert trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE == default  # restored
    with logprob_tiles_fit_vocab(default + 1) as used:  # a vocabulary wider than one tile: left alone
        assert used == default


def test_train_uses_vocab_sized_tiles(tiny, tmp_path, monkeypatch):
    from trl.trainer import utils as trl_utils

    folder, _ = tiny
    seen = []
    fn = trl_utils._ChunkedLogProbFunction
    original = fn.apply

    def spy(*args):
        seen.append(args[5])  # chunk_size
        return original(*args)

    monkeypatch.setattr(fn, "apply", spy)
    sft.run("configs/toy/sft.yaml", {"model_name_or_path": str(folder), "max_steps": 2, "eval_n": 0,
                                     "output_dir": str(tmp_path / "out")}, rows=toy_arith_rows(8, seed=0))
    vocab = load_model(folder).config.vocab_size
    assert seen and all(vocab <= s < trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE for s in seen)


def test_starts_from_question():
    from infir_lib.data.arith import make_problems
    from infir_lib.sft.experiments import starts_from_question

    p = make_problems(1, seed=3, steps=(2,))[0]
    start = p.steps[0].split("+")[0].split("-")[0]
    assert starts_from_question(p, p.solution)
    assert starts_from_question(p, f"{start}+100=5. Answer: 5")  # reads the question, computes wrongly
    other = "2" if start != "2" else "3"
    assert not starts_from_question(p, f"{other}-1=1. Answer: 1")  # a template that ignores the numbers
    assert not starts_from_question(p, f"{start}1+2=3. Answer: 3")  # a longer number is not the start
    assert not starts_from_question(p, "Answer: 4") and not starts_from_question(p, "")


def test_per_item_outcomes_and_item_matrix(monkeypatch):
    """The scorecard pairs arms item by item: the 0/1 list must follow item order and agree with the
    accuracy, and item_matrix must order rows by the seeds asked for (not by the records' order)."""
    from infir_lib.data.arith import make_problems
    from infir_lib.sft import evaluate as ev
    from infir_lib.sft import experiments as X

    problems = make_problems(4, seed=5, steps=(1,))
    replies = [f"Answer: {p.answer}" if i % 2 == 0 else "Answer: -999" for i, p in enumerate(problems)]
    monkeypatch.setattr(ev, "generate", lambda model, tok, prompts, max_new_tokens, batch_size=32: replies[: len(prompts)])
    out = ev.arith_accuracy(None, None, problems, per_item=True)
    assert out["correct"] == [1, 0, 1, 0] and out["accuracy"] == 0.5
    assert "correct" not in ev.arith_accuracy(None, None, problems)  # the run's metrics stay scalars
    assert X.correct_on(problems)(None, None) == [1, 0, 1, 0]

    runs = [{"arm": "a", "seed": 1, "x": [0, 1]}, {"arm": "a", "seed": 0, "x": [1, 1]}, {"arm": "b", "seed": 0, "x": [0]}]
    assert X.item_matrix(runs, "a", "x", [0, 1]) == [[1.0, 1.0], [0.0, 1.0]]
    with pytest.raises(KeyError, match="seed"):
        X.item_matrix(runs, "b", "x", [0, 1])
    runs.append({"arm": "b", "seed": 1, "x": [0, 1]})
    with pytest.raises(ValueError, match="different numbers of items"):
        X.item_matrix(runs, "b", "x", [0, 1])


def test_choose_level_rule():
    """The evaluation level: inside [15%, 85%] for the control, nearest 50%, the harder one on a tie."""
    from infir_lib.sft.experiments import choose_level

    assert choose_level({1: 0.95, 2: 0.6, 3: 0.3, 4: 0.05}) == 2
    assert choose_level({2: 0.4, 3: 0.6}) == 3  # tie: the harder level
    assert choose_level({1: 0.85, 2: 0.9}) == 1  # the band is inclusive
    assert choose_level({1: 0.99, 2: 0.10, 3: 0.02}) is None  # floor or ceiling everywhere: untestable


def test_heldout_level_sets_are_held_out_and_reproducible():
    from infir_lib.data.arith import is_heldout
    from infir_lib.sft import experiments as X

    sets = X.level_sets((1, 3), 20, "curve")
    assert [len(v) for v in sets.values()] == [20, 20] and all(p.n_steps == 3 for p in sets[3])
    assert all(is_heldout(p.question) for v in sets.values() for p in v)
    assert [p.question for p in X.heldout_problems(3, 20, "curve")] == [p.question for p in sets[3]]
    assert [p.question for p in X.heldout_problems(3, 20, "test")] != [p.question for p in sets[3]]


def test_evals_pickle_for_worker_processes():
    """run_arms sends its evaluations to spawned workers: they must pickle (partials, not lambdas)."""
    import pickle

    from infir_lib.sft import experiments as X

    problems = X.heldout_problems(1, 3)
    for fn in (X.correct_on(problems), X.accuracy_on(problems), X.curve_on({1: problems}),
               X.reads_question_on(problems), X.code_scores_on(X.code_test_items(2))):
        assert pickle.loads(pickle.dumps(fn)).keywords == fn.keywords


def test_reply_budget_covers_the_longest_reference_solution(tiny):
    """Claim 10's generation budget: a model writing the reference's long solution is never cut off."""
    from infir_lib.sft import experiments as X

    _, tok = tiny
    problems = X.heldout_problems(5, 6) + X.heldout_problems(3, 6)
    longest = max(len(tok(X.long_cot_text(p), add_special_tokens=False)["input_ids"]) for p in problems)
    budget = X.reply_budget(problems, tok)
    assert budget >= longest + 1 and budget == X.reply_budget(problems, tok, slack=1.25)
    assert X.reply_budget(problems, tok, slack=1.0) == longest + 1
    assert X.reply_budget(X.heldout_problems(5, 6), tok) > X.reply_budget(X.heldout_problems(1, 6), tok)
    with pytest.raises(ValueError, match="at least one problem"):
        X.reply_budget([], tok)


def test_run_arms_seeds_and_evals_per_arm(monkeypatch):
    from infir_lib.sft import experiments as X

    calls = []
    monkeypatch.setattr(X, "train_and_score", lambda **kw: calls.append(kw) or {"arm": kw["name"], "seed": kw["seed"]})
    out = X.run_arms({"a": ([{"m": 1}], {"max_steps": 2}), "b": ([{"m": 2}], {})}, {"a": [0, 1], "b": [0]},
                     evals={"x": "fx"}, arm_evals={"b": {"y": "fy"}}, workers=1)
    assert [(r["arm"], r["seed"]) for r in out] == [("a", 0), ("a", 1), ("b", 0)]
    assert calls[0]["evals"] == {"x": "fx"} and calls[2]["evals"] == {"x": "fx", "y": "fy"}
    assert calls[0]["overrides"] == {"max_steps": 2}
    with pytest.raises(KeyError, match="no seeds"):
        X.run_arms({"c": ([], {})}, {"a": [0]}, workers=1)


def test_code_scores_count_tests_in_one_sandboxed_run():
    """One sandboxed run per task gives pass/fail and the share of the unit tests passed; compiling is
    checked without running the reply."""
    from infir_lib.eval.sandbox import run_programs
    from infir_lib.sft import experiments as X

    item = X.code_test_items(1)[0]  # adds 3
    ref = item.reference()
    codes = [ref, ref.replace("return y", "return y if x < 3 else 0"), "def solve(x):\n    return x +",
             "def solve(x):\n    raise ValueError()"]
    verdicts = run_programs(codes, workers=2, progress=False, tests=[X.counting_tests(item)] * len(codes), timeout=5)
    assert [v.status for v in verdicts][:2] == ["passed", "failed"]
    assert [X.tests_passed_share(v) for v in verdicts] == [1.0, 0.5, 0.0, 0.0]
    assert [X.compiles(c) for c in codes] == [True, True, False, True]


def test_training_context_is_the_sampling_prompt_for_any_reply():
    """SFT trains each reply after the very ids the generator samples it from, whether the reply starts with a
    digit or a word: the BPE cuts the header's blank line into one token before a digit and into two before
    a word when the conversation is tokenized as one string (the joined form is not what is trained on)."""
    from infir_lib.sft.data import reply_example

    # blank lines before numbers are frequent, so the BPE merges "\n\n" into one token (as the toy one does)
    tok = train_tokenizer(TEXTS + ["Total:\n\n12 and\n\n7"] * 40, vocab_size=400, min_frequency=1)
    context = [{"role": "user", "content": "Write f."}]
    sampled = encode_prompt(tok, "Write f.", chat=True)  # what the generator feeds the model
    for reply in ("3+2=5. Answer: 5", "def f(x):\n    return x + 1", "Hello there"):
        ex = reply_example(tok, context, reply)
        n = len(sampled)
        assert ex["input_ids"][:n] == sampled  # the trained context is the sampling prompt, id for id
        assert ex["completion_mask"] == [0] * n + [1] * (len(ex["input_ids"]) - n)  # loss on the reply only
        assert tok.decode(ex["input_ids"][n:]) == reply + EOT  # the reply and its end of turn, nothing else
        joined = tok.apply_chat_template([*context, {"role": "assistant", "content": reply}], tokenize=True,
                                         return_dict=True)["input_ids"]
        if reply[0].isalpha():  # the defect this avoids: tokenized as one string, the prompt is no prefix
            assert list(joined[:n]) != sampled
        else:
            assert list(joined[:n]) == sampled


def test_loss_plateau_rule():
    from infir_lib.sft.experiments import loss_plateau

    falling = [{"loss": 4.0 - 0.1 * i} for i in range(20)]
    flat = [{"loss": 1.0 + (0.01 if i % 2 else 0.0)} for i in range(20)]
    assert not loss_plateau(falling, 5)["plateaued"]  # last epoch 2.3 vs 2.8 before: 18% lower
    out = loss_plateau(flat, 5)
    assert out["plateaued"] and abs(out["relative_drop"]) < 0.02
    assert not loss_plateau(flat[:7], 5)["plateaued"]  # under two epochs: no plateau shown


def test_run_arms_orders_longest_first_and_returns_call_order(monkeypatch):
    from infir_lib.sft import experiments as X

    seen = []

    def fake_parallel(fn, calls, threads=1, workers=None):
        seen.extend(c["name"] for c in calls)
        return [{"arm": c["name"], "seed": c["seed"]} for c in calls]

    monkeypatch.setattr(X, "run_parallel", fake_parallel)
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a" * 40}]}
    arms = {"short": ([row] * 16, {"max_steps": 2}), "long": ([row] * 16, {"max_steps": 20})}
    out = X.run_arms(arms, [0, 1])
    assert seen[:2] == ["long", "long"]
    assert [(r["arm"], r["seed"]) for r in out] == [("short", 0), ("short", 1), ("long", 0), ("long", 1)]
