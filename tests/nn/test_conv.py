"""Conv1D, Conv2D, MaxPool1D, MaxPool2D against direct-loop NumPy references; gradients; compiled parity."""
import math

import numpy as np
import pytest

import spago
from spago import nn
from spago.errors import DTypeError, ShapeError, SpagoError
from spago.ops import Generator
from spago.testing import assert_compiled_matches_eager, check_grad, check_module_grad


def rand(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def out_size(size, kernel, stride, padding, dilation=1):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_reference(x, w, b, stride, padding, dilation):
    """Direct loops over every output position, channel and kernel offset."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    ho, wo = out_size(h, kh, sh, ph, dh), out_size(wd, kw, sw, pw, dw)
    y = np.zeros((n, o, ho, wo))
    for i in range(n):
        for oc in range(o):
            for r in range(ho):
                for s in range(wo):
                    total = 0.0 if b is None else b[oc]
                    for ic in range(c):
                        for u in range(kh):
                            for v in range(kw):
                                total += w[oc, ic, u, v] * xp[i, ic, r * sh + u * dh, s * sw + v * dw]
                    y[i, oc, r, s] = total
    return y


def conv1d_reference(x, w, b, stride, padding, dilation):
    n, c, length = x.shape
    o, _, k = w.shape
    xp = np.zeros((n, c, length + 2 * padding))
    xp[:, :, padding:padding + length] = x
    y = np.zeros((n, o, out_size(length, k, stride, padding, dilation)))
    for i in range(n):
        for oc in range(o):
            for p in range(y.shape[2]):
                total = 0.0 if b is None else b[oc]
                for ic in range(c):
                    for j in range(k):
                        total += w[oc, ic, j] * xp[i, ic, p * stride + j * dilation]
                y[i, oc, p] = total
    return y


def max_pool2d_reference(x, kernel, stride, padding):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * ph, w + 2 * pw), -np.inf)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    ho, wo = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    y = np.empty((n, c, ho, wo))
    for i in range(n):
        for ch in range(c):
            for r in range(ho):
                for s in range(wo):
                    best = -np.inf
                    for u in range(kh):
                        for v in range(kw):
                            best = max(best, xp[i, ch, r * sh + u, s * sw + v])
                    y[i, ch, r, s] = best
    return y


def max_pool1d_reference(x, kernel, stride, padding):
    return max_pool2d_reference(x[:, :, None, :], (1, kernel), (1, stride), (0, padding))[:, :, 0, :]


# ----------------------------------------------------------------------------- Conv1D

@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2), (3, 0, 1)])
def test_conv1d_matches_loops(stride, padding, dilation):
    x, w, b = rand(2, 3, 9, seed=1), rand(4, 3, 3, seed=2), rand(4, seed=3)
    got = nn.conv1d(x, w, b, stride, padding, dilation).numpy()
    np.testing.assert_allclose(got, conv1d_reference(x, w, b, stride, padding, dilation), rtol=1e-10, atol=1e-12)


def test_conv1d_module_layout_init_and_no_bias():
    conv = nn.Conv1D(3, 5, 4, stride=2, padding=1, generator=Generator(0))
    assert conv.weight.shape == (5, 3, 4) and conv.bias.shape == (5,)
    bound = 1 / math.sqrt(3 * 4)
    assert np.abs(conv.weight.numpy()).max() <= bound and np.abs(conv.bias.numpy()).max() <= bound
    assert np.abs(conv.weight.numpy()).max() > 0.8 * bound
    x = rand(2, 3, 10, dtype=np.float32)
    y = conv(x)
    assert y.shape == (2, 5, out_size(10, 4, 2, 1)) and y.dtype == np.float32
    want = conv1d_reference(x, conv.weight.numpy(), conv.bias.numpy(), 2, 1, 1)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-5, atol=1e-5)
    plain = nn.Conv1D(3, 2, 3, bias=False)
    assert plain.bias is None and plain.num_parameters() == 2 * 3 * 3
    np.testing.assert_allclose(plain(x).numpy(), conv1d_reference(x, plain.weight.numpy(), None, 1, 0, 1),
                               rtol=1e-5, atol=1e-5)


def test_conv1d_gradients():
    check_module_grad(nn.Conv1D(2, 3, 3, stride=2, padding=1, generator=Generator(4)), rand(2, 2, 6))


def test_conv1d_compiled_matches_eager():
    assert_compiled_matches_eager(nn.Conv1D(3, 4, 3, stride=2, padding=1).eval(), rand(2, 3, 11, dtype=np.float32))


# ----------------------------------------------------------------------------- Conv2D

@pytest.mark.parametrize("stride,padding,dilation", [
    ((1, 1), (0, 0), (1, 1)), ((2, 1), (1, 0), (1, 1)), ((1, 2), (2, 1), (2, 1)), ((2, 2), (1, 1), (1, 1)),
])
def test_conv2d_matches_loops(stride, padding, dilation):
    x, w, b = rand(2, 3, 6, 7, seed=1), rand(2, 3, 3, 2, seed=2), rand(2, seed=3)
    got = nn.conv2d(x, w, b, stride, padding, dilation).numpy()
    np.testing.assert_allclose(got, conv2d_reference(x, w, b, stride, padding, dilation), rtol=1e-10, atol=1e-12)


def test_conv2d_module_matches_loops():
    conv = nn.Conv2D(2, 3, (2, 3), stride=(2, 1), padding=1, generator=Generator(0))
    assert conv.weight.shape == (3, 2, 2, 3)
    assert np.abs(conv.weight.numpy()).max() <= 1 / math.sqrt(2 * 2 * 3)
    x = rand(1, 2, 5, 6, dtype=np.float32)
    want = conv2d_reference(x, conv.weight.numpy(), conv.bias.numpy(), (2, 1), (1, 1), (1, 1))
    np.testing.assert_allclose(conv(x).numpy(), want, rtol=1e-5, atol=1e-5)
    assert "kernel_size=(2, 3)" in repr(conv)


def test_conv2d_gradients():
    check_module_grad(nn.Conv2D(2, 2, (2, 3), stride=(1, 2), padding=(1, 0), generator=Generator(5)),
                      rand(1, 2, 4, 5))


def test_functional_conv2d_gradients():
    check_grad(lambda x, w, b: nn.conv2d(x, w, b, stride=2, padding=1, dilation=(1, 2)),
               rand(1, 2, 5, 5, seed=1), rand(2, 2, 2, 2, seed=2), rand(2, seed=3))


class TinyCNN(nn.Module):
    """conv → relu → max pool → linear: the layers composed as a user would."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3, stride=(2, 1), padding=1, generator=Generator(6))
        self.pool = nn.MaxPool2D(2)
        self.out = nn.Linear(4 * 2 * 3, 2, generator=Generator(7))

    def forward(self, x):
        h = self.pool(spago.relu(self.conv(x)))
        return self.out(spago.reshape(h, (h.shape[0], -1)))


def test_conv2d_compiled_matches_eager():
    assert_compiled_matches_eager(nn.Conv2D(3, 4, 3, stride=(2, 1), padding=1).eval(),
                                  rand(2, 3, 7, 6, dtype=np.float32))


def test_small_cnn_gradients_and_graph_names():
    cnn = TinyCNN()
    x = rand(2, 3, 7, 6, dtype=np.float32)
    assert cnn(x).shape == (2, 2)
    names = sorted(p.name for p in spago.trace(cnn, x).params)
    assert names == ["conv.bias", "conv.weight", "out.bias", "out.weight"]
    check_module_grad(cnn, rand(1, 3, 7, 6, seed=8), rtol=1e-4, atol=1e-6)


def test_conv_bad_input():
    conv = nn.Conv2D(3, 4, 3)
    with pytest.raises(ShapeError, match=r"expected a 4-D input \(N, C, H, W\), got shape \(3, 5, 5\)"):
        conv(rand(3, 5, 5, dtype=np.float32))
    with pytest.raises(ShapeError, match=r"expected 3 input channels \(axis 1\), got shape \(1, 2, 5, 5\)"):
        conv(rand(1, 2, 5, 5, dtype=np.float32))
    with pytest.raises(ShapeError, match="smaller than the kernel"):
        conv(rand(1, 3, 2, 5, dtype=np.float32))
    with pytest.raises(DTypeError, match="floating"):
        nn.Conv1D(1, 1, 1)(np.ones((1, 1, 3), np.int64))
    with pytest.raises(SpagoError, match="stride must be >= 1"):
        nn.Conv1D(1, 1, 2, stride=0)
    with pytest.raises(SpagoError, match="kernel_size must be an int or a tuple of 2 ints"):
        nn.Conv2D(1, 1, (2, 2, 2))
    with pytest.raises(SpagoError, match="channels must be positive"):
        nn.Conv1D(0, 1, 2)
    with pytest.raises(ShapeError, match=r"expected a 3-D weight"):
        nn.conv1d(rand(1, 2, 5), rand(2, 2))
    with pytest.raises(ShapeError, match=r"expected a bias of shape \(3,\), got \(2,\)"):
        nn.conv1d(rand(1, 2, 5), rand(3, 2, 2), rand(2))


# ----------------------------------------------------------------------------- max pooling

@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 1, 1), (3, 2, 1), (4, 3, 2)])
def test_max_pool1d_matches_loops(kernel, stride, padding):
    x = rand(2, 3, 10, seed=4)
    want = max_pool1d_reference(x, kernel, kernel if stride is None else stride, padding)
    np.testing.assert_array_equal(nn.max_pool1d(x, kernel, stride, padding).numpy(), want)
    np.testing.assert_array_equal(nn.MaxPool1D(kernel, stride, padding)(x).numpy(), want)


