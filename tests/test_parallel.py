"""run_parallel: same results and printed lines as in-process calls, in call order; failures named."""

import functools

import pytest

from infir_lib import parallel


def _square_and_say(x: int, *, offset: int = 0) -> int:
    print(f"call {x}")
    return x * x + offset


def _torch_threads(_: int) -> int:
    import torch

    return torch.get_num_threads()


def _seeded_draw(seed: int) -> list[float]:
    from infir_lib.runtime import seed_everything
    import torch

    seed_everything(seed)
    return torch.randn(4).tolist()


def _fails_on_two(x: int) -> int:
    if x == 2:
        raise ValueError("two is not allowed")
    return x


def test_results_and_output_in_call_order(capsys):
    calls = [(3,), {"x": 1, "offset": 10}, (2,)]
    got = parallel.run_parallel(_square_and_say, calls, workers=2)
    assert got == [9, 11, 4]
    assert capsys.readouterr().out.splitlines() == ["call 3", "call 1", "call 2"]


def test_matches_in_process_calls():
    seeds = [0, 1, 2]
    assert parallel.run_parallel(_seeded_draw, [(s,) for s in seeds], workers=2) == \
        parallel.run_parallel(_seeded_draw, [(s,) for s in seeds], workers=1)


def test_threads_per_worker_and_partial():
    assert parallel.run_parallel(_torch_threads, [(0,), (1,)], threads=1, workers=2) == [1, 1]
    add = functools.partial(_square_and_say, offset=1)
    assert parallel.run_parallel(add, [(2,), (3,)], workers=2) == [5, 10]


def test_failure_names_the_call():
    with pytest.raises(parallel.RunError, match=r"(?s)_fails_on_two\(2\).*two is not allowed"):
        parallel.run_parallel(_fails_on_two, [(1,), (2,)], workers=2)


def test_bad_call_and_empty():
    assert parallel.run_parallel(_square_and_say, []) == []
    with pytest.raises(TypeError, match="tuple of arguments or a dict"):
        parallel.run_parallel(_square_and_say, [3])
    assert parallel.default_workers(threads=1, n_calls=1) == 1


def _pid_and_env(_: int) -> tuple[int, str | None]:
    import os

    return os.getpid(), os.environ.get("INFIR_TEST_MARK")


def test_workers_are_kept_until_the_environment_or_folder_changes(monkeypatch, tmp_path):
    """A second call reuses the started workers (no second start-up); a changed environment variable
    or working directory starts new ones, which see the change."""
    parallel.shutdown()
    first = parallel.run_parallel(_pid_and_env, [(0,), (1,)], workers=2)
    again = parallel.run_parallel(_pid_and_env, [(0,), (1,), (2,)], workers=2)
    assert {p for p, _ in again} <= {p for p, _ in first} or len({p for p, _ in first}) == 1
    monkeypatch.setenv("INFIR_TEST_MARK", "x")
    marked = parallel.run_parallel(_pid_and_env, [(0,), (1,)], workers=2)
    assert {m for _, m in marked} == {"x"} and not {p for p, _ in marked} & {p for p, _ in first}
    monkeypatch.chdir(tmp_path)
    moved = parallel.run_parallel(_pid_and_env, [(0,), (1,)], workers=2)
    assert not {p for p, _ in moved} & {p for p, _ in marked}
    parallel.shutdown()


def test_started_workers_are_the_ones_the_next_call_uses():
    parallel.shutdown()
    parallel.start_workers()
    pool = next(iter(parallel._POOLS.values()))
    started = set(pool._processes)  # the processes start_workers spawned (before any call)
    got = parallel.run_parallel(_pid_and_env, [(0,), (1,), (2,), (3,)], workers=parallel.default_workers())
    if parallel.default_workers() > 1:
        assert started and {p for p, _ in got} <= started
    parallel.shutdown()
