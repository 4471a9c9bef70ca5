"""Tracing: run a Python function once on symbolic tensors and record every op into a `Graph`.

Python control flow runs at trace time, so loops are unrolled and branches are fixed by the example
arguments. Tensors the function reaches that are not arguments become parameters (if they require
grad or carry a name, as a module's weights do) or constants.
"""
from __future__ import annotations

import contextlib
import inspect
import threading
from typing import Any, Callable

import numpy as np

from ..errors import SpagoError
from ..ops.registry import Op, Spec, use_mode
from ..tensor import Tensor
from .graph import Graph, Node
from .pytree import flatten, unflatten

_scope = threading.local()


def current_scope() -> str:
    return ".".join(getattr(_scope, "stack", []))


@contextlib.contextmanager
def scope(name: str, kind: str | None = None):
    """Nodes created inside are tagged with this (dotted, nested) scope, e.g. ``encoder.layer.0``;
    ``kind`` names what the scope is (drawn beside it, e.g. the optimiser's class)."""
    stack = getattr(_scope, "stack", None)
    if stack is None:
        stack = _scope.stack = []
    stack.append(str(name))
    kinds = getattr(_scope, "kinds", None)
    if kinds is not None and kind:
        kinds.setdefault(".".join(stack), kind)
    try:
        yield
    finally:
        stack.pop()


@contextlib.contextmanager
def module_scope(path: str, kind: str | None = None):
    """Nodes created inside are tagged with ``path`` exactly (a module's dotted path), whatever the
    enclosing scopes were: a module's place in the model, not its call stack, names it. ``kind`` (the
    module's class) is recorded in the graph being traced, which labels its drawings with it."""
    saved = getattr(_scope, "stack", None)
    _scope.stack = path.split(".") if path else []
    kinds = getattr(_scope, "kinds", None)
    if kinds is not None and kind and path:
        kinds.setdefault(path, kind)
    try:
        yield
    finally:
        _scope.stack = saved if saved is not None else []


