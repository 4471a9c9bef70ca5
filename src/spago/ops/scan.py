"""``scan``: a loop that stays one node in the IR, with JAX's ``lax.scan`` semantics.

    scan(f, init, xs) = (carry_T, stack([y_0 … y_{T-1}]))  where  carry_{t+1}, y_t = f(carry_t, xs[t])

Eagerly it is a Python loop recorded on the tape. Traced, ``f`` is traced once into a body `Graph`
(inputs: the tensors ``f`` captures, then the carry leaves, then one step of each ``xs`` leaf; outputs:
the new carry leaves, then the ``y`` leaves) and the loop becomes ONE ``scan`` node, whatever the length.

A node has one value, so the ``scan`` node's value is the bytes of all its results packed side by side
(each at a 64-byte aligned offset: the final carry leaves, then each stacked ``y``); ``scan_part`` nodes
are views of one result. Passes, the memory planner and the backend treat the node as one kernel whose
body runs ``length`` times.

Reverse mode: a forward scan that needs a gradient also stacks the carry entering every step (a
*residual*); the gradient rule is a reverse scan whose body replays one forward step from that carry and
pulls the cotangents back through it (`spago.autograd.vjp`), accumulating the captured tensors' gradients
in its carry.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import SpagoError, ShapeError
from ..layout import ALIGNMENT
from .registry import Op, Spec, bind, register

ALIGN = ALIGNMENT


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def part_specs(body, length: int, num_carry: int) -> list:
    """Spec of each result: the final carry leaves, then every body ``y`` stacked over ``length`` steps."""
    outs = [o.spec for o in body.outputs]
    return outs[:num_carry] + [Spec((length,) + s.shape, s.dtype) for s in outs[num_carry:]]


def layout(body, length: int, num_carry: int) -> tuple[list, int]:
    """Byte offset of each result in the packed value, and the packed size."""
    offsets, top = [], 0
    for s in part_specs(body, length, num_carry):
        offsets.append(top)
        top += _aligned(max(s.nbytes, 1))
    return offsets, max(top, ALIGN)


def _scan_spec(*inputs: Spec, body, length: int, reverse: bool, num_consts: int, num_carry: int,
               saved: int | None = None) -> Spec:
    if length < 1:
        raise ShapeError(f"scan: length must be at least 1, got {length}")
    if len(inputs) != len(body.inputs):
        raise SpagoError(f"scan: the body takes {len(body.inputs)} inputs, the node has {len(inputs)}")
    if num_consts + num_carry > len(inputs) or len(body.outputs) < num_carry:
        raise SpagoError(f"scan: {num_consts} captured and {num_carry} carry inputs do not fit {len(inputs)} "
                         f"inputs and {len(body.outputs)} body outputs")
    for k, (given, declared) in enumerate(zip(inputs, body.inputs)):
        want = declared.spec
        if k >= num_consts + num_carry:
            want = Spec((length,) + want.shape, want.dtype)
        if given != want:
            role = "captured" if k < num_consts else "carry" if k < num_consts + num_carry else "xs"
            raise SpagoError(f"scan: {role} input {k} is {given}, the body expects {want}")
    for k in range(num_carry):
        if body.outputs[k].spec != body.inputs[num_consts + k].spec:
            raise SpagoError(f"scan: carry {k} enters the body as {body.inputs[num_consts + k].spec} but leaves "
                             f"it as {body.outputs[k].spec}; a carry must keep its shape and dtype")
    body.verify()
    return Spec((layout(body, length, num_carry)[1],), np.uint8)


def run_steps(body, arrays: list, *, length: int, reverse: bool, num_consts: int, num_carry: int,
              interpreter=None, on_step: Callable | None = None) -> list:
    """The loop with the reference interpreter: returns the results (final carry leaves, stacked ys).
    ``on_step(t, inputs)`` is told each step's body inputs (the shadow check replays a step with them)."""
    from ..ir.interpreter import Interpreter

    run = (interpreter or Interpreter(body)).run_flat
    consts, carry = list(arrays[:num_consts]), list(arrays[num_consts:num_consts + num_carry])
    xs = arrays[num_consts + num_carry:]
    ys = [np.empty(s.shape, s.dtype) for s in part_specs(body, length, num_carry)[num_carry:]]
    for step in range(length):
        t = length - 1 - step if reverse else step
        step_inputs = consts + carry + [x[t] for x in xs]
        if on_step is not None:
            on_step(t, step_inputs)
        out = run(step_inputs)
        carry = [np.asarray(c) for c in out[:num_carry]]
        for y, v in zip(ys, out[num_carry:]):
            y[t] = v
    return carry + ys


