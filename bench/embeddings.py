"""Word-embedding lookups: the LMDB store (spago.nlp.embeddings) against the same table loaded into a NumPy
array with a dict from word to row.

For each table size, a random float32 table is written once (an LMDB store and a .npy file + word list in a
temporary directory); then each contender runs in a fresh process, so its resident memory is its own:
open/load time, RSS after opening, lookup throughput (batches of words drawn uniformly, then Zipf-
distributed like real text), and RSS after each workload; once with the contender's file evicted from the
page cache (cold start), once with it read through first (warm). RSS counts the store's mapped pages the
process has touched (file-backed, shared between processes and reclaimable), and with a warm cache also
neighbours of them that the kernel maps along ("fault-around"); "private" is the anonymous part.

Run: python bench/embeddings.py [--sizes 100000x300,1000000x300] [--batch 1000] [--batches 200]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))

CHUNK = 50_000


def words_of(n: int) -> list:
    return [f"word{i}" for i in range(n)]


def build(directory: str, n: int, dim: int) -> None:
    """The same random table as an LMDB store and as a .npy file with a word list."""
    import numpy as np

    from spago.nlp.embeddings import EmbeddingStore

    rng = np.random.default_rng(0)
    words = words_of(n)
    npy = np.lib.format.open_memmap(os.path.join(directory, "table.npy"), "w+", np.float32, (n, dim))
    with EmbeddingStore.create(os.path.join(directory, "store"), dim) as writer:
        for start in range(0, n, CHUNK):
            block = rng.standard_normal((min(CHUNK, n - start), dim), dtype=np.float32)
            writer.add_many(words[start:start + CHUNK], block)
            npy[start:start + CHUNK] = block
    npy.flush()
    del npy
    with open(os.path.join(directory, "words.txt"), "w") as f:
        f.write("\n".join(words))


def memory() -> tuple:
    """(RSS MiB, private anonymous MiB) of this process."""
    import psutil

    rss = psutil.Process().memory_info().rss
    anon = rss
    try:
        with open("/proc/self/status") as f:
            anon = next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))
    except (OSError, StopIteration):
        pass
    return rss / 2 ** 20, anon / 2 ** 20


def worker(kind: str, directory: str, n: int, batch: int, batches: int, repeats: int) -> dict:
    """One contender in this (fresh) process: open, then the two workloads; returns the figures."""
    import statistics

    import numpy as np

    rng = np.random.default_rng(1)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    zipf = (1.0 / ranks) / (1.0 / ranks).sum()
    workloads = {
        "uniform": [[f"word{i}" for i in rng.integers(0, n, batch)] for _ in range(batches)],
        "zipf": [[f"word{i}" for i in rng.choice(n, batch, p=zipf)] for _ in range(batches)],
    }
    del ranks, zipf
    from spago.nlp.embeddings import EmbeddingStore

    result: dict = {"rss_before": memory()}
    start = time.perf_counter()
    if kind == "lmdb":
        store = EmbeddingStore.open(os.path.join(directory, "store"))
        lookup = store.lookup
    else:
        table = np.load(os.path.join(directory, "table.npy"))
        with open(os.path.join(directory, "words.txt")) as f:
            index = {w: i for i, w in enumerate(f.read().split("\n"))}

        def lookup(words):
            return table[[index[w] for w in words]]
    result["open_s"] = time.perf_counter() - start
    result["rss_open"] = memory()
    for name in ("zipf", "uniform"):  # Zipf first: it touches few rows, uniform touches many
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            for words in workloads[name]:
                lookup(words)
            times.append(time.perf_counter() - t)
        result[f"{name}_words_per_s"] = batch * batches / statistics.median(times)
        result[f"rss_{name}"] = memory()
    return result


def evict(path: str) -> None:
    """Drop this one file's pages from the page cache, so the contender starts cold (its first reads come
    from disk, and the kernel maps no neighbouring pages that happen to be cached)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_through(path: str) -> None:
    """Read the whole file once, so its pages are in the page cache (a warm start)."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def run_worker(kind: str, directory: str, n: int, args, cold: bool) -> dict:
    path = os.path.join(directory, "store", "data.mdb") if kind == "lmdb" else os.path.join(directory, "table.npy")
    evict(path) if cold else read_through(path)
    out = subprocess.run([sys.executable, __file__, "--worker", kind, "--dir", directory, "--n", str(n),
                          "--batch", str(args.batch), "--batches", str(args.batches), "--repeats", str(args.repeats)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def mib(f: dict, stage: str) -> str:
    """RSS / private MiB at ``stage``, counted from before opening."""
    return f"{f[stage][0] - f['rss_before'][0]:,.0f} / {f[stage][1] - f['rss_before'][1]:,.0f}"


def rss_ratio(a: dict, b: dict, stage: str) -> str:
    return f"{(a[stage][0] - a['rss_before'][0]) / (b[stage][0] - b['rss_before'][0]):.3f}"


def main(argv=None) -> str:
    from _common import table

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000x300,1000000x300")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tmp", default=None, help="where to write the tables (default: the system temp dir)")
    parser.add_argument("--worker", choices=("lmdb", "numpy"))
    parser.add_argument("--dir")
    parser.add_argument("--n", type=int)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.dir, args.n, args.batch, args.batches, args.repeats)))
        return ""
    rows = []
    for size in args.sizes.split(","):
        n, dim = (int(x) for x in size.lower().split("x"))
        directory = tempfile.mkdtemp(prefix="spago-embeddings-bench-", dir=args.tmp)
        try:
            start = time.perf_counter()
            build(directory, n, dim)
            built = time.perf_counter() - start
            figures = {(kind, cache): run_worker(kind, directory, n, args, cache == "cold")
                       for cache in ("cold", "warm") for kind in ("lmdb", "numpy")}
            disk = os.path.getsize(os.path.join(directory, "store", "data.mdb")) / 2 ** 20
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        for cache in ("cold", "warm"):
            lm, np_ = figures["lmdb", cache], figures["numpy", cache]
            for kind, f in (("LMDB store", lm), ("NumPy array + dict", np_)):
                rows.append((f"{n:,} x {dim}", cache, kind, f"{f['open_s']:.3f}",
                             f"{f['zipf_words_per_s'] / 1e3:,.0f}", f"{f['uniform_words_per_s'] / 1e3:,.0f}",
                             mib(f, "rss_open"), mib(f, "rss_zipf"), mib(f, "rss_uniform")))
            rows.append((f"{n:,} x {dim}", cache, "ratio LMDB / NumPy", f"{lm['open_s'] / np_['open_s']:.4f}",
                         f"{lm['zipf_words_per_s'] / np_['zipf_words_per_s']:.2f}",
                         f"{lm['uniform_words_per_s'] / np_['uniform_words_per_s']:.2f}",
                         rss_ratio(lm, np_, "rss_open"), rss_ratio(lm, np_, "rss_zipf"),
                         rss_ratio(lm, np_, "rss_uniform")))
        print(f"{n:,} x {dim}: built in {built:.1f} s; store file {disk:,.0f} MiB", file=sys.stderr)
    out = table(f"word-embedding lookups, batches of {args.batch} words (medians of {args.repeats} runs of "
                f"{args.batches} batches)", rows,
                ("table", "page cache", "contender", "open s", "Zipf kwords/s", "uniform kwords/s", "MiB after open (RSS / private)",
                 "MiB after Zipf", "MiB after uniform"))
    print(out)
    return out


if __name__ == "__main__":
    main()
