"""Lower an optimised graph to one LLVM module: a function per kernel and one entry point.

The entry point ``void spago_entry(ptr inputs, ptr outputs, ptr consts, ptr arena)`` calls the kernels
in schedule order. ``inputs``/``outputs``/``consts`` are arrays of data pointers; every intermediate lives
at its planned offset in ``arena``. One call of a compiled function is therefore one foreign call.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from llvmlite import ir

from ..ir.graph import Graph, Node
from ..lower.regions import regions
from ..lower.schedule import alias_root, byte_offset, is_alias, is_scan_result
from ..lower.families import family_of, parallel_chunk, parallel_extent
from .kernels import emitter_for
from .kernels.gemm import prefer_wide_vectors
from .types import I8, I32, I64, PTR, VOID, load_pointer, pointer_table

ENTRY = "spago_entry"
PROFILE = "spago_profile_cycles"  # profiling builds: i64 per kernel call site, then the whole entry's cycles


@dataclass
class OutputSource:
    """Where output ``k`` comes from: written by a kernel, or copied after the call from another array."""

    kind: str       # "kernel" | "input" | "const" | "output" | "donated" | "arena" (a scan's result)
    index: int = 0  # which input / const / output to copy from, or the arena offset (unused for "kernel")
    table: str = ""  # "donated": the kernel wrote it into input ``index`` ("input") or const ``index`` ("const")


@dataclass
class Lowered:
    module: ir.Module
    consts: list                     # graph nodes whose data pointers go in the consts array, in order
    outputs: list                    # OutputSource per graph output
    arena_bytes: int
    offsets: dict                    # intermediate node -> arena offset
    kernels: list = field(default_factory=list)  # (function name, node) in call order
    profile: bool = False            # whether the entry counts cycles per kernel into ``PROFILE``
    checks: list = field(default_factory=list)   # (node, arena offset of its status slot): see CHECKED
    body_kernels: list = field(default_factory=list)  # (function name, node) called inside scan loops

    @property
    def ir_text(self) -> str:
        return str(self.module)


def plan_offsets(graph: Graph, output_roots: set, debug: bool = False) -> tuple[dict, int]:
    """Arena offsets of intermediates, from the memory planner (``debug``: no reuse at all, so every
    intermediate can be read back after a call)."""
    from ..lower.memory import debug_offsets, plan_memory

    if debug:
        return debug_offsets(graph, output_roots)

    plan = plan_memory(graph)
    offsets = {e.node: e.offset for e in plan.entries}
    missing = [n for n in graph.nodes if not is_alias(n) and n not in output_roots and n not in offsets]
    if missing:
        raise AssertionError(f"memory plan has no buffer for {missing[0].format()}")
    return offsets, plan.arena_bytes


def lower(graph: Graph, name: str = "spago", debug: bool = False, profile: bool = False,
          donate: dict | None = None) -> Lowered:
    """The module for ``graph``; ``profile`` brackets every kernel call with cycle-counter reads and adds
    the difference to that call's slot of the global ``PROFILE`` array (the last slot: the whole call).
    ``donate`` maps output indices to the input or parameter node whose memory may receive them (see
    `spago.compile`); each is honoured only where `safe_to_write_over` allows."""
    module = ir.Module(name=name)
    consts = graph.params + graph.consts + loop_constants(graph)
    const_index = {n: k for k, n in enumerate(consts)}
    input_index = {n: k for k, n in enumerate(graph.inputs)}

    # Which kernel writes straight into which output array (or donated input); the rest are copied after.
    sources: list = []
    first: dict = {}         # kernel -> the first output it computes (later ones copy it)
    output_slot: dict = {}   # kernel -> the output array it writes
    written_over: dict = {}  # kernel -> the input or parameter node whose memory it writes instead
    arena_outputs: dict = {}  # output index -> the scan result it is copied from after the call
    for k, o in enumerate(graph.outputs):
        root = alias_root(o)
        target = (donate or {}).get(k)
        if is_scan_result(o):
            arena_outputs[k] = o
            sources.append(OutputSource("arena"))
        elif root.kind == "op" and root in first:
            sources.append(OutputSource("output", first[root]))
        elif root.kind == "op":
            first[root] = k
            if (target is not None and not debug and target not in written_over.values()
                    and safe_to_write_over(graph, o, target)):
                written_over[root] = target
                table, index = ("input", input_index[target]) if target in input_index else ("const", const_index[target])
                sources.append(OutputSource("donated", index, table))
            else:
                output_slot[root] = k
                sources.append(OutputSource("kernel"))
        elif root.kind == "input":
            sources.append(OutputSource("input", input_index[root]))
        else:
            sources.append(OutputSource("const", const_index[root]))
    offsets, arena_bytes = plan_offsets(graph, set(output_slot) | set(written_over), debug)
    for k, o in arena_outputs.items():
        sources[k].index = offsets[alias_root(o)] + byte_offset(o)
    # Kernels that validate data (an index out of range) report into a status slot of their own at the
    # arena's end: (flag, offending value), zeroed before each call and read after it by the runtime. A loop
    # whose body holds such kernels gets one slot, shared by its body's kernels at every step.
    status_base = -(-arena_bytes // STATUS_BYTES) * STATUS_BYTES
    checked = [n for n in graph.nodes if not is_alias(n) and _checks(n)]
    status = {n: status_base + k * STATUS_BYTES for k, n in enumerate(checked)}
    arena_bytes = status_base + len(checked) * STATUS_BYTES if checked else arena_bytes

    entry = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR, PTR, PTR]), ENTRY)
    for a, nm in zip(entry.args, TABLES):
        a.name = nm
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    calls = [n for n in graph.nodes if not is_alias(n)]
    emit = _Emitter(module, graph, offsets, output_slot, const_index, input_index,
                    _profile_counters(module, len(calls) + 1) if profile else None, written_over, status, debug)
    begin = emit.clock(b)
    frame = Frame(b, entry.args)
    region_at = {r.start: r for r in regions(graph)}
    t = 0
    while t < len(graph.nodes):
        region = region_at.get(t)
        if region is not None:
            emit.region(frame, region)
            t = region.end
        else:
            emit.node(frame, graph.nodes[t])
            t += 1
    if profile:
        _count(b, emit.counters, len(emit.kernels), b.sub(emit.clock(b), begin))
    b.ret_void()
    return Lowered(module, consts, sources, arena_bytes, offsets, emit.kernels, profile,
                   checks=list(status.items()), body_kernels=emit.body_kernels)


TABLES = ("inputs", "outputs", "consts", "arena")
CHECKED = ("take", "scatter_add")  # kernel families given a status slot (their last pointer argument)
STATUS_BYTES = 16


class Frame:
    """A function being emitted: its builder, the four pointer tables, and the data pointers it has
    loaded so far (each function loads its own)."""

    def __init__(self, b: ir.IRBuilder, tables: list, offsets: dict | None = None, inner: bool = False,
                 status: ir.Value | None = None):
        self.b, self.tables, self.ptrs = b, list(tables), {}
        self.offsets = offsets  # a loop body's arena offsets (None: the graph's)
        self.inner = inner      # inside a loop: body kernels are neither profiled nor listed as calls
        self.status = status    # inside a loop: the loop's status slot, shared by its checking kernels


def _checks(n: Node) -> bool:
    """Whether a kernel validates data (see CHECKED), or is a loop whose body holds one that does."""
    if n.op.name == "scan":
        return any(_checks(m) for m in n.attrs["body"].nodes if not is_alias(m))
    return family_of(n) in CHECKED


class _Emitter:
    """Emits kernel calls into the entry point or into a region's branch functions."""

    def __init__(self, module: ir.Module, graph: Graph, offsets: dict, output_slot: dict, const_index: dict,
                 input_index: dict, counters: ir.GlobalVariable | None, written_over: dict,
                 status: dict | None = None, debug: bool = False):
        self.module, self.offsets, self.output_slot, self.debug = module, offsets, output_slot, debug
        self.status = status or {}
        self.body_kernels: list = []
        self.loops = 0
        self.written_over = written_over
        self.const_index, self.input_index, self.counters = const_index, input_index, counters
        self.kernels: list = []
        self.emitted: dict = {}  # identical kernels (an unrolled loop's steps) are emitted once and called again
        self._clock = (ir.Function(module, ir.FunctionType(I64, []), "llvm.readcyclecounter")
                       if counters is not None else None)

    def clock(self, b: ir.IRBuilder):
        return b.call(self._clock, []) if self._clock is not None else None

    def pointer(self, frame: Frame, n: Node) -> ir.Value:
        ptr = frame.ptrs.get(n)
        if ptr is not None:
            return ptr
        b, (args_in, args_out, args_const, arena) = frame.b, frame.tables
        if is_alias(n) and n.op.name == "scan_part":
            ptr = b.gep(self.pointer(frame, n.inputs[0]), [ir.Constant(I64, n.attrs["offset"])], inbounds=True,
                        source_etype=I8)
        elif is_alias(n):
            ptr = self.pointer(frame, n.inputs[0])
        elif n in self.written_over:
            ptr = self.pointer(frame, self.written_over[n])
        elif n in self.input_index:
            ptr = load_pointer(b, args_in, self.input_index[n])
        elif n in self.const_index:
            ptr = load_pointer(b, args_const, self.const_index[n])
        elif n in self.output_slot:
            ptr = load_pointer(b, args_out, self.output_slot[n])
        else:
            ptr = b.gep(arena, [ir.Constant(I64, self.offsets[n])], inbounds=True, source_etype=I8)
        frame.ptrs[n] = ptr
        return ptr

    def inplace_inputs(self, frame: Frame, n: Node) -> tuple:
        """The inputs whose arena buffer ``n`` writes over (the planner gives an input and its reader one
        offset only then: an input is alive while its reader runs), or the donated input it writes into."""
        if n in self.written_over:
            return tuple(k for k, i in enumerate(n.inputs) if alias_root(i) is self.written_over[n])
        offsets = self.offsets if frame.offsets is None else frame.offsets
        if n not in offsets:
            return ()
        return tuple(k for k, i in enumerate(n.inputs)
                     if i.shape == n.shape and offsets.get(alias_root(i)) == offsets[n])

    def status_pointer(self, frame: Frame, n: Node) -> ir.Value:
        """Where a checking kernel (or a loop of them) reports bad data: its slot at the arena's end, the
        enclosing loop's slot inside a loop body, or nowhere (null) for a loop that checks nothing."""
        if frame.inner:
            return frame.status
        if n in self.status:
            return frame.b.gep(frame.tables[3], [ir.Constant(I64, self.status[n])], inbounds=True, source_etype=I8)
        return ir.Constant(PTR, None)

    def node(self, frame: Frame, n: Node) -> None:
        if is_alias(n):
            return
        b = frame.b
        args = [self.pointer(frame, n)] + [self.pointer(frame, i) for i in n.inputs]
        if n.op.name == "scan":  # one call of the loop's own function, which calls the body's kernels
            from .scan_loop import loop_function

            key = kernel_key(n) + ("|debug" if self.debug else "")
            fn = self.emitted.get(key)
            if fn is None:
                self.loops += 1  # numbered apart from kernels: a nested loop is emitted inside its parent's
                fn = self.emitted[key] = loop_function(self, n, self.loops)
            args += [frame.tables[2], self.status_pointer(frame, n)]
        else:
            inplace = self.inplace_inputs(frame, n)
            key = kernel_key(n) + (f"|inplace={inplace}" if inplace else "")
            fn = self.emitted.get(key)
            if fn is None:
                fn = self.emitted[key] = kernel_function(self.module, n, len(self.emitted), inplace)
            if family_of(n) in CHECKED:
                args.append(self.status_pointer(frame, n))
        if frame.inner:
            b.call(fn, args)
            self.body_kernels.append((fn.name, n))
            return
        before = self.clock(b)
        b.call(fn, args)
        if self.counters is not None:
            _count(b, self.counters, len(self.kernels), b.sub(self.clock(b), before))
        self.kernels.append((fn.name, n))

    def region(self, frame: Frame, region) -> None:
        """One function per branch; the entry hands ``region_worker(tables, start, end)`` — which runs
        branches [start, end) in turn — to the pool, so each thread takes a branch (or, when the pool is
        busy or absent, the calling thread runs them all in order)."""
        name = f"region{region.index}"
        branches = []
        for k, nodes in enumerate(region.branches):
            fn = ir.Function(self.module, ir.FunctionType(VOID, [PTR] * len(TABLES)), f"{name}_branch{k}")
            fn.linkage = "internal"
            fn.attributes.add("noinline")
            inner = Frame(ir.IRBuilder(fn.append_basic_block("entry")), fn.args)
            for n in nodes:
                self.node(inner, n)
            inner.b.ret_void()
            branches.append(fn)
        worker = ir.Function(self.module, ir.FunctionType(VOID, [PTR, I64, I64]), f"{name}_worker")
        worker.linkage = "internal"
        ctx, start, end = worker.args
        wb = ir.IRBuilder(worker.append_basic_block("entry"))
        tables = [load_pointer(wb, ctx, k) for k in range(len(TABLES))]
        from .loops import for_range

        with for_range(wb, end, "branch", start=start) as k:
            for index, fn in enumerate(branches):
                with wb.if_then(wb.icmp_signed("==", k, ir.Constant(I64, index))):
                    wb.call(fn, tables)
        wb.ret_void()
        _hand_to_pool(frame.b, worker, frame.tables, len(branches), 1)


