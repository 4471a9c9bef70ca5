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
            kwargs: dict | None = None, **unknown: Any):
    """Compile ``fn`` for the shapes and dtypes of the example arguments (arrays, Tensors or ``spago.spec``).

    Examples of ``fn``'s own keyword arguments go in ``kwargs`` (a dict), never beside the compile options,
    so a misspelled option is an error rather than an argument of ``fn``.

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
    from .progress import Progress

    check_options(unknown, "spago.compile")
    kwargs = dict(kwargs or {})
    if not isinstance(fn, Graph) and not example_args and not kwargs:
        _needs_no_arguments(fn)

    stages = {}
    label = name or getattr(fn, "name", None) or getattr(fn, "__name__", None) or type(fn).__name__
    with Progress(f"compiling {label}", ("tracing", "passes", "lowering", "LLVM", "loading")) as progress:
        progress.stage("tracing")
        start = time.perf_counter()
        graph = fn if isinstance(fn, Graph) else trace(fn, *example_args, name=name, **kwargs)
        _refuse_frozen_dropout(graph)
        stages["trace"] = time.perf_counter() - start

        progress.stage("passes")
        start = time.perf_counter()
        optimized, manager = optimize(graph, passes, inference=inference, dump_dir=dump_dir,
                                      on_pass=lambda p: progress.stage(f"passes: {p}", advance=False))
        stages["optimize"] = time.perf_counter() - start

        progress.stage("lowering")
        check = check if check is not None else os.environ.get("SPAGO_CHECK", "0") not in ("", "0")
        start = time.perf_counter()
        profile = profile if profile is not None else os.environ.get("SPAGO_PROFILE", "0") not in ("", "0")
        lowered = lower(optimized, optimized.name, debug=check, profile=profile,
                        donate=_donated_nodes(optimized, donate) if donate else None)
        stages["lower"] = time.perf_counter() - start

        progress.stage(f"LLVM ({len(lowered.kernels)} kernels)")
        start = time.perf_counter()
        use_cache = cache_enabled(cache) and not check
        # the generated IR is part of the key, so object code from an older code generator is never reused
        variant = ("profile|" if profile else "") + hashlib.sha256(lowered.ir_text.encode()).hexdigest()
        key = disk.cache_key(optimized, variant) if use_cache else None
        obj = disk.load(key) if use_cache else None
        stages["cache_hit"] = obj is not None
        if obj is None:
            obj = in_worker(lambda: compile_ir(lowered.ir_text)[1], progress.tick)
            if use_cache:  # only complete object code reaches the cache (an interrupted compile stores nothing)
                disk.store(key, obj)
        stages["llvm"] = time.perf_counter() - start

        progress.stage("loading")
        start = time.perf_counter()
        address, counters = load_object(obj, ENTRY, PROFILE) if profile else (load_object(obj, ENTRY), None)
        stages["load"] = time.perf_counter() - start
    return CompiledFunction(optimized, lowered, address, source_graph=graph, stages=stages, manager=manager,
                            object_code=obj, check=check, profile_counters=counters)


def in_worker(work: Callable[[], Any], poll: Callable[[], None], interval: float = 0.1) -> Any:
    """``work()`` on a worker thread while this thread polls every ``interval`` seconds, so Ctrl-C stops the
    caller at once (LLVM cannot be interrupted mid-call: the worker finishes on its own and is dropped)."""
    import threading

    box: dict = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    worker = threading.Thread(target=run, name="spago-compile", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(interval)
        poll()
    if "error" in box:
        raise box["error"]
    return box["value"]


OPTIONS = ("passes", "inference", "dump_dir", "name", "cache", "check", "profile", "donate", "kwargs")
HINTS = {
    "static_argnums": "arguments that are not arrays (ints, strings, None) are static already",
    "static_argnames": "arguments that are not arrays (ints, strings, None) are static already",
    "dynamic": "shapes are static per compilation; spago.jit compiles one specialisation per signature",
    "mode": "spago has one optimisation pipeline; pass passes=[...] to change it",
    "fullgraph": "spago always compiles the whole function as one graph",
    "backend": "spago has one backend (LLVM)",
}


def check_options(unknown: dict, where: str, valid: Sequence[str] = OPTIONS,
                  tail: str = "examples of the function's own keyword arguments go in kwargs={...}") -> None:
    """A spago error naming any option ``where`` does not know, the closest valid one and all valid ones."""
    import difflib

    from .errors import SpagoError

    if not unknown:
        return
    name = sorted(unknown)[0]
    close = difflib.get_close_matches(name, valid, n=1)
    hint = HINTS.get(name) or (f"did you mean {close[0]}=?" if close else "")
    raise SpagoError(f"{where}: unknown option {name}={unknown[name]!r}" + (f" ({hint})" if hint else "")
                     + f"; valid options: {', '.join(valid)}; {tail}")


def _needs_no_arguments(fn: Callable) -> None:
    """Compiling with no example inputs only works for a function that takes none: say what is missing."""
    from .errors import SpagoError
    from .ir.tracer import required_arguments

    required = required_arguments(fn)
    if required:
        what = type(fn).__name__ if hasattr(fn, "named_parameters") else getattr(fn, "__name__", "fn")
        raise SpagoError(f"spago.compile({what}) needs example inputs for {', '.join(required)}: shapes and "
                         "dtypes are fixed when compiling, e.g. spago.compile(model, np.zeros((8, 128), "
                         "np.float32)) or spago.compile(model, spago.spec((8, 128)))")


def _refuse_frozen_dropout(graph: Graph) -> None:
    """A dropout mask drawn while tracing, with no per-call seed, would be one constant mask in native code."""
    from .errors import SpagoError

    frozen = [n for n in graph.nodes if n.kind == "op" and n.op.name == "keep_mask" and not n.inputs]
    if frozen:
        where = f" (module {frozen[0].scope})" if frozen[0].scope else ""
        raise SpagoError(f"spago.compile: {graph.name} applies dropout in training mode{where}; compiled, it "
                         "would zero the same entries on every call. Call model.eval() before compiling for "
                         "inference, or train with spago.optim.compile_step, which draws fresh masks per call")


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

        check_options({k: v for k, v in options.items() if k not in OPTIONS or k == "kwargs"}, "spago.jit",
                      [o for o in OPTIONS if o != "kwargs"] + ["maxsize"],
                      "the function's keyword arguments are given when calling it")
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
        compiled = compile(self.fn, *args, kwargs=kwargs, **self.options)
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
