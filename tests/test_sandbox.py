"""The sandbox: verdicts, and the hostile suite (each attack contained, this process unharmed).

The hostile tests need the bubblewrap backend (the rlimit fallback does not claim to stop them);
they are skipped, loudly, where ``bwrap`` is missing. The verdict tests run on whichever backend is
available and also on the rlimit backend explicitly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infir_lib.eval import sandbox
from infir_lib.eval.sandbox import Verdict, check_solution, run_program, run_programs

BWRAP = sandbox._bwrap_works()
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="bubblewrap missing: hostile suite needs it (apt-get install bubblewrap)")
BACKENDS = ["bwrap", "rlimit"] if BWRAP else ["rlimit"]


@pytest.fixture(autouse=True)
def _parent_unharmed():
    """After every test: we are alive, our environment and cwd are unchanged, no sandbox uid remains."""
    def env():
        return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    before, cwd, pid = env(), os.getcwd(), os.getpid()
    yield
    assert os.getpid() == pid
    assert env() == before
    assert os.getcwd() == cwd
    os.kill(pid, 0)  # still signalable, i.e. alive


def _sandbox_uid_processes() -> list[str]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                uid = entry.stat().st_uid
            except OSError:
                continue
            if 61000 <= uid < 65000:
                try:
                    state = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[0]
                except OSError:
                    continue
                if state != "Z":  # a zombie is already dead, waiting for init to reap it
                    out.append(entry.name)
    return out


# ---------------------------------------------------------------- verdicts
@pytest.mark.parametrize("backend", BACKENDS)
def test_verdict_statuses(backend):
    ok = run_program("print('hello')", backend=backend)
    assert ok.status == "passed" and ok.passed and ok.stdout == "hello" and ok.backend == backend
    bad = check_solution("def f(x):\n    return x + 1\n", "assert f(1) == 3, 'off by one'\n", backend=backend)
    assert bad.status == "failed" and not bad.passed
    assert "assert f(1) == 3" in bad.failing_assertion and "off by one" in bad.failing_assertion
    good = check_solution("def f(x):\n    return x + 1\n", "assert f(1) == 2\n", backend=backend)
    assert good.passed
    crash = run_program("1/0", backend=backend)
    assert crash.status == "crashed" and "ZeroDivisionError" in crash.detail
    syntax = run_program("def f(:\n", backend=backend)
    assert syntax.status == "crashed" and "SyntaxError" in syntax.detail


@pytest.mark.parametrize("backend", BACKENDS)
def test_timeout_memory_and_output_caps(backend):
    loop = run_program("while True:\n    pass\n", timeout=1.5, backend=backend)
    assert loop.status == "timeout" and loop.seconds < 30
    hog = run_program("x = bytearray(3 * 1024 ** 3)\n", memory_mb=256, backend=backend)
    assert hog.status == "memory"
    spam = run_program("while True:\n    print('x' * 10000)\n", max_output=100_000, timeout=20, backend=backend)
    assert spam.status == "output-too-large"
    assert len(spam.stdout) <= sandbox.TAIL


@pytest.mark.parametrize("backend", BACKENDS)
def test_exit_tricks_do_not_pass(backend):
    tests = "assert False, 'the tests must run'\n"
    for trick in ("import os\nos._exit(0)\n", "import sys\nsys.exit(0)\n", "raise SystemExit\n",
                  "import os, sys\nsys.stdout.flush()\nos.close(1)\n"):
        v = check_solution(trick, tests, backend=backend)
        assert not v.passed, trick
    # printing something that looks like success is not success either
    v = check_solution("print('passed')\nimport os\nos._exit(0)\n", tests, backend=backend)
    assert not v.passed


def test_failing_without_tests_is_not_passed_and_exit_codes():
    assert run_program("import sys\nsys.exit(3)\n").status == "crashed"
    assert run_program("import sys\nsys.exit(0)\n").passed  # a program that ends with exit(0) finished
    assert run_program("exit(0)\n").passed and run_program("quit(2)\n").status == "crashed"


def test_run_programs_keeps_order_and_parallelism():
    codes = [f"print({i})" if i % 3 else f"assert {i} == -1" for i in range(9)]
    verdicts = run_programs(codes, workers=2, progress=False)
    assert [v.passed for v in verdicts] == [bool(i % 3) for i in range(9)]
    assert [v.stdout for v in verdicts if v.passed] == [str(i) for i in range(9) if i % 3]
    with pytest.raises(ValueError):
        run_programs(["pass"], tests=["", ""], progress=False)


def test_cli_json_and_exit_status(tmp_path):
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text("print(6 * 7)\n")
    bad.write_text("assert 6 * 7 == 41\n")
    for path, code in ((good, 0), (bad, 1)):
        r = subprocess.run([sys.executable, "-m", "infir_lib", "sandbox", str(path), "--timeout", "5"],
                           capture_output=True, text=True, timeout=120)
        verdict = json.loads(r.stdout)
        assert r.returncode == code, r.stderr
        assert verdict["status"] == ("passed" if code == 0 else "failed")
    assert sandbox.cli([str(tmp_path / "missing.py")]) == 2


def test_fallback_warns_loudly(monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "_warned", False)
    with pytest.warns(RuntimeWarning, match="bubblewrap"):
        v = run_program("print(1)", backend="rlimit")
    assert v.passed and "SANDBOX WARNING" in capsys.readouterr().err


def test_verdict_dict_round_trip():
    v = Verdict(status="failed", seconds=0.1, failing_assertion="tests.py:1: assert x")
    d = v.to_dict()
    assert d["passed"] is False and d["status"] == "failed"
    assert set(sandbox.STATUSES) == {"passed", "failed", "timeout", "memory", "crashed", "output-too-large"}


# ---------------------------------------------------------------- the hostile suite (bwrap)
@needs_bwrap
def test_hostile_infinite_loop_and_recursion_bombs():
    assert run_program("while True:\n    pass\n", timeout=1).status == "timeout"
    rec = run_program("def f(n):\n    return f(n + 1)\nf(0)\n", timeout=5)
    assert rec.status == "crashed" and "RecursionError" in rec.detail
    deep = run_program("import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)\n", timeout=3)
    assert not deep.passed and deep.status in ("timeout", "memory", "crashed")


@needs_bwrap
def test_hostile_fork_bomb_is_capped_and_reaped():
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    v = run_program(bomb, timeout=2, nproc=16)
    assert v.status == "timeout"
    counted = run_program("import os, time\nn = 0\nfor _ in range(200):\n    try:\n        pid = os.fork()\n"
                          "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(2)\n        os._exit(0)\n"
                          "    n += 1\nprint(n)\n", nproc=16, timeout=10)
    assert counted.passed and int(counted.stdout) < 16
    time.sleep(0.3)
    assert _sandbox_uid_processes() == []


@needs_bwrap
def test_hostile_no_process_left_behind():
    v = run_program("import subprocess\nsubprocess.Popen(['sleep', '300'], start_new_session=True)\n"
                    "import os\nif os.fork() == 0:\n    os.setsid()\n    import time\n    time.sleep(300)\nprint('spawned')\n")
    assert v.passed and v.stdout == "spawned"
    time.sleep(0.3)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "sleep 300" not in ps
    assert _sandbox_uid_processes() == []


@needs_bwrap
def test_hostile_memory_hog_and_huge_output():
    assert run_program("a = []\nwhile True:\n    a.append(bytearray(10 ** 7))\n", memory_mb=256).status == "memory"
    big = run_program("import sys\nsys.stdout.write('y' * (50 * 1024 * 1024))\n", max_output=1 << 20, timeout=20)
    assert big.status == "output-too-large"
    err = run_program("import sys\nwhile True:\n    sys.stderr.write('e' * 65536)\n", max_output=1 << 20, timeout=20)
    assert err.status == "output-too-large"


@needs_bwrap
def test_hostile_file_system(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    repo_file = Path(__file__).resolve()
    repo_text = repo_file.read_text()
    code = f"""
