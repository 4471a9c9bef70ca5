"""Lower an optimised graph to one LLVM module: a function per kernel and one entry point.

The entry point ``void spago_entry(ptr inputs, ptr outputs, ptr consts, ptr arena)`` calls the kernels
in schedule order. ``inputs``/``outputs``/``consts`` are arrays of data pointers; every intermediate lives
at its planned offset in ``arena``. One call of a compiled function is therefore one foreign call.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from llvmlite import ir

from ..ir.graph import Graph, Node
from ..passes.schedule import alias_root, is_alias
from .kernels import PARALLEL, emitter_for, family_of
from .types import I8, I32, I64, PTR, VOID

ENTRY = "spago_entry"
PROFILE = "spago_profile_cycles"  # profiling builds: i64 per kernel call site, then the whole entry's cycles


@dataclass
class OutputSource:
    """Where output ``k`` comes from: written by a kernel, or copied after the call from another array."""

    kind: str       # "kernel" | "input" | "const" | "output"
    index: int = 0  # which input / const / output to copy from (unused for "kernel")


@dataclass
class Lowered:
    module: ir.Module
    consts: list                     # graph nodes whose data pointers go in the consts array, in order
    outputs: list                    # OutputSource per graph output
    arena_bytes: int
    offsets: dict                    # intermediate node -> arena offset
    kernels: list = field(default_factory=list)  # (function name, node) in call order
    profile: bool = False            # whether the entry counts cycles per kernel into ``PROFILE``

    @property
    def ir_text(self) -> str:
        return str(self.module)


def plan_offsets(graph: Graph, output_roots: set, debug: bool = False) -> tuple[dict, int]:
    """Arena offsets of intermediates, from the memory planner (``debug``: no reuse at all, so every
    intermediate can be read back after a call)."""
    if debug:
        offsets, total = {}, 0
        for n in graph.nodes:
            if not is_alias(n) and n not in output_roots:
                offsets[n] = total
                total += -(-n.spec.nbytes // 64) * 64
        return offsets, total
    from ..passes.memory import plan_memory

    plan = plan_memory(graph)
    offsets = {e.node: e.offset for e in plan.entries}
    missing = [n for n in graph.nodes if not is_alias(n) and n not in output_roots and n not in offsets]
    if missing:
        raise AssertionError(f"memory plan has no buffer for {missing[0].format()}")
    return offsets, plan.arena_bytes


def lower(graph: Graph, name: str = "spago", debug: bool = False, profile: bool = False) -> Lowered:
    """The module for ``graph``; ``profile`` brackets every kernel call with cycle-counter reads and adds
    the difference to that call's slot of the global ``PROFILE`` array (the last slot: the whole call)."""
    module = ir.Module(name=name)
    consts = graph.params + graph.consts
    const_index = {n: k for k, n in enumerate(consts)}
    input_index = {n: k for k, n in enumerate(graph.inputs)}

    # Which kernel writes straight into which output array; the rest are copied after the call.
    sources: list = []
    output_slot: dict = {}
    for k, o in enumerate(graph.outputs):
        root = alias_root(o)
        if root.kind == "op" and root not in output_slot:
            output_slot[root] = k
            sources.append(OutputSource("kernel"))
        elif root.kind == "op":
            sources.append(OutputSource("output", output_slot[root]))
        elif root.kind == "input":
            sources.append(OutputSource("input", input_index[root]))
        else:
            sources.append(OutputSource("const", const_index[root]))
    offsets, arena_bytes = plan_offsets(graph, set(output_slot), debug)

    entry = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR, PTR, PTR]), ENTRY)
    for a, nm in zip(entry.args, ("inputs", "outputs", "consts", "arena")):
        a.name = nm
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    args_in, args_out, args_const, arena = entry.args

    def slot(table: ir.Value, k: int) -> ir.Value:
        return b.load(b.gep(table, [ir.Constant(I64, k)], inbounds=True, source_etype=PTR), typ=PTR)

    ptrs: dict = {}
    for n in graph.inputs:
        ptrs[n] = slot(args_in, input_index[n])
    for n in consts:
        ptrs[n] = slot(args_const, const_index[n])
    kernels = []
    emitted: dict = {}  # identical kernels (an unrolled loop's steps) are emitted once and called again
    calls = [n for n in graph.nodes if not is_alias(n)]
    counters = _profile_counters(module, len(calls) + 1) if profile else None
    clock = (ir.Function(module, ir.FunctionType(I64, []), "llvm.readcyclecounter") if profile else None)
    begin = b.call(clock, []) if profile else None
    for n in graph.nodes:
        if is_alias(n):
            ptrs[n] = ptrs[n.inputs[0]]
            continue
        if n in output_slot:
            ptrs[n] = slot(args_out, output_slot[n])
        else:
            ptrs[n] = b.gep(arena, [ir.Constant(I64, offsets[n])], inbounds=True, source_etype=I8)
        key = kernel_key(n)
        fn = emitted.get(key)
        if fn is None:
            fn = emitted[key] = kernel_function(module, n, len(emitted))
        before = b.call(clock, []) if profile else None
        b.call(fn, [ptrs[n]] + [ptrs[i] for i in n.inputs])
        if profile:
            _count(b, counters, len(kernels), b.sub(b.call(clock, []), before))
        kernels.append((fn.name, n))
    if profile:
        _count(b, counters, len(kernels), b.sub(b.call(clock, []), begin))
    b.ret_void()
    return Lowered(module, consts, sources, arena_bytes, offsets, kernels, profile)


