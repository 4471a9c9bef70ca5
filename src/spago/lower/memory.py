"""Memory planning: every intermediate buffer gets an offset in one arena.

Liveness runs over the scheduled kernels (graph order). A buffer lives from the kernel that writes it to
the last kernel that reads it (directly or through a reshape view). An elementwise kernel may write its
result over an input that dies there (same shape and size): the two share one buffer. Offsets come from
an interval-packing allocator — largest buffers first, each at the lowest address that no buffer with an
overlapping lifetime occupies. Graph inputs, parameters, constants and outputs live outside the arena,
so they are never clobbered.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

from ..errors import SpagoError
from ..ir.graph import Graph, Node
from ..layout import ALIGNMENT
from .schedule import alias_root, is_alias, is_scan_result



@dataclass
class BufferPlan:
    name: str
    node: Node
    size: int           # bytes, rounded up to the alignment
    offset: int         # bytes from the arena's start
    start: int          # index of the kernel that writes it
    end: int            # index of the last kernel that reads it
    inplace_of: str | None = None  # the buffer this one overwrites in place
    branches: frozenset = frozenset()  # (region, branch) pairs whose kernels write or read it

    def overlaps_in_time(self, other: "BufferPlan") -> bool:
        return (self.start <= other.end and other.start <= self.end) or _concurrent(self.branches, other.branches)

    def overlaps_in_space(self, other: "BufferPlan") -> bool:
        return self.offset < other.offset + other.size and other.offset < self.offset + self.size


@dataclass
class MemoryPlan:
    entries: list = field(default_factory=list)
    arena_bytes: int = 0
    naive_bytes: int = 0        # every intermediate in a buffer of its own
    lower_bound_bytes: int = 0  # the most bytes live at any one time
    steps: int = 0

    def check(self) -> "MemoryPlan":
        """Exhaustively verify that no two buffers alive at the same time share an address."""
        shared = {(e.name, e.inplace_of) for e in self.entries if e.inplace_of}
        groups = {e.name: e.inplace_of or e.name for e in self.entries}

        def group(name: str) -> str:
            while groups[name] != name:
                name = groups[name]
            return name

        for k, a in enumerate(self.entries):
            if a.offset < 0 or a.offset + a.size > self.arena_bytes or a.offset % ALIGNMENT:
                raise SpagoError(f"memory plan: buffer {a.name} at {a.offset}+{a.size} is outside the arena "
                                 f"of {self.arena_bytes} bytes or misaligned")
            for b in self.entries[k + 1:]:
                if group(a.name) == group(b.name) or (a.name, b.name) in shared or (b.name, a.name) in shared:
                    continue
                if a.overlaps_in_time(b) and a.overlaps_in_space(b):
                    raise SpagoError(f"memory plan: buffers {a.name} [{a.start},{a.end}] and {b.name} "
                                     f"[{b.start},{b.end}] are alive together and overlap at "
                                     f"{max(a.offset, b.offset)}")
        return self

    def table(self) -> str:
        rows = [f"{'buffer':24} {'producer':14} {'bytes':>10} {'offset':>10}  live     in place of"]
        for e in sorted(self.entries, key=lambda e: (e.offset, e.start)):
            rows.append(f"{e.name[:24]:24} {e.node.target[:14]:14} {e.size:>10} {e.offset:>10}  "
                        f"[{e.start},{e.end}]".ljust(72) + f" {e.inplace_of or ''}")
        rows.append(f"arena {self.arena_bytes} B, naive {self.naive_bytes} B, lower bound {self.lower_bound_bytes} B")
        return "\n".join(rows)

    def as_dict(self) -> dict:
        return {
            "arena_bytes": self.arena_bytes, "naive_bytes": self.naive_bytes,
            "lower_bound_bytes": self.lower_bound_bytes,
            "buffers": [{k: v for k, v in asdict(e).items() if k != "node"} | {"producer": e.node.target}
                        for e in self.entries],
        }

    def to_svg(self, width: int = 900, height: int = 480) -> str:
        """Buffers as boxes: time (kernel index) across, address down."""
        from html import escape

        margin = 50
        steps = max(self.steps, 1)
        arena = max(self.arena_bytes, 1)
        sx = (width - 2 * margin) / steps
        sy = (height - 2 * margin) / arena
        palette = ["#9ecae1", "#a1d99b", "#fdae6b", "#bcbddc", "#fc9272", "#c7e9c0", "#fdd0a2", "#dadaeb"]
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                 f'font-family="Helvetica" font-size="10">',
                 f'<rect x="{margin}" y="{margin}" width="{width - 2 * margin}" height="{height - 2 * margin}" '
                 'fill="#fafafa" stroke="#888"/>',
                 f'<text x="{width / 2}" y="{height - 15}" text-anchor="middle">kernel (time) →</text>',
                 f'<text x="15" y="{height / 2}" transform="rotate(-90 15 {height / 2})" text-anchor="middle">'
                 f'arena address ({self.arena_bytes} bytes) →</text>']
        for k, e in enumerate(self.entries):
            x, y = margin + e.start * sx, margin + e.offset * sy
            w, h = max((e.end - e.start + 1) * sx, 1.0), max(e.size * sy, 1.0)
            title = escape(f"{e.name} ({e.node.target}) {e.size} B at {e.offset}, live [{e.start},{e.end}]"
                           + (f", in place of {e.inplace_of}" if e.inplace_of else ""))
            parts.append(f'<g><title>{title}</title><rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
                         f'fill="{palette[k % len(palette)]}" stroke="#333" stroke-width="0.5"/>')
            if h > 11 and w > 30:
                parts.append(f'<text x="{x + 2:.1f}" y="{y + 10:.1f}">{escape(e.name[: int(w / 6)])}</text>')
            parts.append("</g>")
        parts.append("</svg>")
        return "\n".join(parts)

    def render(self, path: str) -> str:
        from ..files import atomic_write

        atomic_write(path, self.to_svg().encode(), parents=True)
        return path


def _concurrent(a: frozenset, b: frozenset) -> bool:
    """Whether two buffers are used by different branches of one region, which run at the same time."""
    return any(r == q and k != j for r, k in a for q, j in b)


def _branch_uses(graph: Graph) -> dict:
    """Buffer -> the (region, branch) pairs of the kernels that write or read it."""
    from .regions import regions

    uses: dict = {}
    for region in regions(graph):
        for k, nodes in enumerate(region.branches):
            for n in nodes:
                for m in [n] + list(n.inputs):
                    uses.setdefault(alias_root(m), set()).add((region.index, k))
    return {n: frozenset(u) for n, u in uses.items()}


def _align(n: int, alignment: int) -> int:
    return max(-(-n // alignment) * alignment, alignment)


def buffer_bytes(node: Node) -> int:
    """Bytes a kernel's buffer takes: its value, plus a scan's scratch (see `scan_scratch`)."""
    if node.op is not None and node.op.name == "scan":
        return _align(node.spec.nbytes, ALIGNMENT) + scan_scratch(node)[0]
    return node.spec.nbytes


LOOP_MIN_STEPS = 4  # a shorter loop reads a weight too few times to repay copying it


def loop_aligned(node: Node) -> list:
    """The captured operands of scan ``node`` that its loop reads from a 64-byte aligned copy when the
    caller's array is not aligned: those the body's matrix products read, in loops of `LOOP_MIN_STEPS`
    steps or more, that are (views of) the caller's arrays. Products read their weight where it lies at every step, and NumPy aligns arrays to 16
    bytes only (a large one typically starts 16 bytes past a page): then every 64-byte vector load of the
    weight straddles two cache lines (the 50-step LSTM of ``bench/lstm.py``, h=128, batch 1: ~1.35x the
    time, as a loop or unrolled). One copy per call, made only when misaligned, costs far less."""
    from .families import family_of
    from .matmul import operand_views

    body, nc = node.attrs["body"], node.attrs["num_consts"]
    if node.attrs["length"] < LOOP_MIN_STEPS:
        return []
    read = {n.inputs[view[0]] for n in body.nodes if not is_alias(n) and family_of(n) == "matmul"
            for view in operand_views(n)[2]}  # the product's two operands, not its epilogue's
    # the caller's arrays (inputs, parameters, constants): a buffer of the arena is aligned already
    return [k for k in range(nc) if body.inputs[k] in read and body.inputs[k].spec.nbytes >= ALIGNMENT
            and alias_root(node.inputs[k]).kind != "op"]


def scan_scratch(node: Node, debug: bool = False) -> tuple[int, int, "MemoryPlan | None"]:
    """A scan's scratch after its packed results: the carry's second buffer (the two swap every step),
    then the body's own arena, then room for aligned copies of captured weights (`loop_copies`). Returns
    (scratch bytes, carry bytes, the body's plan; None when ``debug``, where every body intermediate has
    its own buffer in every step, to be read back after the call)."""
    from ..ops.scan import layout

    body, length, num_carry = node.attrs["body"], node.attrs["length"], node.attrs["num_carry"]
    offsets, total = layout(body, length, num_carry)
    carry = offsets[num_carry] if num_carry < len(offsets) else total
    copies = sum(_align(body.inputs[k].spec.nbytes, ALIGNMENT) for k in loop_aligned(node))
    if debug:
        return carry + length * debug_bytes(body) + copies, carry, None
    cached = node.meta.get("scan_plan")
    if cached is None or cached[0] is not body:
        cached = node.meta["scan_plan"] = (body, plan_memory(body))
    if not copies:
        return carry + cached[1].arena_bytes, carry, cached[1]
    return carry + -(-cached[1].arena_bytes // ALIGNMENT) * ALIGNMENT + copies, carry, cached[1]


def loop_copies(node: Node, debug: bool = False) -> dict:
    """Byte offset in a scan's scratch of the aligned copy of each operand `loop_aligned` names (after the
    body's arena)."""
    body = node.attrs["body"]
    chosen = loop_aligned(node)
    top = scan_scratch(node, debug)[0] - sum(_align(body.inputs[k].spec.nbytes, ALIGNMENT) for k in chosen)
    offsets = {}
    for k in chosen:
        offsets[k] = top
        top += _align(body.inputs[k].spec.nbytes, ALIGNMENT)
    return offsets


