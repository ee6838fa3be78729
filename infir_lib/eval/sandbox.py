"""Run untrusted Python (programs a model wrote) and say what happened, without letting it harm us or lie to us.

Why a real isolation tool: Python-level guards (deleting ``os.system``, patching ``open``) are
undone by one ``import ctypes``. The default backend is **bubblewrap** (``bwrap``), the sandbox
Flatpak uses, with an *allowlist* file system: ``/usr`` and the interpreter's own folders read-only,
the dynamic loader's files from ``/etc``, a fresh size-limited ``/tmp`` as the working directory,
minimal ``/dev`` and ``/proc``, and nothing else of the host (no homes, checkouts, ``/var``, ``/run``,
``/opt``), so no host file or unix socket outside the list is reachable. No network (a new, empty
network namespace), its own PID namespace (it cannot see or signal us; when the sandbox's init dies
every process in it dies), an empty environment, and a seccomp filter
(:mod:`.sandbox_seccomp`) that refuses keyrings, new namespaces, ``ptrace``, ``mount`` and similar
kernel interfaces. Memory and processes are **one budget for the program and all its children**: a
per-run cgroup (:mod:`.sandbox_cgroup`) where this machine lets us make one, else per-process limits
sized so that their product fits the budget. ``setrlimit`` also caps CPU seconds, file size and open
files; the parent enforces the wall clock and the output size. Every verdict reports the limits it
ran under (``limits``) and the protections this machine could not give (``missing_protections``).

**Who decides "passed".** Not the program's interpreter: the tests run in a separate *judge* process
(:mod:`.sandbox_judge`) that forks the program's process before it reads the tests, calls the
program's functions over a pipe and receives plain data only (``None``/``bool``/``int``/``float``/
``complex``/``str``/``bytes`` and lists/tuples/dicts/sets of those); the comparisons run on values the
judge built, and the verdict travels on a pipe only the judge holds. As root the judge and the
program get uids of their own. So patching ``__main__``, ``os._exit`` or the builtins, reading a
nonce, printing "passed", objects whose ``__eq__`` is always true and exiting early all fail.
Assertion-style tests (HumanEval's ``check(candidate)``, the book's toy tasks) work unchanged.

Where ``bwrap`` is missing (some Colab or cluster images) the **rlimit** backend runs the judge in a
plain subprocess with the same limits and seccomp filter, a scratch directory and a scrubbed
environment, and warns loudly. It does NOT protect: the file system (the program can read and, with
your permissions, write or delete your files), the network, other processes (it can signal
processes of its uid), and as root with an interpreter other users cannot read, the program runs as
root and could reach the judge (the verdict lists this). As root, when the interpreter is readable
by other users (e.g. ``/usr/bin/python3`` on Colab, not a ``/root/.pyenv`` build), the fallback runs
the judge and the program under throwaway uids. Install bubblewrap (``apt-get install bubblewrap``)
before running model-written code on a machine you care about.

Command line: ``python -m infir_lib sandbox PROGRAM.py [--tests TESTS.py] [--timeout S]`` prints
the verdict as JSON and exits 0 only when the status is ``passed``.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import os
import random
import resource
import selectors
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from functools import lru_cache
from pathlib import Path

from . import sandbox_cgroup, sandbox_seccomp

STATUSES = ("passed", "failed", "timeout", "memory", "crashed", "output-too-large")
TAIL = 2000  # characters of stdout/stderr kept in a verdict

@dataclasses.dataclass
class Verdict:
    """What happened to one program. ``status`` is one of :data:`STATUSES`."""

    status: str
    seconds: float
    returncode: int | None = None
    stdout: str = ""          # tail of the program's stdout
    stderr: str = ""          # tail of its stderr
    failing_assertion: str | None = None
    detail: str = ""
    backend: str = ""
    limits: dict = dataclasses.field(default_factory=dict)     # the budget it ran under and its scope
    missing_protections: list = dataclasses.field(default_factory=list)  # what this backend/machine could not give

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "passed": self.passed}


# ---------------------------------------------------------------- backends
@lru_cache(maxsize=None)
def _bwrap_works() -> bool:
    exe = shutil.which("bwrap")
    if not exe:
        return False
    try:
        r = subprocess.run([exe, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-pid",
                            "--unshare-net", "true"], capture_output=True, timeout=20)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def available_backend() -> str:
    """``"bwrap"`` when bubblewrap is installed and works here, else ``"rlimit"`` (weaker; see module doc)."""
    forced = os.environ.get("INFIR_SANDBOX_BACKEND")
    if forced:
        if forced not in ("bwrap", "rlimit"):
            raise ValueError(f"INFIR_SANDBOX_BACKEND={forced!r}: expected 'bwrap' or 'rlimit'")
        if forced == "bwrap" and not _bwrap_works():
            raise RuntimeError("INFIR_SANDBOX_BACKEND=bwrap but bwrap is missing or does not work here")
        return forced
    return "bwrap" if _bwrap_works() else "rlimit"


_warned = False


def _warn_fallback() -> None:
    global _warned
    if not _warned:
        _warned = True
        msg = ("\n" + "!" * 78 + "\nSANDBOX WARNING: not using bubblewrap (bwrap): running untrusted code with "
               "resource limits ONLY (rlimit backend).\nThe program can read/write your files, use the network and signal your "
               "processes.\nInstall it: apt-get install bubblewrap\n" + "!" * 78)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        print(msg, file=sys.stderr)


def _count_own_processes() -> int:
    uid = os.getuid()
    n = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    n += 1
            except OSError:
                pass
    return n


_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_SYS_KEYCTL_X86_64, _KEYCTL_JOIN_SESSION_KEYRING = 250, 1


def _libc():
    return ctypes, ctypes.CDLL(None, use_errno=True)


def _install_seccomp_here(prog: bytes) -> None:
    """Load the BPF filter into this process (the rlimit backend has no bwrap to do it)."""
    ctypes, libc = _libc()

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = Fprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
            libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "could not install the seccomp filter")


def _fresh_session_keyring() -> None:
    """Join a new, empty session keyring: the host's session keyring is not inherited by the program."""
    if sandbox_seccomp.filter_bytes() is None:
        return
    try:
        _, libc = _libc()
        libc.syscall(_SYS_KEYCTL_X86_64, _KEYCTL_JOIN_SESSION_KEYRING, None)
    except Exception:
        pass


