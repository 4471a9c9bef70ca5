"""Run independent chains of kernels side by side, one per thread.

Small kernels in a chain (an RNN's time steps: a 32 x 128 product, a few gate updates) are too small to
split across threads, but a bidirectional RNN has two such chains that never read each other. This pass
finds stretches of the schedule whose kernels fall into independent groups, packs the groups into one
*branch* per thread, and reorders the stretch branch by branch. The native backend runs each stretch (a
*region*) as one job on the thread pool: every thread runs one branch's kernels in order, and the kernels
inside a branch stay on that thread. The memory planner keeps buffers of different branches apart.

A stretch is worth it when its estimated time on the threads (the slowest branch) beats its time in
order, where large kernels would have used every thread on their own. Estimates are rough — a kernel
costs a fixed launch time, its bytes at memory speed and its multiply-adds at BLAS speed — but only their
ratios decide. Nodes carry ``meta["branch"] = (region, branch)``; `regions` reads them back (and ignores
any region a later rewrite has broken). With one thread the pass changes nothing.
"""
from __future__ import annotations

from ..ir.graph import Graph, Node
from ..lower import parallel
from ..lower.families import parallel_extent
from ..lower.regions import Region, regions  # noqa: F401 (the pass's result, read back)
from ..lower.schedule import is_alias
from ..lower.views import is_view

LAUNCH_NS = 300.0            # a kernel call, however small
BYTES_PER_NS = 24.0          # streaming through buffers on one core
MULTIPLY_ADDS_PER_NS = 40.0  # a matrix product on one core
REGION_NS = 5000.0           # handing a region to the pool and waiting for every branch, with margin
SPLIT_NS = 3000.0            # handing one kernel's chunks to the pool and waiting for the slowest
JOIN_NS, JOIN_SHARE = 20000.0, 0.1  # a kernel reading two groups this heavy (and this share) joins them
SCAN_BUDGET = 2_000_000      # kernels visited over all candidate starts (bounds the pass's time)


def multiply_adds(node: Node) -> int:
    """Multiply-adds of the matrix products a kernel computes (0 for other kernels)."""
    body = node.attrs.get("body") if node.op is not None and node.op.name == "fused" else None
    products = [n for n in body.nodes if n.op.name == "matmul"] if body is not None else (
        [node] if node.op is not None and node.op.name == "matmul" else [])
    return sum(p.spec.size * p.inputs[0].shape[-1] for p in products)


def estimate_ns(node: Node) -> float:
    """A kernel's time on one thread, roughly. An input read through a slice counts only as much as
    the output (an RNN step reads one step of a sequence)."""
    if is_alias(node):
        return 0.0
    if node.op.name == "scan":  # a loop: its body's kernels, every step
        inner = node.attrs["body"]
        return LAUNCH_NS + node.attrs["length"] * sum(estimate_ns(n) for n in inner.nodes)
    body = node.attrs.get("body") if node.op.name == "fused" else None
    sliced = {i for i in body.inputs if any(is_view(r) and r.inputs[0] is i for r in body.nodes)} if body else set()
    inner = body.inputs if body is not None else node.inputs
    moved = node.spec.nbytes + sum(min(i.spec.nbytes, node.spec.nbytes) if b in sliced else i.spec.nbytes
                                   for i, b in zip(node.inputs, inner))
    return LAUNCH_NS + moved / BYTES_PER_NS + multiply_adds(node) / MULTIPLY_ADDS_PER_NS


def parallel_branches(graph: Graph) -> Graph:
    """Mark regions of independent branches and reorder each branch by branch (a no-op with one thread:
    the backend's thread count decides, since a region only pays when threads run it)."""
    for n in graph.nodes:
        n.meta.pop("branch", None)
    if not parallel.enabled():
        return graph
    threads = parallel.threads()
    nodes = list(graph.nodes)
    single = [estimate_ns(n) for n in nodes]
    in_order = [LAUNCH_NS + SPLIT_NS + (c - LAUNCH_NS) / threads if _threaded(n) else c
                for n, c in zip(nodes, single)]
    chosen = _choose(nodes, single, in_order, threads)
    order: list = []
    done = 0
    for index, (start, end, bins, deferred) in enumerate(chosen):
        order.extend(nodes[done:start])
        for b, members in enumerate(bins):
            for n in members:
                n.meta["branch"] = (index, b)
            order.extend(members)
        order.extend(deferred)
        done = end
    order.extend(nodes[done:])
    graph.reorder(order)
    return graph


