"""``spago.compile``: trace, optimise, lower to LLVM, and load native code — one call."""
from __future__ import annotations

import hashlib
import os
import time
from typing import Any, Callable, Sequence

from .ir.graph import Graph
from .ir.tracer import trace


def compile(fn: Callable | Graph, *example_args: Any, passes: Sequence | None = None, inference: bool = True,
            dump_dir: str | None = None, name: str | None = None, cache: bool | None = None,
            check: bool | None = None, profile: bool | None = None, donate: dict | None = None,
            **example_kwargs: Any):
    """Compile ``fn`` for the shapes and dtypes of the example arguments (arrays, Tensors or ``spago.spec``).

    Returns a `CompiledFunction` called like ``fn`` with NumPy arrays or Tensors, returning NumPy arrays
    in the structure ``fn`` returns. ``passes`` replaces the default optimisation pipeline;
    ``inference=False`` keeps parameters as inputs-by-reference instead of folding them as constants.
    ``cache`` (default on; ``SPAGO_CACHE=0`` turns it off) reuses object code from ``SPAGO_CACHE_DIR``.
    ``check=True`` (or ``SPAGO_CHECK=1``) runs the reference interpreter beside the native code on every
    call and names the first kernel whose values diverge. ``profile=True`` (or ``SPAGO_PROFILE=1``) counts
    CPU cycles per kernel call, so ``report()["profile"]`` shows where the time goes.

    ``donate`` maps flat output indices to where they may be written instead of a fresh array: an int is
    a flat input index (that input's array is overwritten and returned as the output), an array is a
    parameter's array (``inference=False``: updated in place). A training step thus updates weights and
    optimiser state with no copies. Each is honoured only where it is safe — every other reader of the
    input runs before the kernel that writes it — and otherwise the output gets its own array.
    """
    from .backend import cache as disk
    from .backend.codegen import ENTRY, PROFILE, lower
    from .backend.jit import compile_ir, load_object
    from .backend.runtime import CompiledFunction
    from .backend.cache import cache_enabled
    from .passes import optimize

    stages = {}
    start = time.perf_counter()
    graph = fn if isinstance(fn, Graph) else trace(fn, *example_args, name=name, **example_kwargs)
    stages["trace"] = time.perf_counter() - start

    start = time.perf_counter()
    optimized, manager = optimize(graph, passes, inference=inference, dump_dir=dump_dir)
    stages["optimize"] = time.perf_counter() - start

    check = check if check is not None else os.environ.get("SPAGO_CHECK", "0") not in ("", "0")
    start = time.perf_counter()
    profile = profile if profile is not None else os.environ.get("SPAGO_PROFILE", "0") not in ("", "0")
    lowered = lower(optimized, optimized.name, debug=check, profile=profile,
                    donate=_donated_nodes(optimized, donate) if donate else None)
    stages["lower"] = time.perf_counter() - start

    start = time.perf_counter()
    use_cache = cache_enabled(cache) and not check
    # the generated IR is part of the key, so object code from an older code generator is never reused
    variant = ("profile|" if profile else "") + hashlib.sha256(lowered.ir_text.encode()).hexdigest()
    key = disk.cache_key(optimized, variant) if use_cache else None
    obj = disk.load(key) if use_cache else None
    stages["cache_hit"] = obj is not None
    if obj is None:
        _, obj = compile_ir(lowered.ir_text)
        if use_cache:
            disk.store(key, obj)
    stages["llvm"] = time.perf_counter() - start

    start = time.perf_counter()
    address, counters = load_object(obj, ENTRY, PROFILE) if profile else (load_object(obj, ENTRY), None)
    stages["load"] = time.perf_counter() - start
    return CompiledFunction(optimized, lowered, address, source_graph=graph, stages=stages, manager=manager,
                            object_code=obj, check=check, profile_counters=counters)


def _donated_nodes(graph: Graph, donate: dict) -> dict:
    """``donate`` with its targets as graph nodes (a spago error names a target that is neither)."""
    from .errors import SpagoError

    nodes = {}
    for k, target in donate.items():
        if not isinstance(k, int) or not 0 <= k < len(graph.outputs):
            raise SpagoError(f"donate: {k!r} is not an output index of {graph.name} (it has {len(graph.outputs)})")
        if isinstance(target, int) and not isinstance(target, bool):
            if not 0 <= target < len(graph.inputs):
                raise SpagoError(f"donate: output {k} -> input {target}, but {graph.name} has "
                                 f"{len(graph.inputs)} array inputs")
            nodes[k] = graph.inputs[target]
            continue
        found = [n for n in graph.params if n.data is target]
        if not found:
            raise SpagoError(f"donate: output {k} -> an array that is not a parameter of {graph.name} "
                             "(parameters stay parameters only with inference=False)")
        nodes[k] = found[0]
    return nodes


def signature(args: tuple, kwargs: dict) -> tuple:
    """What a specialisation depends on: the argument structure, array shapes and dtypes, static values."""
    import numpy as np

    from .ir.pytree import flatten
    from .tensor import Tensor

    leaves, paths, tree = flatten((tuple(args), dict(kwargs)))
    parts = []
    for leaf in leaves:
        if isinstance(leaf, Tensor):
            parts.append(("array", leaf.shape, leaf.dtype.name))
        elif isinstance(leaf, np.ndarray):
            parts.append(("array", leaf.shape, leaf.dtype.name))
        else:
            try:
                hash(leaf)
                parts.append(("static", type(leaf).__name__, leaf))
            except TypeError:
                parts.append(("static", type(leaf).__name__, repr(leaf)))
    return str(tree), tuple(parts)


class JitFunction:
    """A function compiled on first call for each new argument signature (shapes, dtypes, static values);
    the most recent ``maxsize`` specialisations are kept (least recently used dropped first)."""

    def __init__(self, fn: Callable, maxsize: int = 32, **options: Any):
        import collections
        import functools
        import threading

        self.fn = fn
        self.maxsize = maxsize
        self.options = options
        self._cache: "collections.OrderedDict" = collections.OrderedDict()
        self._lock = threading.Lock()
        functools.update_wrapper(self, fn)

    def specialize(self, *args: Any, **kwargs: Any):
        """The compiled function for these arguments (compiling it if needed)."""
        key = signature(args, kwargs)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        compiled = compile(self.fn, *args, **self.options, **kwargs)
        with self._lock:
            self._cache[key] = compiled
            while len(self._cache) > self.maxsize:
                self._cache.popitem(last=False)
        return compiled

    def __call__(self, *args: Any, **kwargs: Any):
        return self.specialize(*args, **kwargs)(*args, **kwargs)

    def cache_info(self) -> dict:
        return {"size": len(self._cache), "maxsize": self.maxsize}

    def __repr__(self) -> str:
        name = getattr(self.fn, "__qualname__", type(self.fn).__name__)
        return f"<JitFunction {name}: {len(self._cache)} of at most {self.maxsize} signatures compiled>"


def jit(fn: Callable | None = None, *, maxsize: int = 32, **options: Any):
    """Decorator: compile ``fn`` per input signature, like ``jax.jit`` (shapes are static)."""
    if fn is None:
        return lambda f: JitFunction(f, maxsize, **options)
    return JitFunction(fn, maxsize, **options)