@dataclasses.dataclass
class _Plan:
    """The limits of one run and which protections are missing, as the verdict reports them."""

    rlimit_as_mb: int
    nproc: int
    limits: dict
    missing: list


def _plan(backend: str, memory_mb: int, nproc: int, timeout: float, file_mb: int, tmp_mb: int, cgroup: bool,
          uids: bool, seccomp: bool) -> _Plan:
    cpu = max(1, int(timeout + 1))
    limits = {"memory_mb": memory_mb, "processes": nproc, "cpu_s": cpu, "file_mb": file_mb}
    if backend == "bwrap":
        limits["tmp_mb"] = tmp_mb
    missing = []
    if cgroup:
        kind = sandbox_cgroup.available()[0]
        limits["scope"] = f"cgroup {kind}: memory and processes counted for the program and all its children"
        as_mb = memory_mb
    else:
        # no cgroup: per-process caps whose product stays within the budget (the judge is one more process)
        nproc = max(1, min(nproc, memory_mb // 128 - 1))
        as_mb = memory_mb // (nproc + 1)
        limits.update(processes=nproc, per_process_mb=as_mb,
                      scope=f"per process: {nproc} program processes + the judge, {as_mb} MiB each")
        missing.append("cgroup (one memory/process budget for the whole tree; per-process limits instead)")
    if not seccomp:
        missing.append("seccomp filter (no filter for this architecture)")
    if backend == "rlimit":
        missing += ["file system isolation (the program can read and write your files)",
                    "network isolation", "PID namespace (it can see and signal processes of its uid)"]
        if not uids:
            if os.geteuid() == 0:
                missing.append("verdict isolation (the program runs as root, like the judge that runs the tests)")
            missing.append("separate uids for the program and the judge (same uid: the program can kill the judge)")
    elif not uids:
        missing.append("separate uids for the program and the judge (not root: the program can kill the judge)")
    if not uids:
        limits["processes_note"] = "RLIMIT_NPROC counts every process of the uid"
    return _Plan(as_mb, nproc, limits, missing)


def _preexec(plan: _Plan, timeout: float, file_mb: int, dropped_uid: bool, cgroup, seccomp_prog: bytes | None):
    cpu = max(1, int(timeout + 1))
    # RLIMIT_NPROC counts every process of the real uid. A dropped uid starts at zero; otherwise we
    # allow the caller's current count plus ``nproc`` (root ignores it entirely: see module doc).
    nproc_limit = plan.nproc if dropped_uid else _count_own_processes() + plan.nproc + 3

    def preexec():
        if cgroup is not None:
            cgroup.join_self()
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (plan.rlimit_as_mb << 20, plan.rlimit_as_mb << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb << 20, file_mb << 20))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc_limit, nproc_limit))
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        _fresh_session_keyring()
        if seccomp_prog is not None:
            _install_seccomp_here(seccomp_prog)
    return preexec


