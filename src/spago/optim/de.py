"""Differential evolution (Storn & Price, 1997, "Differential Evolution – A Simple and Efficient Heuristic
for Global Optimization over Continuous Spaces"): gradient-free search over a vector — for instance all of
a model's parameters — by a population of candidates, as the Go spaGO's ``de`` optimiser.

Each generation, for every member x_i (its *target*):

    mutation   DE/rand/1:  y_i = clip(x_a + F·(x_b − x_c))                      a, b, c distinct, ≠ i
               DEGL:       G = x_i + F·(x_best − x_i) + F·(x_a − x_b)            global neighbourhood
                           L = x_i + F·(x_nbest − x_i) + F·(x_c − x_d)           ring neighbourhood of radius k
                           y_i = clip(w·G + (1 − w)·L)        (Das et al., 2009; Ghosh et al., 2011)
    crossover  binomial:   u_ij = y_ij if r_j < CR or j = j_rand, else x_ij
    selection  x_i ← u_i if score(u_i) < score(x_i)

With ``adaptive``, a member whose trial wins redraws F, CR and w each with probability 0.1 (F, w ~ U(0.1, 1),
CR ~ U(0, 1)), so good settings spread with the members that use them. After each batch the targets are
validated (higher is better) and the best-ever one is kept; with ``reset_after`` the population restarts
around it when the best has not improved for that many batches. One seed makes every run identical.
DEGL pulls every member towards the best ones, so with a fixed F = 0.5 (the Go spaGO's default) it can
stall early; ``adaptive=True`` or F ≈ 0.8 keeps it moving.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import SpagoError

__all__ = ["DifferentialEvolution"]

MUTATIONS = ("rand1", "degl")


class DifferentialEvolution:
    """Minimise ``score(vector, batch) -> float`` over vectors in [−bound, bound]^n.

    ``target`` is the vector size, an initial vector, or a `Module`: then the vector is all its parameters
    (`Module.flatten_parameters` order), each candidate is written into the model before the callbacks run
    (so they can simply call the model), member 0 starts from the model's current values, and the best
    vector is left in the model. ``validate(vector) -> float`` (higher is better; default −score on batch 0)
    picks the best member; ``on_new_best(vector, score)`` is told of each improvement."""

    def __init__(self, target, score: Callable[[np.ndarray, int], float],
                 validate: Callable[[np.ndarray], float] | None = None, *, population_size: int = 20,
                 mutation: str = "rand1", factor: float = 0.5, crossover_rate: float = 0.9,
                 weight_factor: float = 0.5, neighborhood_radius: float = 0.1, bound: float = 6.0,
                 adaptive: bool = False, reset_after: int = 0, init_range: float | None = None, seed: int = 0,
                 on_new_best: Callable[[np.ndarray, float], None] | None = None):
        from ..nn.module import Module

        if mutation not in MUTATIONS:
            raise SpagoError(f"DifferentialEvolution: mutation must be one of {MUTATIONS}, got {mutation!r}")
        self.model = target if isinstance(target, Module) else None
        if self.model is not None:
            start = np.concatenate([p.numpy().reshape(-1) for p in self.model.parameters()]).astype(np.float64)
        elif isinstance(target, (int, np.integer)):
            start = None
            size = int(target)
        else:
            start = np.asarray(target, dtype=np.float64).reshape(-1)
        size = start.size if start is not None else size
        least = 4 if mutation == "rand1" else 5
        if size < 1 or population_size < least:
            raise SpagoError(f"DifferentialEvolution: needs a vector of at least 1 value and at least {least} "
                             f"members for {mutation}, got size {size} and population {population_size}")
        self.window = max(1, int(population_size * neighborhood_radius))
        if mutation == "degl" and 2 * self.window + 1 > population_size:
            raise SpagoError(f"DifferentialEvolution: the DEGL neighbourhood (radius {self.window}) does not fit "
                             f"in a population of {population_size}")
        if not (0.0 <= crossover_rate <= 1.0 and factor > 0 and bound > 0):
            raise SpagoError("DifferentialEvolution: expected 0 ≤ crossover_rate ≤ 1, factor > 0 and bound > 0, "
                             f"got {crossover_rate}, {factor} and {bound}")
        self.size, self.population_size, self.mutation = size, int(population_size), mutation
        self.bound, self.adaptive, self.reset_after = float(bound), bool(adaptive), int(reset_after)
        self.score_fn, self.on_new_best = score, on_new_best
        self.validate_fn = validate if validate is not None else (lambda v: -self._score(v, 0))
        self._defaults = (float(factor), float(crossover_rate), float(weight_factor))
        self._start, self.init_range = start, init_range
        self.rng = np.random.default_rng(seed)
        self.best_vector: np.ndarray | None = None
        self.best_score = -np.inf
        self.history: list[float] = []  # the best validation score after each batch
        self._unchanged = 0
        self._new_population()

    # -- the population -----------------------------------------------------------------------------
    def _new_population(self) -> None:
        """Members ~ U(−a, a), a = ``init_range`` or by default √(6/(n+1)) (Xavier's bound for the vector, as the
        Go spaGO), within the bound; member 0 is the starting vector (or the best one so far, after a reset).
        DE reaches beyond the initial range only slowly, so a small population needs a range that covers
        the optimum."""
        a = min(self.init_range or np.sqrt(6.0 / (self.size + 1)), self.bound)
        self.targets = self.rng.uniform(-a, a, (self.population_size, self.size))
        keep = self.best_vector if self.best_vector is not None else self._start
        if keep is not None:
            self.targets[0] = np.clip(keep, -self.bound, self.bound)
        self.hyper = np.tile(np.array(self._defaults), (self.population_size, 1))  # F, CR, w per member
        self.target_scores = np.full(self.population_size, np.inf)

    def _load(self, vector: np.ndarray) -> None:
        if self.model is None:
            return
        offset = 0
        for p in self.model.parameters():
            p.assign(vector[offset:offset + p.size].reshape(p.shape))
            offset += p.size

    def _score(self, vector: np.ndarray, batch: int) -> float:
        self._load(vector)
        return float(self.score_fn(vector, batch))

    def _others(self, i: int, k: int, pool=None) -> np.ndarray:
        pool = np.arange(self.population_size) if pool is None else np.asarray(pool)
        return self.rng.choice(pool[pool != i], size=k, replace=False)

    # -- one generation step ---------------------------------------------------------------------------
    def _mutate(self) -> np.ndarray:
        x, f, w = self.targets, self.hyper[:, :1], self.hyper[:, 2:]
        n = self.population_size
        if self.mutation == "rand1":
            picks = np.array([self._others(i, 3) for i in range(n)])
            donors = x[picks[:, 0]] + f * (x[picks[:, 1]] - x[picks[:, 2]])
        else:
            best = x[int(np.argmin(self.target_scores))]
            donors = np.empty_like(x)
            for i in range(n):
                ring = (i + np.arange(-self.window, self.window + 1)) % n
                nbest = x[ring[int(np.argmin(self.target_scores[ring]))]]
                a, b = self._others(i, 2)
                c, d = self._others(i, 2, ring)
                glob = x[i] + f[i] * (best - x[i]) + f[i] * (x[a] - x[b])
                local = x[i] + f[i] * (nbest - x[i]) + f[i] * (x[c] - x[d])
                donors[i] = w[i] * glob + (1.0 - w[i]) * local
        return np.clip(donors, -self.bound, self.bound)

    def _crossover(self, donors: np.ndarray) -> np.ndarray:
        take = self.rng.random(donors.shape) < self.hyper[:, 1:2]
        take[np.arange(self.population_size), self.rng.integers(0, self.size, self.population_size)] = True
        return np.where(take, donors, self.targets)

    def _adapt(self, i: int) -> None:
        redraw = self.rng.random(3) < 0.1
        fresh = (0.1 + 0.9 * self.rng.random(), self.rng.random(), 0.1 + 0.9 * self.rng.random())
        self.hyper[i] = np.where(redraw, fresh, self.hyper[i])

    def step(self, batch: int = 0) -> None:
        """One mutation, crossover and selection over the population, scored on ``batch``."""
        trials = self._crossover(self._mutate())
        for i in range(self.population_size):
            s = self._score(trials[i], batch)
            if s < self.target_scores[i]:
                self.targets[i], self.target_scores[i] = trials[i], s
                if self.adaptive:
                    self._adapt(i)

    def optimize(self, generations: int, batches: int = 1, steps: int = 1) -> tuple[np.ndarray, float]:
        """Evolve for ``generations``; each scores the targets on each of ``batches`` batches, runs ``steps``
        steps there, then validates. Returns (best vector, its validation score); a model is left holding it."""
        for _ in range(int(generations)):
            for batch in range(int(batches)):
                self.target_scores = np.array([self._score(v, batch) for v in self.targets])
                for _ in range(int(steps)):
                    self.step(batch)
                self._validate()
        if self.best_vector is not None:
            self._load(self.best_vector)
        return self.best_vector, self.best_score

    def _validate(self) -> None:
        scores = []
        for v in self.targets:
            self._load(v)
            scores.append(float(self.validate_fn(v)))
        i = int(np.argmax(scores))
        if scores[i] > self.best_score:
            self.best_vector, self.best_score, self._unchanged = self.targets[i].copy(), scores[i], 0
            if self.on_new_best is not None:
                self.on_new_best(self.best_vector, self.best_score)
        else:
            self._unchanged += 1
        self.history.append(self.best_score)
        if self.reset_after and self._unchanged >= self.reset_after:
            self._new_population()
            self._unchanged = 0
