"""The IR: a typed SSA graph, small enough to walk and rewrite from a REPL (torch.fx-style).

A `Node` is one SSA value. Its ``kind`` says where the value comes from:
``input`` (an argument), ``param`` (a named weight, with data), ``const`` (data baked into the graph)
or ``op`` (the result of a registered primitive applied to earlier nodes).
"""
from __future__ import annotations

import itertools
from typing import Any, Iterable

import numpy as np

from ..errors import SpagoError
from ..ops.registry import OPS, Op, Spec
from .pytree import TreeDef


class IRError(SpagoError):
    """A graph is malformed; the message names the node."""


_ids = itertools.count()


class Node:
    """One SSA value. ``inputs`` is a tuple, set whole; ``users`` (an ordered set: a dict of the op nodes that
    read this one, to ``None``) is kept current by the graph the node belongs to, as in torch.fx."""

    __slots__ = ("kind", "op", "_inputs", "users", "graph", "attrs", "spec", "name", "scope", "data", "uid",
                 "meta")

    def __init__(self, kind: str, spec: Spec, name: str, op: Op | None = None, inputs: Iterable["Node"] = (),
                 attrs: dict | None = None, scope: str = "", data: np.ndarray | None = None):
        self.kind = kind
        self.op = op
        self._inputs: tuple = tuple(inputs)
        self.users: dict = {}
        self.graph: Graph | None = None  # set when the node joins a graph: then its inputs list it as a user
        self.attrs = dict(attrs or {})
        self.spec = spec
        self.name = name
        self.scope = scope
        self.data = data
        self.uid = next(_ids)
        self.meta: dict = {}

    @property
    def inputs(self) -> tuple:
        return self._inputs

    @inputs.setter
    def inputs(self, new: Iterable["Node"]) -> None:
        new = tuple(new)
        if self.graph is not None:
            for i in self._inputs:
                i.users.pop(self, None)
            for i in new:
                i.users[self] = None
        self._inputs = new

    def uses(self) -> int:
        """How many input slots read this node (a user that reads it twice counts twice)."""
        return sum(1 for u in self.users for i in u.inputs if i is self)

    def replace_input_with(self, old: "Node", new: "Node") -> None:
        """Read ``new`` wherever this node reads ``old``."""
        self.inputs = [new if i is old else i for i in self._inputs]

    def _link(self, graph: "Graph") -> None:
        """Join ``graph``: each input lists this node among its users."""
        self.graph = graph
        for i in self._inputs:
            i.users[self] = None

    def _unlink(self) -> None:
        """Leave the graph: no input lists this node any more (its own inputs stay, for inspection)."""
        for i in self._inputs:
            i.users.pop(self, None)
        self.graph = None

    @property
    def shape(self) -> tuple:
        return self.spec.shape

    @property
    def dtype(self) -> np.dtype:
        return self.spec.dtype

    @property
    def target(self) -> str:
        """The op name for op nodes, else the kind."""
        return self.op.name if self.op is not None else self.kind

    def __repr__(self) -> str:
        return f"%{self.name}"

    def format(self) -> str:
        args = ", ".join(f"%{i.name}" for i in self.inputs)
        attrs = format_attrs(self.attrs)
        if attrs:
            args = f"{args}, {attrs}" if args else attrs
        scope = f"  # {self.scope}" if self.scope else ""
        return f"%{self.name}: {self.spec} = {self.target}({args}){scope}"


def format_attr(v: Any) -> str:
    if isinstance(v, np.dtype):
        return v.name
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple) and v and isinstance(v[0], tuple) and v[0] and isinstance(v[0][0], str):
        from ..ops.indexing import describe_index

        return describe_index(v)
    return repr(v)


def format_attrs(attrs: dict) -> str:
    return ", ".join(f"{k}={format_attr(v)}" for k, v in attrs.items())


