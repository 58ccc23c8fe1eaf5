"""Synthetic tabular benchmarks whose best network under every budget is known: for the
tests of the budget-aware loop and for developing it without looking at a real table's
regret.

A table (:func:`synthetic_table`) is a layer-wise space of ``layers`` layers with
``choices`` options each (every combination is a network, ``choices ** layers`` rows).
Option ``j`` of layer ``l`` has a cost ``c[l, j]`` (option 0 costs nothing: a skip);
latency is the sum of the costs (plus a fixed stem, in ms). Accuracy (percent) is
``floor + (ceiling - floor) * (1 - exp(-q))`` of a quality ``q``: per-layer main effects
that grow like the square root of the cost with a random per-option deviation, plus
random pairwise interactions between layers (``interaction``: their scale relative to the
main effects), plus Gaussian noise of ``noise`` points (a training's seed noise). So
bigger networks are usually, not always, better, and the best under a budget is found
only by search. ``prior`` holds two features that cost no training, as a real space
has: the log total cost (like log MACs) and a proxy score correlated with the quality
(main effects with perturbed weights), both imperfect by construction.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SyntheticTable:
    """``choices (N, L)`` option per layer, ``X (N, L)`` encoding (option / (C - 1)),
    ``accuracy (N,)`` percent, ``latency_ms (N,)``, ``prior (N, 2)``."""

    choices: np.ndarray
    X: np.ndarray
    accuracy: np.ndarray
    latency_ms: np.ndarray
    prior: np.ndarray

    def oracle(self, indices) -> np.ndarray:
        """The lookup: accuracies (percent) of pool indices."""
        return self.accuracy[np.asarray(indices, dtype=np.int64)]

    def best_under(self, budget_ms: float) -> int:
        """Pool index of the most accurate network within ``budget_ms`` (-1: none)."""
        feas = np.flatnonzero(self.latency_ms <= budget_ms)
        return int(feas[np.argmax(self.accuracy[feas])]) if len(feas) else -1

    def budgets(self, quantiles=(0.25, 0.5, 0.75)) -> list[float]:
        """Budgets (ms) at quantiles of the table's latencies."""
        return [float(np.quantile(self.latency_ms, q)) for q in quantiles]


def synthetic_table(seed: int, layers: int = 6, choices: int = 3, interaction: float = 0.3,
                    noise: float = 0.1) -> SyntheticTable:
    """A seeded synthetic table (module docstring); ``choices ** layers`` networks."""
    rng = np.random.default_rng(seed)
    opts = np.array(list(itertools.product(range(choices), repeat=layers)), dtype=np.int64)
    # costs: option 0 is free (skip), the others increase; later layers cost differently
    cost = np.zeros((layers, choices))
    cost[:, 1:] = np.sort(rng.uniform(0.2, 1.0, (layers, choices - 1)), axis=1) * rng.uniform(0.5, 1.5, (layers, 1))
    weight = rng.uniform(0.3, 1.0, layers)
    main = weight[:, None] * np.sqrt(cost) + rng.normal(0, 0.15, (layers, choices)) * (cost > 0)
    rows = np.arange(layers)
    q = main[rows, opts].sum(axis=1)
    if interaction > 0:
        pair = rng.normal(0, interaction * main.std(), (layers, choices, layers, choices))
        for a in range(layers):
            for b in range(a + 1, layers):
                q = q + pair[a, opts[:, a], b, opts[:, b]] / np.sqrt(layers)
    q = (q - q.min()) / (q.max() - q.min()) * 3.0
    acc = 60.0 + 35.0 * (1.0 - np.exp(-q)) + rng.normal(0, noise, len(q))
    lat = 1.0 + cost[rows, opts].sum(axis=1)
    proxy_w = weight * rng.lognormal(0, 0.5, layers)
    proxy = (proxy_w[:, None] * np.sqrt(cost))[rows, opts].sum(axis=1) + rng.normal(0, 0.3, len(q))
    prior = np.c_[np.log(lat), proxy]
    return SyntheticTable(opts, opts / max(choices - 1, 1), acc, lat, prior)
