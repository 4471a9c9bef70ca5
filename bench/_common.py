"""Shared benchmark helpers: alternate the contenders in one run and report medians and ratios."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def measure(contenders: dict[str, Callable[[], object]], repeats: int = 20, warmup: int = 3,
            min_seconds: float = 0.0, clock: Callable[[], float] = time.perf_counter,
            block: int = 1, settle: float = 0.0) -> dict[str, float]:
    """Median seconds per call of each contender, measured round-robin so machine noise hits all alike
    (``clock``: e.g. ``time.thread_time`` for single-threaded calls on a shared machine, which leaves out
    the time the calling thread spent preempted). ``block`` calls of a contender follow each other in a
    round, the first left out: multi-threaded runtimes keep their workers spinning for a while after a
    call, and round-robin single calls would time each contender against the others' spinning threads;
    ``settle`` seconds of pause before each block let those threads go to sleep."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list] = {name: [] for name in contenders}
    start = time.perf_counter()
    rounds = 0
    while rounds < repeats or time.perf_counter() - start < min_seconds:
        for name, fn in contenders.items():
            if settle:
                time.sleep(settle)
            untimed = 1 if block > 1 else 0
            for k in range(untimed + block):
                t = clock()
                fn()
                if k >= untimed:
                    samples[name].append(clock() - t)
        rounds += 1
    return {name: statistics.median(s) for name, s in samples.items()}


def table(title: str, rows: list[tuple], headers: tuple) -> str:
    widths = [max(len(str(h)), *(len(str(r[k])) for r in rows)) for k, h in enumerate(headers)]
    line = " | ".join(str(h).ljust(w) for h, w in zip(headers, widths))
    out = [f"## {title}", "", "| " + line + " |", "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
    return "\n".join(out)


def set_single_thread() -> None:
    """Ask the BLAS libraries for one thread (call before importing numpy elsewhere for full effect)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - optional
        pass
