"""The micro-batcher on its own: rows of concurrent submissions share calls, grouped by key (or by a plan, e.g.
the cheapest split by cost) and cut at max_batch; an abandoned submission is skipped; a failing call fails only its own submissions."""
from __future__ import annotations

import threading
import time

import pytest

from spago.errors import SpagoError
from spago.serve.batching import MicroBatcher, batch_sizes, plan_by_cost


def drained(batcher: MicroBatcher, seconds: float = 5.0) -> None:
    """Wait (bounded) until the worker has taken every queued row."""
    deadline = time.monotonic() + seconds
    while batcher.queued and time.monotonic() < deadline:
        time.sleep(0.001)
    assert not batcher.queued


def test_batch_sizes():
    assert batch_sizes(1) == [1]
    assert batch_sizes(8) == [1, 2, 4, 8]
    assert batch_sizes(6) == [1, 2, 4, 6]


def test_rows_are_grouped_by_key_and_cut_at_max_batch():
    calls = []
    gate = threading.Event()

    def run(rows):
        gate.wait(5)
        calls.append(list(rows))
        return [r * 10 for r in rows]

    batcher = MicroBatcher(run, key=lambda r: r % 2, max_batch=3, wait_ms=0)
    first = batcher.submit([100])  # the worker takes this one alone and blocks on the gate
    drained(batcher)
    subs = [batcher.submit([1, 2, 3]), batcher.submit([4, 5]), batcher.submit([]), batcher.submit([7])]
    gate.set()
    assert first.future.result(5) == [1000]
    assert [s.future.result(5) for s in subs] == [[10, 20, 30], [40, 50], [], [70]]
    later = calls[1:]
    assert sorted(map(sorted, later)) == [[1, 3, 5], [2, 4], [7]]  # odd rows 1,3,5,7 cut at 3; even 2,4
    assert all(len(c) <= 3 and len({r % 2 for r in c}) == 1 for c in later)
    batcher.close()
    with pytest.raises(SpagoError, match="closed"):
        batcher.submit([1])


def test_abandoned_submissions_are_skipped_and_errors_stay_with_their_call():
    gate = threading.Event()
    seen = []

    def run(rows):
        gate.wait(5)
        seen.extend(rows)
        if "bad" in rows:
            raise ValueError("bad row")
        return [r.upper() for r in rows]

    sizes = []
    batcher = MicroBatcher(run, key=lambda r: r == "bad", max_batch=4, wait_ms=0, observe=sizes.append)
    blocker = batcher.submit(["first"])
    drained(batcher)
    gone, bad, good = batcher.submit(["gone"]), batcher.submit(["bad"]), batcher.submit(["ok"])
    gone.abandon()
    gate.set()
    assert blocker.future.result(5) == ["FIRST"] and good.future.result(5) == ["OK"]
    with pytest.raises(ValueError, match="bad row"):
        bad.future.result(5)
    assert gone.future.cancelled() and "gone" not in seen
    assert sizes == [1, 1]  # the failed call is not observed
    batcher.close()


def test_a_wrong_number_of_outputs_is_an_error():
    batcher = MicroBatcher(lambda rows: [], max_batch=2, wait_ms=0)
    with pytest.raises(SpagoError, match="0 outputs for 1 rows"):
        batcher.submit(["x"]).future.result(5)
    batcher.close()
    with pytest.raises(SpagoError, match="max_batch"):
        MicroBatcher(lambda rows: rows, max_batch=0)


def test_an_idle_worker_waits_only_for_announced_requests():
    calls = []
    batcher = MicroBatcher(lambda rows: calls.append(list(rows)) or rows, max_batch=4, wait_ms=60_000)
    # nobody announced: a lone request runs at once (were it to wait the minute, result(5) would time out)
    assert batcher.submit(["alone"]).future.result(5) == ["alone"]
    batcher.expect()
    batcher.unexpect()  # it had bad input: nothing to wait for
    assert batcher.submit(["c"]).future.result(5) == ["c"]
    batcher.expect()  # a request is being parsed: the worker keeps the next row waiting for it
    first = batcher.submit(["a"])
    late = batcher.submit(["b"], expected=True)
    assert first.future.result(5) == ["a"] and late.future.result(5) == ["b"]
    assert calls == [["alone"], ["c"], ["a", "b"]]
    batcher.close()


def test_plan_by_cost_splits_rows_where_padding_costs_more_than_a_call():
    lengths = [30, 5, 6, 31, 7, "bad"]

    def length(row):
        if not isinstance(row, int):
            raise TypeError("not a length")
        return row

    def plan(overhead, max_batch=8):
        return plan_by_cost(length, lambda count, longest: overhead + count * longest, max_batch)(lengths)

    # a cheap call: the short rows are not padded to 31 (3 x 7 + 2 x 31 + 2 calls < 5 x 31 + 1 call), nor split
    # further (5 + 2 x 7 + 3 calls > 3 x 7 + 2 calls)
    assert plan(5.0) == [[1, 2, 4], [0, 3], [5]]
    assert plan(1000.0) == [[1, 2, 4, 0, 3], [5]]  # a dear call: everything at once (the bad row alone)
    assert plan(1000.0, max_batch=2) == [[1], [2, 4], [0, 3], [5]]  # at most 2 rows a call
    assert plan_by_cost(len, lambda c, n: 1.0, 4)([]) == []


def test_a_plan_decides_the_calls_and_a_broken_plan_fails_its_rows():
    calls = []
    batcher = MicroBatcher(lambda rows: calls.append(list(rows)) or rows, max_batch=4, wait_ms=0,
                           plan=lambda rows: [list(range(len(rows)))[::-1]])
    assert batcher.submit(["a", "b"]).future.result(5) == ["a", "b"]  # outputs in request order all the same
    assert calls == [["b", "a"]]
    batcher.close()
    broken = MicroBatcher(lambda rows: rows, max_batch=4, wait_ms=0, plan=lambda rows: [[0, 0]])
    with pytest.raises(SpagoError, match="does not cover"):
        broken.submit(["a", "b"]).future.result(5)
    broken.close()


def test_an_idle_worker_waits_for_as_many_rows_as_were_in_flight_lately():
    gate, calls = threading.Event(), []

    def run(rows):
        gate.wait(5)
        calls.append(list(rows))
        return rows

    batcher = MicroBatcher(run, max_batch=8, wait_ms=60_000)
    first = batcher.submit(["x"])  # runs alone at once: nothing was in flight before
    drained(batcher)
    waiting = [batcher.submit([r]) for r in "abc"]  # queued while the model is busy: 4 rows in flight
    gate.set()
    assert first.future.result(5) == ["x"]
    time.sleep(0.05)
    assert batcher.queued == 3  # the idle worker waits for a fourth row (the client of "x" coming back)
    last = batcher.submit(["d"])
    assert [s.future.result(5) for s in waiting + [last]] == [["a"], ["b"], ["c"], ["d"]]
    assert calls == [["x"], ["a", "b", "c", "d"]]
    batcher.close()


def test_a_closed_batcher_says_so_and_refuses_rows():
    batcher = MicroBatcher(lambda rows: list(rows), max_batch=2, wait_ms=0)
    assert not batcher.closed
    assert batcher.submit([1, 2]).future.result(5) == [1, 2]
    batcher.close()
    assert batcher.closed
    with pytest.raises(SpagoError, match="the batcher is closed"):
        batcher.submit([3])
