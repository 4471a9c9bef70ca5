"""The Tensor type: construction, dtypes, properties, operators, methods, namespace functions, errors."""
from __future__ import annotations

import numpy as np
import pytest

import spago as sp


@pytest.mark.parametrize("data, dtype", [
    (1.5, np.float32), ([1.0, 2.0], np.float32), (3, np.int64), ([1, 2], np.int64), (True, np.bool_),
    (np.ones(2, np.float64), np.float64), (np.ones(2, np.float32), np.float32), (np.float64(2.0), np.float64),
    (np.ones(2, np.float16), np.float32), (np.ones(2, np.int32), np.int32),
])
def test_default_dtypes(data, dtype):
    assert sp.tensor(data).dtype == dtype


def test_explicit_dtype_and_copy():
    a = np.ones(3)
    t = sp.tensor(a, dtype="float32")
    assert t.dtype == np.float32
    u = sp.tensor(a)
    a[0] = 5
    assert u.numpy()[0] == 1.0  # spago.tensor copies


@pytest.mark.parametrize("bad", ["text", [[1, 2], [3]], None, {"a": 1}, [1 + 2j]])
def test_bad_data_raises_a_spago_error(bad):
    with pytest.raises(sp.SpagoError):
        sp.tensor(bad)


def test_unknown_dtype():
    with pytest.raises(sp.DTypeError, match="unknown dtype"):
        sp.tensor(1.0, dtype="float17")
    with pytest.raises(sp.DTypeError):
        sp.tensor(1.0, dtype=np.complex64)


def test_properties_and_conversions():
    t = sp.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and len(t) == 2
    assert isinstance(t.numpy(), np.ndarray)
    assert sp.tensor(4.0).item() == 4.0 and float(sp.tensor(2.5)) == 2.5 and int(sp.tensor(3)) == 3
    with pytest.raises(sp.SpagoError, match="one-element"):
        t.item()
    assert [r.tolist() for r in t] == [[0, 1, 2], [3, 4, 5]]
    assert "tensor(" in repr(t) and "requires_grad" in repr(sp.tensor(1.0, requires_grad=True))
    assert np.asarray(t).shape == (2, 3)
    with pytest.raises(sp.SpagoError, match="ambiguous"):
        bool(t)
    with pytest.raises(sp.SpagoError):
        len(sp.tensor(1.0))


def test_operators_dispatch_to_ops():
    a = sp.tensor([1.0, 2.0, 3.0])
    b = sp.tensor([4.0, 5.0, 6.0])
    n = np.array([4.0, 5.0, 6.0], np.float32)
    np.testing.assert_allclose((a + b).numpy(), [5, 7, 9])
    np.testing.assert_allclose((a - b).numpy(), [-3, -3, -3])
    np.testing.assert_allclose((a * b).numpy(), [4, 10, 18])
    np.testing.assert_allclose((b / a).numpy(), [4, 2.5, 2])
    np.testing.assert_allclose((a ** 2).numpy(), [1, 4, 9])
    np.testing.assert_allclose((2 ** a).numpy(), [2, 4, 8])
    assert (a @ b).item() == 32
    np.testing.assert_allclose((-a).numpy(), [-1, -2, -3])
    np.testing.assert_allclose(abs(-a).numpy(), [1, 2, 3])
    np.testing.assert_array_equal((a < b).numpy(), [True] * 3)
    np.testing.assert_array_equal((a == sp.tensor([1.0, 0.0, 3.0])).numpy(), [True, False, True])
    np.testing.assert_allclose((1.0 - a).numpy(), [0, -1, -2])
    np.testing.assert_allclose((10 / a).numpy(), [10, 5, 10 / 3], rtol=1e-6)
    r = n + a  # an ndarray on the left still gives a Tensor
    assert isinstance(r, sp.Tensor)
    np.testing.assert_allclose(r.numpy(), [5, 7, 9])
    assert a[1].item() == 2.0 and a[::-1].tolist() == [3, 2, 1]


def test_methods_and_namespace_functions():
    x = sp.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert x.sum().item() == 15 and x.sum(axis=0).tolist() == [3, 5, 7]
    assert x.mean(axis=1).tolist() == [1, 4] and x.max().item() == 5 and x.min(axis=1).tolist() == [0, 3]
    assert x.reshape(3, 2).shape == (3, 2) and x.reshape((6,)).shape == (6,) and x.T.shape == (3, 2)
    assert x.transpose((1, 0)).shape == (3, 2) and x.astype("float64").dtype == np.float64
    assert x.argmax().item() == 5
    np.testing.assert_allclose(sp.exp(x).numpy(), np.exp(x.numpy()), rtol=1e-6)
    np.testing.assert_allclose(sp.tanh(x).numpy(), np.tanh(x.numpy()), rtol=1e-6)
    np.testing.assert_allclose(sp.relu(x - 2.0).numpy(), np.maximum(x.numpy() - 2, 0))
    np.testing.assert_allclose(sp.sigmoid(x).numpy(), 1 / (1 + np.exp(-x.numpy())), rtol=1e-6)
    np.testing.assert_allclose(sp.softmax(x, axis=-1).numpy().sum(axis=-1), [1, 1], rtol=1e-6)
    assert sp.concat([x, x], axis=0).shape == (4, 3)


def test_dtype_rules():
    f32, f64 = sp.tensor([1.0, 2.0]), sp.tensor(np.array([1.0, 2.0]))
    assert (f64 * 2.0).dtype == np.float64 and (f32 * 2.0).dtype == np.float32  # scalars adopt the tensor's dtype
    assert (sp.tensor([1, 2]) + f32).dtype == np.float32  # ints widen to the float
    assert (sp.tensor([True, False]) * f64).dtype == np.float64
    with pytest.raises(sp.DTypeError, match="float32 and float64"):
        f32 + f64
    with pytest.raises(sp.DTypeError):
        sp.exp(sp.tensor([1, 2]))


def test_requires_grad_only_on_floats():
    with pytest.raises(sp.DTypeError):
        sp.tensor([1, 2], requires_grad=True)
    assert sp.tensor([1.0], requires_grad=True).requires_grad


@pytest.mark.parametrize("call, op", [
    (lambda: sp.ones(2, 3) + sp.ones(4), "add"),
    (lambda: sp.ones(2, 3) @ sp.ones(2, 3), "matmul"),
    (lambda: sp.ones(2, 3).sum(axis=2), "sum"),
    (lambda: sp.ones(2, 3).reshape(4, 2), "reshape"),
    (lambda: sp.concat([sp.ones(2, 3), sp.ones(3, 3)], axis=1), "concat"),
    (lambda: sp.take(sp.ones(3, 2), np.array([3])), "take"),
    (lambda: sp.softmax(sp.ones(2, 3), axis=5), "softmax"),
])
def test_bad_calls_name_the_op_and_shapes(call, op):
    with pytest.raises(sp.SpagoError) as info:
        call()
    assert op in str(info.value)
    assert "(2, 3)" in str(info.value) or "[2,3]" in str(info.value) or "rank 2" in str(info.value) \
        or "(3, 2)" in str(info.value)
