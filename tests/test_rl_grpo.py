"""GRPO wiring through TRL on a tiny random Llama: it trains, logs reward/KL/length, and saves a loadable policy."""

import torch

from infir_lib.models import ModelArgs, build_llama, load_model, train_tokenizer
from infir_lib.rl import rewards as R
from infir_lib.rl.grpo import StageArgs, run_stage
from infir_lib.runtime import torch_threads
from infir_lib.rl.tasks import format_rows


def test_grpo_stage_updates_policy_and_logs(tmp_path):
    rows = format_rows("arith", "judge", 16, seed=0)
    texts = [r["prompt"][0]["content"] + " " + r["reference"] for r in format_rows("arith", "open", 200, seed=1)]
    tok = train_tokenizer(texts, vocab_size=400)
    torch.manual_seed(0)
    model = build_llama(ModelArgs(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                  intermediate_size=64, max_position_embeddings=256), tok)
    start = tmp_path / "start"
    model.save_pretrained(start)
    tok.save_pretrained(start)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    # A random policy never writes the tags, so format/accuracy are 0 for every sample (no advantage, no
    # update); a registered shaping reward with spread inside each group gives GRPO a signal.
    R.register_reward("test_digits", lambda completions, **kw: [float(sum(ch.isdigit() for ch in R.completion_text(c)))
                                                               for c in completions])
    args = StageArgs(steps=2, num_generations=4, prompts_per_step=2, beta=0.04, learning_rate=1e-2,
                     max_completion_length=8, rewards=("test_digits", "format", "accuracy"),
                     reward_weights=(1.0, 1.0, 1.0))
    with torch_threads(1):
        history = run_stage(start, rows, tmp_path / "out", args, stage="judge")

    assert [h["step"] for h in history] == [1, 2] and all(h["stage"] == "judge" for h in history)
    for key in ("reward", "kl", "completions/mean_length", "reward_std"):
        assert key in history[0], key
    assert all(0 < h["completions/mean_length"] <= 8 for h in history)
    after = load_model(tmp_path / "out").state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "GRPO did not change any weight"
    assert (tmp_path / "out" / "tokenizer_config.json").exists()
