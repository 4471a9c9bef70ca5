"""The plan of an mlp kernel (a feed-forward block's two products): blocks of whole rows."""
from __future__ import annotations

import dataclasses

from ..ir.graph import Node
from .matmul import matmul_plan, shared_items

BLOCK_ROWS = 64           # rows per work item


def mlp_parts(node: Node) -> tuple:
    """(first product, second product) of an ``mlp`` fused node's body."""
    first, second = node.attrs["body"].nodes
    return first, second


def mlp_plans(node: Node) -> tuple:
    """The two products' plans, cut into the same blocks of rows (whole rows: no column blocks)."""
    first, second = mlp_parts(node)
    p1, p2 = matmul_plan(first), matmul_plan(second)
    rows = min(BLOCK_ROWS, p1.rows)
    blocks = -(-p1.rows // rows)
    cut = dict(blocks=blocks, block_rows=rows, col_blocks=1)
    return (dataclasses.replace(p1, block_cols=p1.n, **cut), dataclasses.replace(p2, block_cols=p2.n, **cut))


def mlp_extent(node: Node) -> int:
    return shared_items(*mlp_plans(node))
