"""The trusted half of a sandbox run: it runs the tests and decides the verdict; the program cannot reach it.

This file is copied into each sandbox and run there as ``python -I judge.py`` (standard library only: the
checkout is not visible inside). It reads its settings and the tests from stdin, then forks the
**candidate**: a child that closes stdin and the verdict pipe, drops to a uid of its own (when the
sandbox runs as root), executes the program and from then on only *computes*: it answers calls
``name(*args, **kwargs)`` over a pair of pipes with plain data (None/bool/int/float/complex/str/bytes and
lists/tuples/dicts/sets of those, tagged JSON). The judge runs the tests in its own interpreter, where
every function the program defined is a :class:`Remote` that forwards the call; the comparisons
(``assert f(x) == y``) therefore run on values the judge decoded itself, so an object with a lying
``__eq__``, a patched ``os._exit`` or ``sys.modules['__main__']`` in the program, a forged "passed" line
on stdout or a nonce read from memory change nothing: the verdict goes out on a pipe only the judge
holds. The tests never enter the candidate's memory (the fork happens before they are read), and the
judge makes itself undumpable, so a same-uid candidate cannot read them through /proc either.
"""

import builtins
import json
import os
import signal
import sys
import traceback

MAX_MESSAGE = 16 << 20   # bytes of one reply from the candidate
MAX_DEPTH = 200          # nesting of a plain value


class NotPlain(TypeError):
    """A value that is not plain data (or a malformed message)."""


# ---------------------------------------------------------------- the wire format (both sides)
def encode(x, depth=0):
    """A plain value as tagged JSON; exact types only, so a subclass with a lying ``__eq__`` is refused."""
    if depth > MAX_DEPTH:
        raise NotPlain("value nested too deeply")
    t = type(x)
    if x is None or t is bool or t is str:
        return x
    if t is int:
        return {"int": str(x)} if abs(x) > 2 ** 53 else x
    if t is float:
        return {"float": repr(x)}
    if t is complex:
        return {"complex": [repr(x.real), repr(x.imag)]}
    if t is bytes:
        return {"bytes": x.hex()}
    if t in (list, tuple, set, frozenset):
        return {t.__name__: [encode(v, depth + 1) for v in x]}
    if t is dict:
        return {"dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in x.items()]}
    if isinstance(x, Remote):
        return {"ref": x._key}
    raise NotPlain(f"{t.__module__}.{t.__qualname__} is not plain data "
                   "(None/bool/int/float/complex/str/bytes, list/tuple/dict/set of those)")


def decode(node, refs=None, depth=0):
    """Tagged JSON back to a plain value built here, from trusted constructors only."""
    if depth > MAX_DEPTH:
        raise NotPlain("value nested too deeply")
    t = type(node)
    if node is None or t is bool or t is str:
        return node
    if t is int:
        return node
    if t is not dict or len(node) != 1:
        raise NotPlain(f"malformed value {str(node)[:80]!r}")
    (tag, v), = node.items()
    if tag == "int" and type(v) is str:
        return int(v)
    if tag == "float" and type(v) is str:
        return float(v)
    if tag == "complex" and type(v) is list and len(v) == 2 and all(type(p) is str for p in v):
        return complex(float(v[0]), float(v[1]))
    if tag == "bytes" and type(v) is str:
        return bytes.fromhex(v)
    if tag in ("list", "tuple", "set", "frozenset") and type(v) is list:
        items = [decode(e, refs, depth + 1) for e in v]
        return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
    if tag == "dict" and type(v) is list:
        out = {}
        for pair in v:
            if type(pair) is not list or len(pair) != 2:
                raise NotPlain("malformed dict entry")
            out[decode(pair[0], refs, depth + 1)] = decode(pair[1], refs, depth + 1)
        return out
    if tag == "ref" and type(v) is str and refs is not None:
        if v not in refs:
            raise NotPlain(f"unknown function {v!r}")
        return refs[v]
    raise NotPlain(f"malformed value with tag {str(tag)[:40]!r}")


def send(fd, obj):
    data = (json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


class LineReader:
    """Reads newline-terminated messages from a pipe; refuses one longer than ``MAX_MESSAGE``."""

    def __init__(self, fd):
        self.fd, self.buf = fd, bytearray()

    def read(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 1]
                return json.loads(line)
            if len(self.buf) > MAX_MESSAGE:
                raise NotPlain("reply larger than %d bytes" % MAX_MESSAGE)
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buf += chunk


def _drop_to(uid):
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def _undumpable():
    """PR_SET_DUMPABLE 0: /proc/<pid>/mem, /fd and ptrace of the judge need privileges a candidate lacks."""
    try:
        import ctypes  # lazy: a judge starts per program; load what this path needs
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)
    except Exception:
        pass


def _exc_line(e):
    return f"{type(e).__name__}: {e}"[:300]


def _assert_location(e, filename):
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == filename] or \
        traceback.extract_tb(e.__traceback__)[-1:]
    if not frames:
        return "?"
    f = frames[-1]
    return "%s:%s: %s %s" % (f.filename, f.lineno, f.line or "", ("-- " + str(e)) if str(e) else "")


