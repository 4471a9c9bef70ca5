"""Graph optimisation passes, one module each, and the pipeline that runs them.

The default pipeline, in order::

    freeze_params        (inference only: parameters become constants)
    simplify             algebraic identities
    constant_folding     weight-only work done once
    cse, dce             shared and dead work removed
    scan_bodies          loops: dead results, invariant and per-step work moved out, bodies optimised
    constant_folding     again, for the weight-only work moved out of loops (a transposed weight)
    gather_products      take(E, ids) @ W of constants becomes take(E @ W, ids) (an embedding's projection)
    fold_linear_chains   (X @ W1 + b1) @ W2 of constants becomes one product (a re-projection into an RNN)
    merge_sums           sums of slice gradients / of products become one concat / one product
    batch_matmul         independent products sharing a weight become one (an RNN's input projections)
    merge_shared_input   products of one input by different constant weights become one (Q, K, V)
    split_concat_products  concat([x_t, h]) @ W becomes x_t @ W[:i] + h @ W[i:] (a cell written from the paper)
    batch_matmul         again, for the input shares that split off
    fuse_matmul          products with operand views and elementwise epilogues
    fuse_rowwise         softmax / layer norm style row reductions
    fuse_attention       scores product, softmax and context product as one kernel
    fuse_reduce          other reductions with their producers
    fuse_elementwise     remaining elementwise chains
    dce
    pack_weights         constant weights packed once into the GEMM micro-kernel's panels (replacing them)
    parallel_branches    independent chains of small kernels (a bidirectional RNN) run one per thread

Optional: ``fuse_mlp`` (after ``fuse_rowwise``) runs a feed-forward block's two products as one kernel
that never materialises the wide intermediate — less memory, but each block of rows repacks both weights
inside BLAS, which costs more time than the round trip it saves at BERT's sizes.
"""
from __future__ import annotations

from typing import Callable, Sequence

from ..ir.graph import Graph
from .manager import Pass, PassManager, PassRecord, pass_name  # noqa: F401

__all__ = ["Pass", "PassManager", "PassRecord", "pass_name", "default_passes", "optimize"]


def default_passes(inference: bool = True) -> list:
    from .batch_matmul import batch_matmul
    from .constant_folding import constant_folding
    from .cse import cse
    from .dce import dce
    from .fuse_attention import fuse_attention
    from .fold_linear_chains import fold_linear_chains
    from .freeze import freeze_params
    from .fuse_elementwise import fuse_elementwise
    from .gather_products import gather_products
    from .fuse_matmul import fuse_matmul
    from .fuse_reduce import fuse_reduce
    from .fuse_rowwise import fuse_rowwise
    from .merge_shared_input import merge_shared_input
    from .pack_weights import pack_weights
    from .merge_sums import merge_sums
    from .parallel_branches import parallel_branches
    from .scan_bodies import scan_bodies
    from .simplify import simplify
    from .split_concat_products import split_concat_products

    front = [freeze_params] if inference else []
    return front + [simplify, constant_folding, cse, dce, scan_bodies, constant_folding, gather_products,
                    fold_linear_chains, cse, merge_sums, batch_matmul, merge_shared_input, split_concat_products,
                    batch_matmul, fuse_matmul,
                    fuse_rowwise, fuse_attention, fuse_reduce, fuse_elementwise, dce, pack_weights,
                    parallel_branches]


def body_passes() -> list:
    """The pipeline of a loop's body: the default one, without freezing (a body has no parameters) and
    without parallel regions (the body's kernels run in order inside one loop)."""
    from .parallel_branches import parallel_branches

    return [p for p in default_passes(inference=False) if p is not parallel_branches]


def optimize(graph: Graph, passes: Sequence[Pass] | None = None, *, inference: bool = True,
             dump_dir: str | None = None, verify: bool = True,
             on_pass: Callable[[str], None] | None = None) -> tuple[Graph, PassManager]:
    """Run ``passes`` (default: `default_passes`) on a copy of ``graph``; returns it with the manager,
    whose ``records`` hold per-pass timings and change summaries. ``on_pass`` is told each pass's name."""
    manager = PassManager(list(passes) if passes is not None else default_passes(inference), dump_dir, verify,
                          on_pass=on_pass)
    return manager.run(graph.copy()), manager