class Graph:
    """Inputs, parameters, constants, op nodes in topological order, and outputs.

    ``in_tree`` / ``out_tree`` keep the nesting of the traced function's arguments and results;
    ``static_args`` keep arguments that were not tensors (they were fixed at trace time).
    """

    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: list[Node] = []
        self.params: list[Node] = []
        self.consts: list[Node] = []
        self.nodes: list[Node] = []
        self.outputs: list[Node] = []
        self.in_tree: TreeDef | None = None
        self.out_tree: TreeDef | None = None
        self.static_args: dict = {}
        self.scope_kinds: dict = {}  # scope path -> what it is (a module's class), for drawings
        self._names: set = set()

    # -- building ----------------------------------------------------------------------
    def fresh_name(self, hint: str) -> str:
        base = "".join(c if c.isalnum() or c in "._" else "_" for c in hint) or "v"
        name, i = base, 1
        while name in self._names:
            name, i = f"{base}_{i}", i + 1
        self._names.add(name)
        return name

    def _own(self, node: Node) -> Node:
        node._link(self)
        return node

    def add_input(self, spec: Spec, name: str) -> Node:
        node = self._own(Node("input", spec, self.fresh_name(name)))
        self.inputs.append(node)
        return node

    def add_param(self, data: np.ndarray, name: str) -> Node:
        node = self._own(Node("param", Spec(data.shape, data.dtype), self.fresh_name(name), data=data))
        self.params.append(node)
        return node

    def add_const(self, data: np.ndarray, name: str = "c") -> Node:
        node = self._own(Node("const", Spec(data.shape, data.dtype), self.fresh_name(name), data=data))
        self.consts.append(node)
        return node

    def add_op(self, op: Op, inputs: list, attrs: dict, spec: Spec | None = None, scope: str = "",
               name: str | None = None) -> Node:
        """Append an op node at the end of the schedule (how tracing builds a graph)."""
        if spec is None:
            spec = op.shape_rule(*[i.spec for i in inputs], **attrs)
        node = Node("op", spec, self.fresh_name(name or str(len(self.nodes))), op, inputs, attrs, scope)
        self.nodes.append(self._own(node))
        return node

    def create_node(self, op: Op | str, inputs: list, attrs: dict | None = None, scope: str = "",
                    name: str | None = None, spec: Spec | None = None) -> Node:
        """A new op node of this graph (its spec from the op's shape rule, unless given: a loop's result view
        made before the loop's type is re-derived), not yet in ``nodes``: place it with `insert_before`,
        `insert_after` or `insert_at`. Until then no input lists it as a user, so a node made and then not
        wanted is simply dropped. `verify` checks the spec against the rule after the pass."""
        op = OPS[op] if isinstance(op, str) else op
        attrs = dict(attrs or {})
        if spec is None:
            spec = op.shape_rule(*[i.spec for i in inputs], **attrs)
        return Node("op", spec, self.fresh_name(name or op.name), op, inputs, attrs, scope)

    def _placeable(self, node: Node) -> Node:
        if node.graph is not None:
            raise IRError(f"graph {self.name}: %{node.name} is already in graph {node.graph.name}; "
                          "make a new node with create_node")
        if node.kind != "op":
            raise IRError(f"graph {self.name}: only op nodes go into the schedule, not {node.kind} %{node.name}")
        return node

    def insert_at(self, position: int, node: Node) -> Node:
        """Place a new op node at ``position`` of the schedule; its inputs now list it as a user."""
        self.nodes.insert(position, self._own(self._placeable(node)))
        return node

    def insert_all(self, position: int, nodes: list) -> list:
        """Place new op nodes (in dependency order) from ``position`` on, in one splice."""
        for n in nodes:
            self._placeable(n)
        self.nodes[position:position] = [self._own(n) for n in nodes]
        return nodes

    def insert_before(self, anchor: Node, node: Node, early: bool = False) -> Node:
        """Place ``node`` right before ``anchor``; with ``early``, as early before it as its inputs allow (so
        work moved out of a loop can be batched with other early work, see ``batch_matmul``)."""
        at = self.nodes.index(anchor)
        if early:
            ops = [i for i in node.inputs if i.kind == "op"]
            at = min(at, max((self.nodes.index(i) + 1 for i in ops), default=0))
        return self.insert_at(at, node)

    def insert_after(self, anchor: Node, node: Node) -> Node:
        return self.insert_at(self.nodes.index(anchor) + 1, node)

    def reorder(self, order: list) -> None:
        """Schedule the same op nodes in another (topological) order; users are unchanged."""
        if len(order) != len(self.nodes) or set(order) != set(self.nodes):
            raise IRError(f"graph {self.name}: reorder needs the graph's {len(self.nodes)} op nodes, each once")
        self.nodes[:] = order

    def erase(self, node: Node) -> None:
        """Remove a node nothing reads (an error otherwise: replace its uses first)."""
        readers = list(node.users) + [o for o in self.outputs if o is node]
        if readers:
            raise IRError(f"graph {self.name}: cannot erase %{node.name}, still read by "
                          + ", ".join(f"%{r.name}" for r in readers[:3])
                          + (" (a graph output)" if node in self.outputs else "")
                          + "; replace its uses first")
        for group in (self.nodes, self.consts, self.params, self.inputs):
            try:
                del group[group.index(node)]  # nodes compare by identity
            except ValueError:
                continue
            node._unlink()
            return
        raise IRError(f"graph {self.name}: cannot erase %{node.name}, it is not in the graph")

    def replace_uses(self, old: Node, new: Node) -> int:
        """Make every reader of ``old`` (op inputs and graph outputs) read ``new``; returns how many."""
        if old.spec != new.spec:
            raise IRError(f"graph {self.name}: cannot replace %{old.name} ({old.spec}) by %{new.name} ({new.spec})")
        if old is new:
            return 0
        count = 0
        for n in list(old.users):
            count += sum(i is old for i in n.inputs)
            n.replace_input_with(old, new)
        for k, o in enumerate(self.outputs):
            if o is old:
                self.outputs[k] = new
                count += 1
        return count

    replace_all_uses_with = replace_uses  # torch.fx's name

    def remove_unused(self) -> int:
        """Drop op nodes, constants and parameters that no output depends on; returns how many went."""
        live = set(self.outputs)
        for n in reversed(self.nodes):
            if n in live:
                live.update(n.inputs)
        gone = 0
        for group in ("nodes", "consts", "params"):
            kept = []
            for n in getattr(self, group):
                if n in live:
                    kept.append(n)
                else:
                    n._unlink()
                    gone += 1
            setattr(self, group, kept)
        return gone

    # -- looking ----------------------------------------------------------------------
    def all_nodes(self) -> list:
        return self.inputs + self.params + self.consts + self.nodes

    def op_counts(self) -> dict:
        counts: dict = {}
        for n in self.nodes:
            counts[n.target] = counts.get(n.target, 0) + 1
        return counts

    def __iter__(self):
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __str__(self) -> str:
        def decl(n: Node) -> str:
            return f"%{n.name}: {n.spec}"

        lines = [f"graph {self.name}(" + ", ".join(decl(n) for n in self.inputs) + ") {"]
        for n in self.params:
            lines.append(f"  param {decl(n)}")
        for n in self.consts:
            value = np.array2string(n.data, threshold=6, precision=4) if n.data is not None else "?"
            lines.append(f"  const {decl(n)} = {' '.join(value.split())}")
        for n in self.nodes:
            lines.append("  " + n.format())
            if n.op is not None and n.op.name == "scan":  # a loop's body, indented under it
                lines.extend("    " + line for line in str(n.attrs["body"]).splitlines())
        lines.append("  return " + ", ".join(f"%{o.name}" for o in self.outputs))
        lines.append("}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self.params)} params, "
                f"{len(self.consts)} consts, {len(self.nodes)} ops, {len(self.outputs)} outputs>")

    # -- checking ---------------------------------------------------------------------
    @staticmethod
    def _problem(n: "Node", names: set, defined: set) -> str:
        """What is wrong with op node ``n`` (empty if nothing); the caller names the node."""
        if n.kind != "op" or n.op is None:
            return "op nodes must have an op"
        if OPS.get(n.op.name) is not n.op:
            return f"op {n.op.name!r} is not in the registry"
        if n.name in names:
            return f"the name %{n.name} is defined twice"
        for i in n.inputs:
            if i not in defined:
                return f"input %{i.name} is used before it is defined (or is not in the graph)"
        try:
            expected = n.op.shape_rule(*[i.spec for i in n.inputs], **n.attrs)
        except SpagoError as exc:
            return f"its op rejects its inputs: {exc}"
        except TypeError as exc:
            return f"wrong inputs or attributes for {n.op.name}: {exc}"
        if expected != n.spec:
            return f"declared {n.spec} but {n.op.name} of its inputs gives {expected}"
        return ""

    def verify(self) -> "Graph":
        """Check names, definition before use, and every node's type against its op's shape rule."""
        defined: set = set()
        names: set = set()
        for n in self.inputs + self.params + self.consts:
            if n.name in names:
                raise IRError(f"graph {self.name}: the name %{n.name} is defined twice")
            names.add(n.name)
            if n.kind in ("param", "const"):
                if n.data is None:
                    raise IRError(f"graph {self.name}: {n.kind} %{n.name} has no data")
                if tuple(n.data.shape) != n.spec.shape or n.data.dtype != n.spec.dtype:
                    raise IRError(f"graph {self.name}: {n.kind} %{n.name} is declared {n.spec} "
                                  f"but holds {n.data.dtype}{list(n.data.shape)}")
            defined.add(n)
        for n in self.nodes:
            problem = self._problem(n, names, defined)
            if problem:
                raise IRError(f"graph {self.name}, node {n.format()}: {problem}")
            names.add(n.name)
            defined.add(n)
        if not self.outputs:
            raise IRError(f"graph {self.name}: no outputs")
        for o in self.outputs:
            if o not in defined:
                raise IRError(f"graph {self.name}: output %{o.name} is not defined in the graph")
        self.check_users()
        return self

    def check_users(self) -> "Graph":
        """Check that every node's ``users`` are exactly the op nodes of this graph that read it, here and in
        the bodies of its loops and fused kernels (a pass that edits ``nodes`` or ``inputs`` behind the
        graph's back is caught here)."""
        readers: dict = {}
        for n in self.nodes:
            for i in n.inputs:
                readers.setdefault(i, {})[n] = None
        everything = self.all_nodes()
        for n in everything:
            if n.graph is not self:
                raise IRError(f"graph {self.name}: %{n.name} is in the graph but does not belong to it "
                              "(place nodes with insert_at/insert_before/insert_after)")
        for n in everything:
            want = readers.get(n, {})
            if n.users.keys() != want.keys():
                stale = [u for u in n.users if u not in want]
                missing = [u for u in want if u not in n.users]
                what = (f"lists %{stale[0].name} as a user, which does not read it here" if stale
                        else f"does not list its reader %{missing[0].name} as a user")
                raise IRError(f"graph {self.name}: node %{n.name} {what}; edit the graph through "
                              "Graph.insert_*/replace_uses/erase/remove_unused or set Node.inputs whole")
            body = n.attrs.get("body") if n.kind == "op" else None
            if isinstance(body, Graph):
                body.check_users()
        return self

    # -- exporting --------------------------------------------------------------------
    def to_networkx(self):
        """A ``networkx.DiGraph`` with one vertex per node (keyed by name) and an edge per use."""
        import networkx as nx

        g = nx.DiGraph(name=self.name)
        for n in self.all_nodes():
            g.add_node(n.name, kind=n.kind, op=n.target, shape=n.shape, dtype=n.dtype.name,
                       attrs=dict(n.attrs), scope=n.scope, output=n in self.outputs)
        for n in self.nodes:
            for pos, i in enumerate(n.inputs):
                g.add_edge(i.name, n.name, position=pos)
        return g

    def to_dot(self, **options) -> str:
        """Graphviz DOT source (a ``str`` with a ``render(path)`` method); see ``spago.ir.dot.graph_to_dot``
        for the options."""
        from .dot import DotSource, graph_to_dot

        return DotSource(graph_to_dot(self, **options).source)

    def render(self, path: str, format: str | None = None, **options) -> str:
        """Draw to ``path`` (format from the suffix unless given: svg, png, pdf, dot) with the system's
        Graphviz where installed, else its WebAssembly build; returns the path."""
        from .dot import render

        return render(self, path, format, **options)

    def copy(self) -> "Graph":
        """A structural copy (fresh nodes, shared constant data) that passes can rewrite freely."""
        g = Graph(self.name)
        g.in_tree, g.out_tree, g.static_args, g._names = self.in_tree, self.out_tree, dict(self.static_args), set(self._names)
        g.scope_kinds = dict(self.scope_kinds)
        mapping: dict = {}
        for src, dst in ((self.inputs, g.inputs), (self.params, g.params), (self.consts, g.consts)):
            for n in src:
                m = g._own(Node(n.kind, n.spec, n.name, data=n.data, scope=n.scope))
                m.meta = dict(n.meta)
                mapping[n] = m
                dst.append(m)
        for n in self.nodes:
            m = g._own(Node("op", n.spec, n.name, n.op, [mapping[i] for i in n.inputs], n.attrs, n.scope))
            m.meta = dict(n.meta)
            mapping[n] = m
            g.nodes.append(m)
        g.outputs = [mapping[o] for o in self.outputs]
        return g