# ---------------------------------------------------------------- the candidate (untrusted after exec)
def candidate_main(box, req_fd, rep_fd, has_tests):
    """Run the program, then serve calls until EOF. Whatever the program does here only affects this process."""
    reader = LineReader(req_fd)
    glb = {"__name__": "__main__", "__file__": "program.py", "__builtins__": builtins}
    path = os.path.join(box, "program.py")
    with open(path) as f:
        src = f.read()
    import linecache  # lazy: a judge starts per program; load what this path needs
    linecache.cache["program.py"] = (len(src), None, src.splitlines(True), "program.py")
    try:
        exec(compile(src, "program.py", "exec"), glb)
    except SystemExit as e:
        _flush()
        send(rep_fd, {"k": "exit", "code": e.code if isinstance(e.code, (int, type(None))) else str(e.code)})
        os._exit(0)
    except BaseException as e:
        traceback.print_exc()
        _flush()
        send(rep_fd, {"k": "raised", "type": type(e).__name__, "msg": str(e)[:300], "memory": isinstance(e, MemoryError),
                      "assertion": _assert_location(e, "program.py") if isinstance(e, AssertionError) else None})
        os._exit(1)
    _flush()
    names = {}
    if has_tests:
        for name, v in list(glb.items()):
            if name.startswith("__"):
                continue
            if type(v).__name__ == "module":
                names[name] = {"module": getattr(v, "__name__", name)}
            elif callable(v):
                names[name] = {"call": True}
            else:
                try:
                    names[name] = {"value": encode(v)}
                except (NotPlain, RecursionError, ValueError):
                    pass
    send(rep_fd, {"k": "ready", "names": names})
    funcs = {n: glb[n] for n, kind in names.items() if "call" in kind}
    while True:
        msg = reader.read()
        if msg is None:
            os._exit(0)
        try:
            fn = funcs[msg["f"]]
            if msg.get("k") == "getattr":
                result = getattr(fn, str(msg["n"]))
            else:
                args = decode(msg["a"], funcs)
                kwargs = decode(msg["kw"], funcs)
                result = fn(*args, **kwargs)
            _flush()
            try:
                reply = {"k": "ok", "v": encode(result)}
            except (NotPlain, RecursionError):
                # an object (an instance, a bound method): it stays here; the judge gets a handle it can
                # only call or take attributes of, never compare or test for truth
                if len(funcs) > 100000:
                    raise NotPlain("too many objects handed out")
                key = "#%d" % len(funcs)
                funcs[key] = result
                reply = {"k": "handle", "h": key, "type": type(result).__name__[:80]}
        except BaseException as e:  # SystemExit and KeyboardInterrupt too: the judge decides what they mean
            _flush()
            reply = {"k": "raised", "type": type(e).__name__, "msg": str(e)[:300], "memory": isinstance(e, MemoryError),
                     "notplain": isinstance(e, NotPlain)}
        try:
            send(rep_fd, reply)
        except (ValueError, RecursionError, TypeError) as e:  # e.g. a nan inside, or too deep for json
            send(rep_fd, {"k": "raised", "type": type(e).__name__, "msg": str(e)[:300], "notplain": True})


def _flush():
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            pass


# ---------------------------------------------------------------- the judge (trusted)
class CandidateGone(Exception):
    """The program's process ended (or broke the protocol) while the tests still needed it."""


