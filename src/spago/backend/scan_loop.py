"""A scan node as native code: one function holding the time loop, calling the body's kernels.

``loop(out, operands..., consts, status)`` — ``out`` is the scan's buffer: its packed results (final carry,
stacked ys), then its scratch (the carry's second buffer, the body's arena). The carry lives in two buffers that
swap roles every step; the first one is picked so that the last step writes the final carry straight
into the packed results. Body kernels write each ``y`` straight into its row of the stacked result and
the new carry straight into the other buffer; only values that no kernel of the body computes there
(a carry passed through, one value returned twice) are copied. The body's kernels are emitted once,
however long the loop, so compile time does not depend on the number of steps. A captured weight the
body's products read (`spago.lower.memory.loop_aligned`) is read from a 64-byte aligned copy in the scratch,
made before the first step, when the caller's array is not aligned.
"""
from __future__ import annotations

from llvmlite import ir

from ..ir.graph import Node
from ..ops.scan import layout
from ..layout import ALIGNMENT
from ..lower.memory import debug_offsets, loop_copies, scan_scratch
from ..lower.schedule import alias_root, byte_offset, is_alias, is_scan_result
from .loops import for_range
from .types import I1, I8, I64, PTR, VOID


def _at(b: ir.IRBuilder, base: ir.Value, offset) -> ir.Value:
    offset = offset if isinstance(offset, ir.Value) else ir.Constant(I64, int(offset))
    return b.gep(base, [offset], inbounds=True, source_etype=I8)


def _copy(b: ir.IRBuilder, dst: ir.Value, src: ir.Value, nbytes: int) -> None:
    memcpy = b.module.declare_intrinsic("llvm.memcpy", [PTR, PTR, I64])
    b.call(memcpy, [dst, src, ir.Constant(I64, nbytes), ir.Constant(I1, 0)])


def aligned_copy(b: ir.IRBuilder, src: ir.Value, spare: ir.Value, nbytes: int) -> ir.Value:
    """``src`` if it starts on a cache line, else ``spare`` after copying ``src`` there."""
    misaligned = b.icmp_unsigned("!=", b.and_(b.ptrtoint(src, I64), ir.Constant(I64, ALIGNMENT - 1)),
                                 ir.Constant(I64, 0))
    with b.if_then(misaligned, likely=False):
        _copy(b, spare, src, nbytes)
    return b.select(misaligned, spare, src)


def body_offsets(node: Node, debug: bool) -> tuple[dict, int]:
    """The body's arena offsets, and the bytes one step's body takes in debug builds (0 otherwise)."""
    body = node.attrs["body"]
    if debug:
        roots = {alias_root(o) for o in body.outputs if not is_scan_result(o)}
        return debug_offsets(body, roots)
    return {e.node: e.offset for e in scan_scratch(node)[2].entries}, 0


def loop_function(emitter, node: Node, index: int) -> ir.Function:
    from .codegen import Frame

    body, length, reverse = node.attrs["body"], node.attrs["length"], node.attrs["reverse"]
    nc, ncar = node.attrs["num_consts"], node.attrs["num_carry"]
    offsets, total = layout(body, length, ncar)
    _, carry_bytes, _ = scan_scratch(node, emitter.debug)
    inner_offsets, step_bytes = body_offsets(node, emitter.debug)
    fn = ir.Function(emitter.module, ir.FunctionType(VOID, [PTR] * (len(node.inputs) + 3)),
                     f"loop{index}_scan_{node.name}".replace(".", "_"))
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    out, ins, consts, status = fn.args[0], list(fn.args[1:-2]), fn.args[-2], fn.args[-1]
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    scratch = _at(b, out, total)
    first, second = (out, scratch) if length % 2 == 0 else (scratch, out)
    for k in range(ncar):
        _copy(b, _at(b, first, offsets[k]), ins[nc + k], body.outputs[k].spec.nbytes)
    arena = _at(b, scratch, carry_bytes)
    moved = {k: aligned_copy(b, ins[k], _at(b, scratch, at), body.inputs[k].spec.nbytes)
             for k, at in loop_copies(node, emitter.debug).items()}
    if "branch" in node.meta:  # inside a parallel region's branch: the body's kernels stay on its thread
        for n in body.nodes:
            n.meta["branch"] = node.meta["branch"]
    with for_range(b, length, "step") as step:
        t = b.sub(ir.Constant(I64, length - 1), step) if reverse else step
        odd = b.trunc(step, I1)
        cur, nxt = b.select(odd, second, first), b.select(odd, first, second)
        base = _at(b, arena, b.mul(t, ir.Constant(I64, step_bytes))) if step_bytes else arena
        frame = Frame(b, [None, None, consts, None], inner_offsets, inner=True, status=status)
        for k, n in enumerate(body.inputs):
            if k < nc:
                frame.ptrs[n] = moved.get(k, ins[k])
            elif k < nc + ncar:
                frame.ptrs[n] = _at(b, cur, offsets[k - nc])
            else:
                frame.ptrs[n] = _at(b, ins[k], b.mul(t, ir.Constant(I64, n.spec.nbytes)))
        for n, off in inner_offsets.items():
            frame.ptrs[n] = _at(b, base, off)
        copies = []
        for k, o in enumerate(body.outputs):
            dest = (_at(b, nxt, offsets[k]) if k < ncar
                    else _at(b, out, b.add(ir.Constant(I64, offsets[k]), b.mul(t, ir.Constant(I64, o.spec.nbytes)))))
            root = alias_root(o)
            if root.kind == "op" and root not in frame.ptrs and byte_offset(o) == 0:
                frame.ptrs[root] = dest
            else:
                copies.append((dest, o))
        for n in body.nodes:
            if not is_alias(n):
                emitter.node(frame, n)
        for dest, o in copies:
            _copy(b, dest, emitter.pointer(frame, o), o.spec.nbytes)
    b.ret_void()
    return fn
