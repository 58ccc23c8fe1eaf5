"""Piecewise-linear interpolation of a latency over measured widths (ALCS's latency model).

ALCS estimates a layer's run time at any sparsity by linear interpolation between the run
times measured at a few sparsity levels; here the levels are kept widths (channels), measured
at multiples of the target's vector lanes. Between two measured widths the value is on the
segment joining them; outside the measured range the end segment is extended.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


class PiecewiseLinear:
    """``fit(widths, values)`` then ``predict(widths)``; learned knots in ``knots_``/``values_``.

    Repeated widths are averaged. One measured width gives a constant."""

    def fit(self, widths: Sequence[float], values: Sequence[float]) -> "PiecewiseLinear":
        w = np.asarray(widths, dtype=float)
        v = np.asarray(values, dtype=float)
        if w.shape != v.shape or w.ndim != 1 or w.size == 0:
            raise ValueError(f"widths and values must be two equal-length non-empty 1-D sequences, "
                             f"got shapes {w.shape} and {v.shape}")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(v))):
            raise ValueError("widths and values must be finite")
        knots = np.unique(w)
        self.knots_ = knots
        self.values_ = np.array([v[w == k].mean() for k in knots])
        return self

    def predict(self, widths) -> np.ndarray:
        """Interpolated values at ``widths`` (any shape), extrapolated linearly outside."""
        w = np.asarray(widths, dtype=float)
        k, v = self.knots_, self.values_
        if k.size == 1:
            return np.full(w.shape, v[0])
        out = np.interp(w, k, v)
        lo, hi = w < k[0], w > k[-1]
        out = np.where(lo, v[0] + (w - k[0]) * (v[1] - v[0]) / (k[1] - k[0]), out)
        out = np.where(hi, v[-1] + (w - k[-1]) * (v[-1] - v[-2]) / (k[-1] - k[-2]), out)
        return out

    def to_dict(self) -> dict:
        return {"widths": self.knots_.tolist(), "values": self.values_.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "PiecewiseLinear":
        return cls().fit(d["widths"], d["values"])
