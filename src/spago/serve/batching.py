"""Micro-batching: the rows of concurrent requests run as one model call.

Requests submit their rows (encodings) from any thread or event loop and get a `Submission` to wait on. One
worker thread takes the rows waiting in the queue, splits them into calls with the runner's plan (by default:
rows of equal key, e.g. the padded length bucket of a compiled model; `plan_by_cost` finds the cheapest split
for a runner that pads every call to its longest row), and makes one call per group of at most `max_batch`
rows; each submission is finished when all its rows are. Batches form by themselves while the model is busy (requests queue up meanwhile). When it is
idle, the worker waits (at most `wait_ms`) for requests announced with `expect()` that have not submitted yet
(being parsed and tokenized), and for as many rows as were in flight lately (the rows of each of the last
calls plus those queued when it ended): N clients whose answers just went out come back at once, and without
that wait the first few of them would start a call alone and the rest queue behind it, halving every batch
from then on. A lone request never waits for company that is not coming. A submission given up by its
request (a timeout) is dropped before its rows run. The worker never dies of a failing call: the error goes to
the submissions of that call.
"""
from __future__ import annotations

import asyncio
import collections
import threading
import time
from concurrent.futures import Future, InvalidStateError
from typing import Any, Callable, Hashable, Sequence

from ..errors import SpagoError

__all__ = ["Submission", "MicroBatcher", "batch_sizes", "plan_by_key", "plan_by_cost"]

Plan = Callable[[list], list]  # rows -> groups of row indices, one model call each


def plan_by_key(key: Callable[[Any], Hashable]) -> Plan:
    """Rows of equal `key(row)` share calls; a row whose key fails goes alone (its call reports the error to
    its own request only)."""

    def plan(rows: list) -> list[list[int]]:
        groups: dict[Hashable, list[int]] = {}
        alone = []
        for i, row in enumerate(rows):
            try:
                groups.setdefault(key(row), []).append(i)
            except Exception:  # noqa: BLE001 - the run call raises again, for this row alone
                alone.append([i])
        return list(groups.values()) + alone

    return plan


def plan_by_cost(length: Callable[[Any], int], cost: Callable[[int, int], float], max_batch: int) -> Plan:
    """The split of rows into calls of at most `max_batch` rows that costs least, where a call of `count` rows
    padded to its longest row (`length`) costs `cost(count, longest)`: short and long rows go apart when padding
    the short ones costs more than another call does. Rows are taken in order of length, so the groups are
    runs of that order (dynamic programming, len(rows) x max_batch steps)."""

    def plan(rows: list) -> list[list[int]]:
        sizes, alone = [], []
        for i, row in enumerate(rows):
            try:
                sizes.append((length(row), i))
            except Exception:  # noqa: BLE001 - as in plan_by_key
                alone.append([i])
        sizes.sort()
        best = [0.0] + [float("inf")] * len(sizes)  # best[k]: cheapest split of the k shortest rows
        cut = [0] * (len(sizes) + 1)
        for end in range(1, len(sizes) + 1):
            longest = sizes[end - 1][0]
            for start in range(max(0, end - max_batch), end):
                total = best[start] + cost(end - start, longest)
                if total < best[end]:
                    best[end], cut[end] = total, start
        groups, end = [], len(sizes)
        while end:
            groups.append([i for _, i in sizes[cut[end]:end]])
            end = cut[end]
        return groups[::-1] + alone

    return plan


def batch_sizes(max_batch: int) -> list[int]:
    """The batch sizes calls are padded to: powers of two below `max_batch`, and `max_batch` itself."""
    sizes, b = [], 1
    while b < max_batch:
        sizes.append(b)
        b *= 2
    return sizes + [max_batch]


class Submission:
    """The rows of one request; `future` holds their outputs, in order, once all have run."""

    def __init__(self, rows: Sequence[Any]) -> None:
        self.rows = list(rows)
        self.outputs: list[Any] = [None] * len(self.rows)
        self.pending = len(self.rows)
        self.future: Future = Future()
        self.abandoned = False

    def abandon(self) -> None:
        """The request stopped waiting: skip whatever has not run yet."""
        self.abandoned = True
        self.future.cancel()

    async def result(self, timeout: float | None = None) -> list[Any]:
        """Await the outputs from an event loop; on timeout (TimeoutError) or cancellation the submission is
        abandoned."""
        try:
            return await asyncio.wait_for(asyncio.wrap_future(self.future), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError):  # timed out, or the client went away
            self.abandon()
            raise