import os, shutil
results = []
for target in [{str(victim)!r}, {str(repo_file)!r}, '/etc/passwd', '/usr/bin/env']:
    try:
        os.remove(target); results.append('removed ' + target)
    except OSError:
        pass
    try:
        open(target, 'a').write('pwned'); results.append('wrote ' + target)
    except OSError:
        pass
for d in ['/usr', '/etc', {str(tmp_path)!r}]:
    try:
        shutil.rmtree(d); results.append('rmtree ' + d)
    except OSError:
        pass
open('scratch.txt', 'w').write('fine')        # the scratch dir is writable
assert open('scratch.txt').read() == 'fine'
print(results)
print(os.getcwd())
"""
    v = run_program(code, timeout=10)
    assert v.passed, v.stderr
    assert v.stdout.splitlines()[0] == "[]"
    assert victim.read_text() == "keep me"
    assert repo_file.read_text() == repo_text
    assert Path("/usr/bin/env").exists()
    # what it wrote in its scratch directory is gone afterwards
    sandbox_cwd = v.stdout.splitlines()[1]
    assert not Path(sandbox_cwd, "scratch.txt").exists()


@needs_bwrap
def test_hostile_file_size_limit():
    v = run_program("f = open('big.bin', 'wb')\nf.write(b'0' * (64 * 1024 * 1024))\nf.close()\n", file_mb=4, timeout=10)
    assert not v.passed


@needs_bwrap
def test_hostile_cannot_read_parent_environment(monkeypatch):
    monkeypatch.setenv("INFIR_TEST_SECRET", "hunter2-do-not-leak")
    code = """
