"""Position and sequence encodings: sinusoidal positional encoding, and FOFE (fixed-size ordinally-forgetting
encoding) with its bidirectional form and its decoder."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import dtypes, ops
from ..errors import ShapeError, SpagoError
from ..ops.elementwise import _t
from .module import Module

__all__ = ["sinusoidal_table", "PositionalEncoding", "fofe_encode", "fofe_bi_encode", "fofe_decode"]


def sinusoidal_table(length: int, size: int, layout: str = "interleaved", base: float = 10000.0) -> np.ndarray:
    """The (length, size) sinusoidal encoding (Vaswani et al., 2017, "Attention Is All You Need"), float64:

        PE[p, 2j] = sin(p / base^{2j/d}),   PE[p, 2j+1] = cos(p / base^{2j/d})

    ``layout="halves"`` puts all the sines first and all the cosines after them (the Go spaGO's and BART's
    layout) — the same values, permuted."""
    if layout not in ("interleaved", "halves"):
        raise SpagoError(f"sinusoidal_table: layout must be 'interleaved' or 'halves', got {layout!r}")
    if length < 0 or size < 1:
        raise SpagoError(f"sinusoidal_table: expected length ≥ 0 and size ≥ 1, got {length} and {size}")
    i = np.arange(size)
    angle = np.arange(length)[:, None] / base ** (2 * (i // 2) / size)
    table = np.where(i % 2 == 0, np.sin(angle), np.cos(angle))
    if layout == "halves":
        table = np.concatenate([table[:, 0::2], table[:, 1::2]], axis=1)
    return table


class PositionalEncoding(Module):
    """Adds the sinusoidal encoding of each position to a batch-first sequence: y[b, p] = x[b, p] + PE[p]
    (see `sinusoidal_table`). The table is a constant, not a parameter."""

    def __init__(self, size: int, max_length: int = 512, layout: str = "interleaved", dtype="float32"):
        super().__init__()
        self.size, self.max_length, self.layout = int(size), int(max_length), layout
        self.table = sinusoidal_table(max_length, size, layout).astype(dtypes.as_dtype(dtype))

    def encode(self, positions) -> "ops.Tensor":
        """The encodings of integer positions, shape positions.shape + (size,)."""
        positions = np.asarray(positions)
        if positions.size and (positions.min() < 0 or positions.max() >= self.max_length):
            raise SpagoError(f"{self._path or 'PositionalEncoding'}: positions must be in [0, {self.max_length}), "
                             f"got {positions.min()}..{positions.max()}")
        return _t(self.table[positions])

    def forward(self, x):
        """x: (…, length, size), batch-first with positions before features; returns x plus the table's first ``length`` rows."""
        x = _t(x)
        if x.ndim < 2 or x.shape[-1] != self.size or x.shape[-2] > self.max_length:
            raise ShapeError(f"{self._path or 'PositionalEncoding'}: expected (…, length ≤ {self.max_length}, "
                             f"{self.size}), got {x.shape}")
        return x + self.table[:x.shape[-2]].astype(x.dtype)


def _check_alpha(alpha: float, decode: bool = False) -> None:
    if not 0.0 < alpha < 1.0 or (decode and alpha > 0.5):
        want = "0 < alpha ≤ 0.5 (so that the code is unique)" if decode else "0 < alpha < 1"
        raise SpagoError(f"fofe: expected {want}, got alpha={alpha}")


def fofe_encode(seq: Sequence[int], size: int, alpha: float = 0.5) -> np.ndarray:
    """FOFE (Zhang et al., 2015, "The Fixed-Size Ordinally-Forgetting Encoding Method for Neural Network
    Language Models"): the running code of each prefix of a sequence of ids in [0, size),

        z_t = α·z_{t−1} + e(w_t),   z_0 = 0,   e(w) the one-hot vector of w

    Returns (T, size) float64; row t encodes w_1 … w_t, and the last row the whole sequence."""
    _check_alpha(alpha)
    seq = np.asarray(seq, dtype=np.int64)
    if seq.ndim != 1 or (seq.size and (seq.min() < 0 or seq.max() >= size)):
        raise SpagoError(f"fofe_encode: expected a 1-D sequence of ids in [0, {size}), got {seq.tolist()}")
    z = np.zeros((len(seq), size))
    prev = np.zeros(size)
    for t, w in enumerate(seq):
        prev = prev * alpha
        prev[w] += 1.0
        z[t] = prev
    return z


def fofe_bi_encode(seq: Sequence[int], size: int, alpha: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Bidirectional FOFE: the forward codes of the prefixes and the backward codes of the suffixes, each
    (T, size); row t of the backward one encodes w_T … w_t, read right to left."""
    seq = list(seq)
    return fofe_encode(seq, size, alpha), fofe_encode(seq[::-1], size, alpha)[::-1].copy()


def fofe_decode(z, alpha: float = 0.5, tol: float = 1e-6, max_length: int = 400) -> list[int]:
    """The sequence of ids whose FOFE code is ``z`` (size,): for α ≤ 1/2 every code has one sequence.

    Each entry is a sum of α^k over the distances k from the end at which its id occurs; reading it in base
    1/α, digit by digit, recovers those distances. ``tol`` absorbs rounding."""
    _check_alpha(alpha, decode=True)
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 1 or (z < -tol).any():
        raise SpagoError(f"fofe_decode: expected a non-negative 1-D code, got shape {z.shape}")
    found = []  # (distance from the end, id)
    for w in np.flatnonzero(z > tol):
        n, k = float(z[w]), 0
        while n > tol:
            if k >= max_length:
                raise SpagoError(f"fofe_decode: entry {w} = {z[w]} is not a FOFE code within {max_length} steps")
            if n >= 1.0 - tol:
                found.append((k, int(w)))
                n -= 1.0
            n /= alpha
            k += 1
    return [w for _, w in sorted(found, reverse=True)]
