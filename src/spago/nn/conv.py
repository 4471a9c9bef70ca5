"""Convolutions over sequences (Conv1D) and images (Conv2D), PyTorch layouts: input (N, C, L) / (N, C, H, W),
weight (out, in, k) / (out, in, kh, kw).

y[n, o, p] = b[o] + Σ_c Σ_k W[o, c, k] · x̃[n, c, p·s + k·d], with x̃ the zero-padded input
(LeCun et al., 1998, "Gradient-based learning applied to document recognition").

Written with the op API only, as an im2col: strided slices of the padded input, one per kernel offset and
axis, stacked into a (N, C·k, positions) column matrix, then one matrix product with the weight seen as
(out, C·k).
Gradients and compilation therefore come from the primitives (pad, getitem, concat, matmul).
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import numpy as np

from .. import ops
from ..errors import DTypeError, ShapeError, SpagoError
from ..ops.elementwise import _t
from ..tensor import Tensor
from . import init
from .module import Module, Param

__all__ = ["Conv1D", "Conv2D", "conv1d", "conv2d"]


def _tuple(value, n: int, what: str, owner: str, minimum: int) -> tuple:
    """An int or a sequence of ``n`` ints, each >= ``minimum``, as a tuple of ``n`` ints."""
    try:
        items = (value,) * n if isinstance(value, (int, np.integer)) else tuple(value)
    except TypeError:
        items = ()
    if len(items) != n or any(not isinstance(v, (int, np.integer)) or isinstance(v, bool) for v in items):
        raise SpagoError(f"{owner}: {what} must be an int or a tuple of {n} int{'s' if n > 1 else ''}, "
                         f"got {value!r}")
    if any(v < minimum for v in items):
        raise SpagoError(f"{owner}: {what} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in items)


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Positions a kernel visits along one axis: ⌊(size + 2·padding − dilation·(kernel − 1) − 1) / stride⌋ + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def windows(x, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
            pad_value: float, owner: str):
    """The sliding windows of the spatial axes of ``x`` (N, C, *spatial): shape (N, C, *kernel, *out), where
    entry [n, c, k…, p…] is the padded input at p·stride + k·dilation. Shared by the convolutions and pooling.

    Built one spatial axis at a time (kh + kw strided slices for an image, not kh·kw), which keeps the graph
    and its compiled code small."""
    spatial = x.shape[2:]
    out = tuple(output_size(n, k, s, p, d) for n, k, s, p, d in zip(spatial, kernel, stride, padding, dilation))
    if any(o <= 0 for o in out):
        raise ShapeError(f"{owner}: input of spatial size {spatial} is smaller than the kernel {tuple(kernel)} "
                         f"(dilation {tuple(dilation)}, padding {tuple(padding)})")
    if any(padding):
        x = ops.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in padding), value=pad_value)
    for j, (k, d, s, o) in enumerate(zip(kernel, dilation, stride, out)):
        axis = 2 + 2 * j  # after N, C, the j kernel axes made so far and the j spatial axes before this one
        lead = (slice(None),) * axis
        x = ops.stack([x[lead + (slice(i * d, i * d + s * (o - 1) + 1, s),)] for i in range(k)], axis=2 + j)
    return x


def _check_input(x, rank: int, owner: str, channels: int | None = None):
    x = _t(x)
    if x.ndim != rank + 2:
        layout = "(N, C, L)" if rank == 1 else "(N, C, H, W)"
        raise ShapeError(f"{owner}: expected a {rank + 2}-D input {layout}, got shape {x.shape}")
    if channels is not None and x.shape[1] != channels:
        raise ShapeError(f"{owner}: expected {channels} input channels (axis 1), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise DTypeError(f"{owner}: expected a floating input, got {x.dtype.name}")
    return x


def _conv(x, weight, bias, stride, padding, dilation, rank: int, owner: str):
    weight = _t(weight)
    if weight.ndim != rank + 2:
        raise ShapeError(f"{owner}: expected a {rank + 2}-D weight (out, in, {'k' if rank == 1 else 'kh, kw'}), "
                         f"got shape {weight.shape}")
    out_channels, in_channels, kernel = weight.shape[0], weight.shape[1], weight.shape[2:]
    x = _check_input(x, rank, owner, in_channels)
    stride = _tuple(stride, rank, "stride", owner, 1)
    padding = _tuple(padding, rank, "padding", owner, 0)
    dilation = _tuple(dilation, rank, "dilation", owner, 1)
    cols = windows(x, kernel, stride, padding, dilation, 0.0, owner)  # (N, C, *kernel, *out)
    n, out = x.shape[0], cols.shape[2 + rank:]
    cols = ops.reshape(cols, (n, in_channels * int(np.prod(kernel)), int(np.prod(out))))
    y = ops.matmul(ops.reshape(weight, (out_channels, -1)), cols)  # (N, O, positions)
    if bias is not None:
        bias = _t(bias)
        if bias.shape != (out_channels,):
            raise ShapeError(f"{owner}: expected a bias of shape ({out_channels},), got {bias.shape}")
        y = y + ops.reshape(bias, (out_channels, 1))
    return ops.reshape(y, (n, out_channels) + out)


IntOrTuple = Union[int, Sequence[int]]


def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntOrTuple = 1, padding: IntOrTuple = 0,
           dilation: IntOrTuple = 1) -> Tensor:
    """1-D convolution (cross-correlation, as in PyTorch) of x (N, C, L) with weight (out, C, k)."""
    return _conv(x, weight, bias, stride, padding, dilation, 1, "conv1d")


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntOrTuple = 1, padding: IntOrTuple = 0,
           dilation: IntOrTuple = 1) -> Tensor:
    """2-D convolution (cross-correlation, as in PyTorch) of x (N, C, H, W) with weight (out, C, kh, kw)."""
    return _conv(x, weight, bias, stride, padding, dilation, 2, "conv2d")


class _ConvND(Module):
    rank = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 bias: bool = True, dtype="float32", generator=None):
        super().__init__()
        owner = type(self).__name__
        if in_channels <= 0 or out_channels <= 0:
            raise SpagoError(f"{owner}: channels must be positive, got in={in_channels}, out={out_channels}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _tuple(kernel_size, self.rank, "kernel_size", owner, 1)
        self.stride = _tuple(stride, self.rank, "stride", owner, 1)
        self.padding = _tuple(padding, self.rank, "padding", owner, 0)
        self.dilation = _tuple(dilation, self.rank, "dilation", owner, 1)
        # PyTorch's default: kaiming_uniform with a = √5, i.e. U(−1/√fan_in, 1/√fan_in), and the same for b.
        bound = 1.0 / math.sqrt(in_channels * int(np.prod(self.kernel_size)))
        shape = (out_channels, in_channels) + self.kernel_size
        self.weight = init.uniform(Param(np.zeros(shape), dtype), -bound, bound, generator)
        self.bias = init.uniform(Param(np.zeros(out_channels), dtype), -bound, bound, generator) if bias else None

    def forward(self, x):
        """Channels-first as in PyTorch: x (N, C_in, L) for Conv1D, (N, C_in, H, W) for Conv2D → (N, C_out, ...).
        No mask: pad sequences yourself."""
        return _conv(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.rank,
                     self._path or type(self).__name__)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, bias={self.bias is not None}")


class Conv1D(_ConvND):
    """y = conv1d(x, W) + b over sequences: x (N, C_in, L) → y (N, C_out, L_out), W (C_out, C_in, k),
    L_out = ⌊(L + 2·padding − dilation·(k − 1) − 1) / stride⌋ + 1. Initialised like PyTorch:
    W, b ~ U(−1/√(C_in·k), 1/√(C_in·k))."""

    rank = 1


class Conv2D(_ConvND):
    """y = conv2d(x, W) + b over images: x (N, C_in, H, W) → y (N, C_out, H_out, W_out), W (C_out, C_in, kh, kw),
    each output size as in Conv1D per axis. Initialised like PyTorch: W, b ~ U(−1/√(C_in·kh·kw), 1/√(C_in·kh·kw))."""

    rank = 2
