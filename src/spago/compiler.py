"""``spago.compile``: trace, optimise, lower to LLVM, and load native code — one call."""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from .ir.graph import Graph
from .ir.tracer import trace


def compile(fn: Callable | Graph, *example_args: Any, passes: Sequence | None = None, inference: bool = True,
            dump_dir: str | None = None, name: str | None = None, **example_kwargs: Any):
    """Compile ``fn`` for the shapes and dtypes of the example arguments (arrays, Tensors or ``spago.spec``).

    Returns a `CompiledFunction` called like ``fn`` with NumPy arrays or Tensors, returning NumPy arrays
    in the structure ``fn`` returns. ``passes`` replaces the default optimisation pipeline;
    ``inference=False`` keeps parameters as inputs-by-reference instead of folding them as constants.
    """
    from .backend.codegen import ENTRY, lower
    from .backend.jit import compile_ir, load_object
    from .backend.runtime import CompiledFunction
    from .passes import optimize

    stages = {}
    start = time.perf_counter()
    graph = fn if isinstance(fn, Graph) else trace(fn, *example_args, name=name, **example_kwargs)
    stages["trace"] = time.perf_counter() - start

    start = time.perf_counter()
    optimized, manager = optimize(graph, passes, inference=inference, dump_dir=dump_dir)
    stages["optimize"] = time.perf_counter() - start

    start = time.perf_counter()
    lowered = lower(optimized, optimized.name)
    stages["lower"] = time.perf_counter() - start

    start = time.perf_counter()
    module, obj = compile_ir(lowered.ir_text)
    stages["llvm"] = time.perf_counter() - start

    start = time.perf_counter()
    address = load_object(obj, ENTRY)
    stages["load"] = time.perf_counter() - start
    return CompiledFunction(optimized, lowered, address, source_graph=graph, stages=stages, manager=manager,
                            object_code=obj, optimized_ir=str(module))