class Channel:
    def __init__(self, pid, req_fd, rep_fd):
        self.pid, self.req_fd, self.reader = pid, req_fd, LineReader(rep_fd)
        self.refs = {}
        self.status = None

    def reply(self):
        try:
            msg = self.reader.read()
        except (NotPlain, ValueError, RecursionError) as e:
            raise CandidateGone(f"broke the protocol ({_exc_line(e)})")
        if msg is None:
            raise CandidateGone("the program's process ended")
        if type(msg) is not dict:
            raise CandidateGone("broke the protocol (not a message)")
        return msg

    def call(self, name, args, kwargs, attr=None):
        if attr is not None:
            payload = {"k": "getattr", "f": name, "n": attr}
        else:
            try:
                payload = {"k": "call", "f": name, "a": encode(list(args)), "kw": encode(dict(kwargs))}
            except NotPlain as e:
                raise TypeError(f"cannot pass this argument to the program's {name}(): {e}") from None
        try:
            send(self.req_fd, payload)
        except OSError:
            raise CandidateGone("the program's process ended") from None
        msg = self.reply()
        if msg.get("k") == "ok":
            try:
                return decode(msg.get("v"))
            except (NotPlain, ValueError, RecursionError, OverflowError) as e:
                raise NotPlain(f"{name}() returned a value that is not plain data: {e}") from None
        if msg.get("k") == "handle" and type(msg.get("h")) is str:
            return Remote(self, msg["h"], f"<a {str(msg.get('type'))[:80]} from the program>")
        if msg.get("k") == "raised":
            tname, text = str(msg.get("type"))[:80], str(msg.get("msg"))[:300]
            if msg.get("memory"):
                raise MemoryError(f"in the program's {name}(): {text}")
            if msg.get("notplain"):
                raise NotPlain(f"{name}() returned a value that is not plain data: {text}")
            cls = getattr(builtins, tname, None)
            if isinstance(cls, type) and issubclass(cls, Exception) and cls not in (SystemExit,):
                try:
                    err = cls(text)
                except Exception:
                    err = RuntimeError(f"{tname}: {text}")
            else:
                err = RuntimeError(f"the program's {name}() raised {tname}: {text}")
            raise err
        raise CandidateGone("broke the protocol (unknown reply)")


class Remote:
    """A function or object of the program, living in the candidate's process.

    The judge may call it or take an attribute of it (each a round trip that returns plain data or
    another handle); comparing it, testing its truth or iterating it raises :class:`NotPlain`, so an
    object with a lying ``__eq__`` or ``__bool__`` can never satisfy an assert.
    """

    def __init__(self, channel, key, name=None):
        self._channel, self._key, self.__name__ = channel, key, name or key

    def __call__(self, *args, **kwargs):
        return self._channel.call(self._key, args, kwargs)

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return self._channel.call(self._key, (), {}, attr=attr)

    def _refuse(self, *_):
        raise NotPlain(f"{self.__name__} is not plain data: it cannot be compared, tested or iterated")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __len__ = __iter__ = __contains__ = _refuse
    __getitem__ = __hash__ = __index__ = __int__ = __float__ = __add__ = __radd__ = __sub__ = __mul__ = _refuse

    def __repr__(self):
        return f"<program object {self.__name__}>"


def _candidate_end(pid):
    """How the candidate ended: (exit code or None, signal number or None), waiting briefly."""
    import time  # lazy: a judge starts per program; load what this path needs
    for _ in range(50):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None, None
        if done:
            if os.WIFSIGNALED(status):
                return None, os.WTERMSIG(status)
            return os.WEXITSTATUS(status), None
        time.sleep(0.01)
    return None, None


def _gone_verdict(chan, stage, why):
    code, sig = _candidate_end(chan.pid)
    detail = f"{why} during the {stage}"
    if sig:
        name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
        detail += f" (killed by signal {name})"
    elif code is not None:
        detail += f" (exit status {code})"
    return {"status": "crashed", "detail": detail, "signal": sig, "stage": stage}