def loop_constants(graph: Graph) -> list:
    """The constants of every scan body (nested ones too), after the graph's own: the loops read them
    from the same pointer table."""
    found: list = []
    for n in graph.nodes:
        if n.op.name == "scan":
            body = n.attrs["body"]
            found += body.params + body.consts + loop_constants(body)
    return found


def safe_to_write_over(graph: Graph, output: Node, target: Node) -> bool:
    """Whether the kernel computing ``output`` may write it straight into ``target``'s memory (an input or
    parameter of the same shape and dtype): every other kernel that reads ``target`` runs before it, none
    beside it in another branch of its region, and it reads ``target`` itself (if at all) element for
    element as an elementwise kernel — so each element is read before it is overwritten, and only then."""
    from ..lower.memory import aligned_inputs, inplace_candidate

    writer = alias_root(output)
    if (writer.kind != "op" or target.kind not in ("input", "param") or output.shape != target.shape
            or writer.spec != target.spec):
        return False
    region = writer.meta.get("branch")
    after = False  # past the writer in the schedule
    for n in graph.nodes:
        reads = any(alias_root(i) is target for i in n.inputs)
        if n is writer:
            after = True
            aligned = {alias_root(i) for i in aligned_inputs(n)} if inplace_candidate(n) else set()
            if reads and (target not in aligned
                          or any(alias_root(i) is target and i.shape != n.shape for i in n.inputs)):
                return False
        elif reads:
            other = n.meta.get("branch")
            if after or (region and other and other[0] == region[0] and other[1] != region[1]):
                return False
    return True


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
    """What a kernel's code depends on: op, attributes (a fused body by its structure), operand types, which
    operands are one value (``add(x, x)`` reads one pointer twice, so its code must not serve ``add(a, x)``),
    whether it runs inside a branch of a parallel region (then on one thread) and whether its weight is packed."""
    from .cache import attribute_text

    attrs = ";".join(f"{k}={attribute_text(v)}" for k, v in sorted(node.attrs.items()))
    alone = "|in-branch" if "branch" in node.meta else ""
    alone += f"|packed={node.meta['packed_b']}" if "packed_b" in node.meta else ""
    firsts = [node.inputs.index(i) for i in node.inputs]
    same = "" if firsts == list(range(len(firsts))) else f"|same={firsts}"
    return f"{node.op.name}|{attrs}|{','.join(str(i.spec) for i in node.inputs)}|{node.spec}{same}{alone}"


