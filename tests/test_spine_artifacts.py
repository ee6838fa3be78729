"""The artifact cache: hit on the same spec, atomic builds, corrupt or partial copies rebuilt."""

import threading

import pytest

from infir_lib import artifacts


def builder(calls, text="hello"):
    def build(folder):
        calls.append(1)
        (folder / "a.txt").write_text(text)
        (folder / "sub").mkdir()
        (folder / "sub" / "b.bin").write_bytes(b"\x00\x01" * 100)
    return build


def test_same_spec_builds_once(isolated_cache):
    calls = []
    a = artifacts.cached("thing", {"x": 1}, builder(calls))
    b = artifacts.cached("thing", {"x": 1}, builder(calls))
    c = artifacts.cached("thing", {"x": 2}, builder(calls))
    assert a == b != c and len(calls) == 2
    assert (a / "a.txt").read_text() == "hello" and artifacts.verify(a)[0]


def test_corrupt_artifact_is_rebuilt(isolated_cache):
    calls = []
    a = artifacts.cached("thing", {"x": 1}, builder(calls))
    (a / "sub" / "b.bin").write_bytes(b"garbage")
    assert not artifacts.verify(a)[0]
    assert artifacts.cached("thing", {"x": 1}, builder(calls), log=lambda m: None) == a
    assert len(calls) == 2 and artifacts.verify(a)[0]


def test_partial_artifact_without_manifest_is_rebuilt(isolated_cache):
    calls = []
    a = artifacts.cached("thing", {"x": 1}, builder(calls))
    (a / artifacts.MANIFEST).unlink()
    artifacts.cached("thing", {"x": 1}, builder(calls), log=lambda m: None)
    assert len(calls) == 2


def test_failed_build_leaves_nothing(isolated_cache):
    def bad(folder):
        (folder / "half.txt").write_text("x")
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        artifacts.cached("thing", {"x": 3}, bad)
    kind_dir = isolated_cache / "thing"
    assert [p.name for p in kind_dir.iterdir() if not p.name.endswith(".lock")] == []


def test_concurrent_requests_build_once(isolated_cache):
    calls, results = [], []

    def slow(folder):
        calls.append(1)
        import time
        time.sleep(0.3)
        (folder / "a.txt").write_text("x")

    threads = [threading.Thread(target=lambda: results.append(artifacts.cached("thing", {"c": 1}, slow)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1


def test_spec_hash_is_order_independent():
    assert artifacts.spec_hash({"a": 1, "b": 2}) == artifacts.spec_hash({"b": 2, "a": 1})
    assert artifacts.spec_hash({"a": 1}) != artifacts.spec_hash({"a": 2})


def test_spec_without_local_files_keeps_its_key():
    """Content hashing adds nothing for specs that name no local file, so toy presets keep their cache keys."""
    import hashlib
    import json

    from infir_lib import __version__

    spec = {"datasets": ["toy:simple"], "base_config": "configs/toy/pretrain.yaml", "lr": 3e-3}
    blob = json.dumps({"format": artifacts.CACHE_FORMAT, "version": __version__, "spec": spec}, sort_keys=True)
    assert artifacts.local_inputs(spec) == {}
    assert artifacts.spec_hash(spec) == hashlib.sha256(blob.encode()).hexdigest()[:16]


def test_key_covers_the_contents_of_local_files(isolated_cache, tmp_path):
    data = tmp_path / "docs"
    data.mkdir()
    (data / "a.jsonl").write_text('{"text": "one"}\n')
    calls = []
    spec_file, spec_dir = {"datasets": [str(data / "a.jsonl")]}, {"source": str(data)}
    first = artifacts.cached("thing", spec_file, builder(calls))
    first_dir = artifacts.artifact_dir("thing", spec_dir)
    assert artifacts.cached("thing", spec_file, builder(calls)) == first and len(calls) == 1
    (data / "a.jsonl").write_text('{"text": "two"}\n')  # same path, new contents
    assert artifacts.cached("thing", spec_file, builder(calls)) != first and len(calls) == 2
    assert artifacts.artifact_dir("thing", spec_dir) != first_dir  # a folder of files too
    (data / "b.jsonl").write_text('{"text": "three"}\n')
    assert artifacts.artifact_dir("thing", spec_dir) != first_dir


KILLED_BUILD = """
import os, signal, sys
from infir_lib import artifacts

def build(folder):
    (folder / "half.txt").write_text("x")
    os.kill(os.getpid(), signal.SIGKILL)  # the machine went down mid-build

artifacts.cached("thing", {"k": 1}, build)
"""


def test_a_killed_build_is_cleaned_up_by_the_next_request(isolated_cache):
    import os
    import subprocess
    import sys

    env = {**os.environ, "INFIR_CACHE": str(isolated_cache)}
    proc = subprocess.run([sys.executable, "-c", KILLED_BUILD], env=env, capture_output=True, timeout=120)
    assert proc.returncode != 0
    kind_dir = isolated_cache / "thing"
    assert len(list(kind_dir.glob(".tmp-*"))) == 1  # what a dead build leaves
    messages = []
    artifacts.cached("thing", {"other": 2}, builder([]), log=messages.append)  # any request of that kind
    assert list(kind_dir.glob(".tmp-*")) == [] and "removed 1 folder(s)" in messages[0]
    calls = []
    folder = artifacts.cached("thing", {"k": 1}, builder(calls))  # the lock file left behind does not block
    assert len(calls) == 1 and artifacts.verify(folder)[0]


def test_a_live_build_folder_is_left_alone(isolated_cache):
    from filelock import FileLock

    final = artifacts.artifact_dir("thing", {"k": 5})
    final.parent.mkdir(parents=True)
    tmp = final.parent / f".tmp-{final.name}-123-0123abcd"
    tmp.mkdir()
    with FileLock(str(final) + ".lock"):  # another process is building it right now
        assert artifacts.clean_stale_builds(final.parent, log=lambda m: None) == 0
        assert tmp.exists()
    assert artifacts.clean_stale_builds(final.parent, log=lambda m: None) == 1 and not tmp.exists()
