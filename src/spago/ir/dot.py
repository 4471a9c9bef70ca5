"""Graphviz export: op, attributes, shape and dtype on every node; inputs, parameters, constants and
outputs styled apart; nodes clustered by module scope so deep models stay readable."""
from __future__ import annotations

import os

from ..errors import SpagoError
from ..files import atomic_write
from .graph import Graph, Node, format_attr

STYLES = {
    "input": dict(shape="ellipse", style="filled", fillcolor="#c7e9c0", color="#31a354"),
    "param": dict(shape="box", style="filled", fillcolor="#c6dbef", color="#3182bd"),
    "const": dict(shape="note", style="filled", fillcolor="#eeeeee", color="#969696"),
    "op": dict(shape="box", style="rounded,filled", fillcolor="#ffffff", color="#404040"),
    "output": dict(shape="doubleoctagon", style="filled", fillcolor="#fdd0a2", color="#e6550d"),
}


def node_label(n: Node, max_attr_chars: int = 60) -> str:
    head = n.target if n.kind == "op" else f"{n.kind} {n.name}"
    lines = [head]
    if n.kind == "const" and n.data is not None and n.data.size <= 4:
        lines.append("= " + " ".join(str(n.data.tolist()).split()))
    for k, v in n.attrs.items():
        text = f"{k}={format_attr(v)}"
        lines.append(text if len(text) <= max_attr_chars else text[: max_attr_chars - 1] + "…")
    lines.append(str(n.spec))
    return "\n".join(lines)


def graph_to_dot(graph: Graph, *, rankdir: str = "TB", cluster: bool = True, max_attr_chars: int = 60):
    """A ``graphviz.Digraph`` for ``graph``."""
    import graphviz

    dot = graphviz.Digraph(graph.name, graph_attr=dict(rankdir=rankdir, fontname="Helvetica"),
                           node_attr=dict(fontname="Helvetica", fontsize="10"),
                           edge_attr=dict(fontname="Helvetica", fontsize="8", color="#606060"))
    ids = {n: f"n{k}" for k, n in enumerate(graph.all_nodes())}

    # Scope tree: each scope path holds its nodes and its child scopes.
    tree: dict = {"nodes": [], "children": {}}
    for n in graph.all_nodes():
        where = tree
        if cluster and n.scope:
            for part in n.scope.split("."):
                where = where["children"].setdefault(part, {"nodes": [], "children": {}})
        where["nodes"].append(n)

    def emit(g, sub: dict, path: str) -> None:
        for n in sub["nodes"]:
            g.node(ids[n], node_label(n, max_attr_chars), **STYLES[n.kind])
        for name, child in sub["children"].items():
            full = f"{path}.{name}" if path else name
            with g.subgraph(name=f"cluster_{full}") as c:
                c.attr(label=full, style="rounded,dashed", color="#9e9ac8", fontcolor="#54278f")
                emit(c, child, full)

    emit(dot, tree, "")
    for n in graph.nodes:
        for pos, i in enumerate(n.inputs):
            dot.edge(ids[i], ids[n], label=str(pos) if len(n.inputs) > 1 else None)
        if n.op is not None and n.op.name == "scan":
            _loop_body(dot, n, ids[n], max_attr_chars)
    for k, o in enumerate(graph.outputs):
        oid = f"out{k}"
        dot.node(oid, f"output {k}\n{o.spec}", **STYLES["output"])
        dot.edge(ids[o], oid)
    return dot


def _loop_body(dot, node: Node, node_id: str, max_attr_chars: int) -> None:
    """A scan's body as a cluster beside its node (nested scans nest), tied to it by a dotted edge."""
    body = node.attrs["body"]
    ids = {n: f"{node_id}_b{k}" for k, n in enumerate(body.all_nodes())}
    with dot.subgraph(name=f"cluster_{node_id}_body") as c:
        c.attr(label=f"body of %{node.name} ({node.attrs['length']} steps"
                     f"{', reversed' if node.attrs['reverse'] else ''})",
               style="rounded", color="#e6550d", fontcolor="#a63603")
        for n in body.all_nodes():
            c.node(ids[n], node_label(n, max_attr_chars), **STYLES[n.kind])
        for n in body.nodes:
            for i in n.inputs:
                c.edge(ids[i], ids[n])
            if n.op.name == "scan":
                _loop_body(c, n, ids[n], max_attr_chars)
        for k, o in enumerate(body.outputs):
            c.node(f"{node_id}_out{k}", f"result {k}\n{o.spec}", **STYLES["output"])
            c.edge(ids[o], f"{node_id}_out{k}")
    dot.edge(node_id, ids[body.all_nodes()[0]] if body.all_nodes() else f"{node_id}_out0",
             style="dotted", arrowhead="none")


def render(graph: Graph, path: str, format: str | None = None, **options) -> str:
    """Render through the ``dot`` program; the file is written atomically."""
    import graphviz

    fmt = format or os.path.splitext(path)[1].lstrip(".") or "svg"
    if fmt == "dot" or fmt == "gv":
        data = graph_to_dot(graph, **options).source.encode()
    else:
        try:
            data = graph_to_dot(graph, **options).pipe(format=fmt)
        except graphviz.ExecutableNotFound:
            raise SpagoError("rendering needs Graphviz's `dot` program: install the system package graphviz "
                             "(apt-get install graphviz)") from None
        except (graphviz.CalledProcessError, ValueError) as exc:
            raise SpagoError(f"graphviz could not render format {fmt!r}: {exc}") from None
    atomic_write(path, data, parents=True)
    return path
