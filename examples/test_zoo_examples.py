"""The model-zoo examples reach what they claim: differential evolution lowers the error of a network
without gradients, and the recursive autoencoder learns to reconstruct sequences."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import differential_evolution  # noqa: E402
import recursive_autoencoder  # noqa: E402


@pytest.mark.parametrize("mutation", ["rand1", "degl"])
def test_differential_evolution_trains_a_network(mutation, capsys):
    out = differential_evolution.main(mutation, generations=60)
    assert out["end"] < 0.75 * out["start"]
    assert out["curve"] == sorted(out["curve"], reverse=True)  # the best validation error only falls
    assert "validation MSE" in capsys.readouterr().out
    again = differential_evolution.main(mutation, generations=60, quiet=True)
    assert again["curve"] == out["curve"]  # seeded: the same run twice


def test_recursive_autoencoder_learns_to_reconstruct():
    out = recursive_autoencoder.main(steps=200)
    assert out["curve"][-1] < 0.5 * out["curve"][0]
    assert out["test_mse"] < 0.5 * out["variance"]
