"""Max pooling over sequences and images: y[n, c, p] = max_k x̃[n, c, p·s + k], with x̃ padded by −∞
(as in PyTorch, padding never wins the max).

Built from the same strided windows as the convolutions (see conv.py) and one max reduction, so the
gradient (to the window's maximum; ties share it evenly) and compilation come from the primitives.
"""
from __future__ import annotations

from .. import ops
from ..errors import SpagoError
from ..tensor import Tensor
from .conv import IntOrTuple, _check_input, _tuple, windows
from .module import Module

__all__ = ["MaxPool1D", "MaxPool2D", "max_pool1d", "max_pool2d"]


def _pool_args(kernel_size, stride, padding, rank: int, owner: str) -> tuple:
    kernel = _tuple(kernel_size, rank, "kernel_size", owner, 1)
    stride = kernel if stride is None else _tuple(stride, rank, "stride", owner, 1)
    padding = _tuple(padding, rank, "padding", owner, 0)
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise SpagoError(f"{owner}: padding {padding} must be at most half the kernel {kernel}, "
                         "or a window could hold only padding")
    return kernel, stride, padding


def _max_pool(x, kernel_size, stride, padding, rank: int, owner: str):
    kernel, stride, padding = _pool_args(kernel_size, stride, padding, rank, owner)
    x = _check_input(x, rank, owner)
    cols = windows(x, kernel, stride, padding, (1,) * rank, float("-inf"), owner)  # (N, C, *kernel, *out)
    return ops.max(cols, axis=tuple(range(2, 2 + rank)))


def max_pool1d(x: Tensor, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0) -> Tensor:
    """Max over windows of ``kernel_size`` along L of x (N, C, L); ``stride`` defaults to the kernel size."""
    return _max_pool(x, kernel_size, stride, padding, 1, "max_pool1d")


def max_pool2d(x: Tensor, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0) -> Tensor:
    """Max over kh×kw windows of x (N, C, H, W); ``stride`` defaults to the kernel size."""
    return _max_pool(x, kernel_size, stride, padding, 2, "max_pool2d")


class _MaxPoolND(Module):
    rank = 0

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = _pool_args(kernel_size, stride, padding, self.rank,
                                                                 type(self).__name__)

    def forward(self, x):
        """Channels-first as in PyTorch: x (N, C, L) for MaxPool1D, (N, C, H, W) for MaxPool2D → (N, C, ...)."""
        return _max_pool(x, self.kernel_size, self.stride, self.padding, self.rank, self._path or type(self).__name__)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool1D(_MaxPoolND):
    """Max pooling over x (N, C, L) → (N, C, L_out), L_out = ⌊(L + 2·padding − k) / stride⌋ + 1."""

    rank = 1


class MaxPool2D(_MaxPoolND):
    """Max pooling over x (N, C, H, W) → (N, C, H_out, W_out), each size as in MaxPool1D per axis."""

    rank = 2
