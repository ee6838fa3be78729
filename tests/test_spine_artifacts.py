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
