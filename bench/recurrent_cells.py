"""Every recurrent layer of the zoo, compiled vs eager: input and hidden size 32, batch 32, 50 steps, same
run. Each row shows the layer compiles (no layer falls off the compiled path), that the native result
matches eager, and the speed-up.

Run: python bench/recurrent_cells.py [--steps 50] [--batch 32] [--size 32] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

LAYERS = {  # name -> (class name in spago.nn, options)
    "RNN (baseline)": ("RNN", {}), "LSTM (baseline)": ("LSTM", {}), "GRU (baseline)": ("GRU", {}),
    "LSTM, refined gates": ("LSTM", {"refined_gates": True}),
    "SRN": ("SRN", {}), "IndRNN": ("IndRNN", {}), "FSMN": ("FSMN", {}), "HORN": ("HORN", {}), "MIST": ("MIST", {}),
    "SRNN": ("SRNN", {}), "CFN": ("CFN", {}), "RAN": ("RAN", {}), "DeltaRNN": ("DeltaRNN", {}), "LTM": ("LTM", {}),
    "LSTMSC": ("LSTMSC", {}), "NRU": ("NRU", {}), "TPR": ("TPR", {}), "RLA": ("RLA", {}),
}


def main(argv: list | None = None) -> str:
    import numpy as np

    import spago
    from spago import nn
    from _common import measure, table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args(argv)
    x = np.random.default_rng(0).standard_normal((args.batch, args.steps, args.size)).astype(np.float32)
    rows = []
    for name, (cls, options) in LAYERS.items():
        if args.only and name not in args.only:
            continue
        layer = getattr(nn, cls)(args.size, args.size, generator=spago.Generator(0), **options).eval()

        def outputs(a, layer=layer):
            return layer(a)[0]

        start = time.perf_counter()
        compiled = spago.compile(outputs, x, cache=False)
        seconds = time.perf_counter() - start
        error = float(np.abs(compiled(x) - outputs(x).numpy()).max())
        with spago.no_grad():
            t = measure({"eager": lambda: outputs(x), "compiled": lambda: compiled(x)}, repeats=args.repeats)
        rows.append((name, f"{seconds:.1f}", len(compiled.report()["kernel_names"]), f"{t['eager'] * 1e3:.2f}",
                     f"{t['compiled'] * 1e3:.2f}", f"{t['eager'] / t['compiled']:.1f}x", f"{error:.1e}"))
        print(rows[-1], flush=True)
    out = table(f"Recurrent layers, input = hidden = {args.size}, batch {args.batch}, {args.steps} steps "
                "(median ms per sequence, same run)", rows,
                ("layer", "compile s", "kernels", "eager ms", "compiled ms", "speed-up", "max abs. difference"))
    print(out)
    return out


if __name__ == "__main__":
    main()
