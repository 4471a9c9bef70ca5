"""All-MLP sequence models: gMLP with its spatial gating unit, and MLP-Mixer. Both mix positions with a
learned (length × length) map, so they take sequences of at most ``seq_len`` positions."""
from __future__ import annotations


from .. import ops
from ..errors import ShapeError
from ..ops.elementwise import _t
from . import init
from .blocks import Conv1x1, PreNorm
from .cells.base import activation as _activation
from .linear import Linear
from .module import Module, ModuleList
from .normalization import LayerNorm

__all__ = ["SpatialGatingUnit", "GMLPBlock", "GMLP", "MLPMixer"]


def _check(x, size: int, seq_len: int, owner: str):
    x = _t(x)
    if x.ndim != 3 or x.shape[-1] != size or x.shape[1] > seq_len:
        raise ShapeError(f"{owner}: expected input (batch, length ≤ {seq_len}, {size}), got {x.shape}")
    return x


class SpatialGatingUnit(Module):
    """Spatial gating unit (Liu et al., 2021, "Pay Attention to MLPs"): split the features in halves u, v;

        s(v) = f(W·LayerNorm(v) + b)   (W: length × length, across positions),   y = u ⊙ s(v)

    W starts near 0 (±ε/n) and b at 1, so the unit starts as y ≈ u, as the paper prescribes. A sequence
    shorter than ``seq_len`` uses the top-left block of W (the Go spaGO pads with zeros instead)."""

    def __init__(self, size: int, seq_len: int, activation: str = "identity", init_eps: float = 1e-3,
                 dtype="float32", generator=None):
        super().__init__()
        if size % 2:
            raise ShapeError(f"SpatialGatingUnit: size must be even (it is split in halves), got {size}")
        self.size, self.seq_len, self.activation = int(size), int(seq_len), activation
        self._act = _activation(activation, "SpatialGatingUnit")
        self.norm = LayerNorm(size // 2, dtype=dtype)
        self.proj = Conv1x1(seq_len, seq_len, dtype=dtype, generator=generator)
        eps = init_eps / seq_len
        init.uniform(self.proj.weight, -eps, eps, generator)
        init.constant(self.proj.bias, 1.0)

    def forward(self, x):
        """x: (B, S, 2·d), batch-first; returns (B, S, d): the first half gated by a projection of the second along the positions."""
        s = x.shape[1]
        u, v = ops.split(x, 2, axis=-1)
        v = self.norm(v)
        w, b = self.proj.weight[:s, :s], self.proj.bias[:s]
        return u * self._act(ops.matmul(w, v) + ops.expand_dims(b, -1))


class GMLPBlock(Module):
    """One gMLP block: y = W₂·SGU(gelu(W₁·x + b₁)) + b₂ (applied inside a `PreNorm` residual by `GMLP`)."""

    def __init__(self, size: int, seq_len: int, ff_size: int, activation: str = "identity", dtype="float32",
                 generator=None):
        super().__init__()
        self.inner = Linear(size, ff_size, dtype=dtype, generator=generator)
        self.sgu = SpatialGatingUnit(ff_size, seq_len, activation, dtype=dtype, generator=generator)
        self.outer = Linear(ff_size // 2, size, dtype=dtype, generator=generator)

    def forward(self, x):
        """x: (B, S, size), batch-first; returns (B, S, size)."""
        return self.outer(self.sgu(ops.gelu(self.inner(x))))


class GMLP(Module):
    """gMLP (Liu et al., 2021, "Pay Attention to MLPs"): ``depth`` residual blocks x ← x + Block(LN(x)),
    each a channel MLP whose hidden half is gated by a `SpatialGatingUnit`. x (B, S ≤ seq_len, size)."""

    def __init__(self, size: int, seq_len: int, depth: int = 1, ff_mult: int = 4, activation: str = "identity",
                 dtype="float32", generator=None):
        super().__init__()
        self.size, self.seq_len = int(size), int(seq_len)
        self.blocks = ModuleList([PreNorm(size, GMLPBlock(size, seq_len, size * ff_mult, activation, dtype,
                                                          generator), dtype) for _ in range(depth)])

    def forward(self, x):
        """x: (B, S, size), batch-first, S at most ``seq_len``; returns the same shape."""
        x = _check(x, self.size, self.seq_len, self._path or "GMLP")
        for block in self.blocks:
            x = block(x)
        return x


class _MLP(Module):
    def __init__(self, size: int, hidden: int, dtype, generator):
        super().__init__()
        self.fc1 = Linear(size, hidden, dtype=dtype, generator=generator)
        self.fc2 = Linear(hidden, size, dtype=dtype, generator=generator)

    def forward(self, x):
        """x: (…, size), features last; returns the same shape."""
        return self.fc2(ops.gelu(self.fc1(x)))


class MLPMixer(Module):
    """MLP-Mixer (Tolstikhin et al., 2021, "MLP-Mixer: An all-MLP Architecture for Vision"), over a
    sequence of exactly ``seq_len`` tokens (or patches) x (B, seq_len, size); each of ``depth`` layers:

        x ← x + (MLP_tok(LN(x)ᵀ))ᵀ      token mixing: one MLP across positions, per feature
        x ← x + MLP_ch(LN(x))           channel mixing: one MLP across features, per position
        MLP(u) = W₂·gelu(W₁·u + b₁) + b₂"""

    def __init__(self, size: int, seq_len: int, depth: int = 1, token_hidden: int | None = None,
                 channel_hidden: int | None = None, dtype="float32", generator=None):
        super().__init__()
        self.size, self.seq_len = int(size), int(seq_len)
        token_hidden, channel_hidden = int(token_hidden or 2 * seq_len), int(channel_hidden or 4 * size)
        self.layers = ModuleList([ModuleList([LayerNorm(size, dtype=dtype),
                                              _MLP(seq_len, token_hidden, dtype, generator),
                                              LayerNorm(size, dtype=dtype),
                                              _MLP(size, channel_hidden, dtype, generator)])
                                  for _ in range(depth)])

    def forward(self, x):
        """x: (B, seq_len, size), batch-first, exactly ``seq_len`` positions; returns the same shape."""
        x = _check(x, self.size, self.seq_len, self._path or "MLPMixer")
        if x.shape[1] != self.seq_len:
            raise ShapeError(f"{self._path or 'MLPMixer'}: expected exactly {self.seq_len} positions, got {x.shape}")
        for norm1, token, norm2, channel in self.layers:
            x = x + ops.swapaxes(token(ops.swapaxes(norm1(x), 1, 2)), 1, 2)
            x = x + channel(norm2(x))
        return x