# Families whose loops LLVM vectorises faster at the full AVX-512 width: attention's softmax rows (exp,
# max, sum over the keys; the kernel measured ~15% faster on all-MiniLM's heads).
WIDE_VECTOR_FAMILIES = {"attention"}


def kernel_function(module: ir.Module, node: Node, index: int, inplace: tuple = ()) -> ir.Function:
    """Emit the LLVM function computing ``node`` (its name tells the family, for profiles and asm).

    ``inplace``: the inputs whose buffer the output overwrites (the memory plan's in-place sharing). The
    body then reads them through the output pointer, so LLVM sees each element read and written at
    one address and vectorises the loop; with two pointers to one buffer its overlap check would fail at
    run time and send every call down the scalar loop."""
    status = family_of(node) in CHECKED
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR] * (1 + len(node.inputs) + status)),
                     f"k{index}_{family_of(node)}_{node.name}".replace(".", "_"))
    fn.linkage = "internal"
    fn.attributes.add("noinline")  # optimised once on its own, however many times the entry calls it
    if family_of(node) in WIDE_VECTOR_FAMILIES:
        prefer_wide_vectors(fn)
    fn.args[0].name = "out"
    for k, a in enumerate(fn.args[1:1 + len(node.inputs)]):
        a.name = f"in{k}"
    if status:
        fn.args[-1].name = "status"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    extent = parallel_extent(node)
    if extent > 1:
        _emit_parallel(module, b, fn, node, extent, inplace)
    else:
        emitter_for(node)(b, _reading(list(fn.args), inplace), node)
    b.ret_void()
    return fn