@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), ((3, 2), (2, 1), (1, 0)), (3, 2, 1)])
def test_max_pool2d_matches_loops(kernel, stride, padding):
    x = rand(2, 2, 6, 7, seed=5)
    k = (kernel,) * 2 if isinstance(kernel, int) else kernel
    s = k if stride is None else ((stride,) * 2 if isinstance(stride, int) else stride)
    p = (padding,) * 2 if isinstance(padding, int) else padding
    want = max_pool2d_reference(x, k, s, p)
    np.testing.assert_array_equal(nn.max_pool2d(x, kernel, stride, padding).numpy(), want)
    np.testing.assert_array_equal(nn.MaxPool2D(kernel, stride, padding)(x).numpy(), want)


def test_max_pool_gradients():
    check_module_grad(nn.MaxPool1D(3, 2, 1), rand(2, 2, 7, seed=6))
    check_module_grad(nn.MaxPool2D((2, 3), (1, 2), (1, 1)), rand(1, 2, 4, 5, seed=7))


def test_max_pool_gradient_goes_to_the_maximum():
    x = spago.tensor(np.array([[[1.0, 5.0, 2.0, 0.0, 3.0, 4.0]]]), requires_grad=True)
    nn.max_pool1d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[0.0, 1.0, 1.0, 0.0, 0.0, 1.0]]])


def test_max_pool_compiled_matches_eager():
    assert_compiled_matches_eager(nn.MaxPool1D(3, 2, 1), rand(2, 3, 9, dtype=np.float32))
    assert_compiled_matches_eager(nn.MaxPool2D(3, 2, 1), rand(2, 3, 7, 6, dtype=np.float32))


def test_max_pool_bad_input():
    with pytest.raises(SpagoError, match="at most half the kernel"):
        nn.MaxPool2D(2, padding=2)
    with pytest.raises(ShapeError, match=r"expected a 3-D input \(N, C, L\)"):
        nn.MaxPool1D(2)(rand(4, 6))
    with pytest.raises(ShapeError, match="smaller than the kernel"):
        nn.max_pool2d(rand(1, 1, 2, 2), 3)
    with pytest.raises(SpagoError, match="stride must be >= 1"):
        nn.max_pool1d(rand(1, 1, 4), 2, stride=0)
