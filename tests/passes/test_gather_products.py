"""gather_products: ``take(E, ids) @ W`` of constants becomes ``take(E @ W, ids)`` — through row views,
within the growth bound, with the same values (interpreter before and after, and compiled)."""
from __future__ import annotations

import numpy as np

import spago as sp
from spago.compiler import compile
from spago.nlp.charlm import LanguageModel
from spago.passes.gather_products import gather_products

from .models import frozen_counts

rng = np.random.default_rng(3)
TABLE = sp.tensor(rng.standard_normal((30, 8)).astype(np.float32))
W = sp.tensor(rng.standard_normal((8, 24)).astype(np.float32))
IDS = rng.integers(0, 30, (2, 5))


def rewritten(fn, *args):
    return frozen_counts(fn, args, (gather_products,))


def test_gather_then_project_becomes_a_gather_of_the_projected_table():
    counts = rewritten(lambda ids: sp.take(TABLE, ids, axis=0) @ W, IDS)
    assert "matmul" not in counts and counts.get("take") == 1


def test_row_views_between_the_gather_and_the_product_are_kept():
    def time_major(ids):  # an LSTM's input projection: (B, T, K) -> (T, B, K) -> (T·B, K) @ W
        x = sp.take(TABLE, ids, axis=0).transpose((1, 0, 2)).reshape(10, 8)
        return x @ W + 1.0

    counts = rewritten(time_major, IDS)
    assert "matmul" not in counts and counts.get("transpose") == 1 and counts.get("reshape") == 1


def test_left_alone_when_the_columns_move_or_the_table_is_too_large():
    def columns_moved(ids):
        return sp.take(TABLE, ids, axis=0).swapaxes(-1, -2)[:, :5, :] @ sp.tensor(np.ones((5, 3), np.float32))

    assert rewritten(columns_moved, IDS).get("matmul") == 1
    big = sp.tensor(rng.standard_normal((5000, 2)).astype(np.float32))   # 5000 x 512 > 16 x (10k + 1k)
    wide = sp.tensor(rng.standard_normal((2, 512)).astype(np.float32))
    assert rewritten(lambda ids: sp.take(big, ids, axis=0) @ wide, IDS).get("matmul") == 1
    vocabulary = sp.tensor(rng.standard_normal((20000, 64)).astype(np.float32))  # 20000 x 256 x 4 B > 16 MiB
    assert rewritten(lambda ids: sp.take(vocabulary, ids, axis=0) @ sp.tensor(np.ones((64, 256), np.float32)),
                     IDS).get("matmul") == 1


def test_gathered_rows_read_by_several_products_and_other_work():
    def shared(ids):  # a BiLSTM's two directions, and other work on the same rows
        x = sp.take(TABLE, ids, axis=0)
        return x @ W, x @ (W * 2.0), x * 2.0

    counts = rewritten(shared, IDS)
    assert "matmul" not in counts and counts.get("take") == 3


def test_a_character_lm_compiles_without_its_input_product_and_matches_eager():
    sp.manual_seed(0)
    lm = LanguageModel([chr(c) for c in range(32, 127)], True, hidden_size=16, embedding_size=4).eval()
    ids = rng.integers(0, 95, (1, 64))
    fn = compile(lambda x: lm(x)[0], ids, name="lm_gather_products")
    top = [n.op.name for n in fn.graph.nodes]
    assert "matmul" not in top and "take" in top
    with sp.no_grad():
        want = lm(ids)[0].numpy()
    np.testing.assert_allclose(fn(ids), want, rtol=1e-5, atol=1e-6)