def _threaded(node: Node) -> bool:
    """Whether the backend would split this kernel across the threads on its own."""
    return not is_alias(node) and parallel_extent(node) > 1


def _choose(nodes: list, single: list, in_order: list, threads: int) -> list:
    """Non-overlapping stretches with the largest total saving: (start, end, branches, deferred), where
    ``deferred`` are the stretch's kernels that wait until after the region."""
    position = {n: t for t, n in enumerate(nodes)}
    preds = [[position[i] for i in n.inputs if i in position] for n in nodes]
    readers = [0] * len(nodes)
    for p in preds:
        for t in set(p):
            readers[t] += 1
    # a stretch starts at the beginning or where the schedule forks
    starts = sorted({0} | {t + 1 for t in range(len(nodes) - 1) if readers[t] > 1})
    stride = max(1, -(-len(starts) * len(nodes) // SCAN_BUDGET))  # a huge graph: every stride-th start
    starts = starts[::stride]
    ends = {s: _grow(s, preds, single, in_order, threads)[0] for s in starts}
    # weighted interval scheduling over the candidates: value[s] = best total saving from s on
    value = [0.0] * (len(nodes) + 1)
    pick: dict = {}
    for s in range(len(nodes) - 1, -1, -1):
        value[s] = value[s + 1]
        for end, saving in ends.get(s, ()):
            if saving + value[end] > value[s]:
                value[s] = saving + value[end]
                pick[s] = end
    chosen, s = [], 0
    while s < len(nodes):
        if s not in pick:
            s += 1
            continue
        end = pick[s]
        _, group_of, deferred = _grow(s, preds, single, in_order, threads, stop=end)
        bins = _pack(nodes, single, group_of, deferred, s, end, threads)
        if bins is not None:
            chosen.append((s, end, bins, [nodes[t] for t in range(s, end) if deferred[t]]))
        s = end
    return chosen


def _grow(start: int, preds: list, single: list, in_order: list, threads: int, stop: int | None = None) -> tuple:
    """Grow a stretch from ``start`` (to ``stop``, default the end of the schedule), following its
    independent groups with a union-find. A kernel that joins two substantial groups (their results
    meeting again, a sum of two directions' gradients) waits until after the region, and so does
    everything that reads it; later kernels that do not may still join the region.

    Returns (every end that improves the saving, with its saving; the group of each kernel; which are
    deferred).
    The saving is the estimated time in order minus the slowest branch (at least the heaviest group,
    and at least the total over the threads), minus the cost of the region itself."""
    n = len(preds)
    stop = n if stop is None else stop
    parent = list(range(n))
    weight = [0.0] * n
    deferred = bytearray(n)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = x = parent[parent[x]]
        return x

    total = serial = heaviest = best = 0.0
    ends = []
    for t in range(start, stop):
        roots, late = set(), False
        for p in preds[t]:
            if p >= start:
                if deferred[p]:
                    late = True
                    break
                roots.add(find(p))
        if not late and len(roots) > 1:
            second = sorted((weight[r] for r in roots), reverse=True)[1]
            late = second >= max(JOIN_NS, JOIN_SHARE * total)
        if late:
            deferred[t] = 1
            continue
        w = single[t]
        for r in roots:
            parent[r] = t
            w += weight[r]
        weight[t] = w
        heaviest = max(heaviest, w)
        total += single[t]
        serial += in_order[t]
        saving = serial - max(heaviest, total / threads) - REGION_NS
        if saving > best + LAUNCH_NS:  # not for crumbs
            best = saving
            ends.append((t + 1, saving))
    return ends, find, deferred


def _pack(nodes: list, single: list, group_of, deferred: bytearray, start: int, end: int,
          threads: int) -> list | None:
    """The stretch's independent groups packed into branches (heaviest group first, onto the lightest
    branch), each in schedule order; None if fewer than two branches get work."""
    groups: dict = {}
    for t in range(start, end):
        if not deferred[t]:
            groups.setdefault(group_of(t), []).append(t)
    loads = [0.0] * threads
    members: list = [[] for _ in range(threads)]
    for group in sorted(groups.values(), key=lambda g: -sum(single[t] for t in g)):
        b = loads.index(min(loads))
        loads[b] += sum(single[t] for t in group)
        members[b].extend(group)
    bins = [[nodes[t] for t in sorted(m)] for m in members if m]
    return bins if len(bins) > 1 else None
