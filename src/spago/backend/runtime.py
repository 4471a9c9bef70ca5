"""`CompiledFunction`: native code called like the Python function it came from.

Every argument is checked (structure, shape, dtype, memory layout) before a pointer reaches machine
code, so a wrong call raises a spago error instead of crashing the process. ctypes releases the GIL
for the call; each thread gets its own arena, so calls from several threads run side by side.
"""
from __future__ import annotations

import ctypes
import functools
import sys
import threading
import time
from typing import Any

import numpy as np

from ..errors import SpagoError
from ..ir.graph import Graph
from ..ir.pytree import flatten, unflatten
from ..layout import ALIGNMENT, aligned_empty
from ..tensor import Tensor
from .codegen import Lowered
from .jit import ENTRY_TYPE
from .threadpool import SYMBOL

ALIGN = ALIGNMENT
PREFAULT_BYTES = 1 << 22


@functools.lru_cache(maxsize=None)
def _pointer_array_type(length: int) -> type:
    return ctypes.c_void_p * max(length, 1)  # one class per length, not a new class (a cycle) per call


def _pointer_array(arrays: list) -> ctypes.Array:
    return _pointer_array_type(len(arrays))(*[a.ctypes.data for a in arrays])


class CompiledFunction:
    def __init__(self, graph: Graph, lowered: Lowered, address: int, *, source_graph: Graph | None = None,
                 stages: dict | None = None, manager=None, object_code: bytes | None = None,
                 check: bool = False, profile_counters: int | None = None):
        self.graph = graph
        self.source_graph = source_graph
        self._lowered = lowered
        self._entry = ENTRY_TYPE(address)
        self._consts = [_resident(_contiguous(n.data)) for n in lowered.consts]
        self._const_ptrs = _pointer_array(self._consts)
        self._local = threading.local()
        stages = dict(stages or {})
        self.cache_hit = bool(stages.pop("cache_hit", False))
        self._stages = stages
        self._manager = manager
        self._object = object_code
        self.check = check
        self._threaded = object_code is not None and SYMBOL.encode() in object_code
        self._pool = None
        if self._threaded:
            from .blas import use_one_blas_thread
            from .threadpool import pool

            use_one_blas_thread()
            self._pool = pool()
        self.__name__ = graph.name
        self._profile = None
        if profile_counters is not None:
            slots = len(lowered.kernels) + 1
            self._profile = np.ctypeslib.as_array((ctypes.c_int64 * slots).from_address(profile_counters))
            self._profile_calls = 0
            self._profile_seconds = 0.0

    # -- calling ------------------------------------------------------------------------
    def _arena(self) -> np.ndarray:
        arena = getattr(self._local, "arena", None)
        if arena is None:
            arena = self._local.arena = aligned_empty(max(self._lowered.arena_bytes, 1))
        return arena

    def _status_slots(self, arena: np.ndarray) -> np.ndarray | None:
        """The (flag, value) int64 pairs the checking kernels report into (see codegen.CHECKED)."""
        checks = self._lowered.checks
        if not checks:
            return None
        first = checks[0][1]
        return arena[first:first + 16 * len(checks)].view(np.int64).reshape(len(checks), 2)

    def _raise_status(self, status: np.ndarray) -> None:
        """A kernel found bad data (an index out of range): a spago error naming the input it came from."""
        k = int(np.flatnonzero(status[:, 0])[0])
        node, value = self._lowered.checks[k][0], int(status[k, 1])
        if node.op.name == "scan":
            raise SpagoError(f"{self.graph.name}: index {value} is out of range for a take or scatter_add inside "
                             f"the loop %{node.name}; no result is returned")
        source = node.inputs[1]
        seen = set()
        while source.kind == "op" and source.inputs and source not in seen:
            seen.add(source)
            source = source.inputs[0] if source.op.name != "take" else source.inputs[1]
        named = f" (from input {source.name!r})" if source.kind == "input" else ""
        low = -1
        if node.op.name == "take":
            rows = node.inputs[0].shape[node.attrs["axis"]]
            low = -1 if node.attrs.get("negative", True) else 0
            what = f"take along axis {node.attrs['axis']} of a tensor of shape {node.inputs[0].shape}"
        else:
            rows = node.attrs["size"]
            what = f"scatter_add into {rows} rows"
            low = -1
        raise SpagoError(f"{self.graph.name}: index {value} is out of range [{low * rows}, {rows}) for {what} at "
                         f"%{node.name}{named}; no result is returned")

    @functools.cached_property
    def _flat_arity(self) -> int:
        """How many positional arrays the function takes when that is all it takes (no nesting, keywords
        or static values), else -1: such calls skip flattening (a few µs of a small product's call)."""
        tree, graph = self.graph.in_tree, self.graph
        if tree is None or graph.static_args or tree.kind != "tuple" or len(tree.children) != 2:
            return -1
        positional, keywords = tree.children
        if keywords.children or any(c.kind != "leaf" for c in positional.children):
            return -1
        return len(positional.children) if len(positional.children) == len(graph.inputs) else -1

    def _check_args(self, args: tuple, kwargs: dict) -> list:
        graph = self.graph
        if not kwargs and len(args) == self._flat_arity and all(type(a) is np.ndarray for a in args):
            return [_check_array(node, value, graph.name) for node, value in zip(graph.inputs, args)]
        leaves, paths, tree = flatten((tuple(args), dict(kwargs)))
        if graph.in_tree is not None and tree != graph.in_tree:
            raise SpagoError(self._structure_error(args, kwargs, tree))
        values = [leaf for leaf, p in zip(leaves, paths) if p not in graph.static_args]
        for p, leaf in zip(paths, leaves):
            if p in graph.static_args and not _same_static(graph.static_args[p], leaf):
                raise SpagoError(f"{graph.name}: argument {p} was {graph.static_args[p]!r} when compiled, "
                                 f"got {leaf!r}; compile again for another value")
        if len(values) != len(graph.inputs):
            raise SpagoError(f"{graph.name}: expected {len(graph.inputs)} array arguments, got {len(values)}")
        return [_check_array(node, value, graph.name) for node, value in zip(graph.inputs, values)]

    def _structure_error(self, args: tuple, kwargs: dict, tree) -> str:
        """Name the first top-level argument whose nesting differs from the compiled one."""
        g = self.graph
        expected_args, expected_kwargs = g.in_tree.children
        if len(args) != len(expected_args.children) or set(kwargs) != set(expected_kwargs.keys):
            return (f"{g.name}: expected {len(expected_args.children)} positional arguments"
                    f"{' and keywords ' + ', '.join(expected_kwargs.keys) if expected_kwargs.keys else ''}, "
                    f"got {len(args)}{' and keywords ' + ', '.join(kwargs) if kwargs else ''}")
        given_args = tree.children[0].children
        for k, (want, got) in enumerate(zip(expected_args.children, given_args)):
            if want != got:
                name = self._input_names()[k] if k < len(self._input_names()) else f"#{k}"
                what = "None" if args[k] is None else type(args[k]).__name__
                return f"{g.name}: argument {name!r} is {what}, expected the structure {want} it was compiled for"
        return f"{g.name}: arguments have structure {tree}, it was compiled for {g.in_tree}"

    def _input_names(self) -> list:
        """Top-level argument names, in order (a nested argument's inputs are named ``arg.key``)."""
        return list(dict.fromkeys(n.name.split(".")[0] for n in self.graph.inputs))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._run(self._check_args(args, kwargs), self._call_outputs())

    def _call_outputs(self) -> list:
        """Output arrays for a call: those of this thread's previous call that nothing outside holds any
        more, fresh ones for the rest. Fresh pages cost first-touch faults (and, threaded, a zero fill) on
        every call: 0.47 ms of a 4 ms product with a 6 MB result at two threads."""
        kept = getattr(self._local, "outputs", None)
        if kept is None:
            outputs = self.output_buffers()
        else:
            free = _sole_references(kept)
            outputs = [a if ok else self._fresh(a.shape, a.dtype) for a, ok in zip(kept, free)]
        self._local.outputs = tuple(outputs)
        return outputs

    def output_buffers(self) -> list:
        """Fresh arrays for the flat outputs, for `call_into`."""
        return [self._fresh(o.shape, o.dtype) for o in self.graph.outputs]

    def _fresh(self, shape: tuple, dtype) -> np.ndarray:
        out = np.empty(shape, dtype)
        if self._threaded and out.nbytes >= PREFAULT_BYTES:
            out.fill(0)  # first touch here: page faults taken by several threads at once are far slower
        return out

    def call_into(self, out: list, *args: Any, **kwargs: Any) -> Any:
        """Call, writing the results into ``out`` (arrays from `output_buffers`), and return them in the
        function's output structure. A loop that calls many times reuses one set of buffers, so it pays
        no allocation and no first-touch page faults per call; each call overwrites the previous results."""
        if (not isinstance(out, list) or len(out) != len(self.graph.outputs)
                or any(not isinstance(a, np.ndarray) or a.shape != o.shape or a.dtype != o.dtype
                       or not a.flags.c_contiguous or not a.flags.writeable for a, o in zip(out, self.graph.outputs))):
            raise SpagoError(f"{self.graph.name}: call_into needs a list of {len(self.graph.outputs)} writable "
                             "C-contiguous arrays matching the outputs (use output_buffers())")
        return self._run(self._check_args(args, kwargs), list(out))

    def _run(self, arrays: list, outputs: list) -> Any:
        in_ptrs, out_ptrs = _pointer_array(arrays), _pointer_array(outputs)  # alive for the call
        start = time.perf_counter() if self._profile is not None else 0.0
        arena = self._arena()
        status = self._status_slots(arena)
        if status is not None:
            status[:] = 0
        if self._pool is not None:  # the pool's workers spin for the whole call (see `threadpool`)
            self._pool.enter()
        try:
            self._entry(ctypes.addressof(in_ptrs), ctypes.addressof(out_ptrs), ctypes.addressof(self._const_ptrs),
                        arena.ctypes.data)
        finally:
            if self._pool is not None:
                self._pool.leave()
        if status is not None and status[:, 0].any():
            self._raise_status(status)
        if self._profile is not None:
            self._profile_seconds += time.perf_counter() - start
            self._profile_calls += 1
        for k, src in enumerate(self._lowered.outputs):
            if src.kind == "donated":  # the kernel wrote it into that input's (or parameter's) own array
                outputs[k] = (arrays if src.table == "input" else self._consts)[src.index]
            elif src.kind == "input":
                np.copyto(outputs[k], arrays[src.index].reshape(outputs[k].shape))
            elif src.kind == "const":
                np.copyto(outputs[k], self._consts[src.index].reshape(outputs[k].shape))
            elif src.kind == "output":
                np.copyto(outputs[k], outputs[src.index].reshape(outputs[k].shape))
            elif src.kind == "arena":  # a scan's result, inside the scan's buffer in the arena
                o = outputs[k]
                np.copyto(o, self._arena()[src.index:src.index + o.nbytes].view(o.dtype).reshape(o.shape))
        if self.check:
            self._shadow_check(arrays, outputs)
        tree = self.graph.out_tree
        return unflatten(tree, outputs) if tree is not None else outputs

    def _shadow_check(self, arrays: list, outputs: list) -> None:
        """Compare every kernel's result with the reference interpreter; name the first that differs."""
        from ..ir.interpreter import Interpreter

        values: dict = {}

        class Recorder(Interpreter):
            def run_node(self, node, args):
                values[node] = out = super().run_node(node, args)
                return out

        Recorder(self.graph).run_flat(arrays)
        arena = self._arena()
        slot = {n: k for k, n in enumerate(self.graph.outputs)}
        for name, node in self._lowered.kernels:
            if node.op.name == "scan":
                known = dict(zip(self.graph.inputs, arrays)) | values
                self._check_loop(name, node, values, arena, lambda n: known[n] if n in known else n.data)
                continue
            if node in self._lowered.offsets:
                off = self._lowered.offsets[node]
                got = arena[off:off + node.spec.nbytes].view(node.dtype).reshape(node.shape)
            else:
                got = outputs[slot[next(o for o in self.graph.outputs if _root(o) is node)]].reshape(node.shape)
            want = values[node]
            bad = _differs(got, want)
            if bad.any():
                where = tuple(int(i) for i in np.argwhere(bad)[0])
                body = node.attrs.get("body")
                ops = f" (fusing {', '.join(n.op.name for n in body.nodes)})" if body is not None else ""
                raise SpagoError(
                    f"shadow check: kernel {name} computing %{node.name}{ops}"
                    f"{' in ' + node.scope if node.scope else ''} differs from the interpreter at index {where}: "
                    f"native {got[where].item()!r}, reference {want[where].item()!r} "
                    f"({int(bad.sum())} of {bad.size} elements differ)")

    def _check_loop(self, name: str, node, values: dict, arena: np.ndarray, arrays_of) -> None:
        """Compare a scan's results; where they differ, replay its steps with the interpreter and name the
        first step and body kernel whose value differs (debug builds keep every step's body values)."""
        from ..ir.interpreter import Interpreter
        from ..ops.scan import layout, part_specs, run_steps
        from ..lower.memory import debug_offsets, scan_scratch
        from ..lower.schedule import alias_root, is_scan_result

        body, length = node.attrs["body"], node.attrs["length"]
        offsets, total = layout(body, length, node.attrs["num_carry"])
        start = self._lowered.offsets[node]
        packed = values[node]
        for k, (off, spec) in enumerate(zip(offsets, part_specs(body, length, node.attrs["num_carry"]))):
            got = arena[start + off:start + off + spec.nbytes].view(spec.dtype).reshape(spec.shape)
            want = packed[off:off + spec.nbytes].view(spec.dtype).reshape(spec.shape)
            if _differs(got, want).any():
                break
        else:
            return
        carry_bytes = scan_scratch(node, debug=True)[1]
        inner, step_bytes = debug_offsets(body, {alias_root(o) for o in body.outputs if not is_scan_result(o)})
        names = {n: kname for kname, n in self._lowered.body_kernels}
        seen: dict = {}

        class Recorder(Interpreter):
            def run_node(self, n, args):
                seen[n] = out = super().run_node(n, args)
                return out

        recorder = Recorder(body)

        def on_step(t, step_inputs):
            seen.clear()
            recorder.run_flat(step_inputs)
            base = start + total + carry_bytes + t * step_bytes
            for n in body.nodes:
                if n in inner:
                    got = arena[base + inner[n]:base + inner[n] + n.spec.nbytes].view(n.dtype).reshape(n.shape)
                    if _differs(got, seen[n]).any():
                        diverged(t, n, got, seen[n])
            for k in range(node.attrs["num_carry"], len(body.outputs)):  # this step's row of each y
                o = body.outputs[k]
                row = start + offsets[k] + t * o.spec.nbytes
                got = arena[row:row + o.spec.nbytes].view(o.dtype).reshape(o.shape)
                want = seen[o] if o in seen else step_inputs[body.inputs.index(o)] if o in body.inputs else o.data
                if _differs(got, want).any():
                    diverged(t, alias_root(o), got, want)

        def diverged(t, n, got, want):
            raise SpagoError(f"shadow check: loop {name} (%{node.name}) at step {t}: body kernel "
                             f"{names.get(n, n.target)} computing %{n.name} differs from the interpreter "
                             f"(native {got.reshape(-1)[:4]}, reference {np.asarray(want).reshape(-1)[:4]})")

        run_steps(body, [arrays_of(i) for i in node.inputs], length=length, reverse=node.attrs["reverse"],
                  num_consts=node.attrs["num_consts"], num_carry=node.attrs["num_carry"], on_step=on_step)
        raise SpagoError(f"shadow check: loop {name} (%{node.name}): result {k} differs from the interpreter, "
                         "though every body kernel matched in every step (a carry or result copy is wrong)")

    # -- inspection --------------------------------------------------------------------
    def llvm_ir(self) -> str:
        """The module as generated, before LLVM's optimisation."""
        return self._lowered.ir_text

    def asm(self) -> str:
        """Machine code for this CPU, as assembly text."""
        from .target import emit_assembly, parse_and_optimize

        return emit_assembly(parse_and_optimize(self._lowered.ir_text))

    def export(self, path: str, weights: str = "embed") -> dict:
        """Write a shared library and C header (weights embedded, or in ``path.weights`` with
        ``weights="file"``) that run this function with no Python and no spago. Returns the paths."""
        from .export import export

        return export(self, path, weights)

    def memory_plan(self):
        from ..lower.memory import plan_memory

        return plan_memory(self.graph)

    def report(self) -> dict:
        from ..lower.memory import graph_report

        rep = graph_report(self.graph, self._manager.records if self._manager is not None else None)
        rep["compile_seconds"] = dict(self._stages)
        rep["kernel_names"] = [name for name, _ in self._lowered.kernels]
        rep["products"] = self.products()
        if self._profile is not None:
            rep["profile"] = self.profile()
        return rep

    def products(self) -> list:
        """One row per matrix-product kernel: its name, shape, GFLOP per call (per step inside a loop) and
        the path computing it (``spago-gemm-<isa>`` for the packed GEMM, ``openblas`` for the BLAS fallback,
        ``register-tiles``, ``loop``); ``in_loop`` marks the kernels of a scan's body."""
        from ..lower.families import family_of
        from ..lower.matmul import product_flops, product_path

        kernels = [(name, node, False) for name, node in self._lowered.kernels]
        kernels += [(name, node, True) for name, node in self._lowered.body_kernels]
        return [{"kernel": name, "node": node.name, "shape": node.shape, "path": product_path(node),
                 "gflop": product_flops(node) / 1e9, "in_loop": in_loop}
                for name, node, in_loop in kernels if family_of(node) == "matmul"]

    def profile(self) -> dict:
        """Time per kernel since compiling (or `reset_profile`), from the cycle counts of a ``profile=True``
        build: ``kernels`` rows sorted slowest first (name, family, fused ops, scope, total and mean ms,
        share of the native time), ``families`` totals, ``calls`` and ``seconds`` of native time."""
        if self._profile is None:
            raise SpagoError(f"{self.graph.name} was not compiled with profile=True (or SPAGO_PROFILE=1)")
        cycles = self._profile.copy()
        total = int(cycles[-1])
        calls = self._profile_calls
        per_cycle = self._profile_seconds / total if total else 0.0  # the cycle counter's period, measured
        rows, families = [], {}
        for (name, node), count in zip(self._lowered.kernels, cycles[:-1]):
            seconds = float(count) * per_cycle
            body = node.attrs.get("body")
            family = name.split("_")[1] if name.count("_") else name
            rows.append({"kernel": name, "node": node.name, "family": family, "scope": node.scope or "",
                         "ops": [n.op.name for n in body.nodes] if body is not None else [node.op.name],
                         "shape": node.shape, "total_ms": seconds * 1e3,
                         "mean_ms": seconds * 1e3 / calls if calls else 0.0,
                         "percent": 100.0 * float(count) / total if total else 0.0})
            if family == "matmul" and calls and seconds:
                from ..lower.matmul import product_flops

                rows[-1]["gflops"] = product_flops(node) * calls / seconds / 1e9
            families[family] = families.get(family, 0.0) + seconds * 1e3
        rows.sort(key=lambda r: -r["total_ms"])
        return {"calls": calls, "seconds": self._profile_seconds, "kernels": rows,
                "families": dict(sorted(families.items(), key=lambda kv: -kv[1]))}

    def profile_table(self, top: int = 20) -> str:
        """The slowest ``top`` kernels and the time per kernel family, as text."""
        p = self.profile()
        lines = [f"{p['calls']} calls, {p['seconds'] * 1e3 / max(p['calls'], 1):.3f} ms per call (native)",
                 f"{'kernel':<48} {'ms/call':>9} {'%':>6}  shape  ops"]
        for r in p["kernels"][:top]:
            lines.append(f"{r['kernel'][:48]:<48} {r['mean_ms']:>9.3f} {r['percent']:>6.1f}  "
                         f"{'x'.join(map(str, r['shape']))}  {','.join(r['ops'])[:60]}"
                         + (f"  {r['gflops']:.1f} GFLOP/s" if "gflops" in r else ""))
        lines.append("families: " + ", ".join(f"{k} {v / max(p['calls'], 1):.3f} ms"
                                              for k, v in p["families"].items()))
        return "\n".join(lines)

    def reset_profile(self) -> None:
        if self._profile is None:
            raise SpagoError(f"{self.graph.name} was not compiled with profile=True (or SPAGO_PROFILE=1)")
        self._profile[:] = 0
        self._profile_calls, self._profile_seconds = 0, 0.0

    def __repr__(self) -> str:
        ins = ", ".join(f"{n.name}: {n.spec}" for n in self.graph.inputs)
        return f"<CompiledFunction {self.graph.name}({ins}), {len(self._lowered.kernels)} kernels>"


