"""The command line: stage list, per-stage keys from the config dataclasses, examples that exist, one-line errors."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from infir_lib import cli
from infir_lib.config import describe_fields
from infir_lib.stages import Stage

REPO = Path(__file__).resolve().parent.parent


def test_top_level_help_lists_every_stage_on_one_line(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "`" not in out
    for stage in cli.STAGES:
        lines = [line for line in out.splitlines() if line.split()[:1] == [stage]]
        assert len(lines) == 1 and len(lines[0].split()) > 3, stage


@pytest.mark.parametrize("stage", [s for s in cli.STAGES if cli.STAGES[s].config])
def test_stage_help_lists_keys_with_type_default_and_help(stage, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([stage, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "`" not in out
    cls = cli.config_class(stage)
    rows = describe_fields(cls)
    assert len(rows) == len([f for f in dataclasses.fields(cls) if f.init])
    for row in rows:
        line = next(line for line in out.splitlines() if line.split()[:1] == [row["name"]])
        assert f"{row['type']}, default" in line, line
    with_help = [r for r in rows if r["help"]]
    assert len(with_help) >= len(rows) // 2, [r["name"] for r in rows if not r["help"]]


def test_help_of_a_field_comes_from_the_dataclass():
    from infir_lib.pretrain.config import PretrainConfig

    rows = {r["name"]: r for r in describe_fields(PretrainConfig)}
    assert rows["max_steps"]["help"].startswith("optimisation steps")  # field metadata
    assert "held out of the token files" in rows["val_blocks"]["help"]  # the comment beside the field
    assert rows["learning_rate"]["type"] == "float" and rows["learning_rate"]["default"] == 3e-3
    assert rows["schedule"]["type"] == "{cosine,wsd,linear_to_zero,constant}"


def _named_paths(text: str) -> list[str]:
    return re.findall(r"--config(?:_file)?[ =](\S+\.ya?ml)", text)


def test_examples_name_presets_that_exist(capsys):
    for stage, preset in ((name, s.preset) for name, s in cli.STAGES.items()):
        if preset:
            assert (REPO / preset).is_file(), (stage, preset)
    cli.main(["--help"])
    paths = _named_paths(capsys.readouterr().out)
    readme = (REPO / "README.md").read_text()
    paths += _named_paths(readme)
    for mod in ("infir_lib/pretrain/__init__.py", "infir_lib/eval/stage.py", "infir_lib/pretrain/shards.py",
                "infir_lib/sft/__init__.py", "infir_lib/rl/__init__.py"):
        paths += _named_paths((REPO / mod).read_text())
    assert len(paths) > 5
    missing = sorted({p for p in paths if not (REPO / p).is_file()})
    assert missing == []
    assert "--tokenize" not in (REPO / "infir_lib/pretrain/shards.py").read_text()


def test_unknown_stage_and_key_suggest_the_right_one(capsys):
    assert cli.main(["pretrian"]) == 2
    assert "did you mean 'pretrain'" in capsys.readouterr().err
    assert cli.main(["pretrain", "--config", "configs/toy/pretrain.yaml", "--dry-run", "learning_rat=1"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'learning_rate'" in err and len(err.strip().splitlines()) == 1


def test_bad_input_is_one_line_naming_the_file(tmp_path, capsys):
    """Not only ConfigError: a bad data file is reported in one line too, with a non-zero exit."""
    (tmp_path / "empty.jsonl").write_text("")
    rc = cli.main(["pretrain", "--config", "configs/toy/pretrain.yaml", f"datasets=[{tmp_path / 'empty.jsonl'}]", "weights=[1.0]",
                   f"output_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1
    assert "empty.jsonl: no documents" in err and "Traceback" not in err
    (tmp_path / "bad.yaml").write_bytes(b"seed: 0\nseed: 1\n")
    assert cli.main(["pretrain", "--config", str(tmp_path / "bad.yaml"), "--dry-run"]) == 2
    assert "bad.yaml:2: duplicate key 'seed'" in capsys.readouterr().err


def test_only_rank_zero_prints(monkeypatch, capsys):
    args = ["pretrain", "--config", "configs/full/pretrain.yaml", "--dry-run"]
    monkeypatch.setenv("RANK", "1")
    assert cli.main(args) == 0
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("RANK", "0")
    assert cli.main(args) == 0
    assert "GPU-hours" in capsys.readouterr().out


def test_every_run_ends_by_saying_where_its_output_is(monkeypatch, tmp_path, capsys):
    from infir_lib.data.pipeline import DataResult

    assert cli.output_location(DataResult(tmp_path / "corpus")) == str(tmp_path / "corpus")
    assert cli.output_location({"tokenized_path": "tok", "executor": "local"}) == "tok"
    fake = types.ModuleType("fake_stage")
    fake.run = lambda config, overrides: types.SimpleNamespace(summary={"docs": 3}, output_dir=tmp_path / "corpus")
    monkeypatch.setitem(sys.modules, "fake_stage", fake)
    monkeypatch.setitem(cli.STAGES, "fake", Stage("fake", "a stage for the test", "fake_stage",
                                                  "infir_lib.data.pipeline:DataConfig", "configs/toy/data.yaml"))
    assert cli.main(["fake", "--config", "configs/toy/data.yaml"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"output: {(tmp_path / 'corpus').resolve()}"
    fake.run = lambda config, overrides: {"scores": 1}
    assert cli.main(["fake", "--config", "configs/toy/data.yaml"]) == 0
    assert "set output_dir=DIR" in capsys.readouterr().out.strip().splitlines()[-1]


def test_full_preset_offline_fails_in_one_sentence(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "INFIR_CACHE": str(tmp_path / "c")}
    env.pop("INFIR_TRACEBACK", None)
    out = subprocess.run([sys.executable, "-m", "infir_lib", "eval", "--config", "configs/full/eval.yaml", "limit=1"],
                         cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 1
    err = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert len(err) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "could not be fetched from the Hugging Face Hub" in err[0] and "configs/toy/" in err[0]


def test_no_gpu_failure_is_explained():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    msg = cli.explain_failure("vlm", RuntimeError("Found no NVIDIA driver on your system (CUDA)"))
    assert "needs a GPU" in msg and "--dry-run" in msg
    other = cli.explain_failure("rl", ValueError("global batch 10 does not split over n_gpus=4"))
    assert "needs a GPU" not in other and other == "rl: ValueError: global batch 10 does not split over n_gpus=4"
    assert cli.explain_failure("sft", FileNotFoundError(2, "No such file", "runs/x.jsonl")) == \
        "sft: file not found: runs/x.jsonl"


CLI_BAD_CONFIGS = [
    (b"seed: 0\nname: caf\xe9\n", [], "c.yaml:2: not valid UTF-8"),
    (b"", [], "c.yaml: the file is empty"),
    (b"max_steps: 5\nmax_steps: 6\n", [], "c.yaml:2: duplicate key 'max_steps'"),
    (b"micro_batch_size: 0\n", [], "c.yaml:1: key 'micro_batch_size': must be > 0"),
    (b"max_steps: -5\n", [], "c.yaml:1: key 'max_steps': must not be negative"),
    (b"seed: 0\n", ["learning_rate=-1"], "override 'learning_rate': must not be negative"),
]


@pytest.mark.parametrize("text,overrides,expected", CLI_BAD_CONFIGS, ids=[c[2].split(": ", 1)[1] for c in CLI_BAD_CONFIGS])
def test_bad_config_through_the_cli_is_one_line(tmp_path, capsys, text, overrides, expected):
    (tmp_path / "c.yaml").write_bytes(text)
    assert cli.main(["pretrain", "--config", str(tmp_path / "c.yaml"), "--dry-run", *overrides]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert captured.out == "" and len(err) == 1 and expected in err[0], err
