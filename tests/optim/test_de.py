"""Differential evolution: it minimises, is reproducible from its seed, honours its callbacks and leaves the
best vector in a model."""
from __future__ import annotations

import numpy as np
import pytest

import spago
from spago import nn
from spago.errors import SpagoError
from spago.optim import DifferentialEvolution

CENTRE = np.array([0.5, -1.0, 2.0, 0.0, 1.5])


def sphere(v, batch=0):
    return float(np.sum((v - CENTRE) ** 2))


@pytest.mark.parametrize("mutation", ["rand1", "degl"])
def test_it_minimises_a_function(mutation):
    # DEGL pulls every member towards the best ones: with a fixed F = 0.5 it can stall early, so it adapts F
    de = DifferentialEvolution(5, sphere, population_size=20, mutation=mutation, adaptive=mutation == "degl",
                               seed=1)
    start = min(sphere(v) for v in de.targets)
    best, score = de.optimize(80)
    assert sphere(best) < 1e-3 < start
    assert score == pytest.approx(-sphere(best))
    assert de.history == sorted(de.history) and len(de.history) == 80  # the best never gets worse


def test_the_seed_makes_runs_identical_and_adaptive_factors_move():
    runs = [DifferentialEvolution(5, sphere, seed=4, adaptive=True) for _ in range(3)]
    for de in runs:
        de.optimize(15)
    np.testing.assert_array_equal(runs[0].best_vector, runs[1].best_vector)
    assert runs[0].history == runs[1].history
    assert np.unique(runs[0].hyper[:, 0]).size > 1  # some members redrew their mutation factor
    other = DifferentialEvolution(5, sphere, seed=5)
    other.optimize(15)
    assert not np.array_equal(other.best_vector, runs[0].best_vector)


def test_callbacks_batches_and_resets():
    seen_batches, improvements = set(), []

    def score(v, batch):
        seen_batches.add(batch)
        return sphere(v)

    de = DifferentialEvolution(np.zeros(5), score, validate=lambda v: -np.abs(v - CENTRE).sum(),
                               on_new_best=lambda v, s: improvements.append(s), seed=0, reset_after=2,
                               bound=3.0)
    np.testing.assert_array_equal(de.targets[0], np.zeros(5))  # the starting vector is member 0
    de.optimize(10, batches=3, steps=2)
    assert seen_batches == {0, 1, 2}
    assert improvements == sorted(improvements) and improvements[-1] == de.best_score
    assert np.abs(de.targets).max() <= 3.0  # every member stays within the bound


def test_it_trains_a_models_parameters():
    x = np.linspace(-1, 1, 16, dtype=np.float32)[:, None]
    y = 2 * x - 0.5
    model = nn.Linear(1, 1)

    def mse(v, batch=0):
        with spago.no_grad():
            return float(np.mean((model(x).numpy() - y) ** 2))

    de = DifferentialEvolution(model, mse, population_size=10, init_range=3.0, seed=0)
    assert de.size == 2
    de.optimize(60)
    assert mse(None) < 1e-4  # the best vector is left in the model
    np.testing.assert_allclose([model.weight.numpy()[0, 0], model.bias.numpy()[0]], [2.0, -0.5], atol=0.01)


def test_bad_settings_are_named():
    with pytest.raises(SpagoError, match="mutation must be one of"):
        DifferentialEvolution(3, sphere, mutation="best2")
    with pytest.raises(SpagoError, match="at least 4 members"):
        DifferentialEvolution(3, sphere, population_size=3)
    with pytest.raises(SpagoError, match="DEGL neighbourhood"):
        DifferentialEvolution(3, sphere, population_size=6, mutation="degl", neighborhood_radius=0.5)
    with pytest.raises(SpagoError, match="crossover_rate"):
        DifferentialEvolution(3, sphere, crossover_rate=1.5)
