"""The library as Colab gets it: a built wheel, installed without a checkout, run from an empty folder.

Builds the wheel (``pip wheel --no-deps``), installs it with ``--no-deps`` into a scratch target and,
from an empty working directory with only that target and the .venv's site-packages on the path (no
``.pth`` files, so the editable install of the checkout is not seen), runs each chapter's set-up cells:
the leading code cells up to the first config load, stopping before a cell that trains or builds a
model. Every ``configs/...`` path a notebook names must then resolve to the copy inside the package.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from infir_lib import stages

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CONFIG_LOAD = re.compile(r"load_config\(|as_config\(")
HEAVY = re.compile(r"\.run\(|load_model\(|build_llama\(|\.tower\(|_gate\(")
CONFIG_PATH = re.compile(r"configs/(?:toy|full)/[\w.-]+\.yaml")

pytestmark = pytest.mark.slow


def setup_cells(path: Path) -> list[str]:
    """The chapter's set-up: leading code cells up to and including the first config load (at most three;
    a chapter that loads none in them: its first two, the install cell and the imports)."""
    cells = [("".join(c["source"])) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    out = []
    for src in cells[:3]:
        if HEAVY.search(src):
            break
        out.append(src)
        if CONFIG_LOAD.search(src):
            return out
    return out[:2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # build from a copy: setuptools writes build/ and *.egg-info beside the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    for name in ("infir_lib", "configs"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    wheel = next((tmp / "dist").glob("infir_lib-*.whl"))
    target = tmp / "target"
    inst = subprocess.run(pip + ["install", "--no-deps", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr
    return wheel, target, tmp


def test_wheel_ships_every_module_and_the_presets(installed):
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    on_disk = {p.relative_to(REPO).as_posix() for p in (REPO / "infir_lib").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".jsonl", ".txt", ".md", ".toml")}
    assert on_disk - names == set(), "files of infir_lib/ missing from the wheel (pyproject.toml [tool.setuptools] packages)"
    presets = {f"infir_lib/presets/{p.relative_to(REPO / 'configs').as_posix()}" for p in (REPO / "configs").rglob("*")
               if p.is_file()}
    assert presets and presets - names == set(), f"configs missing from the wheel: {sorted(presets - names)[:5]}"
    assert any(n.endswith("licenses/LICENSE") for n in names)


RUNNER = r'''
import json, sys
from pathlib import Path
from IPython.core.inputtransformer2 import TransformerManager
import infir_lib
from infir_lib.config import resolve_path
target = Path(sys.argv[1]).resolve()
assert Path(infir_lib.__file__).resolve().is_relative_to(target), f"imported {infir_lib.__file__}, not the wheel"
todo = json.loads(sys.stdin.read())
for name, item in todo.items():
    scope = {"__name__": "__main__"}
    for src in item["cells"]:
        exec(compile(TransformerManager().transform_cell(src), name, "exec"), scope)
    for rel in item["configs"]:
        p = resolve_path(rel).resolve()
        assert p.is_file() and p.is_relative_to(target), f"{name}: {rel} -> {p}"
    print("ok", name, len(item["cells"]), "cells", len(item["configs"]), "configs", flush=True)
'''


def test_chapter_setup_runs_from_an_empty_folder_against_the_installed_wheel(installed):
    _, target, tmp = installed
    todo = {p.name: {"cells": setup_cells(p), "configs": sorted(set(CONFIG_PATH.findall(p.read_text())))}
            for p in NOTEBOOKS}
    assert all(v["cells"] for v in todo.values())
    empty = tmp / "empty"
    empty.mkdir()
    site = sysconfig.get_paths()["purelib"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONPATH=os.pathsep.join([str(target), site]), INFIR_CACHE=str(tmp / "cache"),
               MPLBACKEND="Agg", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    # -S: no site-packages processing, so no .pth files (the checkout's editable install stays out of sight)
    out = subprocess.run([sys.executable, "-S", "-c", RUNNER, str(target)], input=json.dumps(todo), cwd=empty,
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert out.stdout.count("ok ") == len(NOTEBOOKS), out.stdout
    assert not (empty / "configs").exists() and list(empty.iterdir()) == [], "the set-up wrote into the working folder"


def test_the_installed_wheel_finds_every_stage_from_its_declarations(installed):
    _, target, tmp = installed
    site = sysconfig.get_paths()["purelib"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONPATH=os.pathsep.join([str(target), site]))
    code = "import json, infir_lib.stages as s; print(json.dumps([list(s.STAGES), s.__file__]))"
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    names, where = json.loads(out.stdout)
    assert where.startswith(str(target)) and names == list(stages.STAGES)
