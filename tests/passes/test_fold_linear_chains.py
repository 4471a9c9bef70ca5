"""fold_linear_chains: ``(X @ W1 + b1) @ W2`` of constants becomes one product — through row views, for
several readers, only when it saves work — with the same values (interpreter before and after, and a
compiled tagger head against eager)."""
from __future__ import annotations

import numpy as np

import spago as sp
from spago.compiler import compile
from spago.nn.linear import Linear
from spago.nn.recurrent import LSTM
from spago.passes.fold_linear_chains import fold_linear_chains

from .models import frozen_counts

rng = np.random.default_rng(5)


def weight(*shape) -> sp.Tensor:
    return sp.tensor((rng.standard_normal(shape) * 0.3).astype(np.float32))


W1, B1, W2, W3 = weight(12, 12), weight(12), weight(12, 20), weight(12, 20)
X = rng.standard_normal((2, 5, 12)).astype(np.float32)


def folded(fn, *args):
    return frozen_counts(fn, args, (fold_linear_chains,))


def test_two_maps_with_a_bias_become_one_product():
    assert folded(lambda x: (x @ W1 + B1) @ W2, X).get("matmul") == 1
    assert folded(lambda x: (x @ W1.T) @ W2, X).get("matmul") == 1          # a transposed weight (a view)


def test_row_views_and_two_readers_as_a_bilstm_reads_its_input():
    def both(x):
        rows = (x @ W1 + B1).transpose((1, 0, 2)).reshape(10, 12)
        return rows @ W2, rows @ W3

    assert folded(both, X).get("matmul") == 2


def test_left_alone_when_another_reader_needs_the_first_map_or_it_would_cost_more():
    def also_read(x):
        y = x @ W1 + B1
        return y @ W2, sp.tanh(y)

    assert folded(also_read, X).get("matmul") == 2
    narrow, wide = weight(12, 2), weight(2, 40)   # 12 x 40 > 12 x 2 + 2 x 40: the bottleneck is cheaper
    assert folded(lambda x: (x @ narrow) @ wide, X).get("matmul") == 2


def test_a_reprojection_into_a_bilstm_compiles_to_the_eager_values():
    sp.manual_seed(0)
    project, rnn = Linear(12, 12).eval(), LSTM(12, 8, bidirectional=True).eval()
    x = rng.standard_normal((1, 7, 12)).astype(np.float32)
    fn = compile(lambda a: rnn(project(a))[0], x, name="reprojected_bilstm")
    with sp.no_grad():
        want = rnn(project(x))[0].numpy()
    np.testing.assert_allclose(fn(x), want, rtol=1e-5, atol=1e-6)
    products = [n for n in fn.graph.nodes if n.op.name in ("matmul", "fused") and
                any(m.op.name == "matmul" for m in (n.attrs["body"].nodes if n.op.name == "fused" else [n]))]
    assert len(products) == 1   # both directions' input products, merged, on the un-projected input