def _reading(args: list, inplace: tuple) -> list:
    """The kernel's pointers, with the inputs it overwrites read through the output pointer."""
    for k in inplace:
        args[1 + k] = args[0]
    return args


def _emit_parallel(module: ir.Module, b: ir.IRBuilder, fn: ir.Function, node: Node, extent: int,
                   inplace: tuple = ()) -> None:
    """The kernel hands its pointers to ``spago_parallel_for`` (see `threadpool`), which runs the body
    on chunks [start, end) of the outer loop on the calling thread and the pool's workers."""
    chunk = parallel_chunk(node, extent)
    worker = ir.Function(module, ir.FunctionType(VOID, [PTR, I64, I64]), fn.name + "_worker")
    worker.linkage = "internal"
    if family_of(node) in WIDE_VECTOR_FAMILIES:
        prefer_wide_vectors(worker)
    wb = ir.IRBuilder(worker.append_basic_block("entry"))
    ctx, start, end = worker.args
    args = [load_pointer(wb, ctx, k) for k in range(len(fn.args))]
    emitter_for(node)(wb, _reading(args, inplace), node, outer=(start, end))
    wb.ret_void()
    _hand_to_pool(b, worker, list(fn.args), extent, chunk)


def _hand_to_pool(b: ir.IRBuilder, worker: ir.Function, pointers: list, extent: int, chunk: int) -> None:
    """``spago_parallel_for(worker, pointers, extent, chunk)``: the worker gets the pointers as a table."""
    from .threadpool import SYMBOL

    run = _runtime(b.module, SYMBOL, VOID, [PTR, PTR, I64, I64])
    b.call(run, [worker, pointer_table(b, pointers), ir.Constant(I64, extent), ir.Constant(I64, chunk)])


def _runtime(module: ir.Module, name: str, ret, params) -> ir.Function:
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, ir.FunctionType(ret, params), name)