import os, glob
seen = repr(dict(os.environ))
for path in glob.glob('/proc/*/environ'):
    try:
        seen += open(path, 'rb').read().decode(errors='replace')
    except OSError:
        pass
print(seen)
"""
    v = run_program(code)
    assert v.passed
    assert "hunter2" not in v.stdout and "INFIR_TEST_SECRET" not in v.stdout
    home = run_program("import os\nprint(os.listdir(os.path.expanduser('~')), os.path.exists('/root/.ssh'))")
    assert home.passed and "True" not in home.stdout


@needs_bwrap
def test_hostile_no_network():
    code = """
import socket
ok = []
for addr in [('1.1.1.1', 53), ('127.0.0.1', 22), ('8.8.8.8', 443)]:
    try:
        socket.create_connection(addr, timeout=2); ok.append(addr)
    except OSError:
        pass
try:
    s = socket.socket(); s.bind(('0.0.0.0', 0)); s.listen()
    other = socket.create_connection(s.getsockname(), timeout=2)
except OSError:
    pass
print(ok)
"""
    v = run_program(code, timeout=20)
    assert v.passed and v.stdout == "[]"
    ifaces = run_program("import socket\nprint(sorted(n for _, n in socket.if_nameindex()))")
    assert ifaces.stdout in ("['lo']", "[]")


@needs_bwrap
def test_hostile_cannot_kill_the_parent():
    me = os.getpid()
    code = f"""
import os, signal
hits = []
for pid in [{me}, os.getppid(), 1] + list(range(2, 4000)):
    if pid == os.getpid():
        continue
    try:
        os.kill(pid, signal.SIGKILL); hits.append(pid)
    except OSError:
        pass
try:
    os.killpg(0, signal.SIGKILL)
except OSError:
    pass
