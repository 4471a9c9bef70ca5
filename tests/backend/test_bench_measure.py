"""The benchmarks' timing helper: blocks of calls per contender (the first of a block left out) after a
pause, so a multi-threaded contender is not timed against another's still-spinning workers."""
from __future__ import annotations

import importlib.util
import os

HELPER = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "_common.py")
_spec = importlib.util.spec_from_file_location("bench_common", HELPER)
bench_common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_common)


class Clock:
    """A fake clock: each contender's call advances it by that contender's cost."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_blocks_time_each_contender_in_a_row_and_leave_the_first_call_out():
    clock, order = Clock(), []

    def contender(name, costs):
        calls = iter(costs)

        def call():
            order.append(name)
            clock.now += next(calls)
        return call

    # the first call of every block is slow (a cold start), the others cost 1 or 2
    a = contender("a", [0, 0, 0] + [100, 1, 1, 1] * 2)
    b = contender("b", [0, 0, 0] + [100, 2, 2, 2] * 2)
    t = bench_common.measure({"a": a, "b": b}, repeats=2, warmup=3, clock=clock, block=3, settle=0.001)
    assert t == {"a": 1, "b": 2}
    assert order == ["a"] * 3 + ["b"] * 3 + ["a"] * 4 + ["b"] * 4 + ["a"] * 4 + ["b"] * 4


def test_single_calls_alternate_and_are_all_timed():
    clock, order = Clock(), []

    def make(name, cost):
        def call():
            order.append(name)
            clock.now += cost
        return call

    t = bench_common.measure({"a": make("a", 3), "b": make("b", 5)}, repeats=3, warmup=0, clock=clock)
    assert t == {"a": 3, "b": 5} and order == ["a", "b"] * 3
