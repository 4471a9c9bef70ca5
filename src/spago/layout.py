"""Sizes every layer agrees on, named once: the loop packing in `spago.ops.scan`, the memory planner, the
kernels' stack buffers, the runtime's arenas and the exported library all align buffers the same way."""

ALIGNMENT = 64     # bytes: a cache line, and the widest vector load (AVX-512)
FLOAT32_BYTES = 4  # the itemsize the kernels' stack-buffer budgets are counted in
