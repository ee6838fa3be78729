"""Run untrusted Python (programs a model wrote) and say what happened, without letting it harm us.

Why a real isolation tool: Python-level guards (deleting ``os.system``, patching ``open``) are
undone by one ``import ctypes``. The default backend is **bubblewrap** (``bwrap``), the sandbox
Flatpak uses: the program sees a read-only root file system, a fresh size-limited ``/tmp`` as its
working directory, no home directories, no network (a new, empty network namespace), its own PID
namespace (it cannot see or signal us; when the sandbox's init dies every process in it dies) and an
empty environment. Resource limits (``setrlimit``) cap CPU seconds, address space, file size, open
files and the number of processes; the parent enforces the wall clock and the output size.
When we are root, the program additionally drops to an unprivileged uid inside the sandbox (root is
exempt from the process-count limit, and a uid of its own keeps concurrent programs apart).

Where ``bwrap`` is missing (some Colab or cluster images) the **rlimit** backend runs the program in
a plain subprocess with the same limits, a scratch directory and a scrubbed environment, and warns
loudly. It does NOT protect: the file system (the program can read and, with your permissions,
write or delete your files), the network, other processes (it can signal the parent: same uid), and
as root it cannot stop a fork bomb (root ignores ``RLIMIT_NPROC``). One mitigation: as root, when the
interpreter is readable by other users (e.g. ``/usr/bin/python3`` on Colab, not a ``/root/.pyenv``
build), the fallback runs the program under a throwaway uid, so it cannot signal your processes or
write files it does not own and the process-count limit applies; it can still read world-readable
files and use the network. Install bubblewrap (``apt-get install bubblewrap``) before running
model-written code on a machine you care about.

A verdict is passed only when the program (and its tests) ran to the end: the runner prints a
secret nonce it read from stdin after the last test, so ``os._exit(0)`` or ``sys.exit(0)`` before
the asserts does not count as a pass.

Command line: ``python -m infir_lib sandbox PROGRAM.py [--tests TESTS.py] [--timeout S]`` prints
the verdict as JSON and exits 0 only when the status is ``passed``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import resource
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from functools import lru_cache
from pathlib import Path

STATUSES = ("passed", "failed", "timeout", "memory", "crashed", "output-too-large")
TAIL = 2000  # characters of stdout/stderr kept in a verdict

# The runner executes the program, then the tests, in one namespace, then proves it got to the end
# by printing the nonce it read from stdin (the program cannot read it: stdin is consumed first).
_RUNNER = r'''
import linecache, os, sys, traceback
nonce = sys.stdin.readline().strip()
sys.stdin.close()
sys.stdin = open(os.devnull)
uid = int(os.environ.pop("INFIR_SANDBOX_UID", "0") or 0)
if uid and os.getuid() == 0:
    os.setgroups([]); os.setresgid(uid, uid, uid); os.setresuid(uid, uid, uid)
box = os.path.dirname(os.path.abspath(__file__))
def _run(name):
    path = os.path.join(box, name)
    if not os.path.exists(path):
        return
    with open(path) as f:
        src = f.read()
    linecache.cache[name] = (len(src), None, src.splitlines(True), name)
    exec(compile(src, name, "exec"), glb)
glb = {"__name__": "__main__", "__file__": "program.py", "__builtins__": __builtins__}
stage = "program"
try:
    _run("program.py")
    stage = "tests"
    _run("tests.py")
except SystemExit as e:
    if e.code not in (None, 0) or os.path.exists(os.path.join(box, "tests.py")):
        print("INFIR-SANDBOX: exited with %r during the %s" % (e.code, stage), file=sys.stderr)
        sys.stderr.flush()
        os._exit(e.code if isinstance(e.code, int) and e.code else 1)
except AssertionError as e:
    tb = traceback.extract_tb(e.__traceback__)
    frame = tb[-1] if tb else None
    line = (frame.line or "") if frame else ""
    traceback.print_exc()
    print("INFIR-SANDBOX-ASSERT: %s:%s: %s %s" % (frame.filename if frame else "?", frame.lineno if frame else "?",
          line, ("-- " + str(e)) if str(e) else ""), file=sys.stderr)
    sys.stderr.flush()
    os._exit(1)
try:
    sys.stdout.flush()
except Exception:
    pass
os.write(1, ("\n" + nonce + "\n").encode())
'''


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


def _limits(timeout: float, memory_mb: int, file_mb: int, nproc: int, drop_uid: bool):
    cpu = max(1, int(timeout + 1))
    # RLIMIT_NPROC counts every process of the real uid. A dropped uid starts at zero; otherwise we
    # allow the caller's current count plus ``nproc`` (root ignores it entirely: see module doc).
    nproc_limit = nproc if drop_uid else _count_own_processes() + nproc

    def preexec():
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb << 20, file_mb << 20))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc_limit, nproc_limit))
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return preexec


def _hidden_dirs() -> list[str]:
    """Directories replaced by empty tmpfs inside the sandbox (homes, temp dirs, the checkout's parent)."""
    dirs = ["/root", "/home", os.path.expanduser("~"), "/var/tmp", "/run", "/mnt", "/media", "/srv"]
    repo_root = Path(__file__).resolve().parents[2]  # not ..config: the sandbox must not import transformers
    if (repo_root / "pyproject.toml").is_file():  # a checkout (not site-packages): hide it and its neighbours
        dirs.append(str(repo_root.parent))
    # a dir inside the interpreter's prefix is never hidden; a dir above it is, and the prefix is bound back
    keep = [os.path.realpath(p) for p in _python_dirs()]
    out = []
    for d in dirs:
        d = os.path.realpath(d)
        if d in ("/", "/usr", "/bin", "/lib", "/etc") or not os.path.isdir(d) or d in out:
            continue
        if any(k != d and d.startswith(k + "/") for k in keep):  # inside the interpreter's prefix
            continue
        out.append(d)
    # a hidden dir inside another hidden dir is redundant and would be masked anyway
    return sorted((d for d in out if not any(d != o and d.startswith(o + "/") for o in out)), key=len)


def _python_dirs() -> list[str]:
    """What the interpreter needs to start: its prefixes and the real location of the executable."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
            os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}
    return sorted(d for d in dirs if d and os.path.isdir(d))


def _bwrap_command(box: str, tmp_mb: int, uid: int | None) -> list[str]:
    # The scratch /tmp comes first: the interpreter (a virtualenv, say) may itself live under /tmp,
    # and is bound back below like everything else that a hidden directory covers.
    cmd = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
           "--perms", "01777", "--size", str(tmp_mb << 20), "--tmpfs", "/tmp"]
    hidden = [d for d in _hidden_dirs() if d != "/tmp" and not d.startswith("/tmp/")]
    for d in hidden:
        cmd += ["--perms", "0755", "--tmpfs", d]
    made: set[str] = set()
    for d in _python_dirs():
        for h in hidden + ["/tmp"]:
            if d == h or d.startswith(h + "/"):
                # intermediate directories on the tmpfs must be traversable by the dropped uid
                parts = d[len(h):].strip("/").split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    sub = h + "/" + "/".join(parts[:i])
                    if sub not in made:
                        made.add(sub)
                        cmd += ["--perms", "0755", "--dir", sub]
                cmd += ["--ro-bind", d, d]
                break
    cmd += ["--ro-bind", box, "/tmp/.infir", "--chdir", "/tmp",
            "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    if uid is None:  # unprivileged: a user namespace is what lets bwrap do the rest
        cmd += ["--unshare-user"]
    else:            # root: keep only what the runner needs to drop to ``uid``
        cmd += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    cmd += ["--die-with-parent", "--new-session", "--clearenv",
            "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/tmp",
            "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
            "--setenv", "PYTHONHASHSEED", "0"]
    if uid is not None:
        cmd += ["--setenv", "INFIR_SANDBOX_UID", str(uid)]
    cmd += [sys.executable, "-I", "/tmp/.infir/runner.py"]
    return cmd


# ---------------------------------------------------------------- running
def _read_capped(proc: subprocess.Popen, nonce: str, deadline: float, max_output: int):
    """Feed the nonce, then read stdout/stderr until exit, deadline or too much output."""
    proc.stdin.write((nonce + "\n").encode())
    proc.stdin.close()
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    buf = {"out": bytearray(), "err": bytearray()}
    total, why = 0, None
    open_streams = 2
    exited_at = None
    while open_streams:
        left = deadline - time.monotonic()
        if left <= 0:
            why = "timeout"
            break
        if exited_at is None and proc.poll() is not None:
            exited_at = time.monotonic()
        elif exited_at is not None and time.monotonic() - exited_at > 0.5:
            break  # the program exited but something it started still holds the pipes: stop reading
        events = sel.select(timeout=min(left, 0.1 if exited_at is not None else 0.5))
        for key, _ in events:
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                open_streams -= 1
                continue
            total += len(chunk)
            b = buf[key.data]
            b += chunk
            if len(b) > 4 * TAIL + 256:
                del b[: len(b) - (4 * TAIL + 256)]
            if total > max_output:
                why = "output-too-large"
                break
        if why:
            break
    sel.close()
    return buf["out"].decode(errors="replace"), buf["err"].decode(errors="replace"), why, total


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


def _classify(rc: int | None, out: str, err: str, why: str | None, nonce: str, cpu_limit_hit: bool):
    if why == "output-too-large":
        return "output-too-large", None, "output exceeded the cap"
    if why == "timeout" or cpu_limit_hit:
        return "timeout", None, "wall-clock limit" if why == "timeout" else "CPU-time limit"
    m = re.search(r"INFIR-SANDBOX-ASSERT: (.*)", err)
    if rc == 0 and out.rstrip().endswith(nonce):
        return "passed", None, ""
    if any(s in err for s in _MEMORY_MARKERS):
        return "memory", None, "address-space limit"
    if m:
        return "failed", m.group(1).strip(), "an assertion failed"
    if rc == 0:
        return "crashed", None, "exited 0 before finishing (os._exit or a closed stdout?)"
    last = [ln for ln in err.strip().splitlines() if ln.strip()]
    return "crashed", None, (last[-1][:300] if last else f"exit status {rc}")


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
def _fallback_can_drop_uid() -> bool:
    """As root without bwrap: can the interpreter still import the standard library under a throwaway uid?

    (Not when it lives under a private home such as /root/.pyenv.) If it can, the rlimit backend runs
    programs under that uid, which stops them signalling our processes or writing our files and makes
    the process-count limit apply.
    """
    probe = "import json, socket, collections, math, re, itertools, functools, heapq, string, hashlib, random\nprint('ok')"
    try:
        v = run_program(probe, backend="rlimit", timeout=20, _drop_uid=True)
    except Exception:
        return False
    return v.passed and v.stdout == "ok"


def run_program(code: str, *, tests: str | None = None, timeout: float = 5, memory_mb: int = 512,
                max_output: int = 1 << 20, file_mb: int = 16, tmp_mb: int = 64, nproc: int = 32,
                backend: str | None = None, _drop_uid: bool | None = None) -> Verdict:
    """Run ``code`` (then ``tests``, in the same namespace) in the sandbox and return its verdict.

    ``timeout`` is wall-clock seconds (the CPU limit is the same, rounded up); ``memory_mb`` the
    address space; ``max_output`` bytes of stdout+stderr together; ``file_mb`` the largest file it
    may write; ``tmp_mb`` the size of its scratch /tmp (bwrap); ``nproc`` how many processes it may have.
    """
    backend = backend or available_backend()
    if backend not in ("bwrap", "rlimit"):
        raise ValueError(f"backend must be 'bwrap' or 'rlimit', got {backend!r}")
    if backend == "rlimit":
        _warn_fallback()
    nonce = secrets.token_hex(16)
    root = os.geteuid() == 0
    drop = root and (backend == "bwrap" or (_drop_uid is not False and (_drop_uid or _fallback_can_drop_uid())))
    uid = random.SystemRandom().randrange(61000, 64999) if drop else None
    box = tempfile.mkdtemp(prefix="infir-sbx-")
    scratch = None
    try:
        Path(box, "runner.py").write_text(_RUNNER)
        Path(box, "program.py").write_text(code)
        if tests is not None:
            Path(box, "tests.py").write_text(tests)
        os.chmod(box, 0o755)
        for f in os.listdir(box):
            os.chmod(os.path.join(box, f), 0o644)
        if backend == "bwrap":
            cmd, cwd, env = _bwrap_command(box, tmp_mb, uid), "/", {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        else:
            scratch = tempfile.mkdtemp(prefix="infir-scratch-")
            cmd = [sys.executable, "-I", os.path.join(box, "runner.py")]
            cwd = scratch
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": scratch, "LANG": "C.UTF-8",
                   "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": scratch}
            if uid is not None:
                os.chmod(scratch, 0o777)
                env["INFIR_SANDBOX_UID"] = str(uid)
        preexec = _limits(timeout, memory_mb, file_mb, nproc, drop_uid=uid is not None)
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=cwd, env=env, preexec_fn=preexec, start_new_session=True, close_fds=True)
        try:
            out, err, why, _ = _read_capped(proc, nonce, start + timeout, max_output)
        except BrokenPipeError:
            out, err, why = "", "", None
        if why:
            _kill(proc)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _kill(proc)
            rc = proc.wait()
        _kill(proc)  # no process left behind in its session (rlimit backend; bwrap's PID namespace is gone)
        if backend == "rlimit" and uid is not None:
            _reap_uid(uid)  # and none under its throwaway uid that left the session (setsid)
        if not why:  # what is left in the pipes, without waiting for a writer that may still hold them
            out += _read_available(proc.stdout)
            err += _read_available(proc.stderr)
        proc.stdout.close()
        proc.stderr.close()
        seconds = time.monotonic() - start
        # bwrap reports a child killed by signal N as exit status 128+N
        sig = -rc if rc is not None and rc < 0 else (rc - 128 if rc is not None and rc > 128 else 0)
        cpu_hit = sig in (signal.SIGXCPU, signal.SIGKILL) and seconds >= min(timeout, 1) * 0.5 and \
            not any(s in err for s in _MEMORY_MARKERS)
        status, assertion, detail = _classify(rc, out, err, why, nonce, cpu_hit and sig == signal.SIGXCPU)
        if status == "crashed" and sig:
            detail = f"killed by signal {signal.Signals(sig).name}" if sig in signal.valid_signals() else detail
        clean_out = out.rstrip()
        if clean_out.endswith(nonce):
            clean_out = clean_out[: -len(nonce)].rstrip("\n")
        err = "\n".join(ln for ln in err.splitlines() if not ln.startswith("INFIR-SANDBOX-ASSERT"))
        return Verdict(status=status, seconds=round(seconds, 4), returncode=rc, stdout=clean_out[-TAIL:],
                       stderr=err[-TAIL:], failing_assertion=assertion, detail=detail, backend=backend)
    finally:
        shutil.rmtree(box, ignore_errors=True)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def check_solution(code: str, tests: str, **kwargs) -> Verdict:
    """A program plus its asserts: passed only if every assert ran and held."""
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
        from tqdm.auto import tqdm
        bar = tqdm(total=len(codes), desc=desc)
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
    parser.add_argument("--tests", help="a .py file of asserts run after the program, in its namespace")
    parser.add_argument("--timeout", type=float, default=5.0, help="wall-clock seconds (default 5)")
    parser.add_argument("--memory-mb", type=int, default=512, help="address-space limit (default 512)")
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
