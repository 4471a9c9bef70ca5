"""Define-by-run autograd: backward, accumulation, detach, no_grad, retain_graph, long chains."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import spago as sp


def test_scalar_backward_uses_an_implicit_one():
    x = sp.tensor(3.0, requires_grad=True)
    (x * x).backward()
    assert x.grad.item() == 6.0 and isinstance(x.grad, sp.Tensor)


def test_non_scalar_backward_needs_a_gradient():
    x = sp.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(sp.GradError, match="one-element"):
        (x * 2.0).backward()
    (x * 2.0).backward(sp.tensor([1.0, 0.5]))
    assert x.grad.tolist() == [2.0, 1.0]


def test_a_scalar_gradient_broadcasts_to_the_output():
    x = sp.tensor([1.0, 2.0], requires_grad=True)
    (x * 3.0).backward(0.5)
    assert x.grad.tolist() == [1.5, 1.5]
    with pytest.raises(sp.GradError):
        (x * 3.0).backward(sp.tensor([1.0, 2.0, 3.0]))


def test_gradients_accumulate_until_cleared():
    x = sp.tensor(2.0, requires_grad=True)
    (x * 3.0).backward()
    (x * 3.0).backward()
    assert x.grad.item() == 6.0
    x.zero_grad()
    assert x.grad is None


def test_unused_and_non_differentiable_inputs_get_no_gradient():
    x = sp.tensor(2.0, requires_grad=True)
    unused = sp.tensor(1.0, requires_grad=True)
    ints = sp.tensor(3)
    (x * ints).backward()
    assert unused.grad is None and ints.grad is None and x.grad.item() == 3.0


def test_backward_without_grad_raises():
    with pytest.raises(sp.GradError, match="does not require grad"):
        (sp.tensor(1.0) * 2.0).backward()


def test_diamond_graph_sums_both_paths():
    x = sp.tensor(1.5, requires_grad=True)
    y = sp.exp(x)
    (y * y + y).backward()
    e = np.exp(1.5)
    assert np.isclose(x.grad.item(), 2 * e * e + e, rtol=1e-6)


def test_detach_cuts_the_tape():
    x = sp.tensor(2.0, requires_grad=True)
    y = x * x
    z = y.detach() * x
    z.backward()
    assert x.grad.item() == 4.0  # only the path through the un-detached x
    assert not y.detach().requires_grad


def test_no_grad_records_nothing_as_context_and_decorator():
    x = sp.tensor(2.0, requires_grad=True)
    with sp.no_grad():
        y = x * 3.0
    assert not y.requires_grad and y.is_leaf

    @sp.no_grad()
    def f(v):
        return v * 3.0

    assert not f(x).requires_grad
    assert (x * 3.0).requires_grad and sp.is_grad_enabled()


def test_no_grad_is_per_thread():
    x = sp.tensor(2.0, requires_grad=True)
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def other():
        inside.wait()
        seen["other"] = (x * 2.0).requires_grad
        release.set()

    t = threading.Thread(target=other)
    t.start()
    with sp.no_grad():
        inside.set()
        release.wait()
    t.join()
    assert seen["other"] is True


def test_tape_is_freed_after_backward_unless_retained():
    x = sp.tensor(2.0, requires_grad=True)
    y = x * x
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.item() == 8.0
    with pytest.raises(sp.GradError, match="retain_graph"):
        y.backward()


def test_retain_grad_keeps_intermediate_gradients():
    x = sp.tensor(2.0, requires_grad=True)
    y = (x * 3.0).retain_grad()
    (y * y).backward()
    assert y.grad.item() == 12.0 and x.grad.item() == 36.0


def test_twenty_thousand_op_chain_has_no_recursion_limit():
    """An RNN unrolled 20,000 steps: h = tanh(h·w + x)."""
    w = sp.tensor(0.5, requires_grad=True)
    h = sp.tensor(0.1)
    x = sp.tensor(0.2)
    for _ in range(10_000):
        h = sp.tanh(h * w + x)  # three ops per step
    h.backward()
    # check against a hand-rolled float64 reverse pass
    hs = [0.1]
    for _ in range(10_000):
        hs.append(np.tanh(hs[-1] * 0.5 + 0.2))
    g, gw = 1.0, 0.0
    for k in range(10_000, 0, -1):
        d = g * (1 - hs[k] ** 2)
        gw += d * hs[k - 1]
        g = d * 0.5
    assert np.isclose(w.grad.item(), gw, rtol=1e-4)


def test_requires_grad_cannot_be_switched_off_on_a_non_leaf():
    x = sp.tensor(2.0, requires_grad=True)
    with pytest.raises(sp.SpagoError, match="detach"):
        (x * 2.0).requires_grad_(False)
