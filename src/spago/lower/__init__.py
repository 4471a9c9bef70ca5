"""Lowering decisions, in pure Python (no llvmlite): what the passes consult to decide and the backend
follows to emit.

``memory`` plans the arena, ``schedule`` says which nodes are kernels and which alias another's buffer,
``views`` reads transposes, reshapes and slices as strides, ``regions`` reads back the parallel regions a
pass marked, ``parallel`` holds the thread settings, and ``matmul``, ``attention``, ``mlp`` and
``families`` cut kernels into work items (plans and outer-loop extents). Imports run
``passes -> lower -> ir`` and ``backend -> lower -> ir``; see docs/architecture.md.
"""

__all__ = ["attention", "families", "matmul", "memory", "mlp", "parallel", "regions", "schedule", "views"]
