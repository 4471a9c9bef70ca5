"""spago's thread pool driven directly: every work item runs exactly once whoever takes it, calls that find
the pool busy (nested, or from another thread) run on their own thread without deadlock, a compiled call
marks itself active only while it runs, and idle workers go to sleep."""
from __future__ import annotations

import ctypes
import threading
import time

import numpy as np
import pytest

import spago as sp
from spago.backend.threadpool import pool
from spago.lower import parallel

ITEM = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
RUN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)


def parallel_for(fn, extent: int, chunk: int) -> None:
    RUN(pool().parallel_for)(ctypes.cast(fn, ctypes.c_void_p), None, extent, chunk)


def counting(counts: np.ndarray, inner=None):
    """A work function adding one to ``counts[i]`` for every index it is given (then calling ``inner``)."""

    def run(ctx, start, end):
        counts[start:end] += 1
        if inner is not None:
            inner()

    return ITEM(run)


@pytest.mark.parametrize("extent,chunk", [(1, 1), (7, 1), (64, 5), (1000, 13), (3, 10)])
def test_every_item_runs_exactly_once(extent, chunk):
    counts = np.zeros(extent, np.int64)
    fn = counting(counts)
    for _ in range(20):  # jobs back to back, and after pauses long enough for the workers to sleep
        parallel_for(fn, extent, chunk)
    time.sleep(0.01)
    parallel_for(fn, extent, chunk)
    np.testing.assert_array_equal(counts, 21)


def test_the_counters_account_for_every_item():
    before = pool().stats()
    counts = np.zeros(500, np.int64)
    fn = counting(counts)
    for _ in range(10):
        parallel_for(fn, 500, 7)
    after = pool().stats()
    done = sum(after[k] - before[k] for k in ("caller_items", "worker_items"))
    assert done == 5000 and after["jobs"] - before["jobs"] == 10
    assert after["active"] == 0


def test_a_nested_call_runs_on_its_own_thread():
    """A work item that itself calls the pool finds it busy and runs that inner job alone: no deadlock."""
    inner_counts = np.zeros(40, np.int64)
    inner = counting(inner_counts)
    outer_counts = np.zeros(6, np.int64)
    outer = counting(outer_counts, inner=lambda: parallel_for(inner, 40, 3))
    parallel_for(outer, 6, 1)
    np.testing.assert_array_equal(outer_counts, 1)
    np.testing.assert_array_equal(inner_counts, 6)


def test_calls_from_several_threads_with_active_calls():
    """Threads calling at once (one gets the pool, the others run alone), each inside enter/leave as a
    compiled call is: every item once, and nothing is left marked active."""
    p = pool()
    counts = [np.zeros(300, np.int64) for _ in range(4)]
    fns = [counting(c) for c in counts]

    def run(k):
        for _ in range(25):
            p.enter()
            try:
                parallel_for(fns[k], 300, 4)
            finally:
                p.leave()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in counts:
        np.testing.assert_array_equal(c, 25)
    assert p.stats()["active"] == 0


@pytest.mark.skipif(not parallel.enabled(), reason="one core: kernels are not threaded")
def test_compiled_calls_are_active_only_while_they_run_and_workers_then_sleep():
    x = np.random.default_rng(0).standard_normal((1 << 18,)).astype(np.float32)
    f = sp.compile(lambda a: sp.tanh(a) * 2.0, x, cache=False)
    seen = []

    def watch():  # what another thread sees while calls run
        while not stop.is_set():
            seen.append(pool().stats()["active"])

    stop = threading.Event()
    watcher = threading.Thread(target=watch)
    watcher.start()
    want = np.tanh(x) * 2.0
    for _ in range(30):
        np.testing.assert_allclose(f(x), want, rtol=1e-5, atol=1e-6)
    stop.set()
    watcher.join()
    assert set(seen) <= {0, 1}
    assert pool().stats()["active"] == 0
    workers = len(pool().threads)
    for _ in range(1000):  # the process is idle now: every worker goes to sleep (bounded wait, not timed)
        if pool().stats()["sleeping"] == workers:
            break
        time.sleep(0.01)
    assert pool().stats()["sleeping"] == workers
