"""The plan of an attention kernel: its parts, and both products cut the same way (per head, in blocks of
whole query rows)."""
from __future__ import annotations

import dataclasses

from ..ir.graph import Node
from . import parallel
from .matmul import PIECES, matmul_plan, shared_items


def attention_parts(node: Node) -> tuple | None:
    """(scores, softmax, context) nodes of an ``attention`` fused node's body."""
    body = node.attrs["body"]
    if len(body.nodes) != 3:
        return None
    return tuple(body.nodes)


def attention_plans(scores: Node, context: Node) -> tuple:
    """The two products' `MatmulPlan`s cut the same way for the attention kernel — per head, in blocks
    of whole query rows (a few per thread) — or (None, None) when either is no BLAS-sized product."""
    first, second = matmul_plan(scores), matmul_plan(context)
    if first is None or second is None:
        return None, None
    threads = parallel.threads() if parallel.enabled() else 1
    count = max(first.items // (first.blocks * first.col_blocks), 1)
    want = 1 if count >= PIECES * threads else -(-PIECES * threads // count)
    rows = max(-(-first.rows // want), min(16, first.rows))
    cut = dict(blocks=-(-first.rows // rows), block_rows=rows, col_blocks=1)
    return (dataclasses.replace(first, block_cols=first.n, **cut),
            dataclasses.replace(second, block_cols=second.n, **cut))


def attention_extent(node: Node) -> int:
    scores, _, context = attention_parts(node)
    return shared_items(*attention_plans(scores, context))


def attention_chunk(node: Node, extent: int, threads: int) -> int:
    """With at least a sequence per thread, one chunk per thread: the caller takes the first (it starts
    at once) and so reads the sequences whose rows it wrote itself in the row block of the product
    before, on its own core's cache, and so does the worker (all-MiniLM at batch 8 x 128: ~2% faster
    than chunks interleaved across the threads). One sentence keeps a few chunks per thread."""
    scores, _, context = attention_parts(node)
    first, _ = attention_plans(scores, context)
    sequences = first.groups[0] if first.groups else 1
    if sequences >= threads > 1:
        return -(-extent // threads)
    return max(1, extent // (threads * 4))
