"""The positions of a space, the effects model on them, and a balanced design of networks.

A *position* is a dimension of the space with more than one choice: a layer of a per-layer
space (``layers[3]``: which block), or one field of a stage of a stage-wise space
(``stages[2].kernel``, ``.expansion``, ``.blocks`` = depth, ``.channels`` = width) and the
global ``resolution`` / ``stem_channels`` / ``head_channels``. Dimensions with one choice
are constant and left out.

The *effects model* is additive over positions: ``y = b0 + sum_j effect_j(choice_j)``. A
position's columns in the model matrix code its choices: one indicator per choice but the
first (treatment coding) for block names and for numeric dimensions of up to three
choices; for numeric dimensions of four or more (resolution, a stage's width or expansion
in ``mobilenetv2``) a centred linear and quadratic term of the value (orthogonal
polynomial contrasts truncated at degree 2, the usual choice for quantitative factors in
experimental design; the cubic and higher terms go to the error), which keeps the model
small enough for at most 60 measured networks. ``EffectsModel.level_rows`` turns
coefficients back into one effect per choice.

``balanced_design`` chooses the networks to measure: every position's column holds each
choice equally often (balance), and a seeded coordinate exchange (swaps inside a column,
which keep the balance) maximizes ``log det(X'X)`` of the model matrix (D-optimality: the
smallest joint confidence region of the effects), so every effect is identifiable and the
positions are close to orthogonal (one position's estimate does not borrow from another's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

POLYNOMIAL_FROM = 4   # numeric dimensions with this many choices or more: linear + quadratic coding
MIN_RESIDUAL_DOF = 10  # default design size: parameters + this many degrees of freedom for the error
MAX_NETWORKS = 60     # default cap of the design (the method's budget of measured networks per target)


def _coding(choices: tuple) -> np.ndarray:
    """``(k, m)`` model-matrix rows of a position's ``k`` choices (module docstring)."""
    k = len(choices)
    numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)
    if numeric and k >= POLYNOMIAL_FROM:
        v = np.asarray(choices, dtype=float)
        z = (v - v.mean()) / v.std()
        q = z * z
        q = q - q.mean()
        q = q - (q @ z) / (z @ z) * z  # orthogonal to the constant and to the linear term
        return np.column_stack([z, q / np.abs(q).max()])
    return np.eye(k)[:, 1:]


@dataclass(frozen=True)
class Position:
    """One searchable dimension: its index in ``space.dimensions()``, path and choices."""

    dim: int
    path: str
    choices: tuple
    coding: np.ndarray = field(compare=False, repr=False)

    @property
    def kind(self) -> str:
        """``treatment`` (one indicator per non-first choice) or ``quadratic`` (module docstring)."""
        return "quadratic" if self.coding.shape[1] < len(self.choices) - 1 else "treatment"


@dataclass(frozen=True)
class EffectsModel:
    """The additive effects model of a space: its positions and model-matrix columns."""

    n_dims: int
    positions: tuple[Position, ...]

    @property
    def n_params(self) -> int:
        """Columns of the model matrix: the intercept plus every position's coding columns."""
        return 1 + sum(p.coding.shape[1] for p in self.positions)

    def slices(self) -> list[slice]:
        """Model-matrix columns of each position, in order."""
        out, start = [], 1
        for p in self.positions:
            out.append(slice(start, start + p.coding.shape[1]))
            start += p.coding.shape[1]
        return out

    def matrix(self, indices) -> np.ndarray:
        """``(N, n_params)`` model matrix of choice-index rows ``(N, n_dims)``."""
        idx = np.atleast_2d(np.asarray(indices, dtype=np.int64))
        if idx.shape[1] != self.n_dims:
            raise ValueError(f"expected choice-index rows of {self.n_dims} dimensions, got {idx.shape[1]}")
        cols = [np.ones((len(idx), 1))] + [p.coding[idx[:, p.dim]] for p in self.positions]
        return np.hstack(cols)

    def level_rows(self, j: int) -> np.ndarray:
        """``(k, n_params)``: row ``c`` dotted with the coefficients is position ``j``'s effect
        of choice ``c`` (relative to the coding's zero; only differences are meaningful)."""
        p = self.positions[j]
        rows = np.zeros((len(p.choices), self.n_params))
        rows[:, self.slices()[j]] = p.coding
        return rows


def effects_model(space) -> EffectsModel:
    """The effects model of a space (either kind: anything with ``dimensions()``)."""
    dims = space.dimensions()
    positions = tuple(Position(d, path, tuple(choices), _coding(tuple(choices)))
                      for d, (path, choices) in enumerate(dims) if len(choices) > 1)
    if not positions:
        raise ValueError(f"space {space.name!r} has no dimension with more than one choice: nothing to profile")
    return EffectsModel(len(dims), positions)


