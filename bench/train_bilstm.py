"""One training step of a BiLSTM tagger — embedding 100, BiLSTM hidden 128, 9 tags, cross-entropy, Adam —
on a batch of 32 sentences of 30 tokens: spago compiled (`spago.optim.compile_step`) vs spago eager vs
PyTorch eager, measured alternately in the same run; the compiled step runs its time loops as
`spago.scan` loops, and also unrolled (``unroll=True``) for comparison. Targets: compiled >= 3x faster
than PyTorch eager, and within 5% of the unrolled step (or faster).

Every contender gets the same number of threads (``--threads``, else ``SPAGO_NUM_THREADS`` /
``OMP_NUM_THREADS``, else all cores): spago's kernels, PyTorch, and the OpenBLAS that NumPy (eager) and
single-threaded compiled code call, each with its libraries' own defaults (``OMP_WAIT_POLICY=PASSIVE``, once
set here, made PyTorch's threads sleep after every parallel region and its step four times slower). With
several threads each contender is timed in blocks of steps after a pause, so that it does not run against
another's still-spinning workers. ``--without PASS`` also measures the compiled step with those passes
left out of the pipeline (e.g. ``--without merge_sums`` shows what that pass buys), in the same run.

Run: python bench/train_bilstm.py [--repeats N] [--threads N] [--without PASS ...]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

BATCH, SEQ, VOCAB, EMBED, HIDDEN, TAGS = 32, 30, 1000, 100, 128, 9


def build_spago(unroll: bool = False):
    import spago as sp
    from spago import losses, nn

    class Tagger(nn.Module):
        """Embedding → BiLSTM → per-token linear scores (Huang et al., 2015, without the CRF)."""

        def __init__(self):
            super().__init__()
            g = sp.Generator(0)
            self.embed = nn.Embedding(VOCAB, EMBED, generator=g)
            self.lstm = nn.LSTM(EMBED, HIDDEN, bidirectional=True, generator=g, unroll=unroll)
            self.out = nn.Linear(2 * HIDDEN, TAGS, generator=g)

        def forward(self, ids):
            h, _ = self.lstm(self.embed(ids))
            return self.out(h)

    def loss_fn(model, ids, tags):
        return losses.cross_entropy(model(ids), tags)

    return Tagger, loss_fn


def main(repeats: int = 10, without: tuple = ()) -> str:
    import numpy as np

    import spago as sp
    from spago import optim
    from spago.lower import parallel
    from spago.passes import default_passes
    from _common import measure, table

    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, size=(BATCH, SEQ))
    tags = rng.integers(0, TAGS, size=(BATCH, SEQ))
    Tagger, loss_fn = build_spago()

    compiled_model, eager_model = Tagger(), Tagger()
    compiled_opt, eager_opt = optim.Adam(compiled_model, lr=1e-3), optim.Adam(eager_model, lr=1e-3)
    step = optim.compile_step(loss_fn, compiled_model, compiled_opt, ids, tags)
    compiled = {"spago compiled": step}
    Unrolled, _ = build_spago(unroll=True)  # the time loops traced step by step, as before spago.scan
    unrolled_model = Unrolled()
    compiled["spago compiled, unrolled"] = optim.compile_step(
        loss_fn, unrolled_model, optim.Adam(unrolled_model, lr=1e-3), ids, tags)
    if without:
        passes = [p for p in default_passes(inference=False) if p.__name__ not in without]
        other_model = Tagger()
        compiled[f"spago compiled without {'+'.join(without)}"] = optim.compile_step(
            loss_fn, other_model, optim.Adam(other_model, lr=1e-3), ids, tags, passes=passes)
    tensors = (sp.tensor(ids), sp.tensor(tags))

    def eager_step():
        eager_opt.zero_grad()
        loss = loss_fn(eager_model, *tensors)
        loss.backward()
        eager_opt.step()
        return loss.item()

    # the two spago paths agree on the first step
    first_compiled, first_eager = step(ids, tags), eager_step()
    assert abs(first_compiled - first_eager) < 1e-4 * abs(first_eager), (first_compiled, first_eager)
    contenders = {name: (lambda s=s: s(ids, tags)) for name, s in compiled.items()}
    contenders["spago eager"] = eager_step
    threads = parallel.threads() if parallel.enabled() else 1
    try:
        import torch

        torch.set_num_threads(threads)
        embed = torch.nn.Embedding(VOCAB, EMBED)
        lstm = torch.nn.LSTM(EMBED, HIDDEN, bidirectional=True, batch_first=True)
        out = torch.nn.Linear(2 * HIDDEN, TAGS)
        torch_params = list(embed.parameters()) + list(lstm.parameters()) + list(out.parameters())
        torch_opt = torch.optim.Adam(torch_params, lr=1e-3)
        t_ids, t_tags = torch.from_numpy(ids), torch.from_numpy(tags)

        def torch_step():
            torch_opt.zero_grad()
            h, _ = lstm(embed(t_ids))
            loss = torch.nn.functional.cross_entropy(out(h).reshape(-1, TAGS), t_tags.reshape(-1))
            loss.backward()
            torch_opt.step()
            return loss.item()

        contenders["PyTorch eager"] = torch_step
    except ImportError:
        pass
    if threads == 1:
        t = measure(contenders, repeats=repeats, warmup=2)
    else:  # blocks of calls after a pause, so that no contender runs against another's spinning workers; spago
        # eager (NumPy's threaded BLAS) apart: PyTorch timed after it ran at a quarter of its speed alone
        eager = contenders.pop("spago eager")
        t = measure(contenders, repeats=repeats, warmup=2, block=10, settle=0.3)
        t.update(measure({"spago eager": eager}, repeats=repeats, warmup=1))
    base = t["spago compiled"]
    rows = [(name, f"{sec * 1e3:.2f}", f"{sec / base:.2f}x") for name, sec in t.items()]
    title = (f"BiLSTM tagger training step: batch {BATCH}, {SEQ} tokens, embedding {EMBED}, hidden {HIDDEN}, "
             f"{TAGS} tags, Adam; {threads} thread(s); median ms per step")
    text = table(title, rows, ("contender", "ms", "time / spago compiled"))
    for name, s in compiled.items():
        report = s.compiled.report()
        seconds = sum(v for v in report["compile_seconds"].values() if isinstance(v, float))
        cached = " (object code from the disk cache)" if s.compiled.cache_hit else ""
        names = report["kernel_names"]
        text += (f"\n{name}: compile {seconds:.2f} s{cached}; {len(names)} kernel calls, "
                 f"{len(set(names))} distinct kernels")
    print(text)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for spago's kernels, PyTorch and OpenBLAS (default: SPAGO_NUM_THREADS, "
                             "OMP_NUM_THREADS, else all cores)")
    parser.add_argument("--without", nargs="+", default=(), metavar="PASS",
                        help="also measure the compiled step with these passes left out of the pipeline")
    args = parser.parse_args()
    threads = args.threads or int(os.environ.get("SPAGO_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
                                  or os.cpu_count() or 1)
    os.environ["SPAGO_NUM_THREADS"] = str(threads)  # read when spago compiles
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)  # read when NumPy's and SciPy's OpenBLAS load
    main(args.repeats, tuple(args.without))
