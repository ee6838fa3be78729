"""The config contract: YAML presets + key=value overrides, errors that name the file and the key."""

from dataclasses import dataclass, field

import pytest

from infir_lib.config import ConfigError, load_config, parse_overrides
from infir_lib.pretrain import PretrainConfig


@dataclass
class Demo:
    lr: float = 1e-3
    steps: int = 10
    name: str = "x"
    flag: bool = False
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    maybe: str | None = None


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_yaml_and_overrides_are_typed(tmp_path):
    p = write(tmp_path, "lr: 3.0e-4\nsteps: 5\nsizes: [4, 5]\n")
    cfg = load_config(Demo, p, ["steps=7", "flag=true", "lr=1e-2", "maybe=none", "sizes=[8,9]"])
    assert (cfg.lr, cfg.steps, cfg.flag, cfg.maybe, cfg.sizes) == (1e-2, 7, True, None, [8, 9])


def test_unknown_key_names_file_and_key(tmp_path):
    p = write(tmp_path, "lr: 1.0\nlearning_rat: 2\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*learning_rat"):
        load_config(Demo, p)


def test_unknown_override_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="stepz"):
        load_config(Demo, write(tmp_path, "lr: 1.0\n"), ["stepz=3"])


@pytest.mark.parametrize("text,key", [("steps: ten\n", "steps"), ("lr: [1]\n", "lr"), ("flag: maybe\n", "flag"),
                                      ("steps: 1.5\n", "steps")])
def test_wrong_type_names_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError, match=rf"c\.yaml:1: key '{key}'"):
        load_config(Demo, write(tmp_path, text))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Demo, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Demo, write(tmp_path, "lr: [1,\n"))
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["steps"])


def test_validation_in_post_init_names_the_file(tmp_path):
    p = write(tmp_path, "global_batch_size: 10\nmicro_batch_size: 4\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*multiple"):
        load_config(PretrainConfig, p)


def test_presets_resolve():
    toy = load_config(PretrainConfig, "configs/toy/pretrain.yaml")
    full = load_config(PretrainConfig, "configs/full/pretrain.yaml")
    assert toy.scale == "toy" and full.scale == "full"
    assert full.learning_rate == 1.4e-3 and full.global_batch_size == 2048 and full.seq_len == 4096