def default_design_size(model: EffectsModel, space_size: int, cap: int = MAX_NETWORKS) -> int:
    """Networks to measure: the smallest multiple of every position's number of choices (so
    each choice appears equally often) with ``MIN_RESIDUAL_DOF`` degrees of freedom left for
    the error, at most ``cap`` and at most the space's size (a small space is measured whole)."""
    p = model.n_params
    lcm = math.lcm(*(len(q.choices) for q in model.positions))
    n = -(-(p + MIN_RESIDUAL_DOF) // lcm) * lcm
    if n > cap:  # the balanced size does not fit under the cap: the largest multiple that does, else the cap
        n = (cap // lcm) * lcm if (cap // lcm) * lcm > p + 1 else cap
    return int(min(n, space_size))


def _logdet(X: np.ndarray) -> float:
    sign, val = np.linalg.slogdet(X.T @ X)
    return float(val) if sign > 0 else -np.inf


def balanced_design(model: EffectsModel, n: int, seed: int = 0, starts: int = 3, sweeps: int = 12) -> np.ndarray:
    """``(n, n_dims)`` choice-index rows: balanced columns, no duplicate network, D-optimized
    by a seeded coordinate exchange from ``starts`` random balanced designs (module
    docstring); the best one. Constant dimensions are 0. Raises ValueError when ``n`` cannot
    identify the model with a confidence interval (``n <= n_params``)."""
    if n <= model.n_params:
        raise ValueError(f"{n} networks cannot estimate {model.n_params} effects with a confidence interval: "
                         f"need more than {model.n_params}")
    rng = np.random.default_rng(seed)
    best_idx, best_val = None, -np.inf
    for _ in range(starts):
        idx, val = _exchange(model, n, rng, sweeps)
        if val > best_val:
            best_idx, best_val = idx, val
    return best_idx


def _exchange(model: EffectsModel, n: int, rng: np.random.Generator, sweeps: int) -> tuple[np.ndarray, float]:
    """One random balanced start improved by swaps inside columns; ``(design, log det)``.

    A swap changes two rows of the model matrix, a rank-4 change of ``M = X'X``: its
    determinant ratio is ``det(C^-1 + U' M^-1 U) det(C)`` (matrix determinant lemma, ``U`` the
    old and new rows, ``C = diag(1, 1, -1, -1)``) and an accepted swap updates ``M^-1`` by
    Woodbury's identity, so each trial costs O(p^2) instead of a new determinant."""
    idx = np.zeros((n, model.n_dims), dtype=np.int64)
    for p in model.positions:
        idx[:, p.dim] = rng.permutation(np.resize(np.arange(len(p.choices)), n))
    _remove_duplicates(idx, model, rng)
    X = model.matrix(idx)
    best = _logdet(X)
    if not np.isfinite(best):  # a singular start: take the first full-rank one the swaps reach
        best = -1e300
    c_inv = np.diag([1.0, 1.0, -1.0, -1.0])
    slices = model.slices()
    for _ in range(sweeps):
        improved = False
        M_inv = np.linalg.pinv(X.T @ X)
        for p, cols in zip(model.positions, slices):
            col = p.dim
            for _ in range(2 * n):
                a, b = rng.integers(n, size=2)
                if idx[a, col] == idx[b, col]:
                    continue
                ya, yb = X[a].copy(), X[b].copy()
                ya[cols], yb[cols] = X[b, cols], X[a, cols]
                U = np.column_stack([ya, yb, X[a], X[b]])
                S = c_inv + U.T @ M_inv @ U
                sign, ratio = np.linalg.slogdet(S)
                gain = ratio if sign > 0 else -np.inf  # det(C) = 1
                if not gain > 1e-9:
                    continue
                idx[[a, b], col] = idx[[b, a], col]
                if _has_duplicates(idx):
                    idx[[a, b], col] = idx[[b, a], col]
                    continue
                X[a], X[b] = ya, yb
                MU = M_inv @ U
                M_inv = M_inv - MU @ np.linalg.solve(S, MU.T)
                best += gain
                improved = True
        best = _logdet(X)
        if not improved:
            break
    return idx, best


def _has_duplicates(idx: np.ndarray) -> bool:
    return len(np.unique(idx, axis=0)) < len(idx)


def _remove_duplicates(idx: np.ndarray, model: EffectsModel, rng: np.random.Generator, tries: int = 10_000) -> None:
    """Swap entries inside columns (balance kept) until no two rows are the same network."""
    for _ in range(tries):
        _, first, counts = np.unique(idx, axis=0, return_index=True, return_counts=True)
        dup = [i for i in range(len(idx)) if i not in set(first)]
        if not dup:
            return
        a, b = dup[0], int(rng.integers(len(idx)))
        col = model.positions[int(rng.integers(len(model.positions)))].dim
        idx[[a, b], col] = idx[[b, a], col]
    raise ValueError("could not draw a design without duplicate networks (the space is too small for it)")


def design_summary(model: EffectsModel, indices) -> dict:
    """How good a design is: networks, parameters, residual degrees of freedom, whether each
    position's choices are balanced, and ``orthogonality`` = (det(C) / prod_j det(C_j)) **
    (1 / (n_params - 1)) with C the centred cross-product matrix and C_j its block of position
    j: 1.0 when the positions are orthogonal (no estimate borrows from another position),
    smaller when they are confounded, 0 when an effect is not identifiable."""
    idx = np.atleast_2d(np.asarray(indices, dtype=np.int64))
    X = model.matrix(idx)
    balanced = all(np.ptp(np.bincount(idx[:, p.dim], minlength=len(p.choices))) <= 1 for p in model.positions)
    Xc = X[:, 1:] - X[:, 1:].mean(axis=0)
    C = Xc.T @ Xc
    sign, full = np.linalg.slogdet(C)
    blocks = 0.0
    for s in model.slices():
        bs, bv = np.linalg.slogdet(C[s.start - 1:s.stop - 1, s.start - 1:s.stop - 1])
        blocks += bv if bs > 0 else -np.inf
    ortho = float(np.exp((full - blocks) / C.shape[0])) if sign > 0 and np.isfinite(blocks) else 0.0
    return {"networks": int(len(idx)), "parameters": model.n_params, "residual_dof": int(len(idx) - model.n_params),
            "balanced": bool(balanced), "orthogonality": round(min(ortho, 1.0), 4),
            "distinct_networks": int(len(np.unique(idx, axis=0)))}
