"""Regions of independent branches that `spago.passes.parallel_branches` marked, read back from the graph."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.graph import Graph


@dataclass
class Region:
    """A stretch of ``graph.nodes`` [start, end) whose ``branches`` (node lists, in order) are independent."""

    index: int
    start: int
    end: int
    branches: list



def regions(graph: Graph) -> list:
    """The regions `parallel_branches` marked, each checked: contiguous in the schedule, branches in
    order, no kernel reading another branch of its region. A region that fails (a pass after this one
    moved or rewrote nodes) is left out, and its kernels run in order."""
    spans: dict = {}
    for t, n in enumerate(graph.nodes):
        tag = n.meta.get("branch")
        if tag is not None:
            spans.setdefault(tag[0], []).append((t, tag[1], n))
    found = []
    for index, items in sorted(spans.items()):
        start, end = items[0][0], items[-1][0] + 1
        branch_of = {n: b for _, b, n in items}
        contiguous = end - start == len(items)
        ordered = all(items[k][1] <= items[k + 1][1] for k in range(len(items) - 1))
        apart = all(branch_of.get(i, b) == b for _, b, n in items for i in n.inputs)
        count = max(b for _, b, _ in items) + 1
        if contiguous and ordered and apart and count > 1:
            branches = [[n for _, b, n in items if b == k] for k in range(count)]
            found.append(Region(index, start, end, [br for br in branches if br]))
    return found
