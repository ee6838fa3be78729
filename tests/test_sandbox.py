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
