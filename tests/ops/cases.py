"""One table of op cases that every layer tests against: eager vs NumPy and finite differences here,
and (as they arrive) interpreter, passes and compiled code against eager.

A case says how to build inputs and how to compute the result two ways: with spago ops (``fn``) and with an
independent NumPy/SciPy reference (``reference``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from hypothesis import strategies as st


@dataclass
class OpCase:
    name: str                                   # unique id, used as the pytest id
    fn: Callable                                # Tensors -> Tensor, written with spago ops
    reference: Callable                         # ndarrays -> ndarray, independent of spago
    shapes: Callable[[st.DrawFn], Sequence[tuple]] | Sequence[tuple]  # fixed input shapes, or a hypothesis draw
    ops: tuple = ()                             # registry ops the case exercises (for the coverage test)
    low: float = -2.0                           # inputs drawn uniformly in [low, high] ...
    high: float = 2.0
    make_inputs: Callable | None = None         # ... unless this builds them: (rng, shapes, dtype) -> list of arrays
    grad_argnums: tuple | None = None           # which arguments to differentiate (default: all float ones)
    rtol32: float = 1e-5                        # tolerance of float32 forward against the reference
    atol32: float = 1e-6
    grad_rtol: float = 1e-5                     # tolerance of float64 gradients against finite differences
    grad_atol: float = 1e-6
    extra: dict = field(default_factory=dict)

    def inputs(self, rng: np.random.Generator, shapes: Sequence[tuple], dtype) -> list:
        if self.make_inputs is not None:
            return [np.asarray(a) for a in self.make_inputs(rng, shapes, dtype)]
        return [np.asarray(rng.uniform(self.low, self.high, size=s).astype(dtype)) for s in shapes]

    def __repr__(self) -> str:
        return f"OpCase({self.name})"


def all_cases() -> list:
    """Every case from every table, in one list."""
    from . import cases_elementwise, cases_structural

    cases = list(cases_elementwise.CASES) + list(cases_structural.CASES)
    names = [c.name for c in cases]
    dupes = {n for n in names if names.count(n) > 1}
    assert not dupes, f"duplicate case names: {dupes}"
    return cases