def _read_tests(n):
    """Exactly ``n`` bytes from stdin into one preallocated buffer (no stray copies), before the fork."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = os.readv(0, [view[got:]])
        if k == 0:
            break
        got += k
    return buf, got


def judge_main():
    box = os.path.dirname(os.path.abspath(__file__))
    cfg = json.loads(sys.argv[1])  # settings on the command line (not secret)
    sys.path.extend(p for p in cfg.get("path", []) if p not in sys.path)  # started with -S: no .pth files
    if not hasattr(builtins, "exit"):  # what -S leaves out that programs do call
        def _quit(code=None):
            raise SystemExit(code)
        builtins.exit = builtins.quit = _quit
    verdict_fd = int(cfg["verdict_fd"])
    os.set_inheritable(verdict_fd, False)
    has_tests = bool(cfg["has_tests"])
    # The tests are read to the end *before* the program exists, so it can never take them from the
    # pipe (through /proc/<pid>/fd); the candidate wipes its copy of the buffer right after the fork.
    # Undumpable first: from the fork on, a same-uid program cannot open this process's /proc files.
    _undumpable()
    buf, got = _read_tests(int(cfg.get("tests_len", 0))) if has_tests else (bytearray(), 0)
    null = os.open(os.devnull, os.O_RDONLY)  # stdin from now on, for the judge and the candidate
    os.dup2(null, 0)
    os.close(null)
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the candidate
        try:
            buf[0:len(buf)] = bytes(len(buf))
            os.close(verdict_fd)
            os.close(req_w)
            os.close(rep_r)
            if cfg.get("candidate_uid"):
                _drop_to(int(cfg["candidate_uid"]))
            candidate_main(box, req_r, rep_w, has_tests)
        finally:
            os._exit(1)
    os.close(req_r)
    os.close(rep_w)
    if cfg.get("judge_uid"):
        _drop_to(int(cfg["judge_uid"]))
        _undumpable()  # a change of uid resets the flag to the system default
    chan = Channel(pid, req_w, rep_r)
    if has_tests and got != len(buf):
        verdict = {"status": "crashed", "stage": "tests", "detail": f"received {got} of {len(buf)} bytes of tests"}
    else:
        verdict = _judge(chan, buf.decode(errors="replace") if has_tests else None)
    _flush()
    send(verdict_fd, verdict)
    os.close(verdict_fd)
    try:
        os.kill(pid, signal.SIGKILL)  # the rlimit backend has no PID namespace to end it
    except OSError:
        pass
    os._exit(0)


def _print_tb(e):
    """The traceback from the tests' frames on (the judge's own frame says nothing useful)."""
    tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
    traceback.print_exception(type(e), e, tb)


def _judge(chan, tests):
    try:
        ready = chan.reply()
    except CandidateGone as e:
        return _gone_verdict(chan, "program", str(e))
    kind = ready.get("k")
    if kind == "exit":
        code = ready.get("code")
        if code in (None, 0) and tests is None:
            return {"status": "passed", "stage": "program"}
        return {"status": "crashed", "stage": "program", "detail": f"exited with {code!r} during the program"}
    if kind == "raised":
        if ready.get("memory"):
            return {"status": "memory", "stage": "program", "detail": "MemoryError in the program"}
        line = f"{str(ready.get('type'))[:80]}: {str(ready.get('msg'))[:300]}"
        if ready.get("type") == "AssertionError" and ready.get("assertion"):
            return {"status": "failed", "stage": "program", "assertion": str(ready["assertion"])[:500],
                    "detail": "an assertion failed"}
        return {"status": "crashed", "stage": "program", "detail": line}
    if kind != "ready" or type(ready.get("names")) is not dict:
        return {"status": "crashed", "stage": "program", "detail": "the program broke the protocol"}
    if tests is None:
        return {"status": "passed", "stage": "program"}
    ns = {"__name__": "__main__", "__file__": "tests.py", "__builtins__": builtins}
    for name, spec in ready["names"].items():
        # a program's ``abs``/``len``/``isinstance`` must not replace the builtins the tests compare with
        if type(name) is not str or not name.isidentifier() or type(spec) is not dict or hasattr(builtins, name):
            continue
        try:
            if "call" in spec:
                ns[name] = chan.refs[name] = Remote(chan, name)
            elif "value" in spec:
                ns[name] = decode(spec["value"])
            elif "module" in spec and type(spec["module"]) is str:
                # only a standard-library module under its own name (``import math``, ``from os import
                # path``): the program may not alias a name the tests use to some other module
                top, last = spec["module"].split(".")[0], spec["module"].split(".")[-1]
                if top in sys.stdlib_module_names and last == name and top != "unittest":
                    import importlib  # lazy: a judge starts per program; load what this path needs
                    ns[name] = importlib.import_module(spec["module"])
        except Exception:
            continue
    import linecache  # lazy: a judge starts per program; load what this path needs
    linecache.cache["tests.py"] = (len(tests), None, tests.splitlines(True), "tests.py")
    try:
        exec(compile(tests, "tests.py", "exec"), ns)
    except CandidateGone as e:
        return _gone_verdict(chan, "tests", str(e))
    except NotPlain as e:
        _print_tb(e)
        return {"status": "failed", "stage": "tests", "assertion": _assert_location(e, "tests.py"),
                "detail": _exc_line(e)}
    except AssertionError as e:
        _print_tb(e)
        return {"status": "failed", "stage": "tests", "assertion": _assert_location(e, "tests.py"),
                "detail": "an assertion failed"}
    except MemoryError as e:
        return {"status": "memory", "stage": "tests", "detail": _exc_line(e)}
    except SystemExit as e:
        return {"status": "crashed", "stage": "tests", "detail": f"exited with {e.code!r} during the tests"}
    except BaseException as e:
        _print_tb(e)
        return {"status": "crashed", "stage": "tests", "detail": _exc_line(e)}
    return {"status": "passed", "stage": "tests"}


if __name__ == "__main__":
    judge_main()