print(hits)
"""
    v = run_program(code, timeout=20)
    os.kill(me, 0)  # we are alive
    assert v.status in ("passed", "crashed")
    if v.passed:
        assert str(me) not in v.stdout


@needs_bwrap
def test_hostile_cannot_regain_privileges():
    v = run_program("import os\nprint(os.getuid(), os.geteuid())\ntry:\n    os.setuid(0); print('root')\nexcept OSError:\n    print('denied')\n")
    assert v.passed and v.stdout.splitlines()[-1] == "denied"
    if os.geteuid() == 0:
        assert v.stdout.split()[0] != "0"


SYSTEM_PY = "/usr/bin/python3"


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(SYSTEM_PY), reason="needs root and a system python")
def test_rlimit_fallback_drops_to_a_throwaway_uid_when_it_can():
    """As root without bwrap, with an interpreter other users can read: a throwaway uid, caps enforced."""
    repo = str(Path(__file__).resolve().parents[1])
    programs = {
        "uid": ("import os\nprint(os.getuid())", {}),
        "kill": ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n", {}),
        "bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
                 {"timeout": 2, "nproc": 16}),
        "write": (f"open({repo + '/pwned'!r}, 'w').write('x')\n", {}),
        "setsid": ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(300)\nprint(1)\n", {}),
    }
    script = (
        "import json, sys, warnings\n"
        f"sys.path.insert(0, {repo!r})\n"
        "warnings.simplefilter('ignore')\n"
        "from infir_lib.eval import sandbox as s\n"
        "if not s._fallback_can_drop_uid():\n"
        "    print(json.dumps({'skip': True})); raise SystemExit\n"
        f"programs = json.loads({json.dumps(json.dumps(programs))})\n"
        "out = {}\n"
        "for name, (code, kw) in programs.items():\n"
        "    v = s.run_program(code, backend='rlimit', **kw)\n"
        "    out[name] = v.stdout if name == 'uid' else v.status\n"
        "print(json.dumps(out))\n"
    )
    r = subprocess.run([SYSTEM_PY, "-c", script], capture_output=True, text=True, timeout=240, cwd="/tmp")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if out.get("skip"):
        pytest.skip("the system python cannot import its stdlib under another uid here")
    assert out["uid"] != "0" and int(out["uid"]) >= 61000
    assert out["kill"] == "crashed" and out["bomb"] == "timeout" and out["write"] == "crashed"
    assert out["setsid"] == "passed"
    assert not Path(repo, "pwned").exists()
    time.sleep(0.3)
    assert _sandbox_uid_processes() == []


# ---------------------------------------------------------------- forged verdicts (the judge decides)
_FN = "def f(x):\n    return x + 1\n"   # wrong: the tests want x + 2
_TESTS = "assert f(1) == 3\nassert f(5) == 7\n"
FORGERIES = {
    "skip the runner": "import sys\nsys.modules['__main__']._run = lambda name: None\n",
    "nonce from __main__": "import sys, os\nm = sys.modules['__main__']\nprint(getattr(m, 'nonce', ''))\nos._exit(0)\n",
    "nonce from gc and frames": (
        "import gc, os, sys\nfound = [o for o in gc.get_objects() if isinstance(o, str) and len(o) == 32]\n"
        "f = sys._getframe()\nwhile f:\n    found += [v for v in f.f_globals.values() if isinstance(v, str)]\n    f = f.f_back\n"
        "print('\\n'.join(found[-50:]))\nos._exit(0)\n"),
    "os._exit is a no-op": "import os\nos._exit = lambda *a: None\n",
    "os._exit no-op, stderr silenced": "import os, sys\nos._exit = lambda *a: None\nsys.stderr = open(os.devnull, 'w')\n",
    "sys.exit(0) with os._exit patched": "import os, sys\nos._exit = lambda *a: None\nsys.exit(0)\n",
    "atexit": "import atexit, os\natexit.register(os._exit, 0)\n",
    "always-equal object": "class A:\n    def __eq__(self, o):\n        return True\n    __hash__ = object.__hash__\n"
                           "def f(x):\n    return A()\n",
    "int subclass with a lying __eq__": "class I(int):\n    def __eq__(self, o):\n        return True\n"
                                        "    __hash__ = int.__hash__\ndef f(x):\n    return I(x)\n",
    "str subclass": "class S(str):\n    def __eq__(self, o):\n        return True\n    __hash__ = str.__hash__\n"
                    "def f(x):\n    return S('no')\n",
    "list subclass": "class L(list):\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return L()\n",
    "SystemExit from __del__": "import os\nclass D:\n    def __del__(self):\n        os._exit(0)\n"
                               "def f(x):\n    return D()\n",
    "SystemExit inside the call": "def f(x):\n    raise SystemExit(0)\n",
    "os._exit(0) inside the call": "import os\ndef f(x):\n    os._exit(0)\n",
    "write a verdict on every fd": (
        "import os, glob\nmsg = b'{\"status\": \"passed\", \"stage\": \"tests\"}\\n'\n"
        "for fd in range(3, 256):\n    try:\n        os.write(fd, msg)\n    except OSError:\n        pass\n"
        "for p in glob.glob('/proc/*/fd/*'):\n    try:\n        with open(p, 'wb') as fh:\n            fh.write(msg)\n"
        "    except OSError:\n        pass\n"),
    "fake verdict on stdout and stderr": "import sys\nprint('{\"status\": \"passed\"}')\nprint('passed', file=sys.stderr)\n",
    "patched builtins and json": (
        "import builtins, json\nbuiltins.AssertionError = type('AssertionError', (Exception,), {})\n"
        "json.dumps = lambda *a, **k: '{\"k\": \"ok\", \"v\": 3}'\n"),
    "shadow the builtins the tests use": "def abs(x):\n    return 0\ndef isinstance(*a):\n    return True\n",
    "kill the judge": "import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError:\n    pass\n",
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("trick", sorted(FORGERIES))
def test_forged_passes_do_not_pass(trick, backend):
    v = check_solution(_FN + FORGERIES[trick], _TESTS, backend=backend)
    assert not v.passed, (trick, v)
    assert v.status in ("failed", "crashed"), v
    # the same trick next to a correct function still passes: the tests really ran against it
    fixed = FORGERIES[trick].replace("return A()", "return x + 2").replace("return I(x)", "return x + 2")
    ok = check_solution("def f(x):\n    return x + 2\n" + fixed, _TESTS, backend=backend)
    if trick in ("skip the runner", "os._exit is a no-op", "os._exit no-op, stderr silenced", "atexit",
                 "fake verdict on stdout and stderr", "shadow the builtins the tests use") or \
            (trick == "kill the judge" and backend == "bwrap" and os.geteuid() == 0):  # the judge has a uid of its own
        assert ok.passed, (trick, ok)


@pytest.mark.parametrize("backend", BACKENDS)
def test_plain_data_crosses_and_exceptions_keep_their_type(backend):
    prog = ("def g(x, scale=1):\n    return {'l': [x * scale, (1.5, None)], 's': {1, 2}, 'b': b'hi', 't': True,"
            " 'big': 10 ** 30, 'c': 1j, 'nan': float('inf')}\n"
            "def h(x):\n    raise ValueError('bad ' + str(x))\n"
            "K = [1, 2]\n")
    tests = ("r = g(2, scale=3)\nassert r == {'l': [6, (1.5, None)], 's': {1, 2}, 'b': b'hi', 't': True, 'big': 10 ** 30,"
             " 'c': 1j, 'nan': float('inf')}\nassert type(r['l'][1]) is tuple and K == [1, 2]\n"
             "try:\n    h(4)\n    raise RuntimeError('no error')\nexcept ValueError as e:\n    assert 'bad 4' in str(e)\n")
    assert check_solution(prog, tests, backend=backend).passed
    gen = check_solution("def f(x):\n    return (i for i in range(x))\n", "assert list(f(3)) == [0, 1, 2]\n",
                         backend=backend)
    assert gen.status == "failed" and "not plain data" in gen.detail


@pytest.mark.parametrize("backend", BACKENDS)
def test_objects_stay_in_the_program_and_cannot_satisfy_an_assert(backend):
    prog = ("class Solution:\n    K = 3\n    def __init__(self, a=1):\n        self.a = a\n"
            "    def f(self, x):\n        return x + self.a\n"
            "class Liar:\n    def __eq__(self, o):\n        return True\n    def __bool__(self):\n        return True\n"
            "def g(x):\n    return Liar()\n")
    ok = check_solution(prog, "s = Solution(2)\nassert s.f(1) == 3 and s.a == 2 and Solution.K == 3\n", backend=backend)
    assert ok.passed, ok  # methods and attributes of the program's objects work through handles
    for test in ("assert g(1) == 1", "assert g(1)", "assert 1 == g(1)", "assert g(1) != 2", "assert g(1) in [1]",
                 "assert [g(1)] == [1]", "assert sorted(g(1)) == []"):
        v = check_solution(prog, test + "\n", backend=backend)
        assert v.status == "failed" and "not plain data" in v.detail, (test, v)


def test_wire_format_refuses_what_is_not_plain():
    from infir_lib.eval import sandbox_judge as J

    class I(int):
        pass
    for bad in (I(3), [I(3)], {"a": object()}, type("L", (list,), {})()):
        with pytest.raises(J.NotPlain):
            J.encode(bad)
    value = {"a": [1, (2.5, "x")], (1, 2): {3}, "z": frozenset({b"q"}), "n": None, "big": -(10 ** 40)}
    assert J.decode(json.loads(json.dumps(J.encode(value)))) == value
    for bad in ([1, 2], {"list": "x"}, {"eval": "1"}, {"int": 5}, {"a": 1, "b": 2}, {"dict": [[1]]}):
        with pytest.raises(J.NotPlain):
            J.decode(bad)


@needs_bwrap
def test_the_program_cannot_read_the_tests_or_the_judge():
    secret = "assert f(2) == 4  # SECRET-EXPECTED-VALUE-91823\n"
    code = """