class MicroBatcher:
    """One worker thread running `run(rows) -> outputs` over batches of rows: those of equal `key(row)`, or the
    groups `plan(rows)` makes of the rows waiting (then `key` is not used).

    `observe(size)` (optional) is told the number of real rows of every call, e.g. for a metrics histogram.
    """

    def __init__(self, run: Callable[[list[Any]], list[Any]], key: Callable[[Any], Hashable] = lambda row: 0,
                 max_batch: int = 8, wait_ms: float = 2.0, observe: Callable[[int], None] | None = None,
                 name: str = "spago-batcher", plan: Plan | None = None) -> None:
        if max_batch < 1 or wait_ms < 0:
            raise SpagoError(f"max_batch must be >= 1 and wait_ms >= 0, got {max_batch} and {wait_ms}")
        self.run, self.max_batch, self.wait = run, int(max_batch), wait_ms / 1000.0
        self.plan = plan or plan_by_key(key)
        self.observe = observe
        self._queue: collections.deque = collections.deque()  # (submission, row index)
        self._expected = 0  # requests announced by expect() that have not submitted (or given up) yet
        self._in_flight: collections.deque = collections.deque(maxlen=8)  # rows in flight at the last calls
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        """Rows waiting for a call."""
        return len(self._queue)

    def expect(self) -> None:
        """A request has arrived and will `submit` (or `unexpect`) soon: an idle worker may wait for it."""
        with self._ready:
            self._expected += 1

    def unexpect(self) -> None:
        """An expected request will not submit after all (bad input)."""
        with self._ready:
            self._expected -= 1
            self._ready.notify()

    def submit(self, rows: Sequence[Any], expected: bool = False) -> Submission:
        """Queue the rows of one request (none: finished at once); `expected`: it was announced by `expect`."""
        sub = Submission(rows)
        with self._ready:
            if expected:
                self._expected -= 1
            if self._closed:
                raise SpagoError("the batcher is closed")
            if sub.rows:
                self._queue.extend((sub, i) for i in range(len(sub.rows)))
            self._ready.notify()
        if not sub.rows:
            sub.future.set_result([])
        return sub

    @property
    def closed(self) -> bool:
        """Whether `close` was called (an app's batcher closes when its server's lifespan ends)."""
        return self._closed

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker after the rows already queued."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout)

    def _take(self) -> list[tuple[Submission, int]] | None:
        """Wait for rows, give expected requests up to `wait` to join, and take them (None: closed)."""
        with self._ready:
            while not self._queue and not self._closed:
                self._ready.wait()
            if not self._queue:
                return None
            deadline = time.monotonic() + self.wait
            lately = min(max(self._in_flight, default=1), self.max_batch)
            while (len(self._queue) < self.max_batch and (self._expected > 0 or len(self._queue) < lately)
                   and not self._closed):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(left)
            # rows of several keys may be queued: take enough for a few calls, each cut at max_batch below
            return [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch * 4))]

    def _loop(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            live = [(sub, i) for sub, i in taken if not sub.abandoned]
            try:
                groups = self.plan([sub.rows[i] for sub, i in live])
                if sorted(j for group in groups for j in group) != list(range(len(live))):
                    raise SpagoError(f"the batch plan does not cover the {len(live)} rows once each: {groups}")
            except Exception as exc:  # noqa: BLE001 - reported to the requests of these rows
                self._fail(live, exc)
                continue
            for group in groups:
                for start in range(0, len(group), self.max_batch):
                    self._call([live[j] for j in group[start:start + self.max_batch]])
            self._in_flight.append(len(live) + len(self._queue))

    def _call(self, members: list[tuple[Submission, int]]) -> None:
        members = [(sub, i) for sub, i in members if not sub.abandoned]
        if not members:
            return
        try:
            outputs = self.run([sub.rows[i] for sub, i in members])
            if len(outputs) != len(members):
                raise SpagoError(f"the model returned {len(outputs)} outputs for {len(members)} rows")
        except Exception as exc:  # noqa: BLE001 - reported to the requests of this call
            self._fail(members, exc)
            return
        if self.observe is not None:
            self.observe(len(members))
        for (sub, i), out in zip(members, outputs):
            sub.outputs[i] = out
            sub.pending -= 1
            if sub.pending == 0:
                _settle(sub.future.set_result, sub.outputs)

    @staticmethod
    def _fail(members: list[tuple[Submission, int]], exc: BaseException) -> None:
        for sub, _ in members:
            _settle(sub.future.set_exception, exc)


def _settle(setter: Callable[[Any], None], value: Any) -> None:
    """Set a future's outcome unless it is already settled (abandoned, or failed by an earlier row)."""
    try:
        setter(value)
    except InvalidStateError:
        pass