def _scan_kernel(*arrays: np.ndarray, body, length: int, reverse: bool, num_consts: int, num_carry: int,
                 saved: int | None = None) -> np.ndarray:
    results = run_steps(body, list(arrays), length=length, reverse=reverse, num_consts=num_consts,
                        num_carry=num_carry)
    offsets, total = layout(body, length, num_carry)
    packed = np.zeros(total, np.uint8)
    for off, r in zip(offsets, results):
        packed[off:off + r.nbytes] = np.ascontiguousarray(r).reshape(-1).view(np.uint8)
    return packed


class PartsCotangent:
    """The cotangent of a packed scan value: one tensor (or None) per result, summed result by result."""

    def __init__(self, parts: dict, shape: tuple):
        self.parts, self.shape = parts, shape

    def __add__(self, other: "PartsCotangent") -> "PartsCotangent":
        parts = dict(self.parts)
        for k, g in other.parts.items():
            parts[k] = g if k not in parts else parts[k] + g
        return PartsCotangent(parts, self.shape)


def _part_spec(packed: Spec, *, index: int, offset: int, shape: tuple, dtype) -> Spec:
    spec = Spec(shape, dtype)
    if packed.dtype != np.uint8 or packed.ndim != 1 or offset < 0 or offset + spec.nbytes > packed.shape[0]:
        raise SpagoError(f"scan_part: result {index} ({spec} at byte {offset}) is not inside the packed {packed}")
    return spec


def _part_kernel(packed: np.ndarray, *, index: int, offset: int, shape: tuple, dtype) -> np.ndarray:
    spec = Spec(shape, dtype)
    return packed[offset:offset + spec.nbytes].view(spec.dtype).reshape(spec.shape).copy()


def _part_grad(g, out, packed, *, index: int, **_):
    return [PartsCotangent({index: g}, packed.shape)]


def _zeros(spec: Spec):
    from ..tensor import Tensor

    return Tensor._wrap(np.zeros(spec.shape, spec.dtype))


def _floating(t) -> bool:
    return t.dtype.kind == "f"