class TraceMode:
    """The mode `bind` hands ops to while tracing: each op becomes a node of ``graph``."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.captured: dict = {}  # id(concrete array) -> (node, the array, kept alive so ids stay unique)
        self.owned: set = set()  # nodes of this graph, to catch tensors leaking in from another trace

    def node_of(self, t: Tensor) -> Node:
        if isinstance(t._value, Node):
            if t._value not in self.owned:
                raise SpagoError(
                    f"a traced tensor %{t._value.name} from another trace leaked into this one; "
                    "do not keep tensors from one trace for use in another"
                )
            return t._value
        key = id(t._value)
        hit = self.captured.get(key)
        if hit is not None:
            return hit[0]
        data = t.numpy()
        if t.name is not None or t.requires_grad:
            node = self.graph.add_param(data, t.name or "param")
            node.scope = current_scope()
        else:
            node = self.graph.add_const(data, "c")
        self.captured[key] = (node, t._value)
        return node

    def apply(self, op: Op, inputs, attrs: dict, out: Spec) -> Tensor:
        node = self.graph.add_op(op, [self.node_of(t) for t in inputs], attrs, out, scope=current_scope())
        self.owned.add(node)
        return Tensor._symbolic(node, out)


def _leaf_spec(x: Any) -> Spec | None:
    if isinstance(x, Spec):
        return x
    if isinstance(x, Tensor):
        return x.spec
    if isinstance(x, np.ndarray):
        return Tensor(x).spec
    return None


def _arg_names(fn: Callable, nargs: int, kwargs: dict) -> list:
    target = getattr(fn, "forward", fn)  # a Module is named by its forward's parameters
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = []
    for i in range(nargs):
        if i < len(params) and params[i].kind in (params[i].POSITIONAL_ONLY, params[i].POSITIONAL_OR_KEYWORD):
            names.append(params[i].name)
        else:
            names.append(f"arg{i}")
    return names + list(kwargs)


def required_arguments(fn: Callable) -> list:
    """The names of the arguments ``fn`` (a Module: its ``forward``) cannot be called without."""
    import inspect

    try:
        params = inspect.signature(getattr(fn, "forward", fn)).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.default is p.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def trace(fn: Callable, *example_args: Any, name: str | None = None, **example_kwargs: Any) -> Graph:
    """Trace ``fn`` on example arguments (arrays, Tensors or ``spago.spec``s, nested in tuples/lists/dicts).

    Returns a `Graph` whose inputs are the array leaves of the arguments (named after ``fn``'s
    parameters) and whose outputs keep the nesting of what ``fn`` returns. Non-array arguments
    (ints, strings, None) are fixed at trace time.
    """
    graph = Graph(name or getattr(fn, "__name__", None) or type(fn).__name__)
    names = _arg_names(fn, len(example_args), example_kwargs)
    tree = (tuple(example_args), dict(example_kwargs))
    leaves, paths, graph.in_tree = flatten(tree)
    mode = TraceMode(graph)
    symbolic = []
    for leaf, path in zip(leaves, paths):
        spec = _leaf_spec(leaf)
        if spec is None:
            graph.static_args[path] = leaf
            symbolic.append(leaf)
            continue
        parts = path.split(".")
        pretty = names[int(parts[1])] if parts[0] == "0" else parts[1]
        pretty = ".".join([pretty] + parts[2:])
        node = graph.add_input(spec, pretty)
        mode.owned.add(node)
        t = Tensor._symbolic(node, spec)
        symbolic.append(t)
    args, kwargs = unflatten(graph.in_tree, symbolic)
    saved_kinds, _scope.kinds = getattr(_scope, "kinds", None), graph.scope_kinds
    try:
        with use_mode(mode):
            result = fn(*args, **kwargs)
    finally:
        _scope.kinds = saved_kinds
    out_leaves, _, graph.out_tree = flatten(result)
    for leaf in out_leaves:
        if not isinstance(leaf, Tensor):
            if isinstance(leaf, (np.ndarray, int, float, bool)):
                leaf = Tensor(leaf)
            else:
                raise SpagoError(f"{graph.name} returned a {type(leaf).__name__}; traced functions must return "
                                 "tensors (or tuples, lists and dicts of them)")
        graph.outputs.append(mode.node_of(leaf))
    return graph


def input_leaves(graph: Graph, args: tuple, kwargs: dict) -> list:
    """The array leaves of a call's arguments, checked against the graph's inputs (count, shape, dtype)."""
    leaves, paths, tree = flatten((tuple(args), dict(kwargs)))
    arrays = [leaf for leaf, p in zip(leaves, paths) if p not in graph.static_args]
    if graph.in_tree is not None and tree != graph.in_tree:
        raise SpagoError(f"{graph.name}: arguments have structure {tree}, the graph was traced with {graph.in_tree}")
    if len(arrays) != len(graph.inputs):
        raise SpagoError(f"{graph.name}: expected {len(graph.inputs)} array arguments, got {len(arrays)}")
    out = []
    for node, value in zip(graph.inputs, arrays):
        a = value.numpy() if isinstance(value, Tensor) else value
        if not isinstance(a, np.ndarray):
            try:
                a = np.asarray(a)
            except Exception:  # noqa: BLE001 - any failure is a bad argument
                a = None
        if a is None or a.dtype.kind not in "biuf":
            raise SpagoError(f"{graph.name}: argument {node.name} must be an array of {node.spec}, "
                             f"got {type(value).__name__}")
        if tuple(a.shape) != node.shape:
            raise SpagoError(f"{graph.name}: argument {node.name} has shape {tuple(a.shape)}, expected {node.shape}")
        if a.dtype != node.dtype:
            raise SpagoError(f"{graph.name}: argument {node.name} has dtype {a.dtype}, expected {node.dtype.name}")
        out.append(a)
    return out
