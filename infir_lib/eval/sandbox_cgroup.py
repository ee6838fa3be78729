"""One memory and process budget for a sandboxed program and all its children: a per-run cgroup.

Why: ``RLIMIT_AS`` caps one process, so ten children of 450 MiB each pass a 512 MiB limit and take
4.5 GiB together. A control group counts every process in it (and what they put on the scratch tmpfs):
``memory.max`` / ``memory.limit_in_bytes`` and ``pids.max`` on a cgroup made for one run, which the
sandbox joins before it starts, bound the whole tree. cgroup v2 is used where it has the memory and
pids controllers (``/sys/fs/cgroup``), else the v1 ``memory`` and ``pids`` hierarchies (a hybrid host).
Both need write access (root, or a delegated subtree); :func:`available` says which one works here, and
the sandbox falls back to per-process limits sized so that their product fits the budget.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from functools import lru_cache

ROOT = "/sys/fs/cgroup"


def _own_paths() -> dict[str, str]:
    """``{"0": path}`` for v2 and ``{"memory": path, "pids": path}`` for v1, from /proc/self/cgroup."""
    out = {}
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                hid, ctrls, path = line.rstrip("\n").split(":", 2)
                if hid == "0" and ctrls == "":
                    out["0"] = path
                for c in ctrls.split(","):
                    if c in ("memory", "pids"):
                        out[c] = path
    except OSError:
        pass
    return out


def _try_make(parent: str, files: list[str]) -> bool:
    probe = os.path.join(parent, f"infir-probe-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        os.mkdir(probe)
    except OSError:
        return False
    try:
        return all(os.path.exists(os.path.join(probe, f)) for f in files)
    finally:
        try:
            os.rmdir(probe)
        except OSError:
            pass


@lru_cache(maxsize=None)
def available() -> tuple[str, dict[str, str]] | None:
    """``("v2", {"": dir})`` or ``("v1", {"memory": dir, "pids": dir})`` where per-run cgroups can be made here."""
    if os.environ.get("INFIR_SANDBOX_NO_CGROUP"):
        return None
    own = _own_paths()
    if "0" in own and os.path.exists(os.path.join(ROOT, "cgroup.controllers")):
        try:
            ctrls = open(os.path.join(ROOT, "cgroup.controllers")).read().split()
        except OSError:
            ctrls = []
        # a child of the root cgroup avoids v2's "no processes in an inner node" rule
        if {"memory", "pids"} <= set(ctrls):
            try:
                sub = open(os.path.join(ROOT, "cgroup.subtree_control")).read().split()
                if not {"memory", "pids"} <= set(sub):
                    with open(os.path.join(ROOT, "cgroup.subtree_control"), "w") as f:
                        f.write("+memory +pids")
            except OSError:
                pass
            if _try_make(ROOT, ["memory.max", "pids.max"]):
                return "v2", {"": ROOT}
    dirs = {}
    for c, files in (("memory", ["memory.limit_in_bytes"]), ("pids", ["pids.max"])):
        if c not in own:
            return None
        d = os.path.join(ROOT, c) + own[c].rstrip("/")
        if not (os.path.isdir(d) and _try_make(d, files)):
            return None
        dirs[c] = d
    return "v1", dirs


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


class RunCgroup:
    """The cgroup(s) of one run: created with the limits, joined by the child, read and removed after."""

    def __init__(self, memory_mb: int, pids: int):
        kind, parents = available()  # type: ignore[misc]
        self.kind, self.dirs = kind, {}
        name = f"infir-sbx-{os.getpid()}-{secrets.token_hex(4)}"
        limit = str(memory_mb << 20)
        try:
            for c, parent in parents.items():
                d = os.path.join(parent, name)
                os.mkdir(d)
                self.dirs[c] = d
            if kind == "v2":
                d = self.dirs[""]
                _write(os.path.join(d, "memory.max"), limit)
                if os.path.exists(os.path.join(d, "memory.swap.max")):
                    _write(os.path.join(d, "memory.swap.max"), "0")
                _write(os.path.join(d, "pids.max"), str(pids))
            else:
                m = self.dirs["memory"]
                _write(os.path.join(m, "memory.limit_in_bytes"), limit)
                if os.path.exists(os.path.join(m, "memory.memsw.limit_in_bytes")):
                    _write(os.path.join(m, "memory.memsw.limit_in_bytes"), limit)
                _write(os.path.join(self.dirs["pids"], "pids.max"), str(pids))
        except OSError:
            self.remove()
            raise
        self.procs_files = [os.path.join(d, "cgroup.procs") for d in self.dirs.values()]

    def join_self(self) -> None:
        """Called in the child before exec (``preexec_fn``): it and everything it starts are counted."""
        pid = str(os.getpid())
        for p in self.procs_files:
            with open(p, "w") as f:
                f.write(pid)

    def oom_kills(self) -> int:
        if self.kind == "v2":
            text = _read(os.path.join(self.dirs[""], "memory.events"))
        else:
            text = _read(os.path.join(self.dirs["memory"], "memory.oom_control"))
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill" and v.strip().isdigit():
                return int(v)
        return 0

    def peak_mb(self) -> float | None:
        f = os.path.join(self.dirs[""], "memory.peak") if self.kind == "v2" else \
            os.path.join(self.dirs["memory"], "memory.max_usage_in_bytes")
        v = _read(f).strip()
        return round(int(v) / (1 << 20), 1) if v.isdigit() else None

    def kill_all(self) -> None:
        """SIGKILL whatever is left in the cgroup (e.g. a process that escaped the session)."""
        if self.kind == "v2" and os.path.exists(os.path.join(self.dirs[""], "cgroup.kill")):
            try:
                _write(os.path.join(self.dirs[""], "cgroup.kill"), "1")
            except OSError:
                pass
        for _ in range(20):
            pids = set()
            for p in self.procs_files:
                pids.update(int(x) for x in _read(p).split() if x.isdigit())
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.02)

    def remove(self) -> None:
        for d in self.dirs.values():
            for _ in range(25):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