def _differs(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Where native and reference values differ beyond float rounding (exactly, for integers)."""
    want = np.asarray(want)
    if want.dtype.kind != "f":
        return got != want
    tol = dict(rtol=1e-10, atol=1e-12) if want.dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    return ~np.isclose(got, want, equal_nan=True, **tol)


def _root(node):
    from ..lower.schedule import alias_root

    return alias_root(node)


def _reference_counts(arrays: tuple) -> list:
    return [sys.getrefcount(a) for a in arrays]


# what `_reference_counts` reads for an array that only the tuple passed to it holds (the tuple's slot, the
# comprehension's variable and the call's argument in CPython), measured rather than assumed
_SOLE = _reference_counts((np.empty(0),))[0]


def _sole_references(arrays: tuple) -> list:
    """Per array, whether ``arrays`` holds the only reference to it (the caller dropped the result and
    every view of it), so that the next call may write into it."""
    return [n <= _SOLE for n in _reference_counts(arrays)]


def _same_static(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - incomparable values are different
        return a is b


def _check_array(node, value: Any, fname: str) -> np.ndarray:
    """``value`` as a C-contiguous array of the node's dtype and shape, or a spago error naming it."""
    where = f"{fname}: argument {node.name!r}"
    if isinstance(value, Tensor):
        if not value.is_concrete:
            raise SpagoError(f"{where} is a traced tensor; compiled functions take concrete arrays")
        value = value.numpy()
    if value is None:
        raise SpagoError(f"{where} is None, expected an array of {node.spec}")
    if not isinstance(value, np.ndarray):
        if isinstance(value, (int, float, bool, list, tuple, np.generic)):
            value = np.asarray(value)
        else:
            raise SpagoError(f"{where} must be an array of {node.spec}, got {type(value).__name__}")
    if value.dtype.kind not in "biuf":
        raise SpagoError(f"{where} has dtype {value.dtype}, expected {node.dtype.name}")
    if tuple(value.shape) != node.shape:
        raise SpagoError(f"{where} has shape {tuple(value.shape)}, expected {node.shape}: shapes are static in a "
                         "compiled function; compile again for the new shape, or use spago.jit, which compiles "
                         "(and caches) one specialisation per shape")
    if value.dtype != node.dtype:
        if not np.can_cast(value.dtype, node.dtype, casting="safe"):
            raise SpagoError(f"{where} has dtype {value.dtype}, expected {node.dtype.name} "
                             "(cast it explicitly; converting would lose precision)")
        value = value.astype(node.dtype)
    return _contiguous(value)


# Mapped constants up to this size are copied into the process's own memory. Read from the mapping, a
# bias of a few KiB maps the whole page-cache folio around it (up to 2 MiB of the weights file) into the
# process: all-MiniLM's biases and norms brought 30 MiB of the file back after its weights were packed.
# Larger ones (an embedding table read a few rows per call) stay mapped.
RESIDENT_BYTES = 1 << 20


def _resident(a: np.ndarray) -> np.ndarray:
    """A small constant mapped from a weights file, as a copy in ordinary memory (the mapping's pages
    given back); anything else as it is."""
    from ..mapped import mapping_of, release_pages

    if a.nbytes > RESIDENT_BYTES or mapping_of(a) is None:
        return a
    copy = np.array(a, order="C")
    release_pages(a)
    return copy


def _contiguous(a: np.ndarray) -> np.ndarray:
    """``a`` itself when it is C-contiguous — a 0-d array included, which ``np.ascontiguousarray`` would
    copy into shape (1,) — so a parameter is read, and a donated output written, in the caller's array."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)