def _scan_grad(g: PartsCotangent, out, *inputs, body, length: int, reverse: bool, num_consts: int,
               num_carry: int, saved: int | None = None):
    """A reverse scan over (cotangents of y_t, carry_t, xs[t]) whose carry holds the carry's cotangent and
    the captured tensors' gradient sums; each step replays the forward step and pulls back through it."""
    from ..autograd import enable_grad, vjp
    from ..ir.scan import replay

    consts, init = list(inputs[:num_consts]), list(inputs[num_consts:num_consts + num_carry])
    xs = list(inputs[num_consts + num_carry:])
    n_real = len(body.outputs) if saved is None else saved
    if saved is None:  # the forward did not keep its carries: run it again, keeping them
        n_real = len(body.outputs)
        carries = bind_scan(list(inputs), dict(body=body, length=length, reverse=reverse, num_consts=num_consts,
                                               num_carry=num_carry), save=True)[n_real:]
    else:
        carries = parts_of(out, body, length, num_carry)[n_real:n_real + num_carry]
    float_carry = [k for k in range(num_carry) if _floating(init[k])]
    watched_consts = [k for k in range(num_consts) if consts[k].requires_grad and _floating(consts[k])]
    watched_xs = [k for k in range(len(xs)) if xs[k].requires_grad and _floating(xs[k])]
    y_cots = [k for k in range(num_carry, n_real) if g.parts.get(k) is not None]
    g_carry = [g.parts.get(k) if g.parts.get(k) is not None else _zeros(init[k].spec) for k in float_carry]
    acc = [_zeros(consts[k].spec) for k in watched_consts]

    def step(bc, x):
        gc, sums = bc
        gys, carry_t, x_t = x
        with enable_grad():
            cs = [c.detach().requires_grad_(True) if k in watched_consts else c for k, c in enumerate(consts)]
            ct = [c.detach().requires_grad_(True) if k in float_carry else c for k, c in enumerate(carry_t)]
            xt = [v.detach().requires_grad_(True) if k in watched_xs else v for k, v in enumerate(x_t)]
            outs = replay(body, cs + ct + xt)[:n_real]
            wrt = [cs[k] for k in watched_consts] + [ct[k] for k in float_carry] + [xt[k] for k in watched_xs]
            grads = vjp([outs[k] for k in float_carry] + [outs[k] for k in y_cots], list(gc) + list(gys), wrt)
        grads = [gr if gr is not None else _zeros(w.spec) for gr, w in zip(grads, wrt)]
        nc, ncar = len(watched_consts), len(float_carry)
        sums = [s + d for s, d in zip(sums, grads[:nc])]
        return (grads[nc:nc + ncar], sums), grads[nc + ncar:]

    (g_init, g_consts), g_xs = scan(step, (g_carry, acc), ([g.parts[k] for k in y_cots], carries, xs),
                                     reverse=not reverse)
    grads: list = [None] * len(inputs)
    for k, v in zip(watched_consts, g_consts):
        grads[k] = v
    for k, v in zip(float_carry, g_init):
        grads[num_consts + k] = v
    for k, v in zip(watched_xs, g_xs):
        grads[num_consts + num_carry + k] = v
    return grads


scan_op = register(Op("scan", _scan_spec, _scan_kernel, _scan_grad, "loop",
                      doc="A loop over a body Graph; its value packs the final carry and the stacked ys."))
scan_part_op = register(Op("scan_part", _part_spec, _part_kernel, _part_grad, "view", traits={"alias"},
                           doc="One result of a scan: a view of its packed value."))


def parts_of(packed, body, length: int, num_carry: int) -> list:
    """``scan_part`` tensors for every result of a packed scan tensor."""
    specs, offsets = part_specs(body, length, num_carry), layout(body, length, num_carry)[0]
    return [bind(scan_part_op, [packed], dict(index=k, offset=offsets[k], shape=s.shape, dtype=s.dtype))
            for k, s in enumerate(specs)]


def bind_scan(inputs: list, attrs: dict, save: bool | None = None) -> list:
    """Bind a scan node and return its results. With ``save`` (default: when a gradient will be asked
    for) the body also returns the carry entering each step, stacked after the real results (the
    residuals of the gradient rule)."""
    from ..autograd import is_grad_enabled

    attrs = dict(attrs)
    body = attrs["body"]
    if save is None:
        save = is_grad_enabled() and any(t.requires_grad for t in inputs)
    if save and attrs.get("saved") is None:
        body = body.copy()
        attrs["saved"] = len(body.outputs)
        nc = attrs["num_consts"]
        body.outputs = body.outputs + body.inputs[nc:nc + attrs["num_carry"]]
        attrs["body"] = body
    attrs.setdefault("saved", None)
    packed = bind(scan_op, inputs, attrs)
    return parts_of(packed, body, attrs["length"], attrs["num_carry"])


# ----------------------------------------------------------------------------- the public function

def leaf_tensor(leaf, what: str):
    from ..tensor import Tensor, as_tensor

    if isinstance(leaf, Tensor):
        return leaf
    if isinstance(leaf, (np.ndarray, int, float, bool, np.number)):
        return as_tensor(leaf)
    raise SpagoError(f"scan: {what} must hold tensors or arrays, got {type(leaf).__name__}")


def _path(prefix: str, p: str) -> str:
    return f"{prefix}[{p}]" if p else prefix