import glob, os
seen = []
for p in ['/tmp/.infir/tests.py'] + glob.glob('/proc/*/cmdline') + glob.glob('/proc/*/environ') + glob.glob('/proc/*/mem') \\
        + glob.glob('/proc/*/fd/0') + glob.glob('/proc/*/maps'):
    try:
        with open(p, 'rb') as fh:
            seen.append(fh.read(1 << 20))
    except OSError:
        pass
print(b'SECRET-EXPECTED' in b''.join(seen), len(seen))
def f(x):
    return x * 2
"""
    v = check_solution(code, secret)
    assert v.passed, v
    assert v.stdout.split()[0] == "False"


@needs_bwrap
def test_allowlist_file_system_and_no_host_socket(tmp_path):
    import socket
    sock_dir = Path(tempfile_dir := "/var/tmp") / f"infir-test-{os.getpid()}"
    sock_dir.mkdir(exist_ok=True)
    os.chmod(sock_dir, 0o755)
    path = str(sock_dir / "s.sock")
    srv = socket.socket(socket.AF_UNIX)
    try:
        srv.bind(path)
        os.chmod(path, 0o777)
        srv.listen()
        repo = Path(__file__).resolve().parents[1]
        code = f"""
import os, socket
visible = [p for p in [{str(repo / 'pyproject.toml')!r}, {tempfile_dir!r}, '/var', '/opt', '/home', '/srv', '/run',
                       '/etc/passwd', '/etc/hostname', '/root/.ssh', {str(tmp_path)!r}] if os.path.exists(p)]
