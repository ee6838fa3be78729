"""The stage protocol and its runner (infir_lib.stages): registry, config loading, cache keys from the
fields' marks + the inputs' keys + the stage's code, output_dir vs cache, one result type, one plan type."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
from pathlib import Path

import pytest

from infir_lib import import_graph, stages
from infir_lib.config import KEY_MARKS, ConfigError, key_fields, key_mark, setting
from infir_lib.stages import Input, Plan, Stage, StageResult, TextPlan

REPO = Path(__file__).resolve().parent.parent
CONFIGURED = [name for name, s in stages.STAGES.items() if s.config]
CACHED = [name for name, s in stages.STAGES.items() if s.kind]


@pytest.mark.parametrize("name", list(stages.STAGES))
def test_every_stage_has_its_entry_points(name):
    s = stages.stage(name)
    module = s.module()
    if s.config:
        assert callable(module.run) and callable(module.plan), name
        assert (REPO / s.preset).is_file(), s.preset
        cfg = s.load(s.preset)
        assert isinstance(cfg, s.config_class())
        assert s.load(cfg) is cfg
    else:
        assert callable(module.cli), name


@pytest.mark.parametrize("name", CONFIGURED)
def test_every_config_field_carries_a_valid_key_mark(name):
    for f in dataclasses.fields(stages.stage(name).config_class()):
        assert key_mark(f) in KEY_MARKS, (name, f.name)


@pytest.mark.parametrize("name", [n for n in stages.STAGES if stages.STAGES[n].builds])
def test_a_stage_s_code_holds_its_entry_and_build_modules(name):
    """The digest must cover the code that computes the output (else an edit there reuses a stale artifact)."""
    s = stages.stage(name)
    for module in s.code:
        assert import_graph.module_file(module).is_file()
    code = s.code_modules()
    if s.kind:
        assert s.entry in code, f"{name}: its entry module {s.entry} is not in its code"
    for target in s.builds:
        module, _, fn = target.partition(":")
        obj = getattr(importlib.import_module(module), fn)
        assert obj.__module__ in code, f"{name}: {target} is not in its code"
    assert not any(stages._infrastructure(m) for m in code), code


def test_a_stage_s_code_is_found_through_its_imports_and_stops_at_infrastructure():
    """No hand-kept module list: what the entry imports, directly or not, is in the key; what only decides
    how a run executes (runtime, the cache, the config parser) is not."""
    sft = stages.stage("sft").code_modules()
    assert {"infir_lib.sft.trainer", "infir_lib.sft.data", "infir_lib.eval.generate", "infir_lib.models"} <= set(sft)
    assert "infir_lib.runtime" not in sft and "infir_lib.config" not in sft
    assert "infir_lib.data.toy_sources" in stages.stage("pretrain").code_modules()  # "toy:" datasets, by name
    from infir_lib.import_graph import reachable
    assert reachable(("infir_lib.stages",)) == tuple(sorted({"infir_lib.stages", *reachable(("infir_lib.artifacts",)),
                                                               *reachable(("infir_lib.config",)),
                                                               *reachable(("infir_lib.import_graph",))}))
    assert reachable(("infir_lib.stages",), stop=lambda m: m == "infir_lib.stages") == ("infir_lib.stages",)
    with pytest.raises(ValueError, match="no such module"):
        reachable(("infir_lib.nope",))


def test_code_digest_follows_the_source(tmp_path, monkeypatch):
    pkg = tmp_path / "infir_lib"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    monkeypatch.setattr(import_graph, "PACKAGE_DIR", pkg)
    first = stages.code_digest(("infir_lib.a", "infir_lib.sub"))
    assert stages.code_digest(["infir_lib.sub", "infir_lib.a"]) == first  # order does not matter
    (pkg / "a.py").write_text("x = 2\n")
    assert stages.code_digest(("infir_lib.a", "infir_lib.sub")) != first
    with pytest.raises(ValueError, match="no such module"):
        stages.code_digest(("infir_lib.missing",))


@dataclasses.dataclass
class Demo:
    scale: str = "toy"
    steps: int = 3
    output_dir: str | None = setting(None, key=False)
    temperature: float = setting(0.8, key="full")
    added: bool = setting(False, key="unless_default")


def test_key_fields_follow_the_marks():
    toy = key_fields(Demo())
    assert toy == {"scale": "toy", "steps": 3}
    assert key_fields(Demo(output_dir="x")) == toy  # where a run writes is not what it computes
    assert key_fields(Demo(steps=4)) != toy
    assert key_fields(Demo(temperature=0.1)) == toy  # read only at full scale
    assert key_fields(Demo(scale="full"))["temperature"] == 0.8
    assert key_fields(Demo(added=True))["added"] is True  # out of the key at its default only
    with pytest.raises(ValueError, match="key="):
        setting(1, key="sometimes")


def test_a_separately_cached_part_is_keyed_by_the_fields_marked_with_it():
    """Chapter 6's text warm-up and vision tower are cached apart from the VLM run: each key holds the fields
    marked with its part and the stage's code digest, so a tower setting rebuilds the tower and not the
    warm-up, and a new field is one marked line in the config (no list kept elsewhere)."""
    from infir_lib.config import part_fields
    from infir_lib.vlm.config import VLMConfig

    vlm = stages.stage("vlm")
    cfg = vlm.load("configs/toy/vlm.yaml")
    warm, tower = vlm.part_key(cfg, "warmup"), vlm.part_key(cfg, "tower")
    assert warm["code"] == tower["code"] == vlm.code_digest() and warm != tower
    assert "siglip_steps" in tower and "siglip_steps" not in warm and "lm_warmup_steps" not in tower
    assert "stage1_steps" not in warm and "stage1_steps" not in tower  # the curriculum's own settings
    more_siglip = dataclasses.replace(cfg, siglip_steps=cfg.siglip_steps + 1)
    assert vlm.part_key(more_siglip, "warmup") == warm and vlm.part_key(more_siglip, "tower") != tower
    assert vlm.part_key(cfg, "warmup", {"lm": {"a": 1}})["lm"] == {"a": 1}
    assert set(part_fields(VLMConfig(), "warmup")) >= {"data_seed", "lm_warmup_reads", "image_size"}
    with pytest.raises(ValueError, match="marks no field with part 'nope'"):
        vlm.part_key(cfg, "nope")
    with pytest.raises(ValueError, match="a tuple of part names"):
        setting(1, parts="warmup")


def test_marked_fields_still_parse_and_show_their_help():
    from infir_lib.config import describe_fields, load_config

    cfg = load_config(Demo, None, ["temperature=0.5", "added=true", "output_dir=none"])
    assert (cfg.temperature, cfg.added, cfg.output_dir) == (0.5, True, None)
    assert {r["name"] for r in describe_fields(Demo)} == {f.name for f in dataclasses.fields(Demo)}


def test_an_input_is_keyed_by_what_it_names(tmp_path):
    """sft's base model enters its key as the pretrain run's key (two spellings of one preset share a key),
    the overrides of that preset inside it; nothing is built to compute a key."""
    sft, pretrain = stages.stage("sft"), stages.stage("pretrain")
    cfg = sft.load("configs/toy/sft.yaml")
    key = sft.key(cfg)
    assert key["base_config"] == pretrain.key(pretrain.load(cfg.base_config)) and "base_overrides" not in key
    absolute = sft.load("configs/toy/sft.yaml", {"base_config": str(REPO / cfg.base_config)})
    assert sft.key(absolute) == key
    longer = sft.load("configs/toy/sft.yaml", {"base_overrides": ["max_steps=7"]})
    assert sft.key(longer)["base_config"]["max_steps"] == 7
    hub = sft.load("configs/toy/sft.yaml", {"model_name_or_path": "org/model"})
    assert sft.key(hub)["base_config"] == cfg.base_config  # unused input: the field as given
    anneal = pretrain.load("configs/toy/anneal.yaml")
    assert pretrain.key(anneal)["init_from"] == pretrain.key(pretrain.load(anneal.init_from))
    with pytest.raises(KeyError, match="no input"):
        sft.input_key(cfg, "dataset")


def test_output_goes_to_output_dir_or_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INFIR_CACHE", str(tmp_path / "cache"))
    s = Stage("demo", "a demo", "infir_lib.stages", f"{__name__}:Demo", kind="demo", code=("infir_lib.data.arith",))
    built = []

    def build(folder: Path) -> None:
        built.append(folder)
        (folder / "out.txt").write_text("x")

    first = s.output(Demo(), build, name="d")
    again = s.output(Demo(output_dir=None), build, name="d")
    assert first == again and len(built) == 1 and first.parent == tmp_path / "cache" / "demo"
    assert s.output(Demo(steps=4), build, name="d") != first and len(built) == 2
    explicit = s.output(Demo(output_dir=str(tmp_path / "mine")), build)
    assert explicit == tmp_path / "mine" and (explicit / "out.txt").is_file() and len(built) == 3
    manifest = json.loads((first / "MANIFEST.json").read_text())
    assert manifest["spec"]["code"] == stages.code_digest(("infir_lib.data.arith",))
    uncached = Stage("demo2", "not cached", "infir_lib.stages", f"{__name__}:Demo")
    with pytest.raises(ValueError, match="set output_dir"):
        uncached.output(Demo(), build)


def test_load_names_the_file_and_the_key():
    s = stages.stage("pretrain")
    with pytest.raises(ConfigError, match="learning_rat.*did you mean 'learning_rate'"):
        s.load("configs/toy/pretrain.yaml", ["learning_rat=1"])
    cfg = s.load("configs/toy/pretrain.yaml")
    assert s.load(cfg, {"max_steps": 3}).max_steps == 3
    assert s.load(cfg, ["max_steps=4"]).max_steps == 4  # key=value items on a config object: parsed too


def test_unknown_stage_says_which_was_meant():
    with pytest.raises(KeyError, match="did you mean 'pretrain'"):
        stages.stage("pretrian")


def test_inputs_declared_name_fields_of_the_config():
    for name in CONFIGURED:
        s = stages.stage(name)
        fields = {f.name for f in dataclasses.fields(s.config_class())}
        for inp in s.inputs:
            assert isinstance(inp, Input) and inp.stage in stages.STAGES
            assert inp.field in fields and (inp.overrides is None or inp.overrides in fields), (name, inp)


def test_every_result_class_is_a_stage_result():
    from infir_lib.data.pipeline import DataResult
    from infir_lib.eval.stage import EvalResult
    from infir_lib.pretrain import PretrainResult
    from infir_lib.pretrain.shards import TokenizeResult
    from infir_lib.rl import RLResult
    from infir_lib.sft import SFTResult
    from infir_lib.synth import SynthResult
    from infir_lib.vlm import VLMResult

    for cls in (DataResult, EvalResult, PretrainResult, TokenizeResult, RLResult, SFTResult, SynthResult, VLMResult):
        assert issubclass(cls, StageResult), cls
    out = Path("/x")
    results = [PretrainResult(out, {"a": 1}, []), SFTResult(out, {"a": 1}, []), RLResult(out, {"a": 1}),
               VLMResult(out, {"history": [], "metrics": {}}), SynthResult(out, [], [], [{"step": "s", "out": 0}])]
    for r in results:
        assert r.output_dir == out and isinstance(r.summary, dict) and isinstance(r.history, list)
        assert r.config is None and json.dumps(r.to_dict())


@pytest.mark.parametrize("name,preset", [("pretrain", "configs/full/pretrain.yaml"), ("sft", "configs/full/sft.yaml"),
                                         ("synth", "configs/full/synth.yaml"), ("data", "configs/full/data.yaml"),
                                         ("eval", "configs/full/eval.yaml"), ("tokenize", "configs/full/pretrain.yaml"),
                                         ("rl", "configs/full/rl_curr_reft_qwen.yaml")])
def test_every_plan_is_a_plan(name, preset):
    plan = stages.stage(name).plan(preset)
    assert isinstance(plan, Plan) and str(plan).strip()
    data = plan.to_dict()
    assert json.loads(json.dumps(data, default=str)) and isinstance(plan.problems, list)


def test_text_plan_is_its_text():
    p = TextPlan(["a", "b"], problems=["c"])
    assert p == "a\nb" and str(p) == "a\nb" and "b" in p and p.problems == ["c"]
    assert p.to_dict() == {"text": "a\nb", "problems": ["c"]}


def test_no_module_imports_another_package_s_private_names():
    """A stage reaches another stage through the registry, never through its private helpers."""
    bad = []
    for f in sorted((REPO / "infir_lib").rglob("*.py")):
        rel = f.relative_to(REPO / "infir_lib").parts
        own = rel[0] if len(rel) > 1 else None
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                target = (node.module or "").split(".")
                same_package = node.level == 1 and own is not None or (node.level == 0 and own in target[1:2])
                if private and not same_package:
                    bad.append(f"{f.relative_to(REPO)}:{node.lineno} imports {private}")
    assert bad == []


# --------------------------------------------------------------------------- the declarations (stage.toml)

def test_every_stage_package_declares_its_own_stages():
    declared = {}
    for path in sorted((REPO / "infir_lib").glob(f"*/{stages.DECLARATION}")):
        for s in stages.read_declaration(path):
            declared[s.name] = path.parent.name
            assert s.entry.startswith(f"infir_lib.{path.parent.name}"), (s.name, s.entry)  # its own package's code
    assert declared.keys() == stages.STAGES.keys()
    assert [s.chapter for s in stages.STAGES.values()] == sorted(s.chapter for s in stages.STAGES.values())


def test_a_new_package_with_a_declaration_is_a_new_stage(tmp_path):
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    (tmp_path / "first" / "stage.toml").write_text(
        '[[stage]]\nname = "late"\nchapter = 9\nsummary = "s"\nentry = "infir_lib.first"\n')
    (tmp_path / "second" / "stage.toml").write_text(
        '[[stage]]\nname = "early"\nchapter = 1\nsummary = "s"\nentry = "infir_lib.second"\n'
        'inputs = [{stage = "late", field = "x", when = "infir_lib.second:used"}]\ncode = ["infir_lib.second"]\n')
    found = stages.discover(tmp_path)
    assert list(found) == ["early", "late"]  # chapter order, whatever the folder names
    assert found["early"].inputs == (Input("late", "x", when="infir_lib.second:used"),)
    assert found["early"].code == ("infir_lib.second",) and found["early"].declared_in.endswith("second/stage.toml")


@pytest.mark.parametrize("text, message", [
    ('[[stage]]\nname = "x"\nsumary = "s"\nentry = "m"\n', "stage 'x': unknown key"),
    ('[[stage]]\nname = "x"\nentry = "m"\n', r"stage 'x': missing key\(s\) \['summary'\]"),
    ('[[stage]]\nname = "x"\nsummary = "s"\nentry = "m"\ninputs = [{stage = "y"}]\n', "an input needs stage and field"),
    ('[stages]\nname = "x"\n', r"expected \[\[stage\]\] tables only"),
    ('[[stage]\n', "stage.toml"),
    ('stage = ["x"]\n', "stage #1 is not a table"),
    ('[[stage]]\nname = "x"\nsummary = "s"\nentry = "m"\ndeclared_in = "elsewhere"\n', r"unknown key\(s\) \['declared_in'\]"),
])
def test_a_bad_declaration_names_the_file_the_stage_and_the_key(tmp_path, text, message):
    (tmp_path / "pkg").mkdir()
    path = tmp_path / "pkg" / "stage.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        stages.discover(tmp_path)
    assert str(path) in str(err.value)


def test_a_stage_declared_twice_names_both_files(tmp_path):
    for pkg in ("a", "b"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "stage.toml").write_text('[[stage]]\nname = "x"\nsummary = "s"\nentry = "m"\n')
    with pytest.raises(ConfigError, match=r"declared twice: .*a/stage.toml and .*b/stage.toml"):
        stages.discover(tmp_path)


def test_an_input_s_condition_is_imported_only_when_it_is_asked():
    sft = stages.stage("sft")
    base, synth = sft.inputs
    cfg = sft.load("configs/toy/sft.yaml")
    assert base.used(cfg) is (cfg.model_name_or_path is None)
    assert synth.used(sft.load("configs/toy/sft.yaml", ["dataset=toy:synth", "synth_config=configs/toy/synth.yaml"]))
    assert not synth.used(sft.load("configs/toy/sft.yaml", ["dataset=toy:arith"]))


def test_listing_the_stages_imports_no_stage_package():
    import subprocess
    import sys

    code = ("import sys, infir_lib.stages as s; print(len(s.STAGES), "
            "sorted(m for m in sys.modules if m.split('.')[:2] in [['infir_lib', p] for p in "
            "('data', 'pretrain', 'synth', 'sft', 'eval', 'vlm', 'rl', 'report')]), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(len(stages.STAGES)), "[]", "False"]