def _profile_counters(module: ir.Module, count: int) -> ir.GlobalVariable:
    counters = ir.GlobalVariable(module, ir.ArrayType(I64, count), PROFILE)
    counters.initializer = ir.Constant(ir.ArrayType(I64, count), [0] * count)
    counters.align = 64
    return counters


def _count(b: ir.IRBuilder, counters: ir.GlobalVariable, k: int, cycles: ir.Value) -> None:
    """counters[k] += cycles, atomically (threads may call one compiled function at once)."""
    slot = b.gep(counters, [ir.Constant(I32, 0), ir.Constant(I32, k)], inbounds=True)
    b.atomic_rmw("add", slot, cycles, "monotonic")


def kernel_key(node: Node) -> str:
    """What a kernel's code depends on: op, attributes (a fused body by its structure) and operand types."""
    from .cache import attribute_text

    attrs = ";".join(f"{k}={attribute_text(v)}" for k, v in sorted(node.attrs.items()))
    return f"{node.op.name}|{attrs}|{','.join(str(i.spec) for i in node.inputs)}|{node.spec}"


def kernel_function(module: ir.Module, node: Node, index: int) -> ir.Function:
    """Emit the LLVM function computing ``node`` (its name tells the family, for profiles and asm)."""
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR] * (1 + len(node.inputs))),
                     f"k{index}_{family_of(node)}_{node.name}".replace(".", "_"))
    fn.linkage = "internal"
    fn.attributes.add("noinline")  # optimised once on its own, however many times the entry calls it
    fn.args[0].name = "out"
    for k, a in enumerate(fn.args[1:]):
        a.name = f"in{k}"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    extent = _parallel_extent(node)
    if extent > 1:
        _emit_parallel(module, b, fn, node, extent)
    else:
        emitter_for(node)(b, list(fn.args), node)
    b.ret_void()
    return fn


def _parallel_extent(node: Node) -> int:
    """The outer loop extent to split across threads, or 0 to run the kernel on one thread."""
    from . import parallel
    from .kernels import _load_families

    _load_families()
    family = family_of(node)
    extent_of = PARALLEL.get(family)
    if extent_of is None or not parallel.enabled():
        return 0
    if family != "matmul" and node.spec.size < parallel.MIN_ELEMENTS:
        return 0  # a matrix product judges its own work (multiply-adds, not output size)
    return extent_of(node)


def _emit_parallel(module: ir.Module, b: ir.IRBuilder, fn: ir.Function, node: Node, extent: int) -> None:
    """The kernel hands its pointers to ``spago_parallel_for`` (see `threadpool`), which runs the body
    on chunks [start, end) of the outer loop on the calling thread and the pool's workers."""
    from . import parallel
    from .threadpool import SYMBOL

    chunk = max(1, extent // (min(parallel.threads(), extent) * 4))
    worker = ir.Function(module, ir.FunctionType(VOID, [PTR, I64, I64]), fn.name + "_worker")
    worker.linkage = "internal"
    wb = ir.IRBuilder(worker.append_basic_block("entry"))
    ctx, start, end = worker.args
    args = [wb.load(wb.gep(ctx, [ir.Constant(I64, k)], inbounds=True, source_etype=PTR), typ=PTR)
            for k in range(len(fn.args))]
    emitter_for(node)(wb, args, node, outer=(start, end))
    wb.ret_void()

    ctx = b.alloca(PTR, size=ir.Constant(I64, len(fn.args)))
    for k, a in enumerate(fn.args):
        b.store(a, b.gep(ctx, [ir.Constant(I64, k)], inbounds=True, source_etype=PTR))
    run = _runtime(module, SYMBOL, VOID, [PTR, PTR, I64, I64])
    b.call(run, [worker, ctx, ir.Constant(I64, extent), ir.Constant(I64, chunk)])


def _runtime(module: ir.Module, name: str, ret, params) -> ir.Function:
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, ir.FunctionType(ret, params), name)