s = socket.socket(socket.AF_UNIX)
try:
    s.connect({path!r}); visible.append('socket')
except OSError:
    pass
print(visible, os.path.exists('/usr/bin/env'), sorted(os.listdir('/tmp')))
"""
        v = run_program(code, timeout=10)
        assert v.passed, v
        assert v.stdout.startswith("[] True"), v.stdout
    finally:
        srv.close()
        Path(path).unlink(missing_ok=True)
        sock_dir.rmdir()


SECCOMP_PROBE = """
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def call(*a):
    r = libc.syscall(*a)
    return 'ok' if r >= 0 else errno.errorcode.get(ctypes.get_errno(), '?')
out = {
    'keyctl': call(250, 0, -3, 0),              # KEYCTL_GET_KEYRING_ID of the session keyring
    'unshare': call(272, 0x10000000),           # CLONE_NEWUSER
    'ptrace': call(101, 16, os.getppid(), 0, 0),  # PTRACE_ATTACH to the judge
    'mount': call(165, b'none', b'/tmp', b'tmpfs', 0, None),
    'clone_newns': call(56, 0x00020000 | 17, 0, 0, 0, 0),
    'bpf': call(321, 0, 0, 0),
}
try:
    out['proc_keys'] = 'read' if open('/proc/keys').read() else 'empty'
except OSError:
    out['proc_keys'] = 'denied'
if os.fork() == 0:
    os._exit(0)
os.wait()
import threading, subprocess
t = threading.Thread(target=lambda: None); t.start(); t.join()
out['subprocess'] = subprocess.run(['true']).returncode
print(out)
"""


@needs_bwrap
@pytest.mark.skipif(sandbox.sandbox_seccomp.filter_bytes() is None, reason="no seccomp filter for this architecture")
def test_seccomp_refuses_keyrings_namespaces_ptrace_mount():
    v = run_program(SECCOMP_PROBE, timeout=10)
    assert v.passed, v
    out = eval(v.stdout)
    assert {out[k] for k in ("keyctl", "unshare", "ptrace", "mount", "clone_newns", "bpf")} == {"EPERM"}, out
    assert out["proc_keys"] in ("denied", "empty") and out["subprocess"] == 0  # fork, threads, subprocess still work
    assert v.missing_protections == []


@pytest.mark.skipif(sandbox.sandbox_seccomp.filter_bytes() is None, reason="no seccomp filter for this architecture")
def test_seccomp_also_in_the_rlimit_fallback():
    v = run_program(SECCOMP_PROBE, timeout=10, backend="rlimit")
    assert v.passed, v
    out = eval(v.stdout)
    assert out["keyctl"] == out["unshare"] == out["mount"] == "EPERM"
    assert any("file system isolation" in m for m in v.missing_protections)


MEMORY_SPLIT = """
import os, select, time
r, w = os.pipe()
kids = []
for _ in range(5):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        try:
            block = b'x' * (100 << 20)
            os.write(w, os.getpid().to_bytes(8, 'little'))
        except MemoryError:
            os._exit(3)
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
reported, dead = set(), set()
def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        dead.add(pid)
while len(reported | dead) < len(kids):
    reap()
    if select.select([r], [], [], 0.05)[0]:
        data = os.read(r, 4096)
        reported.update(int.from_bytes(data[i:i + 8], 'little') for i in range(0, len(data), 8))