def check_carry(init_tree, init_leaves: list, paths: list, new) -> list:
    """The leaves of the carry ``f`` returned, checked to have the structure, shapes and dtypes of ``init``."""
    from ..ir.pytree import flatten

    leaves, _, tree = flatten(new)
    if tree != init_tree:
        raise SpagoError(f"scan: f must return a carry with the structure of init {init_tree}, got {tree}")
    out = []
    for leaf, ref, p in zip(leaves, init_leaves, paths):
        t = leaf_tensor(leaf, "the carry")
        if t.spec != ref.spec:
            raise SpagoError(f"scan: the carry leaf {_path('carry', p)} is {ref.spec} in init but f returned "
                             f"{t.spec}; a carry must keep its shape and dtype from step to step")
        out.append(t)
    return out


def scan(f: Callable, init: Any, xs: Any = None, length: int | None = None, reverse: bool = False,
         unroll: bool = False) -> tuple:
    """Loop ``f(carry, x) -> (carry, y)`` over the leading axis of ``xs``; returns ``(final carry, ys)``
    with every ``y`` leaf stacked on a new axis 0 (``ys[t]`` is the ``y`` of step ``t``, also when
    ``reverse`` runs the steps from last to first). ``init``, ``xs`` and ``y`` may be nested tuples,
    lists and dicts of tensors; ``xs=None`` needs ``length``.

    Eagerly this is a Python loop. While tracing it is one ``scan`` node whose body ``f`` is traced once,
    so compile time does not grow with the length; ``unroll=True`` traces the Python loop instead.
    """
    from ..ir.pytree import flatten

    init_leaves, init_paths, init_tree = flatten(init)
    init_leaves = [leaf_tensor(v, "init") for v in init_leaves]
    x_leaves, x_paths, x_tree = flatten(xs)
    x_leaves = [leaf_tensor(v, "xs") for v in x_leaves]
    for v, p in zip(x_leaves, x_paths):
        if v.ndim == 0:
            raise ShapeError(f"scan: {_path('xs', p)} is a scalar; every xs leaf needs a leading (time) axis")
    lengths = {v.shape[0] for v in x_leaves}
    if len(lengths) > 1:
        raise ShapeError(f"scan: the xs leaves have different lengths {sorted(lengths)} on axis 0")
    if length is None:
        if not lengths:
            raise SpagoError("scan: with no xs, pass length=")
        length = lengths.pop()
    elif lengths and lengths != {int(length)}:
        raise ShapeError(f"scan: length={length} but the xs leaves have length {lengths.pop()}")
    length = int(length)
    if length < 1:
        raise ShapeError(f"scan: needs at least one step, got length {length}")
    from ..ir.scan import is_tracing, trace_scan

    if unroll or not is_tracing():
        return _python_loop(f, init_tree, init_leaves, init_paths, x_tree, x_leaves, length, reverse)
    return trace_scan(f, init_tree, init_leaves, init_paths, x_tree, x_leaves, x_paths, length, reverse)


def _python_loop(f, init_tree, init_leaves, init_paths, x_tree, x_leaves, length, reverse) -> tuple:
    from ..ir.pytree import flatten, unflatten
    from .shape import stack

    carry = unflatten(init_tree, init_leaves)
    ys: list = [None] * length
    y_tree = None
    for step in range(length):
        t = length - 1 - step if reverse else step
        carry, y = call_step(f, carry, unflatten(x_tree, [v[t] for v in x_leaves]))
        carry = unflatten(init_tree, check_carry(init_tree, init_leaves, init_paths, carry))
        leaves, _, tree = flatten(y)
        if y_tree is not None and tree != y_tree:
            raise SpagoError(f"scan: f returned y with structure {tree} at step {t}, {y_tree} before")
        y_tree = tree
        ys[t] = [leaf_tensor(v, "y") for v in leaves]
    stacked = [stack([ys[t][k] for t in range(length)]) for k in range(len(ys[0]))]
    return carry, unflatten(y_tree, stacked)


def call_step(f, carry, x) -> tuple:
    out = f(carry, x)
    if not isinstance(out, tuple) or len(out) != 2:
        raise SpagoError(f"scan: f must return a pair (carry, y), got {type(out).__name__}")
    return out
