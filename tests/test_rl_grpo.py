"""GRPO wiring through TRL on a tiny random Llama: it trains, logs reward/KL/length, and saves a loadable policy."""

import torch

from infir_lib.models import load_model
from infir_lib.rl import rewards as R
from infir_lib.rl.grpo import StageArgs, run_stage
from infir_lib.runtime import torch_threads
from infir_lib.rl.tasks import format_rows


def test_grpo_stage_updates_policy_and_logs(tmp_path, tiny_llama):
    rows = format_rows("arith", "judge", 16, seed=0)
    texts = [r["prompt"][0]["content"] + " " + r["reference"] for r in format_rows("arith", "open", 200, seed=1)]
    start, model, _ = tiny_llama(tmp_path / "start", texts, vocab_size=400, max_position_embeddings=256)
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


def _tiny_start(tmp_path, tiny_llama):
    texts = [r["prompt"][0]["content"] + " " + r["reference"] for r in format_rows("arith", "open", 200, seed=1)]
    # use_cache=False is what a trainer saves; the stage must turn the cache back on
    return tiny_llama(tmp_path / "start", texts, vocab_size=400, max_position_embeddings=256, use_cache=False)[0]


def _judge_stage(start, out):
    """Two GRPO steps on 8 judge rows with a digit-count shaping reward (a random policy gets no format reward)."""
    R.register_reward("test_digits", lambda completions, **kw: [float(sum(ch.isdigit() for ch in R.completion_text(c)))
                                                               for c in completions])
    args = StageArgs(steps=2, num_generations=4, prompts_per_step=2, beta=0.04, learning_rate=1e-2,
                     max_completion_length=8, rewards=("test_digits", "format"), reward_weights=(1.0, 1.0), seed=3)
    return run_stage(start, format_rows("arith", "judge", 8, seed=0), out, args, stage="judge")


def _without_time(history):
    return [{k: v for k, v in r.items() if k != "step_time"} for r in history]


def test_grpo_stage_is_repeatable_and_saves_a_cached_generator(tmp_path, tiny_llama):
    """Same start, rows and seed -> the same log and the same weights, bit for bit (``no_scratch_fill`` keeps
    the deterministic algorithms); the saved policy samples with the KV cache (``ready_for_generation``)."""
    start = _tiny_start(tmp_path, tiny_llama)
    with torch_threads(1):
        h1 = _judge_stage(start, tmp_path / "a")
        h2 = _judge_stage(start, tmp_path / "b")
    assert _without_time(h1) == _without_time(h2)
    a, b = load_model(tmp_path / "a"), load_model(tmp_path / "b")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert a.config.use_cache and a.generation_config.use_cache


def test_no_scratch_fill_is_scoped():
    import torch.utils.deterministic as det

    from infir_lib.runtime import no_scratch_fill

    before = det.fill_uninitialized_memory
    with no_scratch_fill():
        assert det.fill_uninitialized_memory is False
    assert det.fill_uninitialized_memory == before


def test_grpo_with_narrow_logprob_tiles_is_bit_identical(tmp_path, monkeypatch, tiny_llama):
    """``lean_trl_scratch`` narrows TRL's log-prob tile to the vocabulary: the GRPO run must not change."""
    from contextlib import contextmanager

    import infir_lib.runtime as runtime

    start = _tiny_start(tmp_path, tiny_llama)
    with torch_threads(1):
        narrow = _judge_stage(start, tmp_path / "narrow")

        @contextmanager
        def default_tiles(vocab_size):
            yield None

        monkeypatch.setattr(runtime, "logprob_tiles_fit_vocab", default_tiles)
        wide = _judge_stage(start, tmp_path / "wide")
    assert _without_time(narrow) == _without_time(wide)
    a, b = load_model(tmp_path / "narrow"), load_model(tmp_path / "wide")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_run_arms_builds_the_same_runs_in_workers_as_in_process(tmp_path, tiny_llama, monkeypatch):
    """Claim 14's arms x seeds run side by side (infir_lib.parallel); each run is seeded by its own config, so
    its summary (evaluation, rollouts, zero-variance shares) and its per-step log do not depend on where it ran."""
    import dataclasses

    from infir_lib.rl import RLConfig
    from infir_lib.rl import experiments as X

    start = _tiny_start(tmp_path, tiny_llama)
    cfg = RLConfig(method="curr_reft", model_name_or_path=str(start), cold_start_per_format=0, stage_steps=[1, 1, 1],
                   stage_generations=[2, 2, 2], prompts_per_step=2, rows_per_stage=4, eval_n=2, learning_rate=1e-2,
                   max_completion_length=6, eval_max_new_tokens=6, bf16=False)
    arms = {"curriculum": cfg, "mixed": dataclasses.replace(cfg, method="mixed")}
    built = {}
    for workers in (1, 2):
        monkeypatch.setenv("INFIR_CACHE", str(tmp_path / f"cache-{workers}"))
        res = X.run_arms(arms, [0, 1], workers=workers)
        built[workers] = {arm: [(r.summary, _without_time(r.history)) for r in rs] for arm, rs in res.items()}
    assert built[1] == built[2]
    summary = built[1]["mixed"][1][0]
    assert summary["seed"] == 1 and summary["samples"] == 3 * 2 * 2
    assert list(summary["zero_variance"]) == ["mixed_1", "mixed_2", "mixed_3"]
    assert list(built[1]["curriculum"][0][0]["zero_variance"]) == ["judge", "choice", "open"]