for _ in range(10):
    time.sleep(0.02)
    reap()
print(len(kids), len(reported - dead))
"""


@needs_bwrap
@pytest.mark.skipif(sandbox.sandbox_cgroup.available() is None, reason="no writable cgroup here")
def test_one_memory_budget_for_the_program_and_its_children():
    v = run_program(MEMORY_SPLIT, memory_mb=256, timeout=30)
    assert "cgroup" in v.limits["scope"] and v.limits["memory_mb"] == 256
    assert v.limits["memory_peak_mb"] is not None and v.limits["memory_peak_mb"] <= 256
    assert v.limits["memory_oom_kills"] > 0  # five children of 100 MiB asked for more than the budget
    if v.passed:
        forked, alive = map(int, v.stdout.split())
        assert alive * 100 <= 256


def test_without_a_cgroup_per_process_limits_fit_the_budget():
    v = run_program(MEMORY_SPLIT, memory_mb=512, timeout=30, _cgroup=False)
    lim = v.limits
    assert (lim["processes"] + 1) * lim["per_process_mb"] <= 512
    assert any(m.startswith("cgroup") for m in v.missing_protections)
    if v.passed:
        forked, alive = map(int, v.stdout.split())
        assert alive * 100 <= 512


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(SYSTEM_PY) or not BWRAP or not Path("/usr/bin/setpriv").exists(),
                    reason="needs root (to become an ordinary user), a system python, bwrap and setpriv")
def test_unprivileged_bwrap_keeps_the_judge_out_of_reach():
    """As an ordinary user (bwrap in a user namespace; judge and program share a uid): still no forged pass,
    and the program cannot open the judge's /proc files (it is undumpable before the fork)."""
    import shutil
    import tempfile
    tmp_path = Path(tempfile.mkdtemp(prefix="infir-unpriv-"))  # pytest's tmp_path is not traversable by others
    lib = tmp_path / "lib"
    shutil.copytree(Path(sandbox.__file__).resolve().parents[1], lib / "infir_lib",
                    ignore=shutil.ignore_patterns("__pycache__", "data"))
    os.chmod(tmp_path, 0o755)
    for d, _, files in os.walk(tmp_path):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    probe = ("import glob, os\nopened = []\nfor p in glob.glob('/proc/%d/*' % os.getppid()):\n    try:\n"
             "        os.close(os.open(p + ('/0' if p.endswith('/fd') else ''), os.O_RDONLY | os.O_NONBLOCK))\n"
             "        opened.append(os.path.basename(p))\n    except OSError:\n        pass\n"
             "print(sorted(set(opened) & {'mem', 'environ', 'fd', 'maps'}))\ndef f(x):\n    return x + 2\n")
    script = (
        "import json, sys, types, warnings\nwarnings.simplefilter('ignore')\n"
        f"sys.path.insert(0, {str(lib)!r})\n"
        f"for name, path in (('infir_lib', {str(lib / 'infir_lib')!r}), ('infir_lib.eval', {str(lib / 'infir_lib/eval')!r})):\n"
        "    m = types.ModuleType(name); m.__path__ = [path]; sys.modules[name] = m\n"
        "from infir_lib.eval import sandbox as s\n"
        f"tricks = json.loads({json.dumps(json.dumps(FORGERIES))})\n"
        "out = {'backend': s.available_backend(), 'forged': [k for k, t in tricks.items()\n"
        f"        if s.check_solution({_FN!r} + t, {_TESTS!r}).passed]}}\n"
        f"v = s.check_solution({probe!r}, 'assert f(1) == 3\\n')\n"
        "out['probe'] = [v.status, v.stdout]\nout['missing'] = v.missing_protections\n"
        "print(json.dumps(out))\n")
    try:
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SYSTEM_PY, "-c", script],
                           capture_output=True, text=True, timeout=240, cwd=str(lib))
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if out["backend"] != "bwrap":
        pytest.skip("bubblewrap does not work for an ordinary user here (no user namespaces)")
    assert out["forged"] == []
    assert out["probe"] == ["passed", "[]"], out
    assert any("separate uids" in m for m in out["missing"])