def _python_dirs() -> list[str]:
    """What the interpreter needs to start: its prefixes and the real location of the executable."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
            os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}
    dirs = sorted(os.path.realpath(d) for d in dirs if d and os.path.isdir(d))
    return [d for d in dirs if not any(d != o and d.startswith(o + "/") for o in dirs)]


# what the dynamic loader and the C library read from /etc; nothing else of the host's /etc is visible
_ETC = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives")


def _bwrap_command(box: str, tmp_mb: int, root: bool, verdict_fd: int, seccomp_fd: int | None,
                   judge_args: list[str]) -> list[str]:
    """An allowlist: /usr and the interpreter read-only, a fresh /tmp, minimal /dev and /proc, nothing else.

    No other host path exists inside (homes, checkouts, /var, /run, /opt, /srv, /usr/local unless the
    interpreter lives there), so neither a file nor a unix socket outside the list can be reached.
    """
    cmd = ["bwrap", "--ro-bind", "/usr", "/usr"]
    pydirs = _python_dirs()
    if os.path.isdir("/usr/local") and not any(d == "/usr/local" or d.startswith("/usr/local/") or
                                              "/usr/local".startswith(d + "/") for d in pydirs):
        cmd += ["--tmpfs", "/usr/local"]
    for d in ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(d):
            cmd += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            cmd += ["--ro-bind", d, d]
    for f in _ETC:
        cmd += ["--ro-bind-try", f, f]
    cmd += ["--dev", "/dev", "--proc", "/proc"]
    if os.path.exists("/proc/keys"):
        cmd += ["--ro-bind", "/dev/null", "/proc/keys"]
    cmd += ["--perms", "01777", "--size", str(tmp_mb << 20), "--tmpfs", "/tmp"]
    made = {"/tmp", "/usr"}
    for d in pydirs:
        if d != "/usr" and not d.startswith("/usr/") or d.startswith("/usr/local"):
            parts = d.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):  # parents the program's uid can traverse (bwrap would make them 0700)
                sub = "/" + "/".join(parts[:i])
                if sub not in made:
                    made.add(sub)
                    cmd += ["--perms", "0755", "--dir", sub]
            cmd += ["--ro-bind", d, d]
    cmd += ["--ro-bind", box, "/tmp/.infir", "--chdir", "/tmp",
            "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    if not root:  # unprivileged: a user namespace is what lets bwrap do the rest
        cmd += ["--unshare-user"]
    else:         # root: keep only what the judge needs to give itself and the program uids of their own
        cmd += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    if seccomp_fd is not None:
        cmd += ["--seccomp", str(seccomp_fd)]
    cmd += ["--die-with-parent", "--new-session", "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
            "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
            "--setenv", "PYTHONHASHSEED", "0"]
    return cmd + [sys.executable, "-I", "-S", "/tmp/.infir/judge.py"] + judge_args


# ---------------------------------------------------------------- running
def _pump(proc: subprocess.Popen, stdin_data: bytes, verdict_r: int, deadline: float, max_output: int):
    """Feed the tests on stdin; read stdout, stderr and the judge's verdict until exit, deadline or too much output."""
    sel = selectors.DefaultSelector()
    os.set_blocking(proc.stdin.fileno(), False)
    if stdin_data:
        sel.register(proc.stdin, selectors.EVENT_WRITE, "in")
    else:
        proc.stdin.close()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    sel.register(verdict_r, selectors.EVENT_READ, "verdict")
    buf = {"out": bytearray(), "err": bytearray(), "verdict": bytearray()}
    total, why, pending = 0, None, memoryview(stdin_data)
    open_streams = 3
    exited_at = None
    while open_streams:
        left = deadline - time.monotonic()
        if left <= 0:
            why = "timeout"
            break
        if exited_at is None and proc.poll() is not None:
            exited_at = time.monotonic()
        elif exited_at is not None and time.monotonic() - exited_at > 0.5:
            break  # the sandbox exited but something it started still holds the pipes: stop reading
        events = sel.select(timeout=min(left, 0.1 if exited_at is not None else 0.5))
        for key, _ in events:
            if key.data == "in":
                try:
                    n = os.write(proc.stdin.fileno(), pending[:65536])
                    pending = pending[n:]
                except (BrokenPipeError, BlockingIOError) as e:
                    if isinstance(e, BrokenPipeError):
                        pending = pending[:0]
                if not len(pending):
                    sel.unregister(proc.stdin)
                    proc.stdin.close()
                continue
            fd = key.fileobj if isinstance(key.fileobj, int) else key.fileobj.fileno()
            chunk = os.read(fd, 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                open_streams -= 1
                continue
            b = buf[key.data]
            b += chunk
            if key.data == "verdict":
                if len(b) > 1 << 20:
                    del b[:]
                continue
            total += len(chunk)
            if len(b) > 4 * TAIL + 256:
                del b[: len(b) - (4 * TAIL + 256)]
            if total > max_output:
                why = "output-too-large"
                break
        if why:
            break
    sel.close()
    if not proc.stdin.closed:
        try:
            proc.stdin.close()
        except OSError:
            pass
    return (buf["out"].decode(errors="replace"), buf["err"].decode(errors="replace"), why,
            bytes(buf["verdict"]))


def _read_available(stream) -> str:
    os.set_blocking(stream.fileno(), False)
    chunks = []
    try:
        while sum(map(len, chunks)) < 4 * TAIL:
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
    except BlockingIOError:
        pass
    return b"".join(chunks)[: 4 * TAIL].decode(errors="replace")


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass


_MEMORY_MARKERS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")


def _parse_verdict(raw: bytes) -> dict | None:
    try:
        v = json.loads(raw.decode().strip().splitlines()[-1])
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    return v if isinstance(v, dict) and v.get("status") in STATUSES else None


def _classify(rc: int | None, err: str, why: str | None, judged: dict | None, oom: bool, cpu_sig: bool):
    """(status, failing assertion, detail): the judge's verdict, unless a limit the parent enforces was hit."""
    if why == "output-too-large":
        return "output-too-large", None, "output exceeded the cap"
    if why == "timeout":
        return "timeout", None, "wall-clock limit"
    if judged is not None:
        status, detail = judged["status"], str(judged.get("detail") or "")
        sig = judged.get("signal")
        if status == "passed":
            return ("passed", None, "") if rc == 0 else ("crashed", None, f"the sandbox exited with status {rc}")
        if status == "crashed" and sig == signal.SIGXCPU:
            return "timeout", None, "CPU-time limit"
        if status == "crashed" and oom:
            return "memory", None, "memory budget (cgroup: the program and its children together)"
        if status == "failed":
            return "failed", judged.get("assertion"), detail or "an assertion failed"
        return status, None, detail
    # no verdict: the judge itself did not finish (killed with the whole tree, out of memory, ...)
    if oom:
        return "memory", None, "memory budget (cgroup: the program and its children together)"
    if cpu_sig:
        return "timeout", None, "CPU-time limit"
    if any(s in err for s in _MEMORY_MARKERS):
        return "memory", None, "address-space limit"
    last = [ln for ln in err.strip().splitlines() if ln.strip()]
    return "crashed", None, "no verdict from the judge: " + (last[-1][:300] if last else f"exit status {rc}")


def _reap_uid(uid: int) -> None:
    """SIGKILL every process running under ``uid`` (a throwaway uid only this sandbox run used)."""
    for _ in range(3):
        found = False
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid:
                        found = True
                        os.kill(int(entry.name), signal.SIGKILL)
                except OSError:
                    pass
        if not found:
            return
        time.sleep(0.05)


@lru_cache(maxsize=None)
def _site_packages() -> list[str]:
    """The interpreter's site-packages, put on the judge's path by hand.

    The judge starts with ``-S``: processing the ``.pth`` files (an editable install's import hook, say)
    costs more than the rest of a short program, and none of them is needed inside the sandbox.
    """
    return [p for p in site.getsitepackages() if os.path.isdir(p)]


_PROBE_MODULES = "json, socket, collections, math, re, itertools, functools, heapq, string, hashlib, random"


@lru_cache(maxsize=None)
def _fallback_can_drop_uid() -> bool:
    """As root without bwrap: can the interpreter still import the standard library under a throwaway uid?

    (Not when it lives under a private home such as /root/.pyenv.) If it can, the rlimit backend runs
    the judge and the program under uids of their own, which stops them signalling our processes or
    writing our files and makes the process-count limit apply.
    """
    probe = f"import {_PROBE_MODULES}\nprint('ok')"
    try:
        v = run_program(probe, tests=f"import {_PROBE_MODULES}\n", backend="rlimit", timeout=20, _drop_uid=True)
    except Exception:
        return False
    return v.passed and v.stdout == "ok"


_JUDGE_SOURCE = (Path(__file__).resolve().parent / "sandbox_judge.py").read_text()


def run_program(code: str, *, tests: str | None = None, timeout: float = 5, memory_mb: int = 512,
                max_output: int = 1 << 20, file_mb: int = 16, tmp_mb: int = 64, nproc: int = 32,
                backend: str | None = None, _drop_uid: bool | None = None, _cgroup: bool | None = None) -> Verdict:
    """Run ``code`` in the sandbox, then ``tests`` against it in the judge, and return the verdict.

    ``timeout`` is wall-clock seconds (the CPU limit is the same, rounded up); ``memory_mb`` the memory
    budget of the program and all its children (a cgroup where one can be made, else per-process caps
    whose product fits); ``max_output`` bytes of stdout+stderr together; ``file_mb`` the largest file
    it may write; ``tmp_mb`` the size of its scratch /tmp (bwrap); ``nproc`` how many processes it may have.
    """
    backend = backend or available_backend()
    if backend not in ("bwrap", "rlimit"):
        raise ValueError(f"backend must be 'bwrap' or 'rlimit', got {backend!r}")
    if backend == "rlimit":
        _warn_fallback()
    root = os.geteuid() == 0
    drop = root and (backend == "bwrap" or (_drop_uid is not False and (_drop_uid or _fallback_can_drop_uid())))
    rng = random.SystemRandom()
    judge_uid = rng.randrange(61000, 62999) if drop else None
    cand_uid = rng.randrange(63000, 64999) if drop else None
    use_cgroup = sandbox_cgroup.available() is not None if _cgroup is None else \
        (_cgroup and sandbox_cgroup.available() is not None)
    prog = sandbox_seccomp.filter_bytes()
    plan = _plan(backend, memory_mb, nproc, timeout, file_mb, tmp_mb, use_cgroup, drop, prog is not None)
    box = tempfile.mkdtemp(prefix="infir-sbx-")
    scratch = cgroup = None
    fds: list[int] = []
    try:
        Path(box, "judge.py").write_text(_JUDGE_SOURCE)
        Path(box, "program.py").write_text(code)
        os.chmod(box, 0o755)
        for f in os.listdir(box):
            os.chmod(os.path.join(box, f), 0o644)
        verdict_r, verdict_w = os.pipe()
        fds += [verdict_r, verdict_w]
        pass_fds = [verdict_w]
        tests_bytes = (tests or "").encode()
        cfg = {"verdict_fd": verdict_w, "has_tests": tests is not None, "tests_len": len(tests_bytes),
               "judge_uid": judge_uid, "candidate_uid": cand_uid, "path": _site_packages()}
        if use_cgroup:
            cgroup = sandbox_cgroup.RunCgroup(memory_mb, plan.nproc + 4)  # + bwrap's two processes and the judge
        seccomp_here = None
        if backend == "bwrap":
            seccomp_fd = None
            if prog is not None:
                sr, sw = os.pipe()
                fds += [sr, sw]
                os.write(sw, prog)
                os.close(sw)
                fds.remove(sw)
                seccomp_fd = sr
                pass_fds.append(sr)
            cmd = _bwrap_command(box, tmp_mb, root, verdict_w, seccomp_fd, [json.dumps(cfg)])
            cwd, env = "/", {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        else:
            scratch = tempfile.mkdtemp(prefix="infir-scratch-")
            cmd = [sys.executable, "-I", "-S", os.path.join(box, "judge.py"), json.dumps(cfg)]
            cwd = scratch
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": scratch, "LANG": "C.UTF-8",
                   "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": scratch}
            if drop:
                os.chmod(scratch, 0o777)
            seccomp_here = prog
        preexec = _preexec(plan, timeout, file_mb, dropped_uid=drop, cgroup=cgroup, seccomp_prog=seccomp_here)
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=cwd, env=env, preexec_fn=preexec, start_new_session=True, close_fds=True,
                                pass_fds=pass_fds)
        for fd in pass_fds:
            os.close(fd)
            fds.remove(fd)
        out, err, why, raw_verdict = _pump(proc, tests_bytes, verdict_r, start + timeout, max_output)
        if why:
            _kill(proc)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _kill(proc)
            rc = proc.wait()
        _kill(proc)  # no process left behind in its session (rlimit backend; bwrap's PID namespace is gone)
        if cgroup is not None:
            cgroup.kill_all()  # and none that left the session
        if backend == "rlimit" and drop:
            _reap_uid(cand_uid)  # and none under its throwaway uids that left the session (setsid)
            _reap_uid(judge_uid)
        if not why:  # what is left in the pipes, without waiting for a writer that may still hold them
            out += _read_available(proc.stdout)
            err += _read_available(proc.stderr)
        proc.stdout.close()
        proc.stderr.close()
        seconds = time.monotonic() - start
        sig = -rc if rc is not None and rc < 0 else (rc - 128 if rc is not None and rc > 128 else 0)
        oom = cgroup is not None and cgroup.oom_kills() > 0
        judged = _parse_verdict(raw_verdict)
        status, assertion, detail = _classify(rc, err, why, judged, oom, sig == signal.SIGXCPU)
        limits = dict(plan.limits)
        if cgroup is not None:
            limits["memory_peak_mb"] = cgroup.peak_mb()
            limits["memory_oom_kills"] = cgroup.oom_kills()
        return Verdict(status=status, seconds=round(seconds, 4), returncode=rc, stdout=out.rstrip()[-TAIL:],
                       stderr=err[-TAIL:], failing_assertion=assertion, detail=detail, backend=backend,
                       limits=limits, missing_protections=list(plan.missing))
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        if cgroup is not None:
            cgroup.kill_all()
            cgroup.remove()
        shutil.rmtree(box, ignore_errors=True)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def check_solution(code: str, tests: str, **kwargs) -> Verdict:
    """A program plus its asserts: passed only if every assert ran in the judge and held."""
    return run_program(code, tests=tests, **kwargs)


