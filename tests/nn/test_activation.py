"""Activation layers: each equals its op function, differentiates and compiles."""
from __future__ import annotations

import numpy as np
import pytest

import spago as sp
from spago import nn
from spago.testing import assert_compiled_matches_eager, check_module_grad

LAYERS = [(nn.ReLU, sp.relu, {}), (nn.ReLU6, sp.relu6, {}), (nn.LeakyReLU, sp.leaky_relu, {"alpha": 0.2}),
          (nn.ELU, sp.elu, {"alpha": 0.7}), (nn.CELU, sp.celu, {"alpha": 1.0}), (nn.SELU, sp.selu, {}),
          (nn.GELU, sp.gelu, {"approximate": "tanh"}), (nn.SiLU, sp.silu, {}), (nn.Swish, sp.swish, {}),
          (nn.Mish, sp.mish, {}), (nn.Sigmoid, sp.sigmoid, {}), (nn.Tanh, sp.tanh, {}),
          (nn.Softplus, sp.softplus, {"beta": 2.0}), (nn.Softsign, sp.softsign, {}),
          (nn.HardSigmoid, sp.hard_sigmoid, {}), (nn.HardTanh, sp.hard_tanh, {}),
          (nn.LogSigmoid, sp.log_sigmoid, {}), (nn.Softmax, sp.softmax, {"axis": 0}),
          (nn.LogSoftmax, sp.log_softmax, {"axis": -1})]


@pytest.mark.parametrize("layer,fn,options", LAYERS, ids=[c[0].__name__ for c in LAYERS])
def test_activation_layer_matches_its_op(layer, fn, options):
    # away from kinks (0, ±1, 6) so finite differences are exact
    x = np.random.default_rng(0).uniform(0.1, 0.9, (3, 4)) * np.array([1, -1, 1, -1])
    np.testing.assert_allclose(layer(**options)(sp.tensor(x)).numpy(), fn(sp.tensor(x), **options).numpy())
    check_module_grad(layer(**options), x)
    assert_compiled_matches_eager(layer(**options), x.astype(np.float32))


def test_activation_layers_in_a_sequential_save_and_load(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(alpha=0.3), nn.Linear(4, 2), nn.Softmax())
    sp.save(model, str(tmp_path / "m.safetensors"))
    again = sp.load(nn.Sequential, str(tmp_path / "m.safetensors"))
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(again(x).numpy(), model(x).numpy())
    assert again[1].options == {"alpha": 0.3}


def test_unknown_option_is_named():
    with pytest.raises(sp.SpagoError, match="unknown option.*slope"):
        nn.LeakyReLU(slope=0.1)