def debug_offsets(graph: Graph, output_roots: set) -> tuple[dict, int]:
    """Every intermediate in a buffer of its own (no reuse), so all can be read back after a call."""
    offsets, total = {}, 0
    for n in graph.nodes:
        if not is_alias(n) and n not in output_roots:
            offsets[n] = total
            total += _align(n.spec.nbytes, ALIGNMENT)
            if n.op.name == "scan":
                total += scan_scratch(n, debug=True)[0]
    return offsets, total


def debug_bytes(graph: Graph) -> int:
    return debug_offsets(graph, {alias_root(o) for o in graph.outputs if not is_scan_result(o)})[1]


def inplace_candidate(node: Node) -> bool:
    if node.op.name == "fused":
        return node.attrs.get("pattern") == "elementwise"
    return node.op.elementwise


def aligned_inputs(node: Node) -> list:
    """Inputs the kernel reads at exactly the position it writes (not through a view), so the output
    may overwrite them."""
    if node.op.name != "fused":
        return list(node.inputs)
    from .views import is_view

    body = node.attrs["body"]
    through_view = {n.inputs[0] for n in body.nodes if is_view(n)}
    return [outer for outer, inner in zip(node.inputs, body.inputs) if inner not in through_view]


def _place(sizes: Sequence[int], lives: Sequence[tuple], alignment: int,
           branches: Sequence[frozenset] | None = None) -> tuple[list, int]:
    """Greedy interval packing: biggest first, each at the lowest free address over its lifetime (and
    apart from every buffer that a concurrently running branch uses)."""
    order = sorted(range(len(sizes)), key=lambda k: (-sizes[k], lives[k][0]))
    offsets = [0] * len(sizes)
    placed: list = []
    top = 0
    branches = branches or [frozenset()] * len(sizes)
    for k in order:
        start, end = lives[k]
        busy = sorted((offsets[j], offsets[j] + sizes[j]) for j in placed
                      if (lives[j][0] <= end and start <= lives[j][1]) or _concurrent(branches[j], branches[k]))
        offset = 0
        for lo, hi in busy:
            if offset + sizes[k] <= lo:
                break
            offset = max(offset, _align(hi, alignment) if hi % alignment else hi)
        offsets[k] = offset
        placed.append(k)
        top = max(top, offset + sizes[k])
    return offsets, top


