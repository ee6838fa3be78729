"""The full-scale RL presets say what they will do: batch layout per GPU, the rejection-sampling numbers,
and every problem that would stop or mislead the run, found offline before any download."""

import pytest

from infir_lib.rl import as_config, plan


def test_curr_reft_presets_carry_the_papers_rejection_sampling_numbers():
    for preset in ("configs/full/rl_curr_reft_qwen.yaml", "configs/full/rl_curr_reft_infir.yaml"):
        cfg = as_config(preset)
        assert cfg.rs_kept == 1520 and dict(zip(cfg.rs_domains, cfg.rs_domain_kept)) == {
            "math": 700, "science": 320, "general": 500}
        assert (cfg.rs_threshold, cfg.rs_sft_lr, cfg.rs_sft_epochs, cfg.rs_sft_warmup_ratio) == (85, 2e-7, 3, 0.05)
        p = plan(preset)
        assert p.problems == [], p.problems
        assert p.batch["completions_per_device_batch"] == 4 and p.batch["processes"] == 8  # one prompt per GPU
        assert "1,520 kept (math 700, science 320, general 500)" in str(p) and "NOT READY" not in str(p)


def test_infi_mmr_preset_is_not_ready_until_captions_exist():
    p = plan("configs/full/rl_infi_mmr_qwen.yaml")
    text = " ".join(p.problems)
    assert "has no 'caption' column" in text and "data/geo170k/images" in text
    assert "NOT READY" in str(p)


def test_problems_found_offline(tmp_path):
    base = "configs/full/rl_curr_reft_qwen.yaml"
    bad_split = plan(base, ["prompts_per_step=3"])
    assert any("cannot be split over 8 process" in q for q in bad_split.problems)
    assert any("rs_judge" in q for q in plan(base, ["rs_judge=verifier"]).problems)
    assert any("does not exist" in q for q in plan(base, [f"deepspeed={tmp_path / 'none.yaml'}"]).problems)
    local = tmp_path / "captioned.jsonl"
    local.write_text("")
    ready = plan("configs/full/rl_infi_mmr_qwen.yaml", [f"datasets=[agentica-org/DeepScaleR-Preview-Dataset, {local}, "
                                                       "hiyouga/geometry3k]", f"image_roots=['', '{tmp_path}', '']"])
    assert ready.problems == []
    with pytest.raises(ValueError, match="rs_domain_kept sums to"):
        as_config(base, ["rs_kept=1000"])


def test_cli_dry_run_fails_on_a_plan_that_is_not_ready():
    import subprocess
    import sys
    bad = subprocess.run([sys.executable, "-m", "infir_lib", "rl", "--config", "configs/full/rl_infi_mmr_qwen.yaml",
                          "--dry-run"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "NOT READY" in bad.stdout and "not ready: 2 problem(s)" in bad.stderr
    good = subprocess.run([sys.executable, "-m", "infir_lib", "rl", "--config", "configs/full/rl_curr_reft_qwen.yaml",
                           "--dry-run"], capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr
