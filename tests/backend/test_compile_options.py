"""Compile options and the compiled function's own arguments live in separate namespaces; traps that would
compile something other than what the user meant are refused with a spago error."""
from __future__ import annotations

import numpy as np
import pytest

import spago as sp
from spago import nn

X = np.arange(6, dtype=np.float32).reshape(2, 3)


@pytest.mark.parametrize("option, says", [
    ({"infrence": False}, "did you mean inference="),
    ({"static_argnums": (0,)}, "static already"),
    ({"dynamic": True}, "spago.jit"),
    ({"mode": "max-autotune"}, "passes=[...]"),
    ({"scale": X}, "kwargs={...}"),
])
def test_unknown_compile_options_are_named_with_the_valid_ones(option, says):
    with pytest.raises(sp.SpagoError, match="unknown option " + next(iter(option))) as err:
        sp.compile(lambda a, **kw: a * 2.0, X, **option)
    assert says in str(err.value) and "valid options: passes, inference" in str(err.value)


def test_unknown_jit_options_fail_when_decorating():
    with pytest.raises(sp.SpagoError, match="spago.jit: unknown option infrence"):
        sp.jit(lambda a: a, infrence=False)
    with pytest.raises(sp.SpagoError, match="spago.jit: unknown option kwargs"):
        sp.jit(lambda a: a, kwargs={})


def test_the_functions_keyword_examples_go_in_kwargs():
    f = sp.compile(lambda a, scale=None: a * scale, X, kwargs={"scale": sp.spec((2, 3))})
    np.testing.assert_array_equal(f(X, scale=X), X * X)
    j = sp.jit(lambda a, scale: a * scale, inference=True)
    np.testing.assert_array_equal(j(X, scale=X + 1), X * (X + 1))


def test_compiling_a_model_without_example_inputs_says_what_is_needed():
    with pytest.raises(sp.SpagoError, match=r"spago.compile\(Linear\) needs example inputs for x.*spago.spec"):
        sp.compile(nn.Linear(3, 2))
    assert sp.compile(lambda: sp.ones((2,)) * 3.0)().tolist() == [3.0, 3.0]  # nothing to give: fine


def test_compiling_dropout_in_training_mode_is_refused_not_frozen():
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5))
    with pytest.raises(sp.SpagoError, match=r"dropout in training mode.*model.eval\(\)"):
        sp.compile(model, X)
    model.eval()
    np.testing.assert_allclose(sp.compile(model, X)(X), model(X).numpy(), rtol=1e-5, atol=1e-6)


def test_another_shape_says_shapes_are_static_and_points_to_jit():
    f = sp.compile(lambda a: a * 2.0, X)
    with pytest.raises(sp.SpagoError, match=r"has shape \(3, 3\), expected \(2, 3\): shapes are static.*spago.jit"):
        f(np.ones((3, 3), np.float32))
