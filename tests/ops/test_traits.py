"""Op facts are traits on the op, asked by passes and kernels: one table, no lists of names elsewhere."""
from __future__ import annotations

import numpy as np
import pytest

import spago as sp
from spago.errors import SpagoError
from spago.ops.registry import OPS, Op, ops_with


def test_the_groups_are_read_from_the_ops():
    assert ops_with("reduction") == {"sum", "max", "min"}
    assert ops_with("view") == {"transpose", "reshape", "getitem"}
    assert ops_with("alias") == {"reshape", "scan_part"}
    assert ops_with("effectful") == {"keep_mask"}
    assert "exp" in ops_with("elementwise") and OPS["exp"].elementwise and not OPS["matmul"].elementwise


def test_unknown_traits_are_a_clear_error():
    with pytest.raises(SpagoError, match="unknown traits"):
        Op("nothing", lambda x: x, lambda x: x, traits={"pure"})
    with pytest.raises(SpagoError, match="unknown op trait"):
        ops_with("pure")


def test_an_effectful_op_is_neither_merged_nor_folded():
    """Two identical random masks stay two draws through constant folding and cse."""
    from spago.ops.random import keep_mask_op
    from spago.ops.registry import bind
    from spago.passes.constant_folding import constant_folding
    from spago.passes.cse import cse

    def f(x):
        attrs = dict(shape=(4, 4), keep=0.5, seed=3, dtype=np.float32)
        return x * bind(keep_mask_op, [], attrs) + bind(keep_mask_op, [], attrs)

    graph = sp.ir.trace(f, np.zeros((4, 4), np.float32))
    optimized, _ = sp.passes.optimize(graph, [constant_folding, cse])
    assert [n.op.name for n in optimized.nodes if n.kind == "op"].count("keep_mask") == 2
