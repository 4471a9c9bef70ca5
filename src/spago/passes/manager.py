"""The pass manager: runs passes in order, times each, and can dump the graph after every pass.

A pass is a plain function ``Graph -> Graph`` living in its own module. With ``dump_dir`` (or the
environment variable ``SPAGO_DUMP_DIR``) the graph is written after every pass as text and DOT, with a
short summary of what the pass changed.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..ir.graph import Graph

Pass = Callable[[Graph], Graph]


@dataclass
class PassRecord:
    name: str
    seconds: float
    nodes_before: int
    nodes_after: int
    removed: dict = field(default_factory=dict)  # op name -> count that disappeared
    added: dict = field(default_factory=dict)    # op name -> count that appeared
    fused: int = 0                               # fused kernels created by this pass

    def summary(self) -> str:
        def fmt(d: dict) -> str:
            return ", ".join(f"{k}×{v}" for k, v in sorted(d.items())) or "nothing"

        return (f"{self.name}: {self.nodes_before} → {self.nodes_after} nodes in {self.seconds * 1e3:.2f} ms; "
                f"removed {fmt(self.removed)}; added {fmt(self.added)}; fused kernels +{self.fused}")


def pass_name(p: Pass) -> str:
    return getattr(p, "pass_name", None) or getattr(p, "__name__", type(p).__name__)


def _diff(before: dict, after: dict) -> tuple[dict, dict]:
    removed = {k: before[k] - after.get(k, 0) for k in before if before[k] > after.get(k, 0)}
    added = {k: after[k] - before.get(k, 0) for k in after if after[k] > before.get(k, 0)}
    return removed, added


@dataclass
class PassManager:
    passes: Sequence[Pass]
    dump_dir: str | None = None
    verify: bool = True
    records: list = field(default_factory=list)
    on_pass: Callable[[str], None] | None = None  # told each pass's name before it runs (progress bars)

    def run(self, graph: Graph) -> Graph:
        dump_dir = self.dump_dir if self.dump_dir is not None else os.environ.get("SPAGO_DUMP_DIR") or None
        self.records = []
        if dump_dir:
            self._dump(dump_dir, 0, "input", graph, None)
        for k, p in enumerate(self.passes, 1):
            if self.on_pass is not None:
                self.on_pass(pass_name(p))
            before = graph.op_counts()
            n_before = len(graph.nodes)
            start = time.perf_counter()
            graph = p(graph)
            seconds = time.perf_counter() - start
            if self.verify:
                graph.verify()
            after = graph.op_counts()
            removed, added = _diff(before, after)
            record = PassRecord(pass_name(p), seconds, n_before, len(graph.nodes), removed, added,
                                added.get("fused", 0))
            self.records.append(record)
            if dump_dir:
                self._dump(dump_dir, k, record.name, graph, record)
        return graph

    def timings(self) -> dict:
        return {r.name: r.seconds for r in self.records}

    def _dump(self, folder: str, index: int, name: str, graph: Graph, record: PassRecord | None) -> None:
        from ..files import atomic_write

        stem = os.path.join(folder, f"{index:02d}-{name}")
        text = str(graph) if record is None else f"# {record.summary()}\n{graph}"
        atomic_write(stem + ".txt", text.encode(), parents=True)
        atomic_write(stem + ".dot", graph.to_dot().encode(), parents=True)
        if record is not None:
            with open(os.path.join(folder, "summary.txt"), "a", encoding="utf-8") as f:
                f.write(record.summary() + "\n")
