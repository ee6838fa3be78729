"""The Slurm script works as written: run under bash with stand-ins for scontrol, srun and accelerate, it
launches every node with the right rank, rendezvous and stage; its log path needs no folder."""

import os
import re
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SBATCH = REPO / "configs/slurm/pretrain_64gpu.sbatch"


def _stub(folder: Path, name: str, body: str) -> None:
    p = folder / name
    p.write_text("#!/bin/bash\n" + body)
    p.chmod(p.stat().st_mode | stat.S_IEXEC)


def test_sbatch_log_path_needs_no_folder():
    out = re.search(r"^#SBATCH --output=(\S+)", SBATCH.read_text(), re.M).group(1)
    assert "/" not in out, f"Slurm opens {out} before the script runs: its folder may not exist"


def test_sbatch_launches_each_node_with_its_rank(tmp_path):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "calls.txt"
    # scontrol prints many hostnames (head would SIGPIPE it under pipefail); srun runs its command once per
    # node with SLURM_NODEID set; accelerate records its arguments.
    _stub(bin_, "scontrol", "for i in $(seq 1 20000); do echo node$i; done\n")
    _stub(bin_, "srun", f'shift; for n in 0 1; do SLURM_NODEID=$n "$@"; done\n')
    _stub(bin_, "accelerate", f'echo "$@" >> {log}\n')
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "activate").write_text("")
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "node[1-20000]",
           "SLURM_JOB_NUM_NODES": "2", "VENV": str(tmp_path / "venv"), "STAGE": "anneal",
           "CONFIG": "configs/full/anneal.yaml"}
    proc = subprocess.run(["bash", str(SBATCH)], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 2
    for rank, call in enumerate(calls):
        assert f"--machine_rank {rank} " in call and "--main_process_ip node1 " in call
        assert call.endswith("-m infir_lib anneal --config configs/full/anneal.yaml")
        assert "--config_file configs/accelerate/multinode_8x8.yaml" in call
