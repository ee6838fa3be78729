"""Repository contracts: pyproject ranges, constraints.txt and environment.yml agree with each other and
with what is installed, every notebook is in the TOC and stored clean, configs resolve."""

import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


CLUSTER_EXTRAS = ("gpu", "deepspeed")  # GPU-only: pinned in constraints-cluster.txt, not installed here


def pyproject_requirements(cluster: bool = False) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    if cluster:
        return [Requirement(r) for name in CLUSTER_EXTRAS for r in extras[name]]
    reqs = project["dependencies"] + [d for name, extra in extras.items() if name not in CLUSTER_EXTRAS for d in extra]
    return [Requirement(r) for r in reqs]


def _exact(lines: list[str], where: str) -> dict[str, str]:
    """``name==version`` lines -> {canonical name: version}; anything else is a drift error."""
    pins = {}
    for line in lines:
        req = Requirement(line)
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == "==", f"{where}: {line!r} is not an exact pin"
        pins[canonicalize_name(req.name)] = spec[0].version
    return pins


def constraint_pins(name: str = "constraints.txt") -> dict[str, str]:
    lines = [ln.split("#")[0].strip() for ln in (REPO / name).read_text().splitlines()]
    return _exact([ln for ln in lines if ln], name)


def test_cluster_extras_are_pinned_apart():
    pins = constraint_pins("constraints-cluster.txt")
    reqs = pyproject_requirements(cluster=True)
    assert {canonicalize_name(r.name) for r in reqs} == set(pins)
    for r in reqs:
        assert r.specifier.contains(pins[canonicalize_name(r.name)]), f"{r} vs constraints-cluster.txt"
    assert not set(pins) & set(constraint_pins()), "a package pinned in both constraint files"


def test_environment_yml_has_the_constraint_pins():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert _exact(pip, "environment.yml") == constraint_pins()


def test_pyproject_declares_ranges_that_hold_the_constraint_pins():
    pins = constraint_pins()
    reqs = pyproject_requirements()
    assert not [str(r) for r in reqs if any(s.operator == "==" for s in r.specifier)], \
        "pyproject.toml declares ranges; exact versions belong in constraints.txt"
    for r in reqs:
        name = canonicalize_name(r.name)
        assert name in pins, f"{r} has no pin in constraints.txt"
        assert r.specifier.contains(pins[name], prereleases=True), f"constraints.txt {name}=={pins[name]} is outside {r}"
    assert set(pins) == {canonicalize_name(r.name) for r in reqs}, "constraints.txt pins a package pyproject.toml does not use"


def test_pins_are_safe():
    pins = constraint_pins()
    assert pins["torch"] == "2.13.0"
    assert pins["jupyter-book"].startswith("1.")
    assert "fasttext-numpy2" in pins and "fasttext" not in pins
    assert "torchvision" not in pins
    assert "jupyterlab" in pins, "a Jupyter front end to open the notebooks locally"
    colab = [Requirement(r) for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
             ["optional-dependencies"]["colab"]]
    assert "torch" not in {canonicalize_name(r.name) for r in colab}, "the colab extra must keep Colab's torch"


def test_installed_versions_match_the_constraints():
    wrong = {}
    for name, version in constraint_pins().items():
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            have = "not installed"
        if have.split("+")[0] != version:  # torch's CPU wheel reports 2.13.0+cpu
            wrong[name] = f"installed {have}, constraints.txt {version}"
    assert not wrong, f"the environment drifted (run bash scripts/setup.sh): {wrong}"


def test_setup_installs_with_the_constraints_and_restamps_on_change():
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "-c constraints.txt" in setup
    stamp = next(ln for ln in setup.splitlines() if ln.startswith("stamp="))
    assert "pyproject.toml" in stamp and "constraints.txt" in stamp


def toc_files():
    toc = (REPO / "_toc.yml").read_text()
    return set(re.findall(r"file:\s*(\S+)", toc)) | {yaml.safe_load(toc)["root"]}


def test_every_notebook_is_in_the_toc_and_back():
    files = toc_files()
    on_disk = {f"notebooks/{p.stem}" for p in NOTEBOOKS}
    assert on_disk - files == set(), "notebooks missing from _toc.yml"
    for entry in files:
        assert (REPO / f"{entry}.ipynb").exists() or (REPO / f"{entry}.md").exists(), f"{entry} in _toc.yml has no file"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean_and_well_formed(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", "run scripts/clean_notebooks.py"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "outputs not stripped (scripts/clean_notebooks.py)"
    first = "".join(code[0]["source"])
    assert "google.colab" in first and "print_versions()" in first, "first code cell must install on Colab and print versions"
    for c in code:
        src = "".join(c["source"])
        if re.search(r"accelerate launch|sbatch|torchrun --nproc_per_node [3-9]", src):
            assert "skip-execution" in c.get("metadata", {}).get("tags", []), f"cluster-only cell not tagged: {src[:60]}"
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert text.count("```{admonition} Solution") >= 3, "a chapter needs at least three exercises with solutions"
    assert ":class: dropdown" in text


def test_colab_install_cell_uses_the_published_repository_and_keeps_torch():
    url = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"]
    for path in NOTEBOOKS:
        first = "".join(next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")["source"])
        assert f'os.environ.get("INFIR_REPO", "{url}")' in first, f"{path.name}: the default repository is not _config.yml's"
        assert '"infir_lib[colab] @ git+$INFIR_REPO"' in first, f"{path.name}: install the colab extra from INFIR_REPO"


ACCEL = sorted((REPO / "configs" / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("path", ACCEL, ids=lambda p: p.name)
def test_accelerate_configs_load(path):
    from accelerate.commands.config.config_args import load_config_from_file
    cfg = load_config_from_file(str(path))
    assert cfg.num_processes >= 1


def test_accelerate_set_is_complete():
    names = {p.stem for p in ACCEL}
    assert {"cpu", "ddp_8gpu", "fsdp_8gpu", "zero2_8gpu", "multinode_8x8"} <= names
    assert (REPO / "configs" / "slurm" / "pretrain_64gpu.sbatch").exists()


def test_full_pretrain_dry_run_offline():
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    out = subprocess.run([sys.executable, "-m", "infir_lib", "pretrain", "--config", "configs/full/pretrain.yaml",
                          "--dry-run"], cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "1.236 B" in out.stdout and "GPU-hours" in out.stdout and "memory per GPU" in out.stdout


def test_cli_reports_config_errors():
    out = subprocess.run([sys.executable, "-m", "infir_lib", "pretrain", "--config", "configs/toy/pretrain.yaml",
                          "--dry-run", "no_such_key=1"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "no_such_key" in out.stderr


def test_the_repository_stands_alone():
    """No tracked file sends a reader to the project's private notes (files that are not in this repository)."""
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    private = ("STACK.md", "method-notes.md", "EXPERIMENTS.md", "DESIGN.md")
    hits = [f"{f}: {name}" for f in files if f.endswith((".py", ".ipynb", ".md", ".yaml", ".yml", ".cfg", ".toml"))
            and (REPO / f).is_file() for name in private if name in (REPO / f).read_text(errors="ignore")
            and f != "tests/test_spine_repo.py"]
    assert not hits, "references to files outside the repository:\n  " + "\n  ".join(hits)