def run_programs(codes: list[str], workers: int = 2, progress: bool = True, tests: list[str | None] | None = None,
                 desc: str = "sandbox", **kwargs) -> list[Verdict]:
    """Run many programs with a pool of ``workers`` (threads, each waiting on one sandboxed process)."""
    if tests is not None and len(tests) != len(codes):
        raise ValueError(f"{len(codes)} programs but {len(tests)} test blocks")
    tests = tests if tests is not None else [None] * len(codes)
    backend = kwargs.pop("backend", None) or available_backend()
    out: list[Verdict | None] = [None] * len(codes)
    bar = None
    if progress:
        from ..runtime import progress_bar  # a bar in a terminal, one summary line in a notebook (no widget)
        bar = progress_bar(total=len(codes), desc=desc, unit="program")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(run_program, c, tests=t, backend=backend, **kwargs): i
                   for i, (c, t) in enumerate(zip(codes, tests))}
        for fut in as_completed(futures):
            out[futures[fut]] = fut.result()
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------- command line
def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infir_lib sandbox",
                                     description="Run one Python program in the sandbox; print its verdict as JSON.")
    parser.add_argument("program", help="path to a .py file")
    parser.add_argument("--tests", help="a .py file of asserts run after the program, by the judge, against the program's "
                        "functions (which return plain data)")
    parser.add_argument("--timeout", type=float, default=5.0, help="wall-clock seconds (default 5)")
    parser.add_argument("--memory-mb", type=int, default=512, help="memory budget of the program and its children (default 512)")
    parser.add_argument("--backend", choices=["bwrap", "rlimit"], default=None)
    args = parser.parse_args(argv)
    try:
        code = Path(args.program).read_text()
        tests = Path(args.tests).read_text() if args.tests else None
    except OSError as e:
        print(json.dumps({"status": "error", "detail": str(e)}))
        return 2
    verdict = run_program(code, tests=tests, timeout=args.timeout, memory_mb=args.memory_mb, backend=args.backend)
    print(json.dumps(verdict.to_dict(), indent=1))
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    raise SystemExit(cli())
