"""Matrix product throughput: spago compiled vs NumPy/OpenBLAS vs ONNX Runtime's MatMul (MLAS), same run.

Each product multiplies an activation by a weight known when compiling (a layer's weight: spago packs it
once into its GEMM's panels; ONNX Runtime gets it as an initializer of a one-node model). The machine's
FMA peak is measured with a register-only FMA loop generated through LLVM (one per thread, all at once),
so every figure also reads as a share of what the cores can do. With one thread, calls are timed by the
calling thread's CPU time (all three contenders then run in that thread), which leaves out the time a
call spends preempted on a shared machine.

Targets (issue: performance II): on the BERT shapes spago >= 1.15x OpenBLAS and >= 1.0x MLAS, and >= 75%
of the peak on 1024x384 @ 384x1536 with one thread.
Run: python bench/matmul.py [--threads 1,2] [--repeats 15]
"""
from __future__ import annotations

import argparse
import ctypes
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))

BERT = [
    ("128x384 @ 384x1536", (128, 384), (384, 1536)),
    ("1024x384 @ 384x1536", (1024, 384), (384, 1536)),
    ("1024x1536 @ 1536x384", (1024, 1536), (1536, 384)),
    ("128x384 @ 384x1152", (128, 384), (384, 1152)),
]
SHAPES = BERT + [
    ("256x256 @ 256x256", (256, 256), (256, 256)),
    ("512x512 @ 512x512", (512, 512), (512, 512)),
    ("1024x1024 @ 1024x1024", (1024, 1024), (1024, 1024)),
    ("1x256 @ 256x512 (RNN step)", (1, 256), (256, 512)),
    ("12x128x32 @ 12x32x128", (12, 128, 32), (12, 32, 128)),
]


def fma_peak(threads: int, seconds: float = 0.02, trials: int = 25) -> float:
    """GFLOP/s of a loop of independent vector FMAs on registers only, on ``threads`` threads at once:
    each thread's rate over its own CPU time (what a core does while it runs the loop; on a shared
    machine wall time mostly measures the other processes), summed over the threads."""
    from llvmlite import ir

    from spago.backend.jit import compile_ir, load_object
    from spago.backend.kernels.gemm import choose_isa
    from spago.backend.types import F32, I64, VOID

    isa = choose_isa()
    lanes, accs = (isa.lanes, 24) if isa is not None else (8, 12)
    vec = ir.VectorType(F32, lanes)
    module = ir.Module("peak")
    fma = ir.Function(module, ir.FunctionType(vec, [vec] * 3), f"llvm.fma.v{lanes}f32")
    fn = ir.Function(module, ir.FunctionType(VOID, [I64, ir.PointerType()]), "peak")
    n, out = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    x = b.load(out, typ=vec, align=4)
    pre = b.block
    body, done = fn.append_basic_block("body"), fn.append_basic_block("done")
    b.branch(body)
    b.position_at_end(body)
    i = b.phi(I64)
    i.add_incoming(ir.Constant(I64, 0), pre)
    acc = [b.phi(vec) for _ in range(accs)]
    for a in acc:
        a.add_incoming(x, pre)
    new = [b.call(fma, [a, x, x]) for a in acc]
    nxt = b.add(i, ir.Constant(I64, 1))
    i.add_incoming(nxt, body)
    for a, v in zip(acc, new):
        a.add_incoming(v, body)
    b.cbranch(b.icmp_signed("<", nxt, n), body, done)
    b.position_at_end(done)
    total = new[0]
    for v in new[1:]:
        total = b.fadd(total, v)
    b.store(total, out, align=4)
    b.ret_void()
    run = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p)(load_object(compile_ir(str(module))[1], "peak"))
    buffers = [(ctypes.c_float * lanes)(*([0.5] * lanes)) for _ in range(threads)]
    iterations = 1 << 22
    run(1000, buffers[0])
    t = time.thread_time()
    run(iterations, buffers[0])
    one = time.thread_time() - t
    iterations = max(1000, int(iterations * seconds / max(one, 1e-6)))
    rates = [0.0] * threads

    def timed(slot: int) -> None:
        start = time.thread_time()
        run(iterations, buffers[slot])
        rates[slot] = max(rates[slot], 2.0 * lanes * accs * iterations / max(time.thread_time() - start, 1e-9) / 1e9)

    for _ in range(trials):  # the best of many short runs
        workers = [threading.Thread(target=timed, args=(slot,)) for slot in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    return sum(rates)


def ort_matmul(a_shape, w, threads: int):
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(a_shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm", [x], [y],
                              [numpy_helper.from_array(np.asarray(w, np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    del onnx
    return lambda a: session.run(None, {"x": a})[0]


def bench(threads: int, repeats: int, peak: float) -> tuple[str, list]:
    import numpy as np

    import spago as sp
    from _common import measure, table
    from threadpoolctl import threadpool_limits

    os.environ["SPAGO_NUM_THREADS"] = str(threads)
    # one thread: every contender runs in the calling thread, so its CPU time is the call's time without
    # the time it spent preempted; more threads: wall time
    clock = time.thread_time if threads == 1 else time.perf_counter
    rng = np.random.default_rng(0)
    rows, ratios = [], []
    with threadpool_limits(threads):
        for label, sa, sb in SHAPES:
            a = rng.standard_normal(sa).astype(np.float32)
            w = rng.standard_normal(sb).astype(np.float32)
            compiled = sp.compile(lambda x: x @ w, a, cache=False)
            ort_run = ort_matmul(sa, w, threads)
            expected = a @ w
            np.testing.assert_allclose(compiled(a), expected, rtol=1e-3, atol=1e-3)
            np.testing.assert_allclose(ort_run(a), expected, rtol=1e-3, atol=1e-3)
            t = measure({"numpy": lambda: np.matmul(a, w), "spago": lambda: compiled(a),
                         "ort": lambda: ort_run(a)}, repeats=repeats, clock=clock,
                         **({} if threads == 1 else {"block": 8, "settle": 0.3}))
            flops = 2.0 * np.prod(np.broadcast_shapes(sa[:-2], sb[:-2]) or (1,)) * sa[-2] * sa[-1] * sb[-1]
            g = {k: flops / v / 1e9 for k, v in t.items()}
            path = compiled.report()["products"][0]["path"]
            rows.append((label, path, f"{g['numpy']:.1f}", f"{g['ort']:.1f}", f"{g['spago']:.1f}",
                         f"{g['spago'] / g['numpy']:.2f}x", f"{g['spago'] / g['ort']:.2f}x",
                         f"{100 * g['spago'] / peak:.0f}%"))
            ratios.append((label, g['spago'] / g['numpy'], g['spago'] / g['ort'], g['spago'] / peak))
    timing = "calling thread's CPU time" if threads == 1 else "wall time, blocks of 8 calls after a 0.3 s pause"
    out = table(f"matmul GFLOP/s, {threads} thread(s), constant weight, median of {repeats} ({timing}; "
                f"measured FMA peak {peak:.0f} GFLOP/s)", rows,
                ("shape", "spago path", "NumPy", "ORT", "spago", "spago/NumPy", "spago/ORT", "of peak"))
    return out, ratios


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 1}")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    counts = sorted({int(t) for t in args.threads.split(",") if t.strip()})
    outputs = []
    for threads in counts:
        peak = fma_peak(threads)
        out, _ = bench(threads, args.repeats, peak)
        outputs.append(out)
    text = "\n\n".join(outputs)
    print(text)
    return text


if __name__ == "__main__":
    main()