def plan_memory(graph: Graph, alignment: int = ALIGNMENT) -> MemoryPlan:
    """Plan the arena for ``graph``'s intermediates (see the module docstring)."""
    position = {n: t for t, n in enumerate(graph.nodes)}
    output_roots = {alias_root(o) for o in graph.outputs if not is_scan_result(o)}  # a scan's are copied out
    last_use: dict = {}
    for n in graph.nodes:
        for i in n.inputs:
            root = alias_root(i)
            last_use[root] = max(last_use.get(root, -1), position[n])
    for o in graph.outputs:
        root = alias_root(o)
        last_use[root] = len(graph.nodes)

    buffers = [n for n in graph.nodes if not is_alias(n) and n not in output_roots]
    naive = sum(_align(buffer_bytes(n), alignment) for n in buffers)
    uses = _branch_uses(graph)
    # Storage groups: a buffer overwritten in place joins the group of the input it overwrites.
    group_of: dict = {}
    groups: list = []  # [size, start, end, members, branch uses]
    inplace_of: dict = {}
    for n in buffers:
        t = position[n]
        size = _align(buffer_bytes(n), alignment)
        end = max(last_use.get(n, t), t)
        target = None
        if inplace_candidate(n):
            for i in aligned_inputs(n):
                r = alias_root(i)
                g = group_of.get(r)
                if (g is not None and i.shape == n.shape and i.spec.nbytes == n.spec.nbytes
                        and r.op.name != "scan" and groups[g][0] == size and groups[g][2] == t and r not in output_roots
                        and not _concurrent(groups[g][4], uses.get(n, frozenset()))):
                    target = (g, r)
                    break
        if target is not None:
            g, r = target
            groups[g][2] = end
            groups[g][3].append(n)
            groups[g][4] |= uses.get(n, frozenset())
            group_of[n] = g
            inplace_of[n] = r
        else:
            group_of[n] = len(groups)
            groups.append([size, t, end, [n], uses.get(n, frozenset())])

    offsets, arena = _place([g[0] for g in groups], [(g[1], g[2]) for g in groups], alignment,
                            [g[4] for g in groups])
    entries = [BufferPlan(n.name, n, groups[group_of[n]][0], offsets[group_of[n]], position[n],
                          max(last_use.get(n, position[n]), position[n]),
                          inplace_of[n].name if n in inplace_of else None, groups[group_of[n]][4])
               for n in buffers]
    live = [0] * (len(graph.nodes) + 1)
    for size, start, end, *_ in groups:
        for t in range(start, min(end, len(graph.nodes) - 1) + 1):
            live[t] += size
    return MemoryPlan(entries, arena, naive, max(live, default=0), len(graph.nodes))


def graph_report(graph: Graph, records: Sequence | None = None) -> dict:
    """Kernel count, arena / naive / lower-bound bytes, and per-pass timings of an optimised graph."""
    from .schedule import kernels

    plan = plan_memory(graph)
    return {
        "kernels": len(kernels(graph)),
        "arena_bytes": plan.arena_bytes,
        "naive_bytes": plan.naive_bytes,
        "lower_bound_bytes": plan.lower_bound_bytes,
        "pass_seconds": {r.name: r.seconds for r in records} if records else {},
    }
